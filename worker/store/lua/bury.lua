-- A task for a chunk with no record (expired, or never created) that cannot even be
-- read: kept as a dead chunk of no batch, so the dead letters show it with its reason.
-- KEYS: chunk, log, dead   ARGV: fields (json), log entry (json), ttl
-- Returns: 1 when buried, 0 when the chunk has a record
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now = clock()
local ttl = tonumber(ARGV[3])
local fields = cjson.decode(ARGV[1])
fields['state'] = 'dead'
fields['created_at'] = fmt(now)
fields['updated_at'] = fmt(now)
for field, value in pairs(fields) do redis.call('HSET', KEYS[1], field, value) end
redis.call('EXPIRE', KEYS[1], ttl)
local entry = cjson.decode(ARGV[2])
entry['at'] = now
entry['state'] = 'dead'
log(KEYS[2], ttl, entry)
redis.call('ZADD', KEYS[3], now, fields['id'])
return 1
