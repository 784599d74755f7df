-- Put a delivery event on its chunk once (keyed by the event's id) and move its
-- recipients' places in the batch's ledger when the event tells one.
-- KEYS: chunk events, ledger, ledger counts, chunk
-- ARGV: event key, event (json), ttl, the place it tells or '', the recipients (json
--       list of ledger keys), why ('' keeps the entry's reason), then the places by rank
--       ("name=rank", ...): a recipient never moves to a lower one
-- Returns: 1 when recorded, 0 for a repeat (which moves nobody)
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
local fate, why = ARGV[4], ARGV[6]
if fate == '' then return 1 end
local rank = {}
for i = 7, #ARGV do
  local name, r = string.match(ARGV[i], '^(.*)=(%d+)$')
  rank[name] = tonumber(r)
end
-- a recipient's place: its own entry when an event moved it, else its chunk's fate
local mine = {}
for _, rcpt in ipairs(recipients_of(KEYS[4])) do mine[ledger_key(rcpt)] = true end
local chunk_fate = redis.call('HGET', KEYS[4], 'fate') or 'queued'
local chunk_reason = redis.call('HGET', KEYS[4], 'fate_reason')
local ttl = tonumber(ARGV[3])
for _, rcpt in ipairs(cjson.decode(ARGV[5])) do
  local old = redis.call('HGET', KEYS[2], rcpt)
  local entry = nil
  if old then
    entry = cjson.decode(old)
  elseif mine[rcpt] then
    entry = {state = chunk_fate}
    if chunk_reason then entry.reason = chunk_reason end
  end
  if entry and entry.state ~= fate and (rank[entry.state] or 0) <= (rank[fate] or 0) then
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
