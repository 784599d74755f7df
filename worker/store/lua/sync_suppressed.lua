-- Add addresses read from SMTP2GO's suppression list by a sync that began at ARGV[1],
-- leaving out those lifted since (lift.lua): the sync's read may predate their removal.
-- In one call with the check, so a removal lands either before it (left out) or after
-- it (removed again).
-- KEYS: suppressed, suppressed:lifted
-- ARGV: the sync's start (Redis time), then the addresses
-- Returns: how many were added
local since = tonumber(ARGV[1])
local added = 0
for i = 2, #ARGV do
  local lifted = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if not lifted or tonumber(lifted) < since then
    added = added + redis.call('SADD', KEYS[1], ARGV[i])
  end
end
return added
