-- Add addresses read from SMTP2GO's suppression list by a sync that began at `since`,
-- leaving out those lifted since (lift.lua): the sync's read may predate their removal.
-- In one call with the check, so a removal lands either before it (left out) or after
-- it (removed again).
-- KEYS: suppressed, suppressed:lifted
-- ARGV[1]: {since (the sync's start, Redis time)}
--          (outbox.worker.store.suppressions.SyncArgs); then the addresses, one ARGV
--          each: a page of them is never decoded here
-- Returns: how many were added
local A = cjson.decode(ARGV[1])
local since = tonumber(A.since)
local added = 0
for i = 2, #ARGV do
  local lifted = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if not lifted or tonumber(lifted) < since then
    added = added + redis.call('SADD', KEYS[1], ARGV[i])
  end
end
return added
