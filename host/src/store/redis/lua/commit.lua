-- One turn's writes, all or nothing (standalone Redis: every key on one server).
--
-- KEYS: for each session its state, history, idempotency and versions keys, then
-- one key per value, then the index names, index expiry, value index and bucket
-- keys' index keys, then the usage ledger's sizes, sessions and other keys; with
-- schedule writes, the schedules' due, rec, claims and by keys last.
-- ARGV: now (ms), session count, value count, most values ('' = no limit), most
-- sessions and most bytes of the quota ('' = no limit); per session its arguments
-- (see functions.lua); per value: member, then its arguments; then, if any,
-- the schedule writes (see schedule_fns.lua).
-- Returns 0; -1 if the value limit would be exceeded, -2 the sessions quota, -3
-- the bytes quota, -4 the pending schedules; or the 1-based position of the first
-- session or value whose check failed (one past them for a schedule). Nothing is
-- written unless 0.
local now = tonumber(ARGV[1])
local ns, nv = tonumber(ARGV[2]), tonumber(ARGV[3])
local s, a = {}, 7
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
local sched_at, sched = a, nil
local t = #KEYS
if tonumber(ARGV[a] or '0') > 0 then
  sched = {due = KEYS[t - 3], rec = KEYS[t - 2], claims = KEYS[t - 1], by = KEYS[t]}
  t = t - 4
end
local idx_names, idx_exp = KEYS[t - 6], KEYS[t - 5]
local idx_vals, idx_bucket_keys = KEYS[t - 4], KEYS[t - 3]
local u = {sizes = KEYS[t - 2], sessions = KEYS[t - 1], other = KEYS[t]}
if ARGV[4] ~= '' and nv > 0 and over_limit(idx_vals, now, tonumber(ARGV[4]), v) then
  return -1
end
for i = 1, ns do
  if not session_ok(s[i].st, s[i].hi, s[i].id, s[i].x) then return i end
end
for j = 1, nv do
  if not value_ok(v[j].key, v[j].x) then return ns + j end
end
if sched then
  local refused = schedules_ok(sched, sched_at)
  if refused == 'quota' then return -4 elseif refused then return ns + nv + 1 end
end
-- What the commit would make the ledger count, checked against the quota.
local entries, new_sessions = {}, 0
for i = 1, ns do
  local x = s[i].x
  s[i].clear = ARGV[x + 3] == '1'
  s[i].g = session_growth(s[i].st, s[i].hi, s[i].ve, x)
  -- Read once: the check and the record after the writes share it.
  s[i].live = usage_live(u, u.sessions, s[i].st, now)
  local size = session_size(s[i].live, s[i].st, s[i].hi, s[i].clear, s[i].g)
  if size - #s[i].st - #s[i].hi - OVERHEAD <= 0 and ARGV[x + 4] ~= 'put' then size = 0 end
  if size > 0 and s[i].live == 0 then
    new_sessions = new_sessions + 1
  end
  entries[#entries + 1] = {member = s[i].st, size = size}
  if ARGV[x + 9] ~= '' then
    entries[#entries + 1] = {member = s[i].id, size = #ARGV[x + 10] + #s[i].id + OVERHEAD}
  end
end
for j = 1, nv do
  local size = 0
  if v[j].op == 'set' then
    size = #ARGV[v[j].x + 1] + #v[j].key + OVERHEAD
  elseif v[j].op == 'add' then
    size = 20 + #v[j].key + OVERHEAD
  end
  entries[#entries + 1] = {member = v[j].key, size = size}
end
local refused = quota_refusal(u, now, ARGV[5], ARGV[6], new_sessions, entries, 0)
if refused == 'sessions' then return -2 elseif refused == 'bytes' then return -3 end
for i = 1, ns do
  local x = s[i].x
  local p1, p2 = session_apply(s[i].st, s[i].hi, s[i].id, s[i].ve, x, now)
  index_session(idx_names, idx_exp, ARGV[x], p1, p2, now)
  usage_session(u, s[i].st, s[i].hi, s[i].clear, s[i].g, p1, p2, now, s[i].live)
  if ARGV[x + 9] ~= '' then
    usage_put(u, u.other, s[i].id, #ARGV[x + 10] + #s[i].id + OVERHEAD, now + tonumber(ARGV[x + 11]))
  end
end
for j = 1, nv do
  local score = value_apply(v[j].key, v[j].x, now)
  index_value(idx_vals, idx_bucket_keys, v[j].member, score)
  local size = 0
  if score then size = redis.call('STRLEN', v[j].key) + #v[j].key + OVERHEAD end
  usage_put(u, u.other, v[j].key, size, score)
end
if sched then schedules_apply(sched, sched_at) end
if nv > 0 then prune_values(idx_vals, idx_bucket_keys, now) end
prune_sessions(idx_names, idx_exp, now)
if now % 8 == 0 then usage_prune(u, now, 64) end
return 0
