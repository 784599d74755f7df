-- The request of a slot from acquire.lua was answered (went_out '1') or never sent.
-- KEYS: the limit block
-- ARGV[1]: {member, went_out, limit} (outbox.core.store.limits.ReleaseArgs)
local A = cjson.decode(ARGV[1])
local L = limit_at(1, A.limit)
answered(L, A.member, clock(), A.went_out == true)
return 1
