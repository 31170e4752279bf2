-- How a claimed schedule's run went. KEYS: due, rec, claims, by, fin. ARGV: id,
-- claim, record, 'again' or 'finished', due ms (again) or now (finished), its
-- by-member, how long (ms) and how many finished schedules the bucket keeps.
-- Returns 0 (nothing written) if the claim no longer holds the schedule, else 1.
local id = ARGV[1]
if redis.call('HGET', KEYS[3], id) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[3], id)
redis.call('HSET', KEYS[2], id, ARGV[3])
if ARGV[4] == 'again' then
  redis.call('ZADD', KEYS[1], ARGV[5], id)
  return 1
end
redis.call('ZREM', KEYS[1], id)
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[6])
-- Drop what is kept too long, or beyond the count (a few per finish).
local function forget(members)
  for _, m in ipairs(members) do
    redis.call('HDEL', KEYS[2], string.sub(m, -24))
    redis.call('ZREM', KEYS[4], m)
    redis.call('ZREM', KEYS[5], m)
  end
end
forget(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', tonumber(ARGV[5]) - tonumber(ARGV[7]), 'LIMIT', 0, 16))
local extra = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[8])
if extra > 0 then forget(redis.call('ZRANGE', KEYS[5], 0, math.min(extra, 16) - 1)) end
return 1
