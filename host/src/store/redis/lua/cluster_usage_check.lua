-- Cluster: before a commit, whether it fits the quota (KEYS: the ledger's sizes,
-- sessions and other keys; ARGV: now, most sessions, most bytes ('' = no limit),
-- the bytes the commit's sessions may add, the count of sessions it may create,
-- their state keys, then per other entry its key and new size). Returns 0, -2 for
-- sessions or -3 for bytes.
local now = tonumber(ARGV[1])
local u = {sizes = KEYS[1], sessions = KEYS[2], other = KEYS[3]}
local n = tonumber(ARGV[5])
local new_sessions = 0
for a = 6, 5 + n do
  if usage_live(u, u.sessions, ARGV[a], now) == 0 then new_sessions = new_sessions + 1 end
end
local e = {}
for a = 6 + n, #ARGV, 2 do e[#e + 1] = {member = ARGV[a], size = tonumber(ARGV[a + 1])} end
local refused = quota_refusal(u, now, ARGV[2], ARGV[3], new_sessions, e, tonumber(ARGV[4]))
if refused == 'sessions' then return -2 elseif refused == 'bytes' then return -3 end
return 0
