-- The schedule writes of a commit (see store/schedule.rs). `k` holds a bucket's
-- keys: due (zset id -> due ms), rec (hash id -> record), claims (hash id -> the
-- claim of the host running it), by (zset of `<session>/<id>`, all scores 0).
-- Arguments from `a`: op count, most pending schedules ('' = no limit), then per
-- op: 'add' or 'cancel', id, by-member, due ms, record.
local function schedules_ok(k, a)
  local n, grows = tonumber(ARGV[a] or '0'), 0
  for i = 0, n - 1 do
    local o = a + 2 + 5 * i
    if ARGV[o] == 'cancel' then
      local id = ARGV[o + 1]
      if not redis.call('ZSCORE', k.due, id) or redis.call('HEXISTS', k.claims, id) == 1 then
        return 'conflict'
      end
      grows = grows - 1
    else
      grows = grows + 1
    end
  end
  local most = ARGV[a + 1]
  if n > 0 and most ~= '' and grows > 0 and redis.call('ZCARD', k.due) + grows > tonumber(most) then
    return 'quota'
  end
  return nil
end

local function schedules_apply(k, a)
  local n = tonumber(ARGV[a] or '0')
  for i = 0, n - 1 do
    local o = a + 2 + 5 * i
    local id = ARGV[o + 1]
    if ARGV[o] == 'cancel' then
      redis.call('ZREM', k.due, id)
      redis.call('HDEL', k.rec, id)
      redis.call('ZREM', k.by, ARGV[o + 2])
    else
      redis.call('HSET', k.rec, id, ARGV[o + 4])
      redis.call('ZADD', k.due, ARGV[o + 3], id)
      redis.call('ZADD', k.by, 0, ARGV[o + 2])
    end
  end
end
