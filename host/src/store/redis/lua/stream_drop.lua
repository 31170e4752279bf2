-- Drops a buffered stream and its count in the ledger. KEYS: the ledger's sizes,
-- sessions and other keys, then the stream's key (standalone; a cluster deletes
-- it in its own slot first and calls this with the ledger only). ARGV: the
-- stream's key.
local u = {sizes = KEYS[1], sessions = KEYS[2], other = KEYS[3]}
if KEYS[4] then redis.call('DEL', KEYS[4]) end
usage_put(u, u.other, ARGV[1], 0, nil)
return 0
