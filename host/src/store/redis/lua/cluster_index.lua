-- Cluster: one bucket of the plugin's session index after its sessions were written
-- (KEYS: the bucket's names and expiry; ARGV: now, then per session member, PTTL,
-- PTTL).
local now = tonumber(ARGV[1])
for a = 2, #ARGV, 3 do
  index_session(KEYS[1], KEYS[2], ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), now)
end
prune_sessions(KEYS[1], KEYS[2], now)
return 0
