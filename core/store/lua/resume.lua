-- Resume a paused send (a page of its chunks): each paused chunk takes up the state it
-- was paused in; one whose task message is gone is parked due now, for a relay to
-- publish, and goes in its lane as it would have. The mark comes off on the first page,
-- so a chunk whose message is still on its way carries on when it is claimed. Calling
-- again (after a resume that stopped half-way) finishes the job; so does the sweep.
-- KEYS: the limit block, then the batch, then one chunk key per chunk
-- ARGV[1]: {limit} (outbox.core.store.batches.ResumeArgs)
-- Returns: how many chunks were resumed
local L = limit_at(1, cjson.decode(ARGV[1]).limit)
local own_keys = 7 + 2 * #L.windows
local now = clock()
local batch_key = KEYS[own_keys]
if not redis.call('HGET', batch_key, 'id') then return 0 end
redis.call('HDEL', batch_key, 'paused_at', 'paused_by')
local resumed = 0
for i = own_keys + 1, #KEYS do
  if redis.call('HGET', KEYS[i], 'state') == STATE.paused then
    unpause_chunk(L, KEYS[i], now, true)
    resumed = resumed + 1
  end
end
return resumed
