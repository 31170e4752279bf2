-- Cluster: the ledger after a commit's parts were written (KEYS: its sizes,
-- sessions and other keys; ARGV: now, then entries: 's', state key, history key,
-- cleared ('1'/'0'), added payload bytes, PTTL, PTTL for a session; 'o', key, size,
-- expiry ('del': removed) for another entry).
local now = tonumber(ARGV[1])
local u = {sizes = KEYS[1], sessions = KEYS[2], other = KEYS[3]}
local a = 2
while a <= #ARGV do
  if ARGV[a] == 's' then
    usage_session(u, ARGV[a + 1], ARGV[a + 2], ARGV[a + 3] == '1', tonumber(ARGV[a + 4]),
      tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), now)
    a = a + 7
  else
    local score = ARGV[a + 3]
    if score == 'del' then score = nil end
    usage_put(u, u.other, ARGV[a + 1], tonumber(ARGV[a + 2]), score)
    a = a + 4
  end
end
if now % 8 == 0 then usage_prune(u, now, 64) end
return 0
