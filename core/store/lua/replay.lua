-- Put a dead chunk (or, when allowed, a failed one) back to queued, its attempts reset.
-- A chunk that was sent is never replayed.
-- KEYS: chunk, batch, log, active, dead, failed
-- ARGV[1]: {ttl, who, states (those that may be replayed)}
--          (outbox.core.store.batches.ReplayArgs)
-- Returns: {'replayed' or 'noop', the state it was in}
local A = cjson.decode(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state')
local allowed = false
for _, s in ipairs(A.states) do allowed = allowed or s == state end
if not state or state == STATE.sent or not allowed then
  return {'noop', state or ''}
end
local now = clock()
local ttl = tonumber(A.ttl)
local n = tonumber(redis.call('HGET', KEYS[1], 'n_recipients') or '0')
redis.call('HSET', KEYS[1], 'state', STATE.queued, 'attempts', 0, 'updated_at', fmt(now),
           'due_at', fmt(now))
redis.call('HINCRBY', KEYS[1], 'replays', 1)
count(KEYS[2], state, STATE.queued)
redis.call('HINCRBY', KEYS[2], 'recipients_failed', -n)
redis.call('HDEL', KEYS[2], 'finished_at')
local chunk_id = redis.call('HGET', KEYS[1], 'id')
redis.call('ZREM', KEYS[5], chunk_id)
redis.call('ZREM', KEYS[6], chunk_id)
redis.call('ZADD', KEYS[4], now, chunk_id)
ledger(redis.call('HGET', KEYS[1], 'batch'), KEYS[1], FATE.queued, '')
for _, k in ipairs({KEYS[1], KEYS[2]}) do redis.call('EXPIRE', k, ttl) end
log(KEYS[3], ttl, {at = now, state = STATE.queued, note = 'replayed by ' .. A.who})
return {'replayed', state}
