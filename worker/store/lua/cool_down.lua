-- A 429 outside a send: nothing is granted before now + seconds.
-- KEYS: the limit block   ARGV: seconds, then the limit block
-- Returns: seconds until the cool-down ends, seconds this call added to it
local L = limit_at(1, 2)
local now = clock()
local untill, added = cool_down(L, now, tonumber(ARGV[1]))
return {fmt(untill - now), fmt(added)}
