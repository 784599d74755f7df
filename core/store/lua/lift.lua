-- Lift suppressions: each address leaves the set (an erased one's keyed hash too) and is
-- remembered as lifted now, by its keyed hash, so a sync that read SMTP2GO's list before
-- the removal does not put it back (sync_suppressed.lua). Forgotten after `kept` seconds.
-- KEYS: suppressed, suppressed:erased, suppressed:lifted
-- ARGV[1]: {kept (seconds), n (addresses)} (outbox.core.store.suppressions.LiftArgs);
--          then, for each address, two ARGVs: the address and its keyed hash. A page of
--          them is never decoded here.
-- Returns: per address, 1 when it was suppressed here (in clear or as its hash)
local A = cjson.decode(ARGV[1])
local kept = tonumber(A.kept)
local n = tonumber(A.n)
if #ARGV ~= 1 + 2 * n then
  return redis.error_reply('lift: ' .. (#ARGV - 1) .. ' ARGVs for ' .. n .. ' addresses and their hashes')
end
local now = clock()
local out = {}
for i = 1, n do
  local address = ARGV[2 * i]
  local hashed = ARGV[2 * i + 1]
  local was = redis.call('SREM', KEYS[1], address)
  was = was + redis.call('SREM', KEYS[2], hashed)
  redis.call('ZADD', KEYS[3], now, hashed)
  out[i] = was > 0 and 1 or 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - kept)
redis.call('EXPIRE', KEYS[3], math.ceil(kept))
return out
