-- Cluster: 1 if the values (ARGV: now, limit, then member, op pairs) would exceed
-- the limit (KEYS: the value index).
local v = {}
for a = 3, #ARGV, 2 do v[#v + 1] = {member = ARGV[a], op = ARGV[a + 1]} end
if over_limit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), v) then return 1 end
return 0
