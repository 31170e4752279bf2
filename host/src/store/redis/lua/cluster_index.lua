-- Cluster: the plugin's indexes after its sessions and values were written (KEYS:
-- index names, expiry, values; ARGV: now, session count, per session member, PTTL,
-- PTTL; then per value member, score or 'del').
local now = tonumber(ARGV[1])
local a = 3
for i = 1, tonumber(ARGV[2]) do
  index_session(KEYS[1], KEYS[2], ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), now)
  a = a + 3
end
local nv = 0
while a <= #ARGV do
  local score = ARGV[a + 1]
  if score == 'del' then score = nil end
  index_value(KEYS[3], ARGV[a], score)
  a = a + 2
  nv = nv + 1
end
if nv > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
prune_sessions(KEYS[1], KEYS[2], now)
return 0
