-- Cluster: one session's writes (KEYS: state, history; ARGV: now, then the
-- session's arguments). Returns -1 if a check fails (nothing written), otherwise
-- the PTTL of both keys.
if not session_ok(KEYS[1], KEYS[2], 2) then return -1 end
local p1, p2 = session_apply(KEYS[1], KEYS[2], 2)
return {p1, p2}
