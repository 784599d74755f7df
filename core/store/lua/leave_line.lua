-- A waiter gives up its place in line (it waited as long as it may, or its worker is
-- stopping). If a slot was granted meanwhile it keeps it instead.
-- KEYS: chunk, parked, then the limit block
-- ARGV[1]: {entry (its line entry, codec.lua), token (of the wait), park and due (a task
--          call to park and when; absent for none), limit}
--          (outbox.core.store.batches.LeaveLineArgs)
-- Returns: 'left', or 'granted' (the grant is on the waiter's wake list)
local A = cjson.decode(ARGV[1])
local L = limit_at(3, A.limit)
if redis.call('HGET', KEYS[1], 'waiting') ~= A.token then return 'granted' end
redis.call('HDEL', KEYS[1], 'waiting')
local tenant = redis.call('HGET', KEYS[1], 'tenant') or ''
dequeue(L, TRANSACTIONAL, tenant ~= '' and tenant or '-', A.entry)
redis.call('ZREM', L.leases, redis.call('HGET', KEYS[1], 'id'))
if A.park then park(KEYS[2], A.park, tonumber(A.due)) end
return 'left'
