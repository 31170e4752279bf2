-- One page of a bucket's keys (wasi:keyvalue list-keys). KEYS: the bucket keys'
-- index, the value index. ARGV: now (ms), the lowest name (a ZRANGEBYLEX bound:
-- '(' after a cursor or '[' the bucket's prefix), the highest ('(' the prefix's
-- end), how many keys at most.
-- Returns {last name looked at ('' if none), 1 if the range is exhausted, names...}.
-- Entries whose value is gone or expired are removed on the way; at most 1,000 of
-- them are looked at per call, so a long run of them ends the page early.
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[4])
local min, out, last, looked = ARGV[2], {}, '', 0
while #out < limit and looked < limit + 1000 do
  local batch = redis.call('ZRANGEBYLEX', KEYS[1], min, ARGV[3], 'LIMIT', 0, limit - #out)
  if #batch == 0 then return {last, 1, unpack(out)} end
  local dead = {}
  for _, name in ipairs(batch) do
    local score = redis.call('ZSCORE', KEYS[2], name)
    if score and tonumber(score) > now then
      out[#out + 1] = name
    else
      dead[#dead + 1] = name
    end
    last = name
  end
  looked = looked + #batch
  if #dead > 0 then redis.call('ZREM', KEYS[1], unpack(dead)) end
  min = '(' .. last
end
return {last, 0, unpack(out)}
