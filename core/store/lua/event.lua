-- Put a delivery event on its chunk once (keyed by the event's id) and move its
-- recipients' places in the batch's ledger when the event tells one.
-- KEYS: chunk events, ledger, ledger counts, chunk
-- ARGV[1]: {event_id (its key), event (json text), ttl, fate (the place it tells; absent:
--          none), recipients (ledger keys), why ('' keeps the entry's reason)}
--          (outbox.core.store.events.EventArgs); a recipient never moves to a place of
--          lower FATE_RANK (the prelude's, from outbox.core.states.FATE_RANK)
-- Returns: 1 when recorded, 0 for a repeat (which moves nobody)
local A = cjson.decode(ARGV[1])
if redis.call('HSETNX', KEYS[1], A.event_id, A.event) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], tonumber(A.ttl))
local fate, why = A.fate, A.why
if not fate then return 1 end
-- a recipient's place: its own entry when an event moved it, else its chunk's fate
local mine = {}
for _, rcpt in ipairs(recipients_of(KEYS[4])) do mine[ledger_key(rcpt)] = true end
local chunk_fate = redis.call('HGET', KEYS[4], 'fate') or FATE.queued
local chunk_reason = redis.call('HGET', KEYS[4], 'fate_reason')
local ttl = tonumber(A.ttl)
for _, rcpt in ipairs(A.recipients) do
  local old = redis.call('HGET', KEYS[2], rcpt)
  local entry = nil
  if old then
    entry = cjson.decode(old)
  elseif mine[rcpt] then
    entry = {state = chunk_fate}
    if chunk_reason then entry.reason = chunk_reason end
  end
  if entry and entry.state ~= fate and (FATE_RANK[entry.state] or 0) <= (FATE_RANK[fate] or 0) then
    redis.call('HINCRBY', KEYS[3], entry.state, -1)
    redis.call('HINCRBY', KEYS[3], fate, 1)
    entry.state = fate
    if why ~= '' then entry.reason = why end
    redis.call('HSET', KEYS[2], rcpt, cjson.encode(entry))
    redis.call('EXPIRE', KEYS[2], ttl)
    if not old then redis.call('HINCRBY', KEYS[4], 'moved', 1) end
  end
end
return 1
