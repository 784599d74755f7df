-- Keep task calls until they are due (and wake a sleeping relay if one is due sooner
-- than anything it waits for).
-- KEYS: parked   ARGV: when they are due, then the calls
local due = tonumber(ARGV[1])
for i = 2, #ARGV do park(KEYS[1], ARGV[i], due) end
return #ARGV - 1
