-- Put a delivery event on its chunk once (keyed by the event's id) and move the
-- recipient's place in the batch's ledger when the event tells its fate.
-- KEYS: chunk events, ledger, ledger counts
-- ARGV: event id, event (json), ttl, the fate it tells or '', the recipient or '',
--       then the fates by rank ("name=rank", ...): a fate never gives way to a lower one
-- Returns: 1 when recorded, 0 for a repeat
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local ttl = tonumber(ARGV[3])
redis.call('EXPIRE', KEYS[1], ttl)
local fate, rcpt = ARGV[4], ARGV[5]
if fate == '' or rcpt == '' then return 1 end
local old = redis.call('HGET', KEYS[2], rcpt)
if not old then return 1 end
local rank = {}
for i = 6, #ARGV do
  local name, r = string.match(ARGV[i], '^(.*)=(%d+)$')
  rank[name] = tonumber(r)
end
local entry = cjson.decode(old)
if (rank[entry.state] or 0) > (rank[fate] or 0) then return 1 end
redis.call('HINCRBY', KEYS[3], entry.state, -1)
redis.call('HINCRBY', KEYS[3], fate, 1)
entry.state = fate
redis.call('HSET', KEYS[2], rcpt, cjson.encode(entry))
return 1
