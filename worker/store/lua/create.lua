-- Record a batch, its shared payload and its chunks, and put every recipient in the
-- batch's ledger (queued, or refused before sending with why).
-- KEYS: idempotency key or ABSENT, batch, payload, active, ledger, ledger counts, then one
--       chunk key per chunk
-- ARGV: ttl, batch id, batch fields (json), payload (json), refused [[address, why]]
--       (json), then chunk fields (json) per chunk
-- Returns: {1, batch id} when created, {0, the first batch's id} for a repeated key
local ttl = tonumber(ARGV[1])
if KEYS[1] ~= ABSENT then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {0, existing} end
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
end
local now = clock()
local batch = cjson.decode(ARGV[3])
batch['created_at'] = fmt(now)
for field, value in pairs(batch) do redis.call('HSET', KEYS[2], field, value) end
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('SET', KEYS[3], ARGV[4], 'EX', ttl)
for i = 6, #ARGV do
  local chunk = KEYS[i + 1]
  local fields = cjson.decode(ARGV[i])
  fields['created_at'] = fmt(now)
  fields['updated_at'] = fmt(now)
  for field, value in pairs(fields) do redis.call('HSET', chunk, field, value) end
  redis.call('EXPIRE', chunk, ttl)
  log(key('chunk_log', fields['id']), ttl, {at = now, state = fields['state']})
  redis.call('ZADD', KEYS[4], now, fields['id'])
  if not fields['due_at'] or tonumber(fields['due_at']) <= now then
    redis.call('ZADD', key('unclaimed', fields['queue']), now, fields['id'])
  end
  ledger(ARGV[2], chunk, fields['state'], '')
end
for _, refused in ipairs(cjson.decode(ARGV[5])) do
  redis.call('HSET', KEYS[5], ledger_key(refused[1]),
             cjson.encode({state = 'suppressed', reason = refused[2]}))
  redis.call('HINCRBY', KEYS[6], 'suppressed', 1)
end
redis.call('EXPIRE', KEYS[5], ttl)
redis.call('EXPIRE', KEYS[6], ttl)
return {1, ARGV[2]}
