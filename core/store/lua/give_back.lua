-- Undo a claim before anything was sent (a hold called the grant off, the worker is
-- stopping): the chunk returns to its earlier state with its attempt count as it was,
-- and its slot is free again at once.
-- KEYS: chunk, batch, log, parked, then the limit block
-- ARGV[1]: {member (the slot's), back (the state to return to; absent when the caller
--          does not know it: retrying when an attempt is behind the chunk, else queued),
--          note, park and due (a task call to park and when; absent for none), limit}
--          (outbox.core.store.batches.GiveBackArgs)
-- Returns: 1 when undone, 0 when the chunk had moved on (left alone)
local A = cjson.decode(ARGV[1])
local L = limit_at(5, A.limit)
local now = clock()
answered(L, A.member, now, false)
local given = 0
if redis.call('HGET', KEYS[1], 'state') == STATE.sending then
  local chunk_id = redis.call('HGET', KEYS[1], 'id')
  local behind = redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  local back = A.back
  if not back then back = behind > 0 and STATE.retrying or STATE.queued end
  redis.call('HSET', KEYS[1], 'state', back, 'updated_at', fmt(now))
  count(KEYS[2], STATE.sending, back)
  log(KEYS[3], L.ttl, {at = now, state = back, note = A.note})
  redis.call('ZREM', L.leases, chunk_id)
  redis.call('ZADD', L.active, now, chunk_id)
  if A.park then park(KEYS[4], A.park, tonumber(A.due)) end
  given = 1
end
serve(L, now, 8)
return given
