-- The Lua functions every commit script is made of. A session's keys are its state,
-- history, idempotency record (the state key again when the turn has none) and kept
-- versions. Its arguments start at `x` (its member): expected version ('' = any),
-- expected history length ('' = any), clear ('1'/'0'), state op
-- ('keep'/'put'/'del'), value, version, pops, expiry ('keep', 'never', 'set:MS',
-- 'extend:MS'), the idempotency claim the record key must hold ('' = no record),
-- the record, its TTL in ms, versions to keep, item count, items... A value's
-- arguments start at `x` (its op, after its member): op ('set'/'del'/'add'), value
-- or delta, ttl ms ('0' = never for a set, keep for an add), what it must hold
-- first ('' = anything, '-' = nothing, '=' followed by the bytes it must hold).
local function session_ok(st, hi, id, x)
  if ARGV[x + 9] ~= '' and redis.call('GET', id) ~= ARGV[x + 9] then return false end
  if ARGV[x + 1] ~= '' and (redis.call('HGET', st, 'ver') or '0') ~= ARGV[x + 1] then
    return false
  end
  if ARGV[x + 2] ~= '' and tostring(redis.call('LLEN', hi)) ~= ARGV[x + 2] then
    return false
  end
  return true
end

-- Applies expiry `e` to the state and history keys; returns their PTTLs.
local function session_expiry(st, hi, e)
  if e == 'never' then
    redis.call('PERSIST', st)
    redis.call('PERSIST', hi)
    -- Whatever exists now has no TTL; the index needs only to know if anything does.
    if redis.call('EXISTS', st, hi) > 0 then return -1, -1 end
    return -2, -2
  elseif string.sub(e, 1, 4) == 'set:' then
    -- PEXPIRE answers 1 if the key exists: the TTLs are then known without PTTL.
    local ms = tonumber(string.sub(e, 5))
    local p1, p2 = -2, -2
    if redis.call('PEXPIRE', st, ms) == 1 then p1 = ms end
    if redis.call('PEXPIRE', hi, ms) == 1 then p2 = ms end
    return p1, p2
  elseif string.sub(e, 1, 7) == 'extend:' then
    redis.call('PEXPIRE', st, string.sub(e, 8), 'GT')
    redis.call('PEXPIRE', hi, string.sub(e, 8), 'GT')
  end
  return redis.call('PTTL', st), redis.call('PTTL', hi)
end

-- The kept versions live and expire with the session (p1, p2: its keys' PTTLs).
local function versions_follow(ve, p1, p2)
  if p1 == -2 and p2 == -2 then
    redis.call('DEL', ve)
  elseif p1 == -1 or p2 == -1 then
    redis.call('PERSIST', ve)
  else
    redis.call('PEXPIRE', ve, math.max(p1, p2))
  end
end

-- Applies a session's writes; returns the PTTL of its state and history keys
-- afterwards. With versions kept, the replaced state document goes to the front of
-- the versions list as `<version> <written at ms> <history length> <document>`.
local function session_apply(st, hi, id, ve, x, now)
  local keep, n = tonumber(ARGV[x + 12]), tonumber(ARGV[x + 13])
  if ARGV[x + 9] ~= '' then redis.call('SET', id, ARGV[x + 10], 'PX', ARGV[x + 11]) end
  if ARGV[x + 3] == '1' then redis.call('DEL', st, hi, ve) end
  local op = ARGV[x + 4]
  if keep > 0 and op ~= 'keep' then
    local old = redis.call('HMGET', st, 'v', 'ver', 'at', 'hl')
    if old[1] then
      redis.call('LPUSH', ve, (old[2] or '0') .. ' ' .. (old[3] or '0') .. ' ' .. (old[4] or '0') .. ' ' .. old[1])
      redis.call('LTRIM', ve, 0, keep - 1)
    end
  end
  if op == 'put' then
    redis.call('HSET', st, 'v', ARGV[x + 5], 'ver', ARGV[x + 6])
  elseif op == 'del' then
    redis.call('DEL', st)
  end
  local pops = tonumber(ARGV[x + 7])
  if pops > 0 then redis.call('RPOP', hi, pops) end
  -- Lua's unpack refuses about 8,000 values at once: push in batches. RPUSH
  -- answers the history's length.
  local length
  for first = x + 14, x + 13 + n, 1000 do
    length = redis.call('RPUSH', hi, unpack(ARGV, first, math.min(first + 999, x + 13 + n)))
  end
  if keep > 0 and op == 'put' then
    redis.call('HSET', st, 'at', now, 'hl', length or redis.call('LLEN', hi))
  end
  local p1, p2 = session_expiry(st, hi, ARGV[x + 8])
  if keep > 0 then versions_follow(ve, p1, p2) end
  return p1, p2
end

-- When a session whose keys have PTTLs p1, p2 expires: nil if it is gone.
local function session_score(p1, p2, now)
  if p1 == -2 and p2 == -2 then return nil end
  if p1 ~= -1 and p2 ~= -1 then return now + math.max(p1, p2) end
  return '+inf'
end

local function index_session(names, exp, member, p1, p2, now)
  local score = session_score(p1, p2, now)
  if score == nil then
    redis.call('ZREM', names, member)
    redis.call('ZREM', exp, member)
  else
    redis.call('ZADD', names, 0, member)
    redis.call('ZADD', exp, score, member)
  end
end

-- Removes up to 64 expired index entries, on one commit in 8 (by the clock), which
-- keeps up with expiry at a fraction of the cost; listing prunes too.
local function prune_sessions(names, exp, now)
  if now % 8 ~= 0 then return end
  local old = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 64)
  if #old > 0 then
    redis.call('ZREM', names, unpack(old))
    redis.call('ZREM', exp, unpack(old))
  end
end

-- v: a list of {member =, op =}. True if applying them would leave more than
-- `limit` live values in the index.
local function over_limit(vals, now, limit, v)
  local count = redis.call('ZCOUNT', vals, '(' .. now, '+inf')
  for j = 1, #v do
    local live = redis.call('ZSCORE', vals, v[j].member)
    live = live and tonumber(live) > now
    if v[j].op == 'del' then
      if live then count = count - 1 end
    elseif not live then
      count = count + 1
    end
  end
  return count > limit
end

-- An integer as Redis (and the embedded store) reads one: "0" or an optional '-'
-- and digits without a leading zero, at most 19 of them. Returns its sign and
-- magnitude as two exact parts (high digits, low 10 digits), or nil.
local function integer_parts(s)
  if s == '0' then return 1, 0, 0 end
  local sign, digits = 1, s
  if string.sub(s, 1, 1) == '-' then sign, digits = -1, string.sub(s, 2) end
  if not string.match(digits, '^[1-9]%d*$') or #digits > 19 then return nil end
  local split = math.max(#digits - 10, 0)
  return sign, tonumber(string.sub(digits, 1, split)) or 0, tonumber(string.sub(digits, split + 1))
end

-- True if a + b fits in a signed 64-bit integer (a, b as integer_parts). Doubles
-- are exact below 2^53, so magnitudes are added in two parts.
local function sum_fits(sa, ha, la, sb, hb, lb)
  if sa ~= sb then return true end
  local lo, hi = la + lb, ha + hb
  if lo >= 1e10 then lo, hi = lo - 1e10, hi + 1 end
  -- 2^63 - 1 = 922337203|6854775807; the negative side reaches 2^63.
  local max_lo = 6854775807
  if sa < 0 then max_lo = 6854775808 end
  return hi < 922337203 or (hi == 922337203 and lo <= max_lo)
end

-- An 'add' is refused when the stored value is not an integer or the sum would not
-- fit: the turn read another value than the one stored now, and is run again (its
-- own increment call then reports the problem).
local function value_ok(key, x)
  local expect = ARGV[x + 3]
  if expect ~= '' then
    local held = redis.call('GET', key)
    if expect == '-' then
      if held then return false end
    elseif not held or '=' .. held ~= expect then
      return false
    end
  end
  if ARGV[x] == 'add' then
    local sa, ha, la = integer_parts(redis.call('GET', key) or '0')
    if not sa then return false end
    local sb, hb, lb = integer_parts(ARGV[x + 1])
    if not sb or not sum_fits(sa, ha, la, sb, hb, lb) then return false end
  end
  return true
end

-- Applies a value's write; returns its index score, or nil if it was removed.
local function value_apply(key, x, now)
  local op = ARGV[x]
  if op == 'set' then
    if ARGV[x + 2] == '0' then
      redis.call('SET', key, ARGV[x + 1])
      return '+inf'
    end
    redis.call('SET', key, ARGV[x + 1], 'PX', ARGV[x + 2])
    return now + tonumber(ARGV[x + 2])
  elseif op == 'del' then
    redis.call('DEL', key)
    return nil
  end
  redis.call('INCRBY', key, ARGV[x + 1])
  if ARGV[x + 2] ~= '0' then
    redis.call('PEXPIRE', key, ARGV[x + 2])
    return now + tonumber(ARGV[x + 2])
  end
  local left = redis.call('PTTL', key)
  if left >= 0 then return now + left end
  return '+inf'
end

-- Removes up to 256 expired entries from the value index, and their entries in the
-- bucket keys' index (listing also drops those it meets).
local function prune_values(vals, bucket_keys, now)
  local old = redis.call('ZRANGEBYSCORE', vals, '-inf', now, 'LIMIT', 0, 256)
  if #old > 0 then
    redis.call('ZREM', vals, unpack(old))
    redis.call('ZREM', bucket_keys, unpack(old))
  end
end

-- A value's entry in the value index, and in the bucket keys' index if it holds a
-- key of a bucket (its member starts with \1).
local function index_value(vals, bucket_keys, member, score)
  local in_bucket = string.byte(member, 1) == 1
  if score then
    redis.call('ZADD', vals, score, member)
    if in_bucket then redis.call('ZADD', bucket_keys, 0, member) end
  else
    redis.call('ZREM', vals, member)
    if in_bucket then redis.call('ZREM', bucket_keys, member) end
  end
end

-- The usage ledger (in the plugin's slot; see store::Quota): `u` is {sizes =,
-- sessions =, other =}. An entry is named by its store key (a session by its state
-- key); its bytes are in the hash `sizes`, whose field '' holds their sum, and its
-- expiry in the sorted set `sessions` or `other`. Bytes are the payload plus the
-- key plus OVERHEAD.
local OVERHEAD = 64

-- What a ledger records, read once per script run: a commit asks for the same
-- entry up to three times (its size now, its growth, the record after the writes).
-- Every write below keeps this copy in step. One table per ledger (`u`).
local recorded = {}

local function usage_copy(u)
  local copy = recorded[u]
  if copy == nil then
    copy = {}
    recorded[u] = copy
  end
  return copy
end

local function usage_recorded(u, member)
  local copy = usage_copy(u)
  local held = copy[member]
  if held == nil then
    held = tonumber(redis.call('HGET', u.sizes, member) or '0')
    copy[member] = held
  end
  return held
end

-- The bytes an entry counts while it lives: 0 if it is absent or has expired.
local function usage_live(u, zset, member, now)
  local score = redis.call('ZSCORE', zset, member)
  if score and tonumber(score) > now then return usage_recorded(u, member) end
  return 0
end

-- Records an entry's bytes and expiry; 0 bytes or no score removes it.
local function usage_put(u, zset, member, bytes, score)
  local delta = bytes - usage_recorded(u, member)
  if bytes > 0 and score then
    redis.call('HSET', u.sizes, member, bytes)
    redis.call('ZADD', zset, score, member)
    usage_copy(u)[member] = bytes
  else
    redis.call('HDEL', u.sizes, member)
    redis.call('ZREM', zset, member)
    usage_copy(u)[member] = 0
  end
  if delta ~= 0 then
    usage_copy(u)[''] = redis.call('HINCRBY', u.sizes, '', delta)
  end
end

-- Removes up to n expired entries of each set from the ledger.
local function usage_prune(u, now, n)
  for _, zset in ipairs({u.sessions, u.other}) do
    local old = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, n)
    if #old > 0 then
      local sizes = redis.call('HMGET', u.sizes, unpack(old))
      local freed = 0
      for i = 1, #sizes do freed = freed + tonumber(sizes[i] or '0') end
      redis.call('ZREM', zset, unpack(old))
      redis.call('HDEL', u.sizes, unpack(old))
      local copy = usage_copy(u)
      for i = 1, #old do copy[old[i]] = 0 end
      if freed ~= 0 then copy[''] = redis.call('HINCRBY', u.sizes, '', -freed) end
    end
  end
end

-- How many bytes entries `e` (a list of {member =, size =}) add: their new sizes
-- less what the ledger records for them now.
local function usage_growth(u, e)
  local g = 0
  for i = 1, #e do g = g + e[i].size - usage_recorded(u, e[i].member) end
  return g
end

-- 'sessions' or 'bytes' if `new_sessions` more sessions, or entries `e` plus
-- `extra` bytes, would go over the quota (q_sessions, q_bytes: '' = no limit),
-- otherwise nil. A commit that does not grow the ledger always passes; before
-- refusing bytes, expired entries are pruned.
local function quota_refusal(u, now, q_sessions, q_bytes, new_sessions, e, extra)
  if new_sessions > 0 and q_sessions ~= '' then
    local live = redis.call('ZCOUNT', u.sessions, '(' .. now, '+inf')
    if live + new_sessions > tonumber(q_sessions) then return 'sessions' end
  end
  if q_bytes == '' then return nil end
  local growth = usage_growth(u, e) + extra
  if growth <= 0 then return nil end
  if usage_recorded(u, '') + growth <= tonumber(q_bytes) then return nil end
  usage_prune(u, now, 1000)
  -- Pruning may drop entries `e` replace: their growth is counted again.
  if usage_recorded(u, '') + usage_growth(u, e) + extra > tonumber(q_bytes) then
    return 'bytes'
  end
  return nil
end

-- How many payload bytes a session's writes add to what it stores now (less than
-- 0 if they free more), counted before they apply; a cleared session counts from
-- empty. Kept versions count as the list entries session_apply writes.
local function session_growth(st, hi, ve, x)
  local clear, op = ARGV[x + 3] == '1', ARGV[x + 4]
  local keep, pops, n = tonumber(ARGV[x + 12]), tonumber(ARGV[x + 7]), tonumber(ARGV[x + 13])
  local g, doc = 0, 0
  if not clear then doc = redis.call('HSTRLEN', st, 'v') end
  if op == 'put' then g = #ARGV[x + 5] - doc elseif op == 'del' then g = -doc end
  if keep > 0 and op ~= 'keep' and not clear and redis.call('HEXISTS', st, 'v') == 1 then
    local h = redis.call('HMGET', st, 'ver', 'at', 'hl')
    g = g + doc + #(h[1] or '0') + #(h[2] or '0') + #(h[3] or '0') + 3
    for _, old in ipairs(redis.call('LRANGE', ve, keep - 1, -1)) do g = g - #old end
  end
  if pops > 0 and not clear then
    for _, item in ipairs(redis.call('LRANGE', hi, -pops, -1)) do g = g - #item end
  end
  for i = x + 14, x + 13 + n do g = g + #ARGV[i] end
  return g
end

-- The bytes a session counts after writes that add `g` payload bytes (see
-- session_growth), if it exists then; `live`: what it counts now (usage_live).
local function session_size(live, st, hi, clear, g)
  local base = 0
  if live > 0 and not clear then base = live - #st - #hi - OVERHEAD end
  return math.max(base + g, 0) + #st + #hi + OVERHEAD
end

-- Records a session after its writes (p1, p2: its keys' PTTLs then; `live`: what
-- it counted before them, read again when nil). Pruning between the read and
-- this write only drops expired entries, whose `live` is 0 either way.
local function usage_session(u, st, hi, clear, g, p1, p2, now, live)
  local score = session_score(p1, p2, now)
  local size = 0
  if score then
    if live == nil then live = usage_live(u, u.sessions, st, now) end
    size = session_size(live, st, hi, clear, g)
  end
  usage_put(u, u.sessions, st, size, score)
end
