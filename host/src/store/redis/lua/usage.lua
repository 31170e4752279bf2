-- A namespace's usage (KEYS: the ledger's sizes, sessions and other keys; ARGV:
-- now): prunes expired entries, then returns {live sessions, bytes}.
local now = tonumber(ARGV[1])
local u = {sizes = KEYS[1], sessions = KEYS[2], other = KEYS[3]}
usage_prune(u, now, 1000)
return {redis.call('ZCOUNT', u.sessions, '(' .. now, '+inf'), usage_recorded(u, '')}
