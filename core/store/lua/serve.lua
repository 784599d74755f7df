-- Serve a bucket's lanes (a relay's turn when a thread-less chunk's slot nears and no
-- finish or claim came first).
-- KEYS: the limit block
-- ARGV[1]: {limit} (outbox.core.store.limits.ServeArgs)
-- Returns: how many chunks were granted a slot
local L = limit_at(1, cjson.decode(ARGV[1]).limit)
local served = serve(L, clock(), 32)
return served
