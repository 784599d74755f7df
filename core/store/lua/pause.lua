-- Pause a send (a page of its chunks): every chunk that has not gone out is held paused,
-- with no thread and no task; one whose request is in flight ends as its answer says (a
-- retry it earns is paused when it comes; a sender still sleeping to its slot is told to
-- give it back, see call_off). The send is marked on the first page, so a
-- chunk claimed, served or written later is paused then.
-- KEYS: the limit block, then the batch, then one chunk key per chunk
-- ARGV[1]: {who, limit} (outbox.core.store.batches.PauseArgs)
-- Returns: {paused, already final, in flight}
local A = cjson.decode(ARGV[1])
local L = limit_at(1, A.limit)
local own_keys = 7 + 2 * #L.windows
local now = clock()
local batch_key = KEYS[own_keys]
if not redis.call('HGET', batch_key, 'id') then return {0, 0, 0} end
if redis.call('HSETNX', batch_key, 'paused_at', fmt(now)) == 1 then
  redis.call('HSET', batch_key, 'paused_by', A.who)
end
local paused, final, flying = 0, 0, 0
for i = own_keys + 1, #KEYS do
  local chunk = KEYS[i]
  local state = redis.call('HGET', chunk, 'state')
  if not state then
    -- not written yet (a large send still being recorded): its claim pauses it
  elseif FINAL[state] then
    final = final + 1
  elseif state == STATE.sending and not redis.call('HGET', chunk, 'reserved') then
    call_off(L, chunk, now, WAKE.paused)
    flying = flying + 1
  else
    pause_chunk(L, chunk, now, false)
    paused = paused + 1
  end
end
return {paused, final, flying}
