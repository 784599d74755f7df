-- Hold (reason given) or release (reason '') every send of the account.
-- KEYS: the limit block   ARGV: reason (json) or '', then the limit block
local L = limit_at(1, 2)
local now = clock()
if ARGV[1] == '' then
  local was = redis.call('DEL', L.hold)
  serve(L, now, 64)
  return was
end
hold(L, now, ARGV[1])
return 1
