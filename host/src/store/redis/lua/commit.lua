-- One turn's writes, all or nothing (standalone Redis: every key on one server).
--
-- KEYS: for each session its state, history, idempotency and versions keys, then
-- one key per value, then the index names, index expiry, value index and bucket
-- keys' index keys.
-- ARGV: now (ms), session count, value count, most values ('' = no limit); per
-- session its arguments (see functions.lua); per value: member, then its arguments.
-- Returns 0; -1 if the value limit would be exceeded; or the 1-based position of
-- the first session or value whose check failed. Nothing is written unless 0.
local now = tonumber(ARGV[1])
local ns, nv = tonumber(ARGV[2]), tonumber(ARGV[3])
local idx_names, idx_exp = KEYS[#KEYS - 3], KEYS[#KEYS - 2]
local idx_vals, idx_bucket_keys = KEYS[#KEYS - 1], KEYS[#KEYS]
local s, a = {}, 5
for i = 1, ns do
  local k = 4 * i - 3
  s[i] = {x = a, st = KEYS[k], hi = KEYS[k + 1], id = KEYS[k + 2], ve = KEYS[k + 3]}
  a = a + 14 + tonumber(ARGV[a + 13])
end
local v = {}
for j = 1, nv do
  v[j] = {x = a + 1, member = ARGV[a], op = ARGV[a + 1], key = KEYS[4 * ns + j]}
  a = a + 5
end
if ARGV[4] ~= '' and nv > 0 and over_limit(idx_vals, now, tonumber(ARGV[4]), v) then
  return -1
end
for i = 1, ns do
  if not session_ok(s[i].st, s[i].hi, s[i].id, s[i].x) then return i end
end
for j = 1, nv do
  if not value_ok(v[j].key, v[j].x) then return ns + j end
end
for i = 1, ns do
  local p1, p2 = session_apply(s[i].st, s[i].hi, s[i].id, s[i].ve, s[i].x, now)
  index_session(idx_names, idx_exp, ARGV[s[i].x], p1, p2, now)
end
for j = 1, nv do
  index_value(idx_vals, idx_bucket_keys, v[j].member, value_apply(v[j].key, v[j].x, now))
end
if nv > 0 then prune_values(idx_vals, idx_bucket_keys, now) end
prune_sessions(idx_names, idx_exp, now)
return 0
