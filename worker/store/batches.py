"""Batches and chunks: created by producers, claimed and finished by workers.

A *batch* is one producer call; a *chunk* is one API request's worth of its recipients
and the unit that is claimed, retried, sent, failed or dead. Each state change is one
Lua script, so a chunk's fields, its batch's counters, its recipients' places in the
ledger, the indexes and its rate-limit slot move together even when a hundred chunks of
one batch finish at once; the clock is Redis's (``TIME``), so leases and slots mean the
same on every host.

Claiming
    Before a request a worker *claims* its chunk together with a slot of the shared limit
    (``lua/limits.lua``): state ``sending``, a lease a little longer than the client
    timeout, and the time its slot is granted. A chunk already final is skipped; one held
    by a live claim elsewhere is left to it; one whose claim expired has an attempt of
    unknown fate (*ambiguous*), which the worker looks up before anything is resent.

Batch state is not stored: it follows from the per-state chunk counters (see
:func:`batch_state`), and the one script call that makes the last chunk final learns
so, which is how the completion callback fires exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from outbox.worker.queues import Queue
from outbox.worker.states import FINAL_STATES, Kind, State
from outbox.worker.store import keys, scripts
from outbox.worker.store.chunks import CHUNK_ID, ChunkSpec, StoredChunk, encode
from outbox.worker.store.limits import Limit
from outbox.worker.store.parked import Call

__all__ = [
    "Batches",
    "Claim",
    "ClaimOutcome",
    "Finish",
    "FinishOutcome",
    "LedgerEntry",
    "batch_state",
]


class ClaimOutcome(StrEnum):
    #: The chunk is this worker's for one attempt; its slot comes ``wait`` seconds on.
    CLAIMED = "claimed"
    #: No slot whose time is known: wait in line for one (the chunk is held meanwhile).
    WAITING = "waiting"
    #: The next slot (or the end of a cool-down) is further off than a sender may wait.
    LATER = "later"
    #: The account's sending is held (a rejected key).
    HELD = "held"
    #: The monthly quota would be overdrawn: the chunk is ``throttled`` until it is not.
    OVER_QUOTA = "quota"
    #: Already sent, failed or dead: nothing to do.
    FINAL = "final"
    #: Another worker holds it (a duplicate task): it is that worker's.
    BUSY = "busy"
    #: A claim expired mid-request: look the attempt up before any resend.
    AMBIGUOUS = "ambiguous"
    #: No record (expired, or never created).
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Claim:
    """What the claim script decided for a task about to send."""

    chunk_id: str
    outcome: ClaimOutcome
    #: ``CLAIMED``: seconds until the slot; ``LATER``: until one; ``OVER_QUOTA``: until the
    #: cycle ends; ``BUSY``: until the
    #: other holder's lease ends.
    wait: float
    #: Attempts at the API so far, this one included when claimed.
    attempt: int
    #: The chunk's state before the claim.
    previous: State | None
    #: The Redis clock when the script ran.
    now: float

    @property
    def member(self) -> str:
        """This attempt's entry in the rate-limit windows."""
        return f"{self.chunk_id}#{self.attempt}"


class FinishOutcome(StrEnum):
    #: Moved to a state that is not final (``retrying``, or still ``sending``).
    MOVED = "moved"
    #: Final.
    FINAL = "final"
    #: Final, and the last of its batch: this call finished the batch.
    BATCH_DONE = "batch_done"
    #: The chunk was already final, or not in the expected state: left alone.
    NOOP = "noop"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Finish:
    outcome: FinishOutcome
    previous: str
    #: The batch this call finished has a completion callback to call.
    has_callback: bool = False
    #: Seconds the call's ``cool_down`` added to the fleet's (0: one as long was on).
    cooled: float = 0.0


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One recipient's place in its batch's ledger."""

    recipient: str
    state: str
    chunk: int | None = None
    reason: str | None = None


def batch_state(counts: Mapping[str, int], chunks: int) -> State:
    """A batch's state from its per-state chunk counters."""
    if chunks == 0:
        return State.FAILED  # every recipient was refused before enqueueing
    final = sum(counts.get(s.value, 0) for s in FINAL_STATES)
    if final >= chunks:
        if counts.get(State.SENT.value, 0) >= chunks:
            return State.SENT
        return State.DEAD if counts.get(State.DEAD.value, 0) else State.FAILED
    if counts.get(State.RETRYING.value, 0):
        return State.RETRYING
    if counts.get(State.THROTTLED.value, 0) and not counts.get(State.SENDING.value, 0):
        return State.THROTTLED  # nothing moves until the quota has room
    if counts.get(State.SENDING.value, 0) or final:
        return State.SENDING
    return State.QUEUED


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _park_args(park: tuple[Call, float] | None) -> list[str]:
    if park is None:
        return ["", ""]
    call, due = park
    return [call.member(due), f"{due:.6f}"]


class Batches:
    """Reads and writes batches and chunks; one instance per process, shared by threads."""

    def __init__(self, redis: Any, *, retention: int) -> None:
        self.redis = redis
        self.retention = retention
        self._create = scripts.load(redis, "create")
        self._claim = scripts.load(redis, "claim")
        self._finish = scripts.load(redis, "finish")
        self._give_back = scripts.load(redis, "give_back")
        self._leave_line = scripts.load(redis, "leave_line")
        self._replay = scripts.load(redis, "replay")
        self._bury = scripts.load(redis, "bury")
        self._clock = scripts.load(redis, "clock")

    # -- producers -----------------------------------------------------------------------

    def create(
        self,
        batch_id: str,
        *,
        kind: Kind,
        chunks: Sequence[ChunkSpec],
        payload: Mapping[str, Any],
        queue: Queue,
        idempotency_key: str | None = None,
        extra: Mapping[str, str] | None = None,
        refused: Sequence[tuple[str, str]] = (),
    ) -> tuple[str, bool]:
        """Record a batch and its chunks in one call; ``(batch_id, created)``.

        With an ``idempotency_key`` already used, nothing is written and the first
        batch's id comes back with ``created`` false. ``refused`` are the recipients the
        producer kept back (``(address, why)``), recorded in the ledger only.
        """
        batch_fields: dict[str, str] = {
            "id": batch_id,
            "kind": kind.value,
            "chunks": str(len(chunks)),
            "recipients": str(sum(len(c.recipients) for c in chunks)),
            **{f"n:{s.value}": "0" for s in State},
            "recipients_succeeded": "0",
            "recipients_failed": "0",
            **(dict(extra) if extra else {}),
        }
        batch_fields[f"n:{State.QUEUED.value}"] = str(len(chunks))
        if idempotency_key:
            batch_fields["idempotency_key"] = idempotency_key
        stored = [
            StoredChunk(
                id=spec.id,
                batch=batch_id,
                index=spec.index,
                kind=kind,
                state=State.QUEUED,
                queue=queue,
                recipients=list(spec.recipients),
                fields=dict(spec.overrides),
                due_at=spec.due_at,
            ).to_hash()
            for spec in chunks
        ]
        created, found = self._create(
            keys=[
                keys.idempotency(idempotency_key) if idempotency_key else keys.absent(),
                keys.batch(batch_id),
                keys.batch_payload(batch_id),
                keys.active(),
                keys.ledger(batch_id),
                keys.ledger_counts(batch_id),
                *(keys.chunk(spec.id) for spec in chunks),
            ],
            args=[
                self.retention,
                batch_id,
                _dumps(batch_fields),
                _dumps(payload),
                _dumps([[a, why] for a, why in refused]),
                *(_dumps(fields) for fields in stored),
            ],
        )
        return _text(found), bool(int(created))

    # -- workers -------------------------------------------------------------------------

    def claim(
        self,
        chunk_id: str,
        *,
        limit: Limit,
        worker: str,
        token: str,
        max_wait: float,
        takeover: bool = False,
        note: str = "",
    ) -> Claim:
        """Claim a chunk for one attempt with a slot at most ``max_wait`` seconds ahead,
        or a place in the limit's line (``token`` identifies this wait). ``takeover``
        claims a chunk whose earlier attempt was looked up and found not accepted."""
        batch_id = chunk_id.rsplit(".", 1)[0]
        outcome, wait, attempt, previous, now = self._claim(
            keys=[
                keys.chunk(chunk_id),
                keys.batch(batch_id),
                keys.chunk_log(chunk_id),
                *limit.keys(),
            ],
            args=[worker, "1" if takeover else "", note, token, repr(max_wait), *limit.args()],
        )
        before = _text(previous)
        return Claim(
            chunk_id,
            ClaimOutcome(_text(outcome)),
            float(wait),
            int(attempt),
            State(before) if before else None,
            float(now),
        )

    def finish(
        self,
        chunk_id: str,
        state: State,
        *,
        limit: Limit,
        fields: Mapping[str, Any] | None = None,
        log: Mapping[str, Any] | None = None,
        expect: State | None = None,
        member: str = "",
        went_out: bool = True,
        email_id: str | None = None,
        cool_down: float | None = None,
        hold: str | None = None,
        park: tuple[Call, float] | None = None,
        ledger_note: str = "",
    ) -> Finish:
        """Move a chunk to ``state`` (final, ``retrying``, or ``sending`` for an attempt of
        unknown fate) with its outcome's fields, and account for its slot ``member``: the
        request ``went_out`` counts one more period from now, or frees its slot at once.

        In the same call: a 429's ``cool_down`` for every worker, an account ``hold``, and
        a task call to ``park`` until its due time. A chunk that is already final (or not
        ``expect``-ed) is left alone (``NOOP``): a late duplicate never rewrites history.
        """
        stored = encode(fields or {})
        if email_id:
            stored["email_id"] = email_id
        outcome, previous, callback, cooled = self._finish(
            keys=[
                keys.chunk(chunk_id),
                keys.batch(chunk_id.rsplit(".", 1)[0]),
                keys.chunk_log(chunk_id),
                keys.dead_letters(),
                keys.email_index(email_id) if email_id else keys.absent(),
                keys.parked(),
                keys.failed_letters(),
                *limit.keys(),
            ],
            args=[
                state.value,
                _dumps(stored),
                _dumps(dict(log or {})),
                expect.value if expect else "",
                member,
                "1" if went_out else "",
                repr(cool_down) if cool_down else "",
                hold or "",
                *_park_args(park),
                ledger_note,
                *limit.args(),
            ],
        )
        return Finish(
            FinishOutcome(_text(outcome)),
            _text(previous),
            bool(callback),
            float(_text(cooled) or 0),
        )

    def give_back(
        self,
        claim: Claim,
        *,
        limit: Limit,
        note: str,
        park: tuple[Call, float] | None = None,
    ) -> bool:
        """Undo ``claim`` before anything was sent: the chunk returns to its earlier state
        with its attempt count as it was, its slot free at once. True when undone."""
        chunk_id = claim.chunk_id
        previous = claim.previous if claim.previous is not State.SENDING else State.RETRYING
        given = self._give_back(
            keys=[
                keys.chunk(chunk_id),
                keys.batch(chunk_id.rsplit(".", 1)[0]),
                keys.chunk_log(chunk_id),
                keys.parked(),
                *limit.keys(),
            ],
            args=[
                claim.member,
                (previous or State.QUEUED).value,
                note,
                *_park_args(park),
                *limit.args(),
            ],
        )
        return bool(int(given))

    def leave_line(
        self,
        chunk_id: str,
        *,
        limit: Limit,
        worker: str,
        token: str,
        park: tuple[Call, float] | None = None,
    ) -> bool:
        """Give up a place in line; false when a slot was granted meanwhile (the grant is
        then on the chunk's wake list and the chunk is this worker's to send)."""
        entry = f"{chunk_id}\t{worker}\t{token}"
        left = self._leave_line(
            keys=[keys.chunk(chunk_id), keys.parked(), *limit.keys()],
            args=[entry, token, *_park_args(park), *limit.args()],
        )
        return _text(left) == "left"

    def replay(
        self, chunk_id: str, *, who: str = "operator", states: Iterable[State] = (State.DEAD,)
    ) -> bool:
        """Move a dead chunk (or one in another of ``states``, never a sent one) back to
        ``queued`` with its attempts reset; true when it was replayed."""
        allowed = ",".join(s.value for s in states if s is not State.SENT)
        outcome, _ = self._replay(
            keys=[
                keys.chunk(chunk_id),
                keys.batch(chunk_id.rsplit(".", 1)[0]),
                keys.chunk_log(chunk_id),
                keys.active(),
                keys.dead_letters(),
                keys.failed_letters(),
            ],
            args=[self.retention, who, allowed],
        )
        return _text(outcome) == "replayed"

    def bury_orphan(self, chunk_id: str, *, kind: Kind, error: Mapping[str, Any]) -> bool:
        """Dead-letter a task that names a chunk with no record (and no batch).

        Only for chunk ids of outbox's own shape (``<batch>.<index>``); false, writing
        nothing, when the chunk has a record (use :meth:`finish`) or the id is not one.
        The dead letter cannot be replayed (there is no payload to rebuild it from); it
        is there so an operator sees the lost task and why, until the retention ends.
        """
        if not CHUNK_ID.fullmatch(chunk_id):
            return False
        batch_id, _, index = chunk_id.rpartition(".")
        orphan = StoredChunk(
            id=chunk_id,
            batch=batch_id,
            index=int(index),
            kind=kind,
            state=State.DEAD,
            orphan=True,
            last_error=dict(error),
        ).to_hash()
        buried = self._bury(
            keys=[keys.chunk(chunk_id), keys.chunk_log(chunk_id), keys.dead_letters()],
            args=[
                _dumps(orphan),
                _dumps({"error": dict(error), "note": "no record"}),
                self.retention,
            ],
        )
        return bool(int(buried))

    def mark_callback_sent(self, batch_id: str) -> None:
        self.redis.hset(keys.batch(batch_id), "callback_sent_at", f"{self.now():.6f}")

    # -- reads ---------------------------------------------------------------------------

    def now(self) -> float:
        """The clock the scripts read: on a cluster, that of the node holding outbox's slot
        (a keyless ``TIME`` would reach whichever node the client picks)."""
        now, _ = self._clock(keys=[keys.cooldown()])
        return float(now)

    def batch(self, batch_id: str) -> dict[str, str]:
        """A batch's hash (empty when unknown or expired)."""
        raw = self.redis.hgetall(keys.batch(batch_id))
        return {_text(k): _text(v) for k, v in raw.items()}

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

    def fields(self, batch_ids: Sequence[str], names: Sequence[str]) -> list[list[str | None]]:
        """Some fields of many batches in one round trip (``None`` where a field is unset)."""
        pipe = self.redis.pipeline(transaction=False)
        for batch_id in batch_ids:
            pipe.hmget(keys.batch(batch_id), list(names))
        return [[None if v is None else _text(v) for v in row] for row in pipe.execute()]

    def payload(self, batch_id: str) -> dict[str, Any] | None:
        raw = self.redis.get(keys.batch_payload(batch_id))
        return json.loads(raw) if raw else None

    def chunk(self, chunk_id: str) -> StoredChunk | None:
        raw = self.redis.hgetall(keys.chunk(chunk_id))
        return StoredChunk.from_hash(raw) if raw else None

    def chunks(
        self, chunk_ids: Sequence[str]
    ) -> list[tuple[StoredChunk, list[dict[str, Any]], list[dict[str, Any]]]]:
        """Each chunk, its history and its delivery events (oldest first), in one pipeline."""
        pipe = self.redis.pipeline(transaction=False)
        for chunk_id in chunk_ids:
            pipe.hgetall(keys.chunk(chunk_id))
            pipe.lrange(keys.chunk_log(chunk_id), 0, -1)
            pipe.hvals(keys.chunk_events(chunk_id))
        replies = pipe.execute()
        out = []
        for i in range(0, len(replies), 3):
            if not replies[i]:
                continue
            history = [json.loads(x) for x in replies[i + 1]]
            events = sorted((json.loads(x) for x in replies[i + 2]), key=_event_time)
            out.append((StoredChunk.from_hash(replies[i]), history, events))
        return out

    def ledger(self, batch_id: str) -> list[LedgerEntry]:
        """Every recipient of a batch and its fate, in no particular order."""
        out = []
        for rcpt, raw in self.redis.hgetall(keys.ledger(batch_id)).items():
            entry = json.loads(raw)
            out.append(
                LedgerEntry(_text(rcpt), entry["state"], entry.get("chunk"), entry.get("reason"))
            )
        return out

    def ledger_counts(self, batch_id: str) -> dict[str, int]:
        raw = self.redis.hgetall(keys.ledger_counts(batch_id))
        return {_text(k): int(v) for k, v in raw.items() if int(v)}

    def dead_letters(self, limit: int = 1000) -> list[tuple[str, float]]:
        """Dead chunk ids and when they died, oldest first."""
        rows = self.redis.zrange(keys.dead_letters(), 0, limit - 1, withscores=True)
        return [(_text(member), float(score)) for member, score in rows]

    def failed_letters(self, limit: int = 1000) -> list[tuple[str, float]]:
        """Failed chunk ids and when they failed, oldest first."""
        rows = self.redis.zrange(keys.failed_letters(), 0, limit - 1, withscores=True)
        return [(_text(member), float(score)) for member, score in rows]

    def forget_letters(self, chunk_ids: Iterable[str]) -> None:
        """Drop chunk ids (whose records expired) from the dead and failed indexes."""
        ids = list(chunk_ids)
        if ids:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrem(keys.dead_letters(), *ids)
            pipe.zrem(keys.failed_letters(), *ids)
            pipe.execute()

    def active_before(self, cutoff: float, limit: int = 1000) -> list[str]:
        """Chunk ids not yet final whose last change is older than ``cutoff``."""
        rows = self.redis.zrangebyscore(keys.active(), "-inf", cutoff, start=0, num=limit)
        return [_text(m) for m in rows]

    def touch_active(self, chunk_id: str, when: float) -> None:
        self.redis.zadd(keys.active(), {chunk_id: when})

    def forget_active(self, chunk_ids: Iterable[str]) -> None:
        ids = list(chunk_ids)
        if ids:
            self.redis.zrem(keys.active(), *ids)

    def existing(self, key_of: Any, ids: Sequence[str]) -> list[bool]:
        """Whether each id's record (``key_of(id)``) still exists, in one pipeline."""
        pipe = self.redis.pipeline(transaction=False)
        for ident in ids:
            pipe.exists(key_of(ident))
        return [bool(n) for n in pipe.execute()]

    def chunk_for_email(self, email_id: str) -> str | None:
        raw = self.redis.get(keys.email_index(email_id))
        return _text(raw) if raw else None

    def chunk_for_sms(self, message_id: str) -> str | None:
        raw = self.redis.get(keys.sms_index(message_id))
        return _text(raw) if raw else None

    def batch_for_idempotency_key(self, key: str) -> str | None:
        raw = self.redis.get(keys.idempotency(key))
        return _text(raw) if raw else None


def _event_time(event: Mapping[str, Any]) -> str:
    return str(event.get("received_at", ""))
