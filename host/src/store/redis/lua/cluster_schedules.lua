-- A commit's schedule writes on a Redis Cluster, one bucket (one slot) at a time,
-- after its sessions and values. KEYS: due, rec, claims, by. ARGV: as
-- schedule_fns.lua from 1. Returns 0; -4 if the pending limit would be exceeded,
-- 1 if a cancelled schedule is no longer pending. Nothing is written unless 0.
local k = {due = KEYS[1], rec = KEYS[2], claims = KEYS[3], by = KEYS[4]}
local refused = schedules_ok(k, 1)
if refused == 'quota' then return -4 elseif refused then return 1 end
schedules_apply(k, 1)
return 0
