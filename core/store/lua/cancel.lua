-- Cancel chunks of a send (a page of them): every one that has not gone out ends
-- canceled; one whose request is in flight is marked, and its finish ends it canceled
-- unless its answer says it was sent (a sender still sleeping to its slot is told to
-- give it back, see call_off). The send itself is marked too (whole sends only),
-- so a chunk written or claimed later is canceled when it is claimed.
-- KEYS: the limit block, then the batch, then one chunk key per chunk
-- ARGV[1]: {who, whole (true to mark the whole send), budget (recipients moved by
--          events that this call may put back: it stops after the chunk that spends it),
--          limit} (outbox.core.store.batches.CancelArgs)
-- Returns: {canceled, already final, in flight, '1' when this call finished the send,
--           '1' when it has a completion callback to publish, chunks looked at}
local A = cjson.decode(ARGV[1])
local L = limit_at(1, A.limit)
local own_keys = 7 + 2 * #L.windows
local now = clock()
local batch_key = KEYS[own_keys]
local batch_id = redis.call('HGET', batch_key, 'id')
if not batch_id then return {0, 0, 0, '', '', #KEYS - own_keys} end
if A.whole == true then redis.call('HSETNX', batch_key, 'canceled_at', fmt(now)) end
local note = 'canceled by ' .. A.who
local canceled, final, flying, spent, looked = 0, 0, 0, 0, 0
for i = own_keys + 1, #KEYS do
  if spent >= A.budget then break end
  looked = looked + 1
  local chunk = KEYS[i]
  local state = redis.call('HGET', chunk, 'state')
  if not state then
    -- not written yet (a large send still being recorded): its claim cancels it
  elseif FINAL[state] then
    final = final + 1
  elseif state == STATE.sending and not redis.call('HGET', chunk, 'reserved') then
    call_off(L, chunk, now, WAKE.canceled)
    redis.call('HSET', chunk, 'cancel', fmt(now))
    flying = flying + 1
  else
    spent = spent + tonumber(redis.call('HGET', chunk, 'moved') or '0')
    cancel_chunk(L, chunk, now, note)
    canceled = canceled + 1
  end
end
local finished, callback = false, false
if canceled > 0 then finished, callback = batch_finished(batch_key, batch_id, now) end
return {canceled, final, flying, finished and '1' or '', callback and '1' or '', looked}
