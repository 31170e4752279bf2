-- Cluster: one value's write (KEYS: the value; ARGV: now, member, then its
-- arguments). Returns -1 if the check fails, otherwise its index score ('del' if
-- removed) and its length.
if not value_ok(KEYS[1], 3) then return -1 end
local score = value_apply(KEYS[1], 3, tonumber(ARGV[1]))
if score == nil then return {'del', 0} end
return {tostring(score), redis.call('STRLEN', KEYS[1])}
