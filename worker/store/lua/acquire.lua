-- A slot for a request that is not a chunk's (activity/search look-ups, probes).
-- KEYS: the limit block   ARGV: member, longest wait, then the limit block
-- Returns: granted ('1' or ''), seconds until the slot (or to try again after)
local L = limit_at(1, 3)
local now = clock()
local not_before = cooling_until(L)
local at = free_at(L, now, not_before)
if at == nil then return {'', fmt(math.max(1, not_before - now))} end
if at - now > tonumber(ARGV[2]) then return {'', fmt(at - now)} end
take(L, ARGV[1], at, now)
return {'1', fmt(at - now)}
