-- A task for a chunk with no record (expired, or never created) that cannot even be
-- read: kept as a dead chunk of no batch, so the dead letters show it with its reason.
-- KEYS: chunk, log, dead
-- ARGV[1]: {ttl, fields (the chunk's), entry (its log's)}
--          (outbox.core.store.batches.BuryArgs)
-- Returns: 1 when buried, 0 when the chunk has a record
local A = cjson.decode(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now = clock()
local ttl = tonumber(A.ttl)
local fields = A.fields
fields['state'] = STATE.dead
fields['created_at'] = fmt(now)
fields['updated_at'] = fmt(now)
for field, value in pairs(fields) do redis.call('HSET', KEYS[1], field, value) end
redis.call('EXPIRE', KEYS[1], ttl)
local entry = A.entry
entry['at'] = now
entry['state'] = STATE.dead
log(KEYS[2], ttl, entry)
redis.call('ZADD', KEYS[3], now, fields['id'])
return 1
