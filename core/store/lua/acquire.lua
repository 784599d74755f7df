-- A slot for a request that is not a chunk's (activity/search look-ups, probes).
-- KEYS: the limit block
-- ARGV[1]: {member, max_wait (seconds), limit} (outbox.core.store.limits.AcquireArgs)
-- Returns: granted ('1' or ''), seconds until the slot (or to try again after)
local A = cjson.decode(ARGV[1])
local L = limit_at(1, A.limit)
local now = clock()
local not_before = cooling_until(L)
local at = free_at(L, now, not_before)
if at == nil then return {'', fmt(math.max(1, not_before - now))} end
if at - now > tonumber(A.max_wait) then return {'', fmt(at - now)} end
take(L, A.member, at, now)
return {'1', fmt(at - now)}
