-- A waiter gives up its place in line (it waited as long as it may, or its worker is
-- stopping). If a slot was granted meanwhile it keeps it instead.
-- KEYS: chunk, parked, then the limit block
-- ARGV: line entry, wait token, a task call to park or '', when it is due, then the
--       limit block
-- Returns: 'left', or 'granted' (the grant is on the waiter's wake list)
local L = limit_at(3, 5)
if redis.call('HGET', KEYS[1], 'waiting') ~= ARGV[2] then return 'granted' end
redis.call('HDEL', KEYS[1], 'waiting')
local tenant = redis.call('HGET', KEYS[1], 'tenant') or ''
dequeue(L, TRANSACTIONAL, tenant ~= '' and tenant or '-', ARGV[1])
redis.call('ZREM', L.leases, redis.call('HGET', KEYS[1], 'id'))
if ARGV[3] ~= '' then park(KEYS[2], ARGV[3], tonumber(ARGV[4])) end
return 'left'
