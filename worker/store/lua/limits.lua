-- The shared rate limit: every request is counted against each window of its bucket
-- from the moment its slot is granted until one period after its answer came back, and
-- a slot is granted only while fewer than N requests are counted. A request reaches the
-- API between its grant and its answer, so no window of P seconds at the API ever holds
-- more than N arrivals, however late or bunched requests travel (docs/architecture.md).
--
-- Each window keeps two sorted sets: `busy` (granted, not answered yet; scored by when a
-- dead claimant's hold ends: grant + lease + P) and `answered` (scored by answer + P,
-- when it stops counting). Senders that find no slot wait in the bucket's `line`; every
-- script that frees or learns a slot (an answer, a give-back, a claim) serves the line
-- first, granting each waiter the exact time its slot frees and telling it on its wake
-- list. A cool-down (a 429) is a time nothing is granted before; a hold (a rejected
-- key) grants nothing until it is lifted.

-- The limit block: KEYS cool, hold, line, granted, active, leases, then busy and
-- answered per window; ARGV bucket, lease, ttl, line lease, the number of windows, then
-- N and P per window. Scripts put it after their own keys and arguments.
local function limit_at(kb, ab)
  local L = {
    cool = KEYS[kb], hold = KEYS[kb + 1], line = KEYS[kb + 2], granted = KEYS[kb + 3],
    active = KEYS[kb + 4], leases = KEYS[kb + 5],
    bucket = ARGV[ab], lease = tonumber(ARGV[ab + 1]), ttl = tonumber(ARGV[ab + 2]),
    line_lease = tonumber(ARGV[ab + 3]), windows = {},
  }
  for i = 1, tonumber(ARGV[ab + 4]) do
    L.windows[i] = {
      n = tonumber(ARGV[ab + 3 + 2 * i]), p = tonumber(ARGV[ab + 4 + 2 * i]),
      busy = KEYS[kb + 4 + 2 * i], answered = KEYS[kb + 5 + 2 * i],
    }
  end
  return L
end

local function cooling_until(L)
  return tonumber(redis.call('GET', L.cool) or '0') or 0
end

-- How many requests window w counts beyond N-1 (>= 0: no spare slot).
local function over(w)
  return redis.call('ZCARD', w.busy) + redis.call('ZCARD', w.answered) - w.n
end

-- When window w next has a slot: now if one is spare, else when the answered request
-- whose place it takes stops counting; nil while every slot is held by a request in
-- flight (when it leaves is unknown until it is answered).
local function window_free_at(w, now)
  redis.call('ZREMRANGEBYSCORE', w.answered, '-inf', now)
  -- a request whose claimant died counts until its hold ends, plus P
  redis.call('ZREMRANGEBYSCORE', w.busy, '-inf', now)
  local k = over(w)
  if k < 0 then return now end
  local nth = redis.call('ZRANGE', w.answered, k, k, 'WITHSCORES')
  if nth[1] == nil then return nil end
  return tonumber(nth[2])
end

-- The earliest time at which every window of the bucket has a slot, not before
-- `not_before`; nil when some window's next slot is not known yet.
local function free_at(L, now, not_before)
  local at = math.max(now, not_before)
  for _, w in ipairs(L.windows) do
    local t = window_free_at(w, now)
    if t == nil then return nil end
    if t > at then at = t end
  end
  return at
end

-- Count `member` in every window from `at` (call right after free_at).
local function take(L, member, at, now)
  for _, w in ipairs(L.windows) do
    local k = over(w)
    if k >= 0 then redis.call('ZPOPMIN', w.answered, k + 1) end
    redis.call('ZADD', w.busy, at + L.lease + w.p, member)
  end
  if at > now then redis.call('ZADD', L.granted, at, member) end
end

-- `member` was answered (or given up) at `now`. A request that went out counts one more
-- period; one that never left frees its slot at once.
local function answered(L, member, now, went_out)
  for _, w in ipairs(L.windows) do
    if redis.call('ZREM', w.busy, member) == 1 and went_out then
      redis.call('ZADD', w.answered, now + w.p, member)
    end
  end
  redis.call('ZREM', L.granted, member)
end

-- A line entry: chunk id, worker and the token of its wait, tab-separated.
local function line_entry(raw)
  local c, w, t = string.match(raw, '^([^\t]*)\t([^\t]*)\t([^\t]*)$')
  return {c = c, w = w, t = t}
end

-- Write to the wake list of a chunk's waiting sender: "<member> <slot time> <now>", or
-- "<member> held" ("- held" for a sender still in line).
local function tell(L, chunk_id, message)
  local box = key('wake', L.bucket, chunk_id)
  redis.call('RPUSH', box, message)
  redis.call('EXPIRE', box, math.ceil(L.line_lease) + 60)
end

-- A chunk starts an attempt (state sending) with its slot granted at `at`.
local function begin_attempt(L, chunk_id, worker, at, now, note)
  local chunk = key('chunk', chunk_id)
  local batch_id = redis.call('HGET', chunk, 'batch')
  local old = redis.call('HGET', chunk, 'state')
  local attempt = tonumber(redis.call('HGET', chunk, 'attempts') or '0') + 1
  redis.call('HSET', chunk, 'state', 'sending', 'attempts', attempt, 'claimed_by', worker,
             'claimed_at', fmt(at), 'lease_until', fmt(at + L.lease), 'updated_at', fmt(now))
  redis.call('HDEL', chunk, 'waiting')
  count(key('batch', batch_id), old, 'sending')
  if old == 'throttled' then redis.call('ZREM', key('throttled'), chunk_id) end
  -- what the attempt takes from the monthly quota (SMS have credits of their own)
  if redis.call('HGET', chunk, 'kind') ~= 'sms' and redis.call('EXISTS', key('quota_left')) == 1 then
    redis.call('DECRBY', key('quota_left'), tonumber(redis.call('HGET', chunk, 'n_recipients') or '1'))
  end
  local entry = {at = now, state = 'sending', attempt = attempt, worker = worker}
  if at > now + 0.0005 then entry['slot_at'] = at end
  if note and note ~= '' then
    entry['note'] = note
    redis.call('HSET', chunk, 'ambiguous', note)
  end
  log(key('chunk_log', chunk_id), L.ttl, entry)
  redis.call('ZADD', L.active, now, chunk_id)
  redis.call('ZADD', L.leases, at + L.lease, chunk_id)
  return attempt
end

-- Grant waiting senders, first come first served, the slots that are free or whose
-- freeing time is known; at most `limit` of them. Returns how many were granted.
local function serve(L, now, limit)
  if redis.call('EXISTS', L.hold) == 1 then return 0 end
  local not_before = cooling_until(L)
  local served = 0
  while served < limit do
    local raw = redis.call('LINDEX', L.line, 0)
    if not raw then break end
    local entry = line_entry(raw)
    local chunk = key('chunk', entry.c)
    if redis.call('HGET', chunk, 'waiting') ~= entry.t then
      -- its chunk moved on (its waiter left, died and was republished, or it was settled)
      redis.call('LPOP', L.line)
    else
      local at = free_at(L, now, not_before)
      if at == nil then break end
      redis.call('LPOP', L.line)
      local attempt = begin_attempt(L, entry.c, entry.w, at, now, '')
      local member = entry.c .. '#' .. attempt
      take(L, member, at, now)
      tell(L, entry.c, member .. ' ' .. fmt(at) .. ' ' .. fmt(now))
      served = served + 1
    end
  end
  return served
end

-- Nothing is granted before now + seconds (never shortened); slots granted for earlier
-- are moved to its end and their senders told. Returns when it ends, and how many
-- seconds this call added to it (0 when one as long was on already).
local function cool_down(L, now, seconds)
  local untill = now + seconds
  local current = cooling_until(L)
  if current >= untill then return current, 0 end
  redis.call('SET', L.cool, fmt(untill), 'PX', math.ceil(seconds * 1000))
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', L.granted, now, untill)) do
    redis.call('ZADD', L.granted, untill, member)
    for _, w in ipairs(L.windows) do
      if redis.call('ZSCORE', w.busy, member) then
        redis.call('ZADD', w.busy, untill + L.lease + w.p, member)
      end
    end
    local chunk_id = string.match(member, '^(.*)#%d+$')
    local chunk = key('chunk', chunk_id)
    redis.call('HSET', chunk, 'claimed_at', fmt(untill), 'lease_until', fmt(untill + L.lease))
    redis.call('ZADD', L.leases, untill + L.lease, chunk_id)
    tell(L, chunk_id, member .. ' ' .. fmt(untill) .. ' ' .. fmt(now))
  end
  return untill, untill - math.max(current, now)
end

-- Hold every send of the account (a rejected key): grants still to come are called off
-- and the line is sent away; each sender is told, gives its slot back and waits parked.
local function hold(L, now, why)
  redis.call('SET', L.hold, why)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', L.granted, now, '+inf')) do
    tell(L, string.match(member, '^(.*)#%d+$'), member .. ' held')
  end
  for _, raw in ipairs(redis.call('LRANGE', L.line, 0, -1)) do
    local entry = line_entry(raw)
    local chunk = key('chunk', entry.c)
    if redis.call('HGET', chunk, 'waiting') == entry.t then
      redis.call('HDEL', chunk, 'waiting')
      redis.call('ZREM', L.leases, entry.c)
      tell(L, entry.c, '- held')
    end
  end
  redis.call('DEL', L.line)
end
