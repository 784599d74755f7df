-- Record the outcome of an attempt and release (or account for) its rate-limit slot;
-- index the email_id and the SMS message ids (fields.message_ids) for webhook events.
-- KEYS: chunk, batch, log, dead, email index or ABSENT, parked, failed, then the limit block
-- ARGV[1]: {state (the new one), fields, log (entry), expect (the state it must be in;
--          absent: any), member (its slot's; absent: none), went_out (the request did),
--          cool_down (seconds), hold (reason), park and due (a task call to park and
--          when), ledger_note, ago (the seconds since the answer was read, by the
--          worker's clock, up to the call of this script), hand_off (the caller's thread
--          takes a bulk chunk granted now), limit}; what is absent is not done
--          (outbox.core.store.batches.FinishArgs)
-- Returns: outcome (moved, final, batch_done, noop, missing), the state before, '1' when
--          the batch that just finished has a completion callback, the seconds the
--          cool-down was lengthened by (or ''), the state after (a retry of a chunk
--          whose send was canceled meanwhile ends canceled), the chunk handed off or ''

local A = cjson.decode(ARGV[1])
local L = limit_at(8, A.limit)
local now = clock()
local member, went_out = A.member, A.went_out == true
-- The answer is stamped when the worker read it, not when this script runs: the worker
-- measured the time between the two, and this script runs after it was called, so
-- `now - ago` is never earlier than the answer (nor the request's arrival before it).
local ago = math.max(0, tonumber(A.ago) or 0)
if member then answered(L, member, now - ago, went_out) end
local cooled = ''
if A.cool_down then
  local _, added = cool_down(L, now, tonumber(A.cool_down))
  cooled = fmt(added)
end
if A.hold then hold(L, now, A.hold) end
local new = A.state
local old = redis.call('HGET', KEYS[1], 'state')
local outcome = 'moved'
if not old then
  outcome = 'missing'
elseif FINAL[old] or (A.expect and A.expect ~= old) then
  outcome = 'noop'
end
if outcome ~= 'moved' then
  local _, handed = serve(L, now, 8, A.hand_off == true)
  return {outcome, old or '', '', cooled, old or '', handed or ''}
end
local chunk_id = redis.call('HGET', KEYS[1], 'id')
local batch_id = redis.call('HGET', KEYS[1], 'batch')
local fields = A.fields
if new == STATE.retrying and cancel_asked(KEYS[1], KEYS[2]) then
  -- canceled while this attempt was out, and it did not go: it is not tried again
  new = STATE.canceled
  A.park = nil  -- no retry is parked
end
fields['state'] = new
fields['updated_at'] = fmt(now)
for field, value in pairs(fields) do redis.call('HSET', KEYS[1], field, value) end
count(KEYS[2], old, new)
-- An attempt that sent no email (a 5xx, a network error, a refusal) gives back what its
-- claim took from the monthly quota; an accepted or unknown one keeps it spent.
if old == STATE.sending and new ~= STATE.sent and new ~= STATE.sending
   and not UNMETERED[redis.call('HGET', KEYS[1], 'kind')] and redis.call('EXISTS', key('quota_left')) == 1 then
  redis.call('INCRBY', key('quota_left'), tonumber(redis.call('HGET', KEYS[1], 'n_recipients') or '1'))
end
local entry = A.log
entry['at'] = now
entry['state'] = new
log(KEYS[3], L.ttl, entry)
if KEYS[5] ~= ABSENT then redis.call('SET', KEYS[5], chunk_id, 'EX', L.ttl) end
-- an SMS answer names a message id per number: index each, as the email_id above
local decoded, sms_ids = pcall(cjson.decode, fields['message_ids'] or '')
if decoded and type(sms_ids) == 'table' then
  for _, id in pairs(sms_ids) do
    if type(id) == 'string' and id ~= '' then
      redis.call('SET', key('sms_index', id), chunk_id, 'EX', L.ttl)
    end
  end
end
if A.park then park(KEYS[6], A.park, tonumber(A.due)) end
local has_callback = ''
if new == STATE.sending then
  -- an attempt whose fate is unknown stays claimed; its parked call (or, failing that,
  -- its hold running out) brings it back to be looked up
  redis.call('ZADD', L.leases, tonumber(A.due or now) + L.lease, chunk_id)
else
  redis.call('ZREM', L.leases, chunk_id)
end
if not FINAL[new] then
  redis.call('ZADD', L.active, now, chunk_id)
else
  outcome = 'final'
  redis.call('ZREM', L.active, chunk_id)
  local n = tonumber(redis.call('HGET', KEYS[1], 'n_recipients') or '0')
  if new ~= STATE.canceled then
    redis.call('HINCRBY', KEYS[2], new == STATE.sent and 'recipients_succeeded' or 'recipients_failed', n)
  end
  if new == STATE.dead then redis.call('ZADD', KEYS[4], now, chunk_id) end
  if new == STATE.failed then redis.call('ZADD', KEYS[7], now, chunk_id) end
  ledger(batch_id, KEYS[1], new, new == STATE.canceled and 'canceled while in flight' or A.ledger_note)
  -- until its publisher marks the callback sent, the sweep publishes it
  local finished, callback = batch_finished(KEYS[2], batch_id, now)
  if finished then outcome = 'batch_done' end
  if callback then has_callback = '1' end
end
local _, handed = serve(L, now, 8, A.hand_off == true)
return {outcome, old, has_callback, cooled, new, handed or ''}
