-- Buffers a stream's events and counts them in the ledger. KEYS: the ledger's
-- sizes, sessions and other keys, then the stream's key (standalone: the events
-- are pushed here; a cluster pushes them in the stream's own slot first and calls
-- this with the ledger only). ARGV: now, the stream's key, TTL in ms, the events'
-- bytes, then the events.
local now, member, ttl = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local u = {sizes = KEYS[1], sessions = KEYS[2], other = KEYS[3]}
if KEYS[4] then
  for first = 5, #ARGV, 1000 do
    redis.call('RPUSH', KEYS[4], unpack(ARGV, first, math.min(first + 999, #ARGV)))
  end
  redis.call('PEXPIRE', KEYS[4], ttl)
end
local held = usage_live(u, u.other, member, now)
if held == 0 then held = #member + OVERHEAD end
usage_put(u, u.other, member, held + tonumber(ARGV[4]), now + tonumber(ttl))
return 0
