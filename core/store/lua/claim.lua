-- Claim a chunk for one attempt together with its rate-limit slot.
-- KEYS: chunk, batch, log, then the limit block (limits.lua)
-- ARGV[1]: {worker, takeover (true or absent), note, token (of a wait), max_wait (the
--          longest wait for a direct grant), limit} (outbox.core.store.batches.ClaimArgs)
-- Returns: outcome, seconds (until the slot; of a live hold elsewhere; until the quota's
--          cycle ends), attempt, the state before, Redis time, the chunk's lane and tenant
local A = cjson.decode(ARGV[1])
local L = limit_at(4, A.limit)
local now = clock()
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', '0', '0', '', fmt(now), '', ''} end
-- every reply ends with the chunk's lane and tenant (for the metrics' labels)
local LANE = redis.call('HGET', KEYS[1], 'lane') or 'transactional'
local TENANT = redis.call('HGET', KEYS[1], 'tenant') or ''
local chunk_id = redis.call('HGET', KEYS[1], 'id')
local attempts = redis.call('HGET', KEYS[1], 'attempts') or '0'
-- its message reached a worker
redis.call('ZREM', key('unclaimed', redis.call('HGET', KEYS[1], 'queue') or QUEUE.email), chunk_id)
if redis.call('HEXISTS', KEYS[2], 'staged') == 1 then
  -- its send is still being written (or its producer died doing so): nothing goes yet
  return {'busy', '0', attempts, state, fmt(now), LANE, TENANT}
end
if FINAL[state] then
  redis.call('ZREM', L.leases, chunk_id)
  return {'final', '0', attempts, state, fmt(now), LANE, TENANT}
end
if state ~= STATE.sending and cancel_asked(KEYS[1], KEYS[2]) then
  -- its send was canceled: it never goes
  cancel_chunk(L, KEYS[1], now, 'canceled before it was claimed')
  batch_finished(KEYS[2], redis.call('HGET', KEYS[1], 'batch'), now)
  return {'final', '0', attempts, STATE.canceled, fmt(now), LANE, TENANT}
end
local worker, takeover, note, token = A.worker, A.takeover == true, A.note, A.token
local reserved = redis.call('HGET', KEYS[1], 'reserved')
if pause_asked(KEYS[2]) and (state ~= STATE.sending or reserved) then
  -- its send is paused: it waits, holding no thread and no task, until it is resumed
  pause_chunk(L, KEYS[1], now, true)
  return {'paused', '0', redis.call('HGET', KEYS[1], 'attempts') or '0', STATE.paused, fmt(now),
          LANE, TENANT}
end
if state == STATE.paused then
  -- its send was resumed before this message came: it carries on from here
  state = unpause_chunk(L, KEYS[1], now, false)
end
if state == STATE.sending and reserved then
  -- the bulk lane granted this chunk a slot while it waited without a thread, and parked
  -- its task call for this: adopt the attempt, unless its lease ran out or the account
  -- is held meanwhile (then nothing was sent: undo it and claim as any other)
  local member = attempt_member(chunk_id, attempts)
  local at = tonumber(redis.call('HGET', KEYS[1], 'claimed_at') or '0')
  local lease_until = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
  redis.call('HDEL', KEYS[1], 'reserved')
  -- its parked call (the relay's copy, or the fallback of a hand-off) is not needed now
  local call = redis.call('HGET', KEYS[1], 'reserved_call')
  if call then redis.call('ZREM', key('parked'), call) end
  redis.call('HDEL', KEYS[1], 'reserved_call')
  if lease_until > now + 1 and redis.call('EXISTS', L.hold) == 0 then
    redis.call('HSET', KEYS[1], 'claimed_by', worker)
    return {'claimed', fmt(math.max(0, at - now)), attempts, reserved, fmt(now), LANE, TENANT}
  end
  answered(L, member, now, false)
  attempts = tostring(tonumber(attempts) - 1)
  redis.call('HSET', KEYS[1], 'state', reserved, 'attempts', attempts, 'updated_at', fmt(now))
  redis.call('ZREM', L.leases, chunk_id)
  count(KEYS[2], STATE.sending, reserved)
  log(KEYS[3], L.ttl, {at = now, state = reserved, note = 'reserved slot not taken in time'})
  state = reserved
end
if state == STATE.sending then
  local lease_until = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
  if lease_until > now then return {'busy', fmt(lease_until - now), attempts, state, fmt(now), LANE, TENANT} end
  if not takeover then return {'ambiguous', '0', attempts, state, fmt(now), LANE, TENANT} end
  -- the earlier attempt was looked up and is settled as not accepted
  redis.call('HSET', KEYS[1], 'state', STATE.retrying, 'ambiguous', note, 'updated_at', fmt(now))
  count(KEYS[2], STATE.sending, STATE.retrying)
  log(KEYS[3], L.ttl, {at = now, state = STATE.retrying, note = note})
  state = STATE.retrying
  if cancel_asked(KEYS[1], KEYS[2]) then
    cancel_chunk(L, KEYS[1], now, 'canceled: its earlier attempt never arrived')
    batch_finished(KEYS[2], redis.call('HGET', KEYS[1], 'batch'), now)
    return {'final', '0', attempts, STATE.canceled, fmt(now), LANE, TENANT}
  end
elseif redis.call('HEXISTS', KEYS[1], 'waiting') == 1 then
  local held_until = tonumber(redis.call('ZSCORE', L.leases, chunk_id) or '0')
  if held_until > now then return {'busy', fmt(held_until - now), attempts, state, fmt(now), LANE, TENANT} end
  redis.call('HDEL', KEYS[1], 'waiting')  -- its waiter is gone; this copy carries on
end
if redis.call('EXISTS', L.hold) == 1 then return {'held', '0', attempts, state, fmt(now), LANE, TENANT} end
-- The monthly quota (checked again when a lane grants the chunk its slot later: the
-- chunks ahead of it take from the allowance meanwhile).
local left, need = quota_short(KEYS[1])
if left then
  throttle(L, KEYS[1], now, left, need)
  local ends = redis.call('PTTL', key('quota_left')) / 1000
  return {'quota', fmt(math.max(ends, 0)), attempts, state, fmt(now), LANE, TENANT}
end
-- Its lane: transactional waits on its thread for any known slot and goes before bulk;
-- bulk takes a slot within the look-ahead or waits without a thread.
local lane = LANE
if L.fifo or lane ~= BULK then lane = TRANSACTIONAL end
local tenant = TENANT ~= '' and TENANT or '-'
serve(L, now, 8)
local ahead = lane_waiting(L, TRANSACTIONAL) or (lane == BULK and lane_waiting(L, BULK))
if not ahead then
  local at = free_at(L, now, cooling_until(L), tenant)
  local within = lane == BULK and L.look or tonumber(A.max_wait)
  if at ~= nil and at - now <= within then
    local attempt = begin_attempt(L, chunk_id, worker, at, now, '')
    take(L, attempt_member(chunk_id, attempt), at, now, tenant)
    redis.call('DEL', key('wake', L.bucket, chunk_id))
    return {'claimed', fmt(at - now), tostring(attempt), state, fmt(now), LANE, TENANT}
  end
  if at ~= nil and lane == TRANSACTIONAL then
    return {'later', fmt(at - now), attempts, state, fmt(now), LANE, TENANT}
  end
end
redis.call('HSET', KEYS[1], 'waiting', token)
redis.call('DEL', key('wake', L.bucket, chunk_id))
if lane == BULK then
  -- no thread waits: the lane's serve gives it a slot and parks its task call
  enqueue(L, BULK, tenant, line_entry(chunk_id, '', token))
  serve(L, now, 1)
  return {'queued', '0', attempts, state, fmt(now), LANE, TENANT}
end
-- No slot whose time is known: wait in line, on this thread, until an answer frees one.
redis.call('ZADD', L.leases, now + L.line_lease, chunk_id)
enqueue(L, TRANSACTIONAL, tenant, line_entry(chunk_id, worker, token))
return {'waiting', '0', attempts, state, fmt(now), LANE, TENANT}
