"""Result records in Redis: batches, chunks, their history, dead letters, parked tasks.

A *batch* is one producer call; a *chunk* is one API request's worth of its recipients
(at most 100) and the unit that is claimed, retried, sent, failed or dead. Each state
change is one Lua script, so a chunk's fields, its batch's counters and the indexes
move together even when a hundred chunks of one batch finish at once, and the clock is
Redis's (``TIME``), so leases mean the same on every host.

Claiming
    Before a request a worker *claims* its chunk: state ``sending``, with its name and a
    lease a little longer than the client timeout. A redelivered task that finds the
    chunk final does nothing; one that finds a live lease waits for it; one that finds an
    expired lease knows the previous attempt's fate is unknown (``ambiguous``) and says
    so in the record before anything else happens. The claim script also takes the
    shared rate limit's slot (``worker.limiter.GCRA_LUA``), so a send costs one script
    call before the request and one after it.

Batch state is not stored: it follows from the per-state chunk counters (see
:func:`batch_state`), and the one script call that makes the last chunk final learns
so, which is how the completion callback fires exactly once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from outbox.worker import keys
from outbox.worker.limiter import GCRA_LUA, RateLimiter
from outbox.worker.states import State

__all__ = [
    "ChunkSpec",
    "Claim",
    "Finish",
    "RecordStore",
    "batch_id_of",
    "batch_state",
    "chunk_id_for",
]

_STATE_COUNTERS = ", ".join(f"'n:{s.value}'" for s in State)

_COMMON_LUA = (
    GCRA_LUA
    + """
local function is_final(state)
  return state == 'sent' or state == 'failed' or state == 'dead'
end
local function fmt(x) return string.format('%.6f', x) end
local function log(key, ttl, entry)
  redis.call('RPUSH', key, cjson.encode(entry))
  redis.call('EXPIRE', key, ttl)
end
"""
)

# KEYS: idem|'' , batch, payload, active, then (chunk, log) per chunk
# ARGV: ttl, batch_id, batch fields (json), payload, then chunk fields (json) per chunk
_CREATE_LUA = (
    _COMMON_LUA
    + """
local ttl = tonumber(ARGV[1])
if KEYS[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {0, existing} end
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
end
local now = outbox_now()
local batch = cjson.decode(ARGV[3])
batch['created_at'] = fmt(now)
for field, value in pairs(batch) do redis.call('HSET', KEYS[2], field, value) end
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('SET', KEYS[3], ARGV[4], 'EX', ttl)
for i = 5, #ARGV do
  local chunk_key, log_key = KEYS[2 * (i - 5) + 5], KEYS[2 * (i - 5) + 6]
  local chunk = cjson.decode(ARGV[i])
  chunk['created_at'] = fmt(now)
  chunk['updated_at'] = fmt(now)
  for field, value in pairs(chunk) do redis.call('HSET', chunk_key, field, value) end
  redis.call('EXPIRE', chunk_key, ttl)
  log(log_key, ttl, {at = now, state = chunk['state']})
  redis.call('ZADD', KEYS[4], now, chunk['id'])
end
return {1, ARGV[2]}
"""
)

# KEYS: chunk, batch, log, active, limiter tat, limiter cool-down
# ARGV: worker, lease, use_limiter, interval, burst, max_wait, takeover, note, ttl,
#       reserved_at ('' = none), horizon
# Returns: outcome, wait, attempts, previous state, Redis now
_CLAIM_LUA = (
    _COMMON_LUA
    + """
local now = outbox_now()
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', '0', '0', '', fmt(now)} end
if is_final(state) then return {'final', '0', '0', state, fmt(now)} end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if state == 'sending' then
  local lease_until = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
  if lease_until > now then
    return {'busy', fmt(lease_until - now), tostring(attempts), state, fmt(now)}
  end
  if ARGV[7] ~= '1' then return {'ambiguous', '0', tostring(attempts), state, fmt(now)} end
end
local wait = 0
local reserved = tonumber(ARGV[10] ~= '' and ARGV[10] or '-1')
if reserved >= now - 0.02 then
  -- Back for a slot reserved earlier (early is fine: the caller sleeps until it),
  -- unless a 429 since then put the fleet in a cool-down that outlasts the slot.
  local cool = tonumber(KEYS[6] ~= '' and redis.call('GET', KEYS[6]) or '0') or 0
  if cool > reserved then
    return {'throttled', fmt(cool - now), tostring(attempts), state, fmt(now)}
  end
  wait = reserved - now
elseif ARGV[3] == '1' then
  -- No reservation, or back too late to use it without crowding the next slot.
  local granted
  granted, wait = outbox_gcra(KEYS[5], KEYS[6], tonumber(ARGV[4]), tonumber(ARGV[5]),
                              tonumber(ARGV[11]), now)
  if granted == 0 then return {'throttled', fmt(wait), tostring(attempts), state, fmt(now)} end
  if wait > tonumber(ARGV[6]) then
    -- A slot further ahead than a thread should sleep: keep it, come back for it.
    return {'reserved', fmt(wait), tostring(attempts), state, fmt(now)}
  end
end
if wait < 0 then wait = 0 end
local ttl = tonumber(ARGV[9])
attempts = attempts + 1
redis.call('HSET', KEYS[1], 'state', 'sending', 'attempts', attempts, 'claimed_by', ARGV[1],
           'claimed_at', fmt(now + wait), 'lease_until', fmt(now + wait + tonumber(ARGV[2])),
           'updated_at', fmt(now))
if state ~= 'sending' then
  redis.call('HINCRBY', KEYS[2], 'n:' .. state, -1)
  redis.call('HINCRBY', KEYS[2], 'n:sending', 1)
end
local entry = {at = now, state = 'sending', attempt = attempts, worker = ARGV[1]}
if ARGV[8] ~= '' then
  entry['note'] = ARGV[8]
  redis.call('HSET', KEYS[1], 'ambiguous', ARGV[8])
end
log(KEYS[3], ttl, entry)
redis.call('ZADD', KEYS[4], now, redis.call('HGET', KEYS[1], 'id'))
return {'claimed', fmt(wait), tostring(attempts), state, fmt(now)}
"""
)

# KEYS: chunk, batch, log, active, dead, email index|''
# ARGV: new state, fields (json), log extra (json), ttl, succeeded, failed, expect ('' = any
#       non-final state)
_FINISH_LUA = (
    _COMMON_LUA
    + """
local new = ARGV[1]
local ttl = tonumber(ARGV[4])
local old = redis.call('HGET', KEYS[1], 'state')
if not old then return {'missing', ''} end
if is_final(old) then return {'noop', old} end
if ARGV[7] ~= '' and ARGV[7] ~= old then return {'noop', old} end
local now = outbox_now()
local fields = cjson.decode(ARGV[2])
fields['state'] = new
fields['updated_at'] = fmt(now)
for field, value in pairs(fields) do redis.call('HSET', KEYS[1], field, value) end
if new ~= old then
  redis.call('HINCRBY', KEYS[2], 'n:' .. old, -1)
  redis.call('HINCRBY', KEYS[2], 'n:' .. new, 1)
end
local chunk_id = redis.call('HGET', KEYS[1], 'id')
local entry = cjson.decode(ARGV[3])
entry['at'] = now
entry['state'] = new
log(KEYS[3], ttl, entry)
if KEYS[6] ~= '' then redis.call('SET', KEYS[6], chunk_id, 'EX', ttl) end
if not is_final(new) then
  redis.call('ZADD', KEYS[4], now, chunk_id)
  return {'moved', old}
end
redis.call('ZREM', KEYS[4], chunk_id)
redis.call('HINCRBY', KEYS[2], 'recipients_succeeded', tonumber(ARGV[5]))
redis.call('HINCRBY', KEYS[2], 'recipients_failed', tonumber(ARGV[6]))
if new == 'dead' then redis.call('ZADD', KEYS[5], now, chunk_id) end
local done = 0
for _, s in ipairs({'sent', 'failed', 'dead'}) do
  done = done + tonumber(redis.call('HGET', KEYS[2], 'n:' .. s) or '0')
end
if done >= tonumber(redis.call('HGET', KEYS[2], 'chunks') or '0')
   and redis.call('HSETNX', KEYS[2], 'finished_at', fmt(now)) == 1 then
  return {'batch_done', old}
end
return {'final', old}
"""
)

# KEYS: chunk, batch, log, active, dead   ARGV: ttl, who
_REPLAY_LUA = (
    _COMMON_LUA
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'dead' then return {'noop', state or ''} end
local now = outbox_now()
local ttl = tonumber(ARGV[1])
local n = tonumber(redis.call('HGET', KEYS[1], 'n_recipients') or '0')
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', 0, 'updated_at', fmt(now),
           'due_at', fmt(now))
redis.call('HINCRBY', KEYS[1], 'replays', 1)
redis.call('HINCRBY', KEYS[2], 'n:dead', -1)
redis.call('HINCRBY', KEYS[2], 'n:queued', 1)
redis.call('HINCRBY', KEYS[2], 'recipients_failed', -n)
redis.call('HDEL', KEYS[2], 'finished_at')
local chunk_id = redis.call('HGET', KEYS[1], 'id')
redis.call('ZREM', KEYS[5], chunk_id)
redis.call('ZADD', KEYS[4], now, chunk_id)
for _, k in ipairs({KEYS[1], KEYS[2]}) do redis.call('EXPIRE', k, ttl) end
log(KEYS[3], ttl, {at = now, state = 'queued', note = 'replayed by ' .. ARGV[2]})
return {'replayed', state}
"""
)

# KEYS: chunk, log, dead   ARGV: fields (json), log extra (json), ttl
# A task for a chunk with no record (expired, or never created) that cannot even be
# read: kept as a dead chunk of no batch, so the dead letters show it with its reason.
_BURY_LUA = (
    _COMMON_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now = outbox_now()
local ttl = tonumber(ARGV[3])
local fields = cjson.decode(ARGV[1])
fields['state'] = 'dead'
fields['created_at'] = fmt(now)
fields['updated_at'] = fmt(now)
for field, value in pairs(fields) do redis.call('HSET', KEYS[1], field, value) end
redis.call('EXPIRE', KEYS[1], ttl)
local entry = cjson.decode(ARGV[2])
entry['at'] = now
entry['state'] = 'dead'
log(KEYS[2], ttl, entry)
redis.call('ZADD', KEYS[3], now, fields['id'])
return 1
"""
)

# KEYS: parked   ARGV: lease seconds, max items
_TAKE_PARKED_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), member)
end
return due
"""


#: A chunk id as :func:`chunk_id_for` makes it (batch ids are uuid4 hex).
_CHUNK_ID = re.compile(r"[0-9a-f]{32}\.\d{1,6}")


def _log_key(chunk_id: str) -> str:
    return keys.chunk(chunk_id) + ":log"


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    """A chunk as the producer records it."""

    id: str
    index: int
    #: Every address (or number) of the chunk, flat, for the record.
    recipients: Sequence[str]
    #: The chunk's own payload fields (its slice of to/cc/bcc or destination).
    overrides: Mapping[str, Any] = field(default_factory=dict)
    due_at: float | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """What the claim script decided for a task about to send."""

    #: ``claimed``, ``final``, ``busy``, ``ambiguous``, ``throttled``, ``reserved`` or
    #: ``missing``.
    outcome: str
    #: For ``claimed``: seconds until the rate-limit slot; for ``reserved``: seconds until
    #: the slot kept for this chunk; for ``busy`` and ``throttled``: seconds to wait.
    wait: float
    #: Attempts at the API so far, this one included when claimed.
    attempt: int
    #: The chunk's state before the claim.
    previous: str
    #: The Redis clock when the script ran (reservations are kept in its time).
    now: float = 0.0


@dataclass(frozen=True, slots=True)
class Finish:
    #: ``moved`` (non-final), ``final``, ``batch_done`` (this call finished the batch),
    #: ``noop`` (the chunk was already final) or ``missing``.
    outcome: str
    previous: str


def batch_state(counts: Mapping[str, int], chunks: int) -> State:
    """A batch's state from its per-state chunk counters."""
    if chunks == 0:
        return State.FAILED  # every recipient was refused before enqueueing
    final = counts.get("sent", 0) + counts.get("failed", 0) + counts.get("dead", 0)
    if final >= chunks:
        if counts.get("sent", 0) >= chunks:
            return State.SENT
        return State.DEAD if counts.get("dead", 0) else State.FAILED
    if counts.get("retrying", 0):
        return State.RETRYING
    if counts.get("sending", 0) or final:
        return State.SENDING
    return State.QUEUED


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


class RecordStore:
    """Reads and writes records; one instance per process, shared by its threads."""

    def __init__(self, redis: Any, *, retention: int = 7 * 86400) -> None:
        self.redis = redis
        self.retention = retention
        self._create = redis.register_script(_CREATE_LUA)
        self._claim = redis.register_script(_CLAIM_LUA)
        self._finish = redis.register_script(_FINISH_LUA)
        self._replay = redis.register_script(_REPLAY_LUA)
        self._take_parked = redis.register_script(_TAKE_PARKED_LUA)
        self._bury = redis.register_script(_BURY_LUA)

    # -- writes -------------------------------------------------------------------------

    def create(
        self,
        batch_id: str,
        *,
        kind: str,
        chunks: Sequence[ChunkSpec],
        payload: Mapping[str, Any],
        idempotency_key: str | None = None,
        queue: str = "email",
        extra: Mapping[str, str] | None = None,
        initial_state: State = State.QUEUED,
    ) -> tuple[str, bool]:
        """Record a batch and its chunks in one call; ``(batch_id, created)``.

        With an ``idempotency_key`` already used, nothing is written and the first
        batch's id comes back with ``created`` false.
        """
        batch_fields: dict[str, str] = {
            "id": batch_id,
            "kind": kind,
            "chunks": str(len(chunks)),
            "recipients": str(sum(len(c.recipients) for c in chunks)),
            **{f"n:{s.value}": "0" for s in State},
            "recipients_succeeded": "0",
            "recipients_failed": "0",
            **(dict(extra) if extra else {}),
        }
        batch_fields[f"n:{initial_state.value}"] = str(len(chunks))
        if idempotency_key:
            batch_fields["idempotency_key"] = idempotency_key
        chunk_args = []
        chunk_keys: list[str] = []
        for spec in chunks:
            fields = {
                "id": spec.id,
                "batch": batch_id,
                "index": str(spec.index),
                "kind": kind,
                "state": initial_state.value,
                "attempts": "0",
                "recipients": _dumps(list(spec.recipients)),
                "n_recipients": str(len(spec.recipients)),
                "fields": _dumps(dict(spec.overrides)),
                "queue": queue,
            }
            if spec.due_at is not None:
                fields["due_at"] = f"{spec.due_at:.6f}"
            chunk_args.append(_dumps(fields))
            chunk_keys += [keys.chunk(spec.id), _log_key(spec.id)]
        result = self._create(
            keys=[
                keys.idempotency(idempotency_key) if idempotency_key else "",
                keys.batch(batch_id),
                keys.batch_payload(batch_id),
                self._active_key,
                *chunk_keys,
            ],
            args=[self.retention, batch_id, _dumps(batch_fields), _dumps(payload), *chunk_args],
        )
        created, found = result
        return found.decode() if isinstance(found, bytes) else str(found), bool(int(created))

    def claim(
        self,
        chunk_id: str,
        batch_id: str,
        *,
        worker: str,
        lease: float,
        limiter: RateLimiter | None = None,
        max_wait: float = 0.0,
        horizon: float | None = None,
        reserved_at: float | None = None,
        takeover: bool = False,
        note: str = "",
    ) -> Claim:
        """Claim a chunk for one attempt, taking a rate-limit slot in the same call.

        A free slot at most ``max_wait`` seconds ahead is claimed with the chunk; one
        further ahead but within ``horizon`` is *reserved* (outcome ``reserved``): the
        caller comes back at ``now + wait`` and claims with ``reserved_at`` and no
        limiter. Beyond the horizon the answer is ``throttled``.
        """
        tat, cool = limiter.script_keys if limiter else ("", "")
        outcome, wait, attempt, previous, now = self._claim(
            keys=[
                keys.chunk(chunk_id),
                keys.batch(batch_id),
                _log_key(chunk_id),
                self._active_key,
                tat,
                cool,
            ],
            args=[
                worker,
                repr(lease),
                "1" if limiter else "0",
                repr(limiter.interval) if limiter else "0",
                limiter.burst if limiter else 1,
                repr(max_wait),
                "1" if takeover else "0",
                note,
                self.retention,
                f"{reserved_at:.6f}" if reserved_at is not None else "",
                repr(max(max_wait, horizon if horizon is not None else max_wait)),
            ],
        )
        return Claim(_text(outcome), float(wait), int(attempt), _text(previous), float(now))

    def give_back(self, chunk_id: str, batch_id: str, claim: Claim, note: str) -> bool:
        """Undo ``claim`` before anything was sent: the chunk returns to its previous
        state with its attempt count as it was (a wait is never an attempt). True when
        undone; false when the chunk had moved on (it is then left alone)."""
        if claim.previous == State.SENDING.value:
            return False  # a takeover: undoing it would forget the earlier attempt
        outcome = self.finish(
            chunk_id,
            batch_id,
            State(claim.previous),
            fields={"attempts": str(claim.attempt - 1)},
            log={"note": note},
            expect=State.SENDING,
        )
        return outcome.outcome == "moved"

    def finish(
        self,
        chunk_id: str,
        batch_id: str,
        state: State,
        *,
        fields: Mapping[str, Any] | None = None,
        log: Mapping[str, Any] | None = None,
        email_id: str | None = None,
        succeeded: int = 0,
        failed: int = 0,
        expect: State | None = None,
    ) -> Finish:
        """Move a chunk to ``state`` (final or ``retrying``) with its outcome's fields.

        Values in ``fields`` that are not strings are stored as JSON. A chunk that is
        already final is left alone (``noop``): a late duplicate never rewrites history.
        """
        stored = {k: v if isinstance(v, str) else _dumps(v) for k, v in (fields or {}).items()}
        if email_id:
            stored["email_id"] = email_id
        outcome, previous = self._finish(
            keys=[
                keys.chunk(chunk_id),
                keys.batch(batch_id),
                _log_key(chunk_id),
                self._active_key,
                keys.dead_letters(),
                keys.email_index(email_id) if email_id else "",
            ],
            args=[
                state.value,
                _dumps(stored) if stored else "{}",
                _dumps(dict(log or {})) if log else "{}",
                self.retention,
                succeeded,
                failed,
                expect.value if expect else "",
            ],
        )
        return Finish(_text(outcome), _text(previous))

    def replay(self, chunk_id: str, batch_id: str, *, who: str = "operator") -> bool:
        """Move a dead chunk back to ``queued`` (attempts reset); true when it was dead."""
        outcome, _ = self._replay(
            keys=[
                keys.chunk(chunk_id),
                keys.batch(batch_id),
                _log_key(chunk_id),
                self._active_key,
                keys.dead_letters(),
            ],
            args=[self.retention, who],
        )
        return _text(outcome) == "replayed"

    def bury_orphan(self, chunk_id: str, *, kind: str, error: Mapping[str, Any]) -> bool:
        """Dead-letter a task that names a chunk with no record (and no batch).

        Only for chunk ids of outbox's own shape (``<batch>.<index>``); false, writing
        nothing, when the chunk has a record (use :meth:`finish`) or the id is not one.
        The dead letter cannot be replayed (there is no payload to rebuild it from); it
        is there so an operator sees the lost task and why, until the retention ends.
        """
        if not _CHUNK_ID.fullmatch(chunk_id):
            return False
        batch_id, _, index = chunk_id.rpartition(".")
        fields = {
            "id": chunk_id,
            "batch": batch_id,
            "index": index,
            "kind": kind,
            "attempts": "0",
            "recipients": "[]",
            "n_recipients": "0",
            "orphan": "1",
            "last_error": _dumps(dict(error)),
        }
        buried = self._bury(
            keys=[keys.chunk(chunk_id), _log_key(chunk_id), keys.dead_letters()],
            args=[
                _dumps(fields),
                _dumps({"error": dict(error), "note": "no record"}),
                self.retention,
            ],
        )
        return bool(int(buried))

    def set_fields(self, chunk_id: str, fields: Mapping[str, Any]) -> None:
        stored = {k: v if isinstance(v, str) else _dumps(v) for k, v in fields.items()}
        self.redis.hset(keys.chunk(chunk_id), mapping=stored)

    # -- parked tasks (waits longer than the broker may hold a message) ------------------

    def park(self, call: Mapping[str, Any], due: float) -> None:
        """Keep a task call in Redis until ``due`` (epoch seconds, Redis clock).

        The due time is part of the member: a call parked again while an earlier copy
        is being released is a new entry, not one that the release would delete.
        """
        self.redis.zadd(keys.parked(), {_dumps({**call, "due": round(due, 6)}): due})

    def park_many(self, calls: Sequence[Mapping[str, Any]], due: float) -> None:
        """:meth:`park` for many calls in one round trip."""
        self.redis.zadd(
            keys.parked(), {_dumps({**call, "due": round(due, 6)}): due for call in calls}
        )

    def take_parked(self, *, lease: float = 60.0, limit: int = 100) -> list[dict[str, Any]]:
        """Due task calls, leased for ``lease`` seconds: call :meth:`release` once published.

        If the publisher dies before releasing, the call comes due again after the lease
        and is published twice; the chunk's claim makes the second copy a no-op.
        """
        members = self._take_parked(keys=[keys.parked()], args=[lease, limit])
        return [json.loads(m) for m in members]

    def release(self, call: Mapping[str, Any]) -> None:
        self.redis.zrem(keys.parked(), _dumps(call))

    def parked_count(self) -> int:
        return int(self.redis.zcard(keys.parked()))

    # -- reads ---------------------------------------------------------------------------

    @property
    def _active_key(self) -> str:
        return keys.active()

    def now(self) -> float:
        seconds, micros = self.redis.time()
        return float(seconds) + float(micros) / 1_000_000

    def get_batch_raw(self, batch_id: str) -> dict[str, str]:
        return _decode(self.redis.hgetall(keys.batch(batch_id)))

    def batch_states(self, batch_ids: Sequence[str]) -> dict[str, State | None]:
        """Many batches' states in one round trip (``None`` for unknown ids): cheap polling."""
        fields = ["chunks", *(f"n:{s.value}" for s in State)]
        pipe = self.redis.pipeline(transaction=False)
        for batch_id in batch_ids:
            pipe.hmget(keys.batch(batch_id), fields)
        out: dict[str, State | None] = {}
        for batch_id, values in zip(batch_ids, pipe.execute(), strict=True):
            if values[0] is None:
                out[batch_id] = None
                continue
            counts = {s.value: int(v or 0) for s, v in zip(State, values[1:], strict=True)}
            out[batch_id] = batch_state(counts, int(values[0]))
        return out

    def get_payload(self, batch_id: str) -> dict[str, Any] | None:
        raw = self.redis.get(keys.batch_payload(batch_id))
        return json.loads(raw) if raw else None

    def get_chunks_raw(
        self, chunk_ids: Sequence[str]
    ) -> list[tuple[dict[str, str], list[dict[str, Any]], list[dict[str, Any]]]]:
        """Each chunk's hash, history and delivery events, in one pipeline."""
        pipe = self.redis.pipeline(transaction=False)
        for chunk_id in chunk_ids:
            pipe.hgetall(keys.chunk(chunk_id))
            pipe.lrange(_log_key(chunk_id), 0, -1)
            pipe.hvals(keys.chunk_events(chunk_id))
        replies = pipe.execute()
        out = []
        for i in range(0, len(replies), 3):
            fields = _decode(replies[i])
            if not fields:
                continue
            history = [json.loads(x) for x in replies[i + 1]]
            events = sorted((json.loads(x) for x in replies[i + 2]), key=_event_time)
            out.append((fields, history, events))
        return out

    def get_chunk_raw(self, chunk_id: str) -> dict[str, str]:
        return _decode(self.redis.hgetall(keys.chunk(chunk_id)))

    def dead_letters(self, limit: int = 1000) -> list[tuple[str, float]]:
        rows = self.redis.zrange(keys.dead_letters(), 0, limit - 1, withscores=True)
        return [(_text(member), float(score)) for member, score in rows]

    def active_before(self, cutoff: float, limit: int = 1000) -> list[str]:
        """Chunk ids not yet final whose last change is older than ``cutoff``."""
        rows = self.redis.zrangebyscore(self._active_key, "-inf", cutoff, start=0, num=limit)
        return [_text(m) for m in rows]

    def touch_active(self, chunk_id: str, when: float) -> None:
        self.redis.zadd(self._active_key, {chunk_id: when})

    def forget_active(self, chunk_ids: Iterable[str]) -> None:
        ids = list(chunk_ids)
        if ids:
            self.redis.zrem(self._active_key, *ids)

    def chunk_for_email(self, email_id: str) -> str | None:
        raw = self.redis.get(keys.email_index(email_id))
        return _text(raw) if raw else None

    def batch_for_idempotency_key(self, key: str) -> str | None:
        raw = self.redis.get(keys.idempotency(key))
        return _text(raw) if raw else None


def chunk_id_for(batch_id: str, index: int) -> str:
    """Chunk ids are derived, so a batch needs no list of them."""
    return f"{batch_id}.{index}"


def batch_id_of(chunk_id: str) -> str:
    return chunk_id.rsplit(".", 1)[0]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(mapping: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in mapping.items()}


def _event_time(event: Mapping[str, Any]) -> str:
    return str(event.get("received_at", ""))
