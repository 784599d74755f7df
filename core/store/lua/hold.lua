-- Hold (reason given) or release (reason '') every send of the account.
-- KEYS: the limit block
-- ARGV[1]: {reason (json; absent to release), limit} (outbox.core.store.limits.HoldArgs)
local A = cjson.decode(ARGV[1])
local L = limit_at(1, A.limit)
local now = clock()
if not A.reason then
  local was = redis.call('DEL', L.hold)
  serve(L, now, 64)
  return was
end
hold(L, now, A.reason)
return 1
