-- Cluster: one bucket of the plugin's session index and its shard of the usage
-- ledger, after a commit's parts were written. KEYS: the bucket's names and
-- expiry, then the shard's sizes, sessions and other keys. ARGV: now, then
-- entries: 's', member, state key, history key, cleared ('1'/'0'), payload bytes
-- added (see session_growth), PTTL, PTTL for a session; 'o', key, size, expiry
-- ('del': removed) for another entry.
local now = tonumber(ARGV[1])
local u = {sizes = KEYS[3], sessions = KEYS[4], other = KEYS[5]}
local a, indexed = 2, false
while a <= #ARGV do
  if ARGV[a] == 's' then
    local p1, p2 = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])
    index_session(KEYS[1], KEYS[2], ARGV[a + 1], p1, p2, now)
    usage_session(u, ARGV[a + 2], ARGV[a + 3], ARGV[a + 4] == '1', tonumber(ARGV[a + 5]), p1, p2, now)
    indexed = true
    a = a + 8
  else
    local score = ARGV[a + 3]
    if score == 'del' then score = nil end
    usage_put(u, u.other, ARGV[a + 1], tonumber(ARGV[a + 2]), score)
    a = a + 4
  end
end
if indexed then prune_sessions(KEYS[1], KEYS[2], now) end
if now % 8 == 0 then usage_prune(u, now, 64) end
return 0
