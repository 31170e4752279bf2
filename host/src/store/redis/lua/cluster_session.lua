-- Cluster: one session's writes (KEYS: state, history, idempotency, versions; ARGV: now,
-- then the session's arguments). Returns -1 if a check fails (nothing written),
-- otherwise the PTTL of the state and history keys and the payload bytes the
-- writes added (see session_growth).
if not session_ok(KEYS[1], KEYS[2], KEYS[3], 2) then return -1 end
local g = session_growth(KEYS[1], KEYS[2], KEYS[4], 2)
local p1, p2 = session_apply(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 2, ARGV[1])
return {p1, p2, g}
