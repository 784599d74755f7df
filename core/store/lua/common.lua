-- Shared by every outbox script; the prelude before it (outbox.core.store.scripts)
-- defines STATE, FATE, FATE_RANK, KIND, QUEUE and WAKE (the enums of outbox.worker; a script
-- spells none of their values), FINAL (the final chunk states), TEMPLATE (key templates of
-- keys.py) and ABSENT (the key given in place of an optional key that is not there).

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

-- A chunk's recipients: its own list when it has one, else its slice of to/cc/bcc (or
-- its SMS destinations), which the producer stores only once.
local function recipients_of(chunk)
  local raw = redis.call('HGET', chunk, 'recipients')
  if raw then return cjson.decode(raw) end
  local fields = cjson.decode(redis.call('HGET', chunk, 'fields') or '{}')
  if fields['destination'] then return fields['destination'] end
  local out = {}
  for _, name in ipairs({'to', 'cc', 'bcc'}) do
    for _, rcpt in ipairs(fields[name] or {}) do out[#out + 1] = rcpt end
  end
  return out
end

-- The ledger keeps a chunk's recipients where their chunk is: its `fate` (queued until
-- the chunk is final) stands for all of them, and the batch's ledger hash holds only the
-- recipients whose fate differs (moved by an event, or refused before sending; `moved`
-- counts a chunk's). The counts move by the chunk's size: a page of a large send costs
-- no command per recipient.
local function ledger(batch_id, chunk, state, reason)
  local n = tonumber(redis.call('HGET', chunk, 'n_recipients') or '0')
  if n == 0 then return end
  local counts = key('ledger_counts', batch_id)
  local old = redis.call('HGET', chunk, 'fate') or FATE.queued
  local moved = tonumber(redis.call('HGET', chunk, 'moved') or '0')
  if moved > 0 then
    -- its recipients that events moved follow the chunk again
    local book = key('ledger', batch_id)
    for _, rcpt in ipairs(recipients_of(chunk)) do
      local k = ledger_key(rcpt)
      local entry = redis.call('HGET', book, k)
      if entry then
        redis.call('HINCRBY', counts, cjson.decode(entry)['state'], -1)
        redis.call('HINCRBY', counts, old, 1)
        redis.call('HDEL', book, k)
      end
    end
    redis.call('HDEL', chunk, 'moved')
  end
  if old ~= state then
    redis.call('HINCRBY', counts, old, -n)
    redis.call('HINCRBY', counts, state, n)
  end
  redis.call('HSET', chunk, 'fate', state)
  if reason and reason ~= '' then
    redis.call('HSET', chunk, 'fate_reason', reason)
  else
    redis.call('HDEL', chunk, 'fate_reason')
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
