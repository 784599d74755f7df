-- Lift suppressions: each address leaves the set (an erased one's keyed hash too) and is
-- remembered as lifted now, so a sync that read SMTP2GO's list before the removal does
-- not put it back (sync_suppressed.lua). Forgotten after ARGV[1] seconds.
-- KEYS: suppressed, suppressed:erased, suppressed:lifted
-- ARGV: seconds kept, n, n addresses, then n erased hashes ('' when nothing was erased)
-- Returns: per address, 1 when it was suppressed here (in clear or as its hash)
local now = clock()
local kept = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local out = {}
for i = 1, n do
  local address = ARGV[2 + i]
  local hashed = ARGV[2 + n + i]
  local was = redis.call('SREM', KEYS[1], address)
  if hashed ~= '' then
    was = was + redis.call('SREM', KEYS[2], hashed)
  end
  redis.call('ZADD', KEYS[3], now, address)
  out[i] = was > 0 and 1 or 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - kept)
redis.call('EXPIRE', KEYS[3], math.ceil(kept))
return out
