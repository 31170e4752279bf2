-- Cluster: the plugin's value index after its values were written (KEYS: the value
-- index, the bucket keys' index; ARGV: now, then per value member, score or 'del').
local now = tonumber(ARGV[1])
for a = 2, #ARGV, 2 do
  local score = ARGV[a + 1]
  if score == 'del' then score = nil end
  index_value(KEYS[1], KEYS[2], ARGV[a], score)
end
prune_values(KEYS[1], KEYS[2], now)
return 0
