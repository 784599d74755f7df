-- The request of a slot from acquire.lua was answered (went_out '1') or never sent.
-- KEYS: the limit block   ARGV: member, went out, then the limit block
local L = limit_at(1, 3)
answered(L, ARGV[1], clock(), ARGV[2] == '1')
return 1
