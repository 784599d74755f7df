-- A 429 outside a send: nothing is granted before now + seconds.
-- KEYS: the limit block
-- ARGV[1]: {seconds, limit} (outbox.core.store.limits.CoolDownArgs)
-- Returns: seconds until the cool-down ends, seconds this call added to it
local A = cjson.decode(ARGV[1])
local L = limit_at(1, A.limit)
local now = clock()
local untill, added = cool_down(L, now, tonumber(A.seconds))
return {fmt(untill - now), fmt(added)}
