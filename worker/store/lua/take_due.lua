-- Work whose time has come, leased so that one worker takes it: parked task calls that
-- are due, and chunks whose holder's lease ran out (its worker died). Each is leased
-- for ARGV[1] seconds; a parked call is released by its publisher once published.
-- KEYS: parked, leases   ARGV: lease seconds, most items of each kind
-- Returns: {due calls, chunk ids whose hold ran out}
local now = clock()
local lease = tonumber(ARGV[1])
local function take(zset)
  local due = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
  for _, member in ipairs(due) do redis.call('ZADD', zset, now + lease, member) end
  return due
end
return {take(KEYS[1]), take(KEYS[2])}
