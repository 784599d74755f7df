-- Shared by every outbox script; the prelude before it (outbox.worker.store.scripts)
-- defines FINAL (the final chunk states), TEMPLATE (key templates of keys.py) and ABSENT
-- (the key given in place of an optional key that is not there).

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function fmt(x) return string.format('%.6f', x) end

local function key(name, ...) return string.format(TEMPLATE[name], ...) end

local function log(log_key, ttl, entry)
  redis.call('RPUSH', log_key, cjson.encode(entry))
  redis.call('EXPIRE', log_key, ttl)
end

-- Move a batch's per-state chunk counters.
local function count(batch_key, old, new)
  if old ~= new then
    redis.call('HINCRBY', batch_key, 'n:' .. old, -1)
    redis.call('HINCRBY', batch_key, 'n:' .. new, 1)
  end
end

-- A recipient's place in the ledger: the address itself, "Ann <Ann@X.org>" is ann@x.org.
local function ledger_key(rcpt)
  return string.lower(string.match(rcpt, '<([^<>]*)>') or rcpt)
end

-- The recipients of a chunk take a new place in their batch's ledger (recipient -> fate).
local function ledger(batch_id, chunk, state, reason)
  local rcpts = cjson.decode(redis.call('HGET', chunk, 'recipients') or '[]')
  if #rcpts == 0 then return end
  local index = tonumber(redis.call('HGET', chunk, 'index') or '0')
  local book = key('ledger', batch_id)
  local counts = key('ledger_counts', batch_id)
  local entry = {state = state, chunk = index}
  if reason and reason ~= '' then entry['reason'] = reason end
  local encoded = cjson.encode(entry)
  for _, rcpt in ipairs(rcpts) do
    local k = ledger_key(rcpt)
    local old = redis.call('HGET', book, k)
    if old then
      redis.call('HINCRBY', counts, cjson.decode(old)['state'], -1)
    end
    redis.call('HSET', book, k, encoded)
    redis.call('HINCRBY', counts, state, 1)
  end
end

-- Keep a task call in the parked set until `due`; when it is due before everything else
-- there, wake one sleeping relay (they sleep until the earliest item they know of).
local function park(parked, member, due)
  local first = redis.call('ZRANGE', parked, 0, 0, 'WITHSCORES')
  redis.call('ZADD', parked, due, member)
  if first[2] == nil or due < tonumber(first[2]) then
    local wake = key('relay_wake')
    redis.call('RPUSH', wake, '1')
    redis.call('LTRIM', wake, -8, -1)
    redis.call('EXPIRE', wake, 60)
  end
end
