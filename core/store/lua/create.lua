-- Record a batch, its shared payload and its chunks, whole or one page at a time: a send
-- of any size is written in pages, none of which holds Redis for long, and is sendable
-- only once commit.lua has run (all or nothing: a producer that dies before leaves a
-- `staged` batch no claim will send, which beat's expiry discards). The ledger counts
-- each chunk's recipients by the chunk (common.lua); refused recipients get an entry.
-- A small shared payload comes as ARGV[2], as it is (never decoded here). A large one is
-- no argument: with its attachments it can weigh megabytes, which a script copies (5 MB
-- held Redis over 10 ms even as a raw ARGV), so the caller writes it with a plain SET just
-- before this call, in the same round trip, kept a few minutes; the first page checks
-- that it is there and keeps it as long as the batch (a repeated key deletes it: that
-- copy is never sent).
-- KEYS: idempotency key or ABSENT, batch, payload (written before the first page), active,
--       ledger, ledger counts, then the key of each chunk in `chunks`, in its order
-- ARGV[1]: {ttl, batch_id, mode ('whole', 'stage': the first page of a staged batch,
--          'page': a later one), batch (fields; first page only), refused
--          ([[address, why]]), chunks (each one's fields)}
--          (outbox.core.store.batches.CreateArgs)
-- ARGV[2]: the payload's JSON, when it is small (first page only; else written before)
-- Returns: {1, batch id} when written, {0, the first batch's id} for a repeated key
local A = cjson.decode(ARGV[1])
local inline = ARGV[2]
local ttl = tonumber(A.ttl)
local mode = A.mode
-- each chunk's key is the one its fields name, and the payload is there: checked before
-- anything is written
if #KEYS ~= 6 + #A.chunks then
  return redis.error_reply('create: ' .. (#KEYS - 6) .. ' chunk keys for ' .. #A.chunks .. ' chunks')
end
for i, fields in ipairs(A.chunks) do
  if KEYS[6 + i] ~= key('chunk', fields['id']) then
    return redis.error_reply('create: chunk ' .. fields['id'] .. ' is given key ' .. KEYS[6 + i])
  end
end
if mode ~= 'page' and not inline and redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('create: no payload at ' .. KEYS[3] .. ' (written just before)')
end
if KEYS[1] ~= ABSENT and mode ~= 'page' then
  local existing = redis.call('GET', KEYS[1])
  if existing then
    if existing ~= A.batch_id and not inline then redis.call('DEL', KEYS[3]) end
    return {0, existing}
  end
  if mode == 'whole' then redis.call('SET', KEYS[1], A.batch_id, 'EX', ttl) end
end
local now = clock()
if mode ~= 'page' then
  if inline then
    redis.call('SET', KEYS[3], inline, 'EX', ttl)
  else
    redis.call('EXPIRE', KEYS[3], ttl)
  end
  local batch = A.batch
  batch['created_at'] = fmt(now)
  if mode == 'stage' then batch['staged'] = fmt(now) end
  for field, value in pairs(batch) do redis.call('HSET', KEYS[2], field, value) end
  redis.call('EXPIRE', KEYS[2], ttl)
  if mode == 'stage' then redis.call('ZADD', key('staged'), now, A.batch_id) end
elseif redis.call('HEXISTS', KEYS[2], 'staged') == 0 then
  return {0, ''}  -- not a batch being staged (expired, discarded, or committed)
end
local queued = 0
for i, fields in ipairs(A.chunks) do
  local chunk = KEYS[6 + i]
  fields['created_at'] = fmt(now)
  fields['updated_at'] = fmt(now)
  for field, value in pairs(fields) do redis.call('HSET', chunk, field, value) end
  redis.call('EXPIRE', chunk, ttl)
  log(key('chunk_log', fields['id']), ttl, {at = now, state = fields['state']})
  redis.call('ZADD', KEYS[4], now, fields['id'])
  if not fields['due_at'] or tonumber(fields['due_at']) <= now then
    redis.call('ZADD', key('unclaimed', fields['queue']), now, fields['id'])
  end
  queued = queued + tonumber(fields['n_recipients'] or '0')
end
if queued > 0 then redis.call('HINCRBY', KEYS[6], FATE.queued, queued) end
for _, refused in ipairs(A.refused) do
  redis.call('HSET', KEYS[5], ledger_key(refused[1]),
             cjson.encode({state = FATE.suppressed, reason = refused[2]}))
  redis.call('HINCRBY', KEYS[6], FATE.suppressed, 1)
end
if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('EXPIRE', KEYS[5], ttl) end
redis.call('EXPIRE', KEYS[6], ttl)
return {1, A.batch_id}
