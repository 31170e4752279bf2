-- Claims due schedules of one bucket. KEYS: due, rec, claims. ARGV: now (ms), the
-- lease's end (ms), most to claim, the claim. A claimed schedule stays in `due`,
-- due at the lease's end, so it runs again if its host never finishes it.
-- Returns record, due ms, record, due ms... for the schedules claimed, then when
-- the soonest schedule left in `due` is due (claimed ones: their lease's end), if
-- any is.
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
local out = {}
for i = 1, #found, 2 do
  local id = found[i]
  local rec = redis.call('HGET', KEYS[2], id)
  if rec then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('HSET', KEYS[3], id, ARGV[4])
    out[#out + 1] = rec
    out[#out + 1] = found[i + 1]
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[3], id)
  end
end
local soonest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if soonest[2] then out[#out + 1] = soonest[2] end
return out
