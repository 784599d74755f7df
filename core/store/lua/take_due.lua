-- Work whose time has come, leased so that one worker takes it: parked task calls that
-- are due, and chunks whose holder's lease ran out (its worker died). Each is leased
-- for `lease` seconds; a parked call is released by its publisher once published. Also
-- what the relay needs to know to sleep until the next such time: one round trip.
-- KEYS: parked, leases, hold, the look-for-lost turn, the relay's wake list
-- ARGV[1]: {lease (seconds), limit (most items of each kind), look_every (seconds between
--          looks for lost messages)} (outbox.core.store.parked.TakeDueArgs)
-- Returns: {due calls, chunk ids whose hold ran out, seconds until the next item is due
--          ('-1': none), '1' when sending is held, '1' when this relay looks for lost
--          messages now}
local A = cjson.decode(ARGV[1])
local now = clock()
local lease = tonumber(A.lease)
redis.call('DEL', KEYS[5])  -- the wake-ups this take answers
local function take(zset)
  local due = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, tonumber(A.limit))
  for _, member in ipairs(due) do redis.call('ZADD', zset, now + lease, member) end
  return due
end
local calls, expired = take(KEYS[1]), take(KEYS[2])
-- A holder that died waiting in line leaves its chunk marked as waiting; the mark goes
-- with its place's lease, so the copy published now is claimed, not turned away as busy
-- (its stale line entry no longer matches and is dropped when the line is served).
for _, chunk_id in ipairs(expired) do
  local chunk = key('chunk', chunk_id)
  if redis.call('HGET', chunk, 'state') ~= STATE.sending then redis.call('HDEL', chunk, 'waiting') end
end
local next_at = nil
for _, zset in ipairs({KEYS[1], KEYS[2]}) do
  local first = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
  if first[2] and (next_at == nil or tonumber(first[2]) < next_at) then
    next_at = tonumber(first[2])
  end
end
local held = redis.call('EXISTS', KEYS[3]) == 1 and '1' or ''
local every = math.ceil(tonumber(A.look_every) * 1000)
local look = redis.call('SET', KEYS[4], '1', 'NX', 'PX', every) and '1' or ''
return {calls, expired, next_at and fmt(next_at - now) or '-1', held, look}
