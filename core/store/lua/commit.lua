-- Make a staged batch sendable (its last page is written), and take its idempotency key
-- now: a producer that died while staging left no key, so calling again sends it once.
-- KEYS: idempotency key or ABSENT, batch
-- ARGV[1]: {batch_id, ttl} (outbox.core.store.batches.CommitArgs)
-- Returns: {1, batch id} when committed, {0, the first batch's id} when another call
--          with the key committed first (this one is then discarded by its caller), or
--          {0, ''} when the batch is not staged any more
local A = cjson.decode(ARGV[1])
if redis.call('HEXISTS', KEYS[2], 'staged') == 0 then return {0, ''} end
if KEYS[1] ~= ABSENT then
  if not redis.call('SET', KEYS[1], A.batch_id, 'NX', 'EX', tonumber(A.ttl)) then
    return {0, redis.call('GET', KEYS[1])}
  end
end
redis.call('HDEL', KEYS[2], 'staged')
redis.call('ZREM', key('staged'), A.batch_id)
return {1, A.batch_id}
