-- The shared rate limit: every request is counted against each window of its bucket
-- from the moment its slot is granted until one period after its answer came back, and
-- a slot is granted only while fewer than N requests are counted. A request reaches the
-- API between its grant and its answer, so no window of P seconds at the API ever holds
-- more than N arrivals, however late or bunched requests travel (docs/architecture.md).
--
-- Each window keeps two sorted sets: `busy` (granted, not answered yet; scored by when a
-- dead claimant's hold ends: grant + lease + P) and `answered` (scored by answer + P,
-- when it stops counting). A cool-down (a 429) is a time nothing is granted before; a
-- hold (a rejected key) grants nothing until it is lifted.
--
-- Sharing (docs/architecture.md, "Sharing the limit"): chunks that find no slot wait in
-- one of two lanes. `transactional` waiters hold their worker thread and are served
-- first; `bulk` waiters hold no thread: when their slot nears (the look-ahead), their
-- chunk is given the slot and its task call is parked due now, for a relay to publish.
-- Inside a lane, tenants share by start-time fair queueing (Goyal, Vin and Cheng, 1996):
-- each tenant's oldest chunk carries a start tag, the lowest tag is served next, and a
-- tenant's next tag is its last plus 1/weight; a tenant that returns starts at the
-- lane's virtual time, so it never waits for another's backlog. A capped tenant
-- (OUTBOX_TENANT_LIMITS) has windows of its own, counted exactly as the account's. Slots
-- are granted at least P/N apart (pacing), so a slot is always near for a chunk that
-- comes later. None of it grants a slot the account's windows refuse.

-- The limit block: KEYS cool, hold, line (unused), granted, active, leases, then busy
-- and answered per window, after the script's own keys; its arguments are the `limit`
-- object of the script's (outbox.core.store.limits.LimitArgs): bucket, lease, ttl,
-- line_lease, windows ([N, P] each), then the sharing settings (pace, look, w, cap,
-- fifo).
local function limit_at(kb, spec)
  local L = {
    cool = KEYS[kb], hold = KEYS[kb + 1], granted = KEYS[kb + 3],
    active = KEYS[kb + 4], leases = KEYS[kb + 5],
    bucket = spec['bucket'], lease = tonumber(spec['lease']), ttl = tonumber(spec['ttl']),
    line_lease = tonumber(spec['line_lease']), windows = {},
  }
  for i, np in ipairs(spec['windows']) do
    L.windows[i] = {
      n = tonumber(np[1]), p = tonumber(np[2]),
      busy = KEYS[kb + 4 + 2 * i], answered = KEYS[kb + 5 + 2 * i],
    }
  end
  L.pace = tonumber(spec['pace'] or 0) or 0
  L.look = tonumber(spec['look'] or 0) or 0
  L.fifo = spec['fifo'] == true
  L.weights = spec['w'] or {}
  L.caps = spec['cap'] or {}
  L.pace_key = key('pace', L.bucket)
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

-- A capped tenant's own windows (nil for a tenant without a cap).
local function tenant_windows(L, tenant)
  local spec = tenant and L.caps[tenant]
  if not spec then return nil end
  local out = {}
  for i, np in ipairs(spec) do
    out[i] = {
      n = tonumber(np[1]), p = tonumber(np[2]),
      busy = key('tenant_window', L.bucket, tenant, i, 'busy'),
      answered = key('tenant_window', L.bucket, tenant, i, 'answered'),
    }
  end
  return out
end

-- The earliest time at which every window of the bucket (and of `tenant`, when it is
-- capped) has a slot, not before `not_before` nor sooner than P/N after the last slot
-- granted; nil when some window's next slot is not known yet.
local function free_at(L, now, not_before, tenant)
  local at = math.max(now, not_before)
  if L.pace > 0 then
    local last = tonumber(redis.call('GET', L.pace_key) or '0') or 0
    if last + L.pace > at then at = last + L.pace end
  end
  for _, w in ipairs(L.windows) do
    local t = window_free_at(w, now)
    if t == nil then return nil end
    if t > at then at = t end
  end
  for _, w in ipairs(tenant_windows(L, tenant) or {}) do
    local t = window_free_at(w, now)
    if t == nil then return nil end
    if t > at then at = t end
  end
  return at
end

-- The answered requests whose place the new slot takes stay where they are until they
-- expire: the next free_at counts one more busy and reads one further down, and a slot
-- given back before it was used (a reservation undone, a pause, a sender that never
-- sent) leaves the window exactly as it found it.
local function take_in(windows, member, at, lease)
  for _, w in ipairs(windows) do
    redis.call('ZADD', w.busy, at + lease + w.p, member)
  end
end

-- Count `member` in every window from `at` (call right after free_at with its tenant).
local function take(L, member, at, now, tenant)
  take_in(L.windows, member, at, L.lease)
  local tw = tenant_windows(L, tenant)
  if tw then take_in(tw, member, at, L.lease) end
  if L.pace > 0 then
    local last = tonumber(redis.call('GET', L.pace_key) or '0') or 0
    if at > last then
      redis.call('SET', L.pace_key, fmt(at), 'PX', math.ceil((L.pace + 60) * 1000))
    end
  end
  if at > now then redis.call('ZADD', L.granted, at, member) end
end

local function answered_in(windows, member, now, went_out)
  for _, w in ipairs(windows) do
    if redis.call('ZREM', w.busy, member) == 1 and went_out then
      redis.call('ZADD', w.answered, now + w.p, member)
    end
  end
end

-- The tenant a chunk's member counts for ('' for none, or a request that is no chunk's).
local function member_tenant(member)
  local chunk_id = member_chunk(member)
  if not chunk_id then return '' end
  return redis.call('HGET', key('chunk', chunk_id), 'tenant') or ''
end

-- `member` was answered (or given up) at `now`. A request that went out counts one more
-- period; one that never left frees its slot at once.
local function answered(L, member, now, went_out)
  answered_in(L.windows, member, now, went_out)
  if next(L.caps) ~= nil then
    local tw = tenant_windows(L, member_tenant(member))
    if tw then answered_in(tw, member, now, went_out) end
  end
  redis.call('ZREM', L.granted, member)
end

-- Write a wake message (codec.lua) to the wake list of a chunk's waiting sender.
local function tell(L, chunk_id, message)
  local box = key('wake', L.bucket, chunk_id)
  redis.call('RPUSH', box, message)
  redis.call('EXPIRE', box, math.ceil(L.line_lease) + 60)
end

-- The monthly quota: what is left and what the chunk needs when sending it would
-- overdraw the allowance (nil when it would not, or no quota applies; SMS have credits
-- of their own).
local function quota_short(chunk)
  local left = redis.call('GET', key('quota_left'))
  if not left or UNMETERED[redis.call('HGET', chunk, 'kind')] then return nil end
  local need = tonumber(redis.call('HGET', chunk, 'n_recipients') or '1')
  if tonumber(left) < need then return left, need end
  return nil
end

-- An email that would overdraw the quota waits, visibly, in the throttled set; the next
-- quota read with room (a new cycle, a raised allowance) publishes it again.
local function throttle(L, chunk, now, left, need)
  local state = redis.call('HGET', chunk, 'state')
  local chunk_id = redis.call('HGET', chunk, 'id')
  if state ~= STATE.throttled then
    redis.call('HSET', chunk, 'state', STATE.throttled, 'updated_at', fmt(now))
    count(key('batch', redis.call('HGET', chunk, 'batch')), state, STATE.throttled)
    log(key('chunk_log', chunk_id), L.ttl, {at = now, state = STATE.throttled,
        note = 'monthly quota: ' .. left .. ' left, ' .. need .. ' needed'})
  end
  redis.call('ZADD', key('throttled'), now, chunk_id)
end

-- A chunk starts an attempt (state sending) with its slot granted at `at`.
local function begin_attempt(L, chunk_id, worker, at, now, note)
  local chunk = key('chunk', chunk_id)
  local batch_id = redis.call('HGET', chunk, 'batch')
  local old = redis.call('HGET', chunk, 'state')
  local attempt = tonumber(redis.call('HGET', chunk, 'attempts') or '0') + 1
  redis.call('HSET', chunk, 'state', STATE.sending, 'attempts', attempt, 'claimed_by', worker,
             'claimed_at', fmt(at), 'lease_until', fmt(at + L.lease), 'updated_at', fmt(now))
  redis.call('HDEL', chunk, 'waiting')
  count(key('batch', batch_id), old, STATE.sending)
  if old == STATE.throttled then redis.call('ZREM', key('throttled'), chunk_id) end
  -- what the attempt takes from the monthly quota (SMS have credits of their own)
  if not UNMETERED[redis.call('HGET', chunk, 'kind')] and redis.call('EXISTS', key('quota_left')) == 1 then
    redis.call('DECRBY', key('quota_left'), tonumber(redis.call('HGET', chunk, 'n_recipients') or '1'))
  end
  local entry = {at = now, state = STATE.sending, attempt = attempt, worker = worker}
  if at > now + 0.0005 then entry['slot_at'] = at end
  if note and note ~= '' then
    entry['note'] = note
    redis.call('HSET', chunk, 'ambiguous', note)
  end
  log(key('chunk_log', chunk_id), L.ttl, entry)
  redis.call('ZADD', L.active, now, chunk_id)
  redis.call('ZADD', L.leases, at + L.lease, chunk_id)
  return attempt, old
end

-- Take a chunk that has not gone out back for good (outbox.cancel): state canceled,
-- out of every index that would bring it back; a bulk lane's reservation is undone
-- (its slot never used). Its place in a lane is left stale and dropped when served.
local function cancel_chunk(L, chunk, now, note)
  local state = redis.call('HGET', chunk, 'state')
  local chunk_id = redis.call('HGET', chunk, 'id')
  local batch_key = key('batch', redis.call('HGET', chunk, 'batch'))
  if state == STATE.sending then
    local attempts = tonumber(redis.call('HGET', chunk, 'attempts') or '1')
    answered(L, attempt_member(chunk_id, attempts), now, false)
    redis.call('HSET', chunk, 'attempts', attempts - 1)
    redis.call('HDEL', chunk, 'reserved')
  end
  local call = redis.call('HGET', chunk, 'reserved_call')
  if call then redis.call('ZREM', key('parked'), call) end
  redis.call('HDEL', chunk, 'reserved_call')
  redis.call('HSET', chunk, 'state', STATE.canceled, 'updated_at', fmt(now))
  redis.call('HINCRBY', key('tally'), STATE.canceled, 1)
  if state == STATE.paused then redis.call('HINCRBY', key('tally'), STATE.paused, -1) end
  if redis.call('HEXISTS', chunk, 'waiting') == 1 then tell(L, chunk_id, wake_word(IN_LINE, WAKE.canceled)) end
  redis.call('HDEL', chunk, 'waiting', 'paused_from', 'paused_taken')
  count(batch_key, state, STATE.canceled)
  log(key('chunk_log', chunk_id), L.ttl, {at = now, state = STATE.canceled, note = note})
  redis.call('ZREM', L.active, chunk_id)
  redis.call('ZREM', L.leases, chunk_id)
  redis.call('ZREM', key('throttled'), chunk_id)
  redis.call('ZREM', key('unclaimed', redis.call('HGET', chunk, 'queue') or QUEUE.email), chunk_id)
  ledger(redis.call('HGET', chunk, 'batch'), chunk, FATE.canceled, note)
end

-- Whether a chunk was asked to be canceled while it was in flight, or its send was.
local function cancel_asked(chunk, batch_key)
  return redis.call('HEXISTS', chunk, 'cancel') == 1
      or redis.call('HEXISTS', batch_key, 'canceled_at') == 1
end

-- Whether a chunk's send is paused (outbox.pause).
local function pause_asked(batch_key)
  return redis.call('HEXISTS', batch_key, 'paused_at') == 1
end

-- Call off a slot still to come of a chunk in `sending` (not a bulk reservation): its
-- sender sleeps until the slot's time, hears `word` ('paused' or 'canceled'), gives the
-- slot back and claims again, which pauses or cancels the chunk. A sender within the
-- last moments to its slot (limits.py's precise tail) does not hear it and goes: such a
-- chunk, like one whose slot has come, is in flight and ends as its answer says.
local function call_off(L, chunk, now, word)
  local at = tonumber(redis.call('HGET', chunk, 'claimed_at') or '0')
  if at > now then
    local chunk_id = redis.call('HGET', chunk, 'id')
    local member = attempt_member(chunk_id, redis.call('HGET', chunk, 'attempts') or '1')
    tell(L, chunk_id, wake_word(member, word))
  end
end

-- Hold a chunk that has not gone out while its send is paused: state paused, what it was
-- kept in `paused_from`, out of every index that would bring it back (a bulk lane's
-- reservation undone, its place in a lane left stale, a waiting sender told to go). No
-- thread and no task holds it: `paused_taken` records that its task message is gone (a
-- claim took it, or it waited without one), so resume publishes it again; a chunk whose
-- message is still on its way (on the broker, scheduled, parked for a retry) is paused
-- again by the claim that message makes, or carries on if the send was resumed first.
local function pause_chunk(L, chunk, now, taken)
  local state = redis.call('HGET', chunk, 'state')
  local chunk_id = redis.call('HGET', chunk, 'id')
  local batch_key = key('batch', redis.call('HGET', chunk, 'batch'))
  local reserved = redis.call('HGET', chunk, 'reserved')
  if state == STATE.sending and reserved then
    local attempts = tonumber(redis.call('HGET', chunk, 'attempts') or '1')
    answered(L, attempt_member(chunk_id, attempts), now, false)
    redis.call('HSET', chunk, 'attempts', attempts - 1)
    redis.call('HDEL', chunk, 'reserved')
    redis.call('ZREM', L.leases, chunk_id)
    count(batch_key, state, reserved)
    state = reserved
    taken = true
  end
  local call = redis.call('HGET', chunk, 'reserved_call')
  if call then redis.call('ZREM', key('parked'), call) end
  redis.call('HDEL', chunk, 'reserved_call')
  if redis.call('HEXISTS', chunk, 'waiting') == 1 then
    redis.call('HDEL', chunk, 'waiting')
    redis.call('ZREM', L.leases, chunk_id)
    tell(L, chunk_id, wake_word(IN_LINE, WAKE.paused))
    taken = true
  end
  if redis.call('ZREM', key('throttled'), chunk_id) == 1 then taken = true end
  if taken then redis.call('HSET', chunk, 'paused_taken', '1') end
  if state == STATE.paused then return end
  redis.call('HSET', chunk, 'state', STATE.paused, 'paused_from', state, 'updated_at', fmt(now))
  redis.call('HINCRBY', key('tally'), STATE.paused, 1)
  count(batch_key, state, STATE.paused)
  log(key('chunk_log', chunk_id), L.ttl, {at = now, state = STATE.paused, note = 'send paused'})
end

-- A paused chunk takes up where it was (outbox.resume); with `publish`, a chunk whose
-- task message is gone is parked due now, for a relay to publish. Returns its state.
local function unpause_chunk(L, chunk, now, publish)
  local was = redis.call('HGET', chunk, 'paused_from') or STATE.queued
  local chunk_id = redis.call('HGET', chunk, 'id')
  local taken = redis.call('HGET', chunk, 'paused_taken') == '1'
  redis.call('HSET', chunk, 'state', was, 'updated_at', fmt(now))
  redis.call('HDEL', chunk, 'paused_from', 'paused_taken')
  redis.call('HINCRBY', key('tally'), STATE.paused, -1)
  count(key('batch', redis.call('HGET', chunk, 'batch')), STATE.paused, was)
  log(key('chunk_log', chunk_id), L.ttl, {at = now, state = was, note = 'send resumed'})
  if publish and taken then
    local call = cjson.encode({task = TASKS[redis.call('HGET', chunk, 'kind')], chunk = chunk_id,
                               due = tonumber(fmt(now))})
    park(key('parked'), call, now)
  end
  return was
end

-- The batch's last chunk became final in this call: mark it finished once; true when
-- it has a completion callback to publish (indexed as due until its publisher marks it).
local function batch_finished(batch_key, batch_id, now)
  local done = 0
  for state in pairs(FINAL) do
    done = done + tonumber(redis.call('HGET', batch_key, 'n:' .. state) or '0')
  end
  if done < tonumber(redis.call('HGET', batch_key, 'chunks') or '0') then return false, false end
  if redis.call('HSETNX', batch_key, 'finished_at', fmt(now)) ~= 1 then return false, false end
  if redis.call('HEXISTS', batch_key, 'callback') == 1 then
    redis.call('ZADD', key('callbacks_due'), now, batch_id)
    return true, true
  end
  return true, false
end

-- The lanes. Each lane keeps a sorted set of the tenants with chunks waiting (scored by
-- the start tag of the oldest), a list per tenant, and its virtual time with each
-- tenant's last finish tag. A chunk with no tenant waits as tenant '-'.
local TRANSACTIONAL, BULK = 'transactional', 'bulk'

local function weight(L, tenant)
  local w = tonumber(L.weights[tenant] or 1) or 1
  if w <= 0 then w = 1 end
  return w
end

local function lane_waiting(L, lane)
  return redis.call('ZCARD', key('lane', L.bucket, lane)) > 0
end

-- Put a line entry (chunk, worker or '' for a thread-less wait, token) at the back of its
-- tenant's list; a tenant that had nothing waiting starts at the lane's virtual time
-- (or where its last share ended, if that is later: no tenant gains by leaving).
local function enqueue(L, lane, tenant, entry)
  local list = key('lane_tenant', L.bucket, lane, tenant)
  if redis.call('RPUSH', list, entry) == 1 then
    local meta = key('lane_meta', L.bucket, lane)
    local v = tonumber(redis.call('HGET', meta, 'v') or '0') or 0
    local f = tonumber(redis.call('HGET', meta, 'f:' .. tenant) or '0') or 0
    redis.call('ZADD', key('lane', L.bucket, lane), 'NX', math.max(v, f), tenant)
  end
end

-- The tenant's list lost its head: it takes its next tag, or leaves the lane with it.
local function advance(L, lane, tenant, tag, served)
  local list = key('lane_tenant', L.bucket, lane, tenant)
  local meta = key('lane_meta', L.bucket, lane)
  local next_tag = tag
  if served then
    next_tag = tag + 1 / weight(L, tenant)
    redis.call('HSET', meta, 'v', fmt(tag))
  end
  if redis.call('LLEN', list) > 0 then
    redis.call('ZADD', key('lane', L.bucket, lane), next_tag, tenant)
  else
    redis.call('ZREM', key('lane', L.bucket, lane), tenant)
    redis.call('HSET', meta, 'f:' .. tenant, fmt(next_tag))
  end
end

-- Take an entry out of its tenant's list wherever it is (a waiter leaving, a hold).
local function dequeue(L, lane, tenant, entry)
  local list = key('lane_tenant', L.bucket, lane, tenant)
  if redis.call('LREM', list, 1, entry) == 0 then return false end
  if redis.call('LLEN', list) == 0 then
    local tag = redis.call('ZSCORE', key('lane', L.bucket, lane), tenant)
    if tag then advance(L, lane, tenant, tonumber(tag), false) end
  end
  return true
end

-- Places in line one serve call may look at, across its lanes and tenants.
local SERVE_LOOKS = 64

-- The lane's next chunk that may have a slot no later than now + horizon: its tenant,
-- the slot's time, its entry and the tenant's tag; or nil and the earliest slot time
-- any waiting tenant could have (nil when none is known). Stale entries (their chunk
-- moved on) are dropped on the way, taking no share.
local function pick(L, lane, now, not_before, horizon, budget)
  local zset = key('lane', L.bucket, lane)
  local account_at = free_at(L, now, not_before, nil)
  if account_at == nil then return nil, nil end
  local earliest = nil
  while true do
    local tenants = redis.call('ZRANGE', zset, 0, 15, 'WITHSCORES')
    if tenants[1] == nil then return nil, earliest end
    local dropped = false
    for i = 1, #tenants, 2 do
      if budget.left <= 0 then  -- this call has looked at enough: a relay goes on
        budget.spent = true
        return nil, earliest
      end
      budget.left = budget.left - 1
      local tenant, tag = tenants[i], tonumber(tenants[i + 1])
      local list = key('lane_tenant', L.bucket, lane, tenant)
      local raw = redis.call('LINDEX', list, 0)
      local entry = raw and read_line_entry(raw)
      local chunk = entry and key('chunk', entry.c)
      if entry and redis.call('HGET', chunk, 'waiting') == entry.t
          and pause_asked(key('batch', redis.call('HGET', chunk, 'batch'))) then
        pause_chunk(L, chunk, now, true)  -- its send was paused while it waited
      end
      if not entry or redis.call('HGET', chunk, 'waiting') ~= entry.t then
        if raw then redis.call('LPOP', list) end
        advance(L, lane, tenant, tag, false)
        dropped = true
        break
      end
      local at = account_at
      if L.caps[tenant] then at = free_at(L, now, not_before, tenant) end
      if at ~= nil then
        if at - now <= horizon then return tenant, at, entry, tag end
        if earliest == nil or at < earliest then earliest = at end
      end
    end
    if not dropped then return nil, earliest end
  end
end

-- The thread-less chunks of the bulk lane are woken by a relay running serve.lua when
-- their slot nears; a finish or a claim serves them too, whichever comes first.
local KICK = '{"args":["send"],"task":"outbox.serve_line"}'

local function kick_at(L, due)
  local parked = key('parked')
  local current = redis.call('ZSCORE', parked, KICK)
  if current == false or current == nil or due < tonumber(current) then
    park(parked, KICK, due)
  end
end

-- Grant waiting chunks the slots that are free or whose freeing time is known, at most
-- `limit` of them: the transactional lane first (its senders wait on their threads, for
-- any known slot), then the bulk lane for slots within the look-ahead, each lane's
-- tenants by their fair share. With `hand`, the first bulk chunk granted is handed to
-- the caller's thread (a worker that just finished a send sends it next, with no trip
-- through the relay and the broker); its call is parked too, due a second after its
-- slot, in case that thread dies first. A chunk the month's quota no longer covers when
-- its turn comes (the chunks granted before it took the rest) is throttled instead, and
-- its waiting sender told. Returns how many were granted, and the chunk handed (or nil).
local function serve(L, now, limit, hand)
  if redis.call('EXISTS', L.hold) == 1 then return 0, nil end
  local not_before = cooling_until(L)
  local served = 0
  local handed = nil
  -- chunks the quota turns away count too, so one call stays short whatever waits
  local steps = 0
  -- and so do the places in line it looks at (stale ones are dropped on the way): past
  -- SERVE_LOOKS, it stops and has a relay go on, so no call holds Redis long
  local budget = {left = SERVE_LOOKS, spent = false}
  while served < limit and steps < limit + 16 do
    steps = steps + 1
    local tenant, at, entry, tag = pick(L, TRANSACTIONAL, now, not_before, math.huge, budget)
    if tenant == nil then
      if budget.spent then break end
      if at == nil and lane_waiting(L, TRANSACTIONAL) then return served, nil end
      break
    end
    redis.call('LPOP', key('lane_tenant', L.bucket, TRANSACTIONAL, tenant))
    local left, need = quota_short(key('chunk', entry.c))
    if left then
      -- the chunks granted while it waited took the rest of the month's allowance
      advance(L, TRANSACTIONAL, tenant, tag, false)
      redis.call('HDEL', key('chunk', entry.c), 'waiting')
      redis.call('ZREM', L.leases, entry.c)
      throttle(L, key('chunk', entry.c), now, left, need)
      tell(L, entry.c, wake_word(IN_LINE, WAKE.throttled))
    else
      advance(L, TRANSACTIONAL, tenant, tag, true)
      local attempt = begin_attempt(L, entry.c, entry.w, at, now, '')
      local member = attempt_member(entry.c, attempt)
      take(L, member, at, now, tenant)
      tell(L, entry.c, wake_grant(member, at, now))
      served = served + 1
    end
  end
  while served < limit and steps < limit + 16 do
    steps = steps + 1
    if budget.spent then break end
    local tenant, at, entry, tag = pick(L, BULK, now, not_before, L.look, budget)
    if tenant == nil then
      if at ~= nil and not budget.spent then kick_at(L, math.max(now, at - L.look)) end
      break
    end
    redis.call('LPOP', key('lane_tenant', L.bucket, BULK, tenant))
    local chunk = key('chunk', entry.c)
    local left, need = quota_short(chunk)
    if left then
      advance(L, BULK, tenant, tag, false)
      redis.call('HDEL', chunk, 'waiting')
      throttle(L, chunk, now, left, need)
    else
      advance(L, BULK, tenant, tag, true)
      local attempt, old = begin_attempt(L, entry.c, '', at, now, '')
      -- granted to nobody yet: the first worker to claim the chunk adopts the attempt
      redis.call('HSET', chunk, 'reserved', old)
      take(L, attempt_member(entry.c, attempt), at, now, tenant)
      local due = now
      if hand and handed == nil then
        handed = entry.c
        due = at + 1
      end
      local call = cjson.encode({task = TASKS[redis.call('HGET', chunk, 'kind')], chunk = entry.c,
                                 due = tonumber(fmt(due))})
      redis.call('HSET', chunk, 'reserved_call', call)
      park(key('parked'), call, due)
      served = served + 1
    end
  end
  -- more may be grantable: a relay goes on
  if steps >= limit + 16 or budget.spent then kick_at(L, now) end
  return served, handed
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
    local chunk_id = member_chunk(member)
    local chunk = key('chunk', chunk_id)
    redis.call('HSET', chunk, 'claimed_at', fmt(untill), 'lease_until', fmt(untill + L.lease))
    redis.call('ZADD', L.leases, untill + L.lease, chunk_id)
    tell(L, chunk_id, wake_grant(member, untill, now))
  end
  return untill, untill - math.max(current, now)
end

-- Hold every send of the account (a rejected key): grants still to come are called off
-- and the transactional lane is sent away; each sender is told, gives its slot back and
-- waits parked. The bulk lane holds no thread and simply waits for the hold to end.
local function hold(L, now, why)
  redis.call('SET', L.hold, why)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', L.granted, now, '+inf')) do
    tell(L, member_chunk(member), wake_word(member, WAKE.held))
  end
  local zset = key('lane', L.bucket, TRANSACTIONAL)
  for _, tenant in ipairs(redis.call('ZRANGE', zset, 0, -1)) do
    local list = key('lane_tenant', L.bucket, TRANSACTIONAL, tenant)
    for _, raw in ipairs(redis.call('LRANGE', list, 0, -1)) do
      local entry = read_line_entry(raw)
      local chunk = key('chunk', entry.c)
      if redis.call('HGET', chunk, 'waiting') == entry.t then
        redis.call('HDEL', chunk, 'waiting')
        redis.call('ZREM', L.leases, entry.c)
        tell(L, entry.c, wake_word(IN_LINE, WAKE.held))
      end
    end
    redis.call('DEL', list)
  end
  redis.call('DEL', zset)
end
