-- Cluster: one shard of a plugin's usage ledger, read before a commit (KEYS: its
-- sizes, sessions and other keys). ARGV: now, prune ('1': drop expired entries
-- first), the count of state keys, the state keys of sessions the commit may
-- create, then per other entry of the commit its key and new size. Returns {live
-- sessions, bytes, sessions the commit would add, bytes its other entries would
-- add}.
local now = tonumber(ARGV[1])
local u = {sizes = KEYS[1], sessions = KEYS[2], other = KEYS[3]}
if ARGV[2] == '1' then usage_prune(u, now, 1000) end
local n = tonumber(ARGV[3])
local new_sessions = 0
for a = 4, 3 + n do
  if usage_live(u, u.sessions, ARGV[a], now) == 0 then new_sessions = new_sessions + 1 end
end
local e = {}
for a = 4 + n, #ARGV, 2 do e[#e + 1] = {member = ARGV[a], size = tonumber(ARGV[a + 1])} end
local live = redis.call('ZCOUNT', u.sessions, '(' .. now, '+inf')
return {live, usage_recorded(u, ''), new_sessions, usage_growth(u, e)}
