-- Add addresses read from SMTP2GO's suppression list by a sync that began at `since`,
-- leaving out those lifted since (lift.lua): the sync's read may predate their removal.
-- In one call with the check, so a removal lands either before it (left out) or after
-- it (removed again). An erased address (outbox.erase) is kept by its keyed hash only,
-- never readable again.
-- KEYS: suppressed, suppressed:lifted, suppressed:erased, erased
-- ARGV[1]: {since (the sync's start, Redis time), n (addresses)}
--          (outbox.core.store.suppressions.SyncArgs); then, for each address, two
--          ARGVs: the address and its keyed hash ('' when nothing was ever erased or
--          lifted). A page of them is never decoded here.
-- Returns: how many were added
local A = cjson.decode(ARGV[1])
local since = tonumber(A.since)
local n = tonumber(A.n)
if #ARGV ~= 1 + 2 * n then
  return redis.error_reply('sync_suppressed: ' .. (#ARGV - 1) .. ' ARGVs for ' .. n .. ' addresses and their hashes')
end
local added = 0
for i = 1, n do
  local address = ARGV[2 * i]
  local hashed = ARGV[2 * i + 1]
  local lifted = hashed ~= '' and redis.call('ZSCORE', KEYS[2], hashed)
  if not lifted or tonumber(lifted) < since then
    if hashed ~= '' and (redis.call('SISMEMBER', KEYS[3], hashed) == 1
                         or redis.call('HEXISTS', KEYS[4], hashed) == 1) then
      added = added + redis.call('SADD', KEYS[3], hashed)
    else
      added = added + redis.call('SADD', KEYS[1], address)
    end
  end
end
return added
