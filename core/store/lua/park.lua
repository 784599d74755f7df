-- Keep task calls until they are due (and wake a sleeping relay if one is due sooner
-- than anything it waits for).
-- KEYS: parked
-- ARGV[1]: {due (when they are due)} (outbox.core.store.parked.ParkArgs); then the
--          calls, one ARGV each: a page of them is never decoded here
-- Returns: how many were parked
local A = cjson.decode(ARGV[1])
local due = tonumber(A.due)
for i = 2, #ARGV do park(KEYS[1], ARGV[i], due) end
return #ARGV - 1
