-- Gives an idempotency claim back (KEYS: the record; ARGV: the claim): removes the
-- record only if it still holds that claim. Returns 1 if removed, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
