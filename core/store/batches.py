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

Batch state is not stored: it follows from the per-state chunk counters
(:func:`~outbox.core.store.reads.batch_state`), and the one script call that makes
the last chunk final learns so, which is how the completion callback fires exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NotRequired, TypedDict

from outbox.core.queues import Queue
from outbox.core.states import Kind, State
from outbox.core.store import codec, keys, scripts
from outbox.core.store.batch import CALLBACK_SENT_AT, ProducerFields, StoredBatch
from outbox.core.store.chunks import CHUNK_ID, ChunkSpec, StoredChunk, batch_id_of, encode
from outbox.core.store.limits import Limit, LimitArgs
from outbox.core.store.parked import Call
from outbox.core.store.reads import BatchReads
from outbox.core.text import as_text, compact_json

__all__ = [
    "PAGE",
    "Batches",
    "Canceled",
    "Claim",
    "ClaimOutcome",
    "Finish",
    "FinishOutcome",
    "Paused",
]

#: Chunks written per script call (50 chunks: up to 5,000 recipients, ~5 ms of Redis; a
#: page of 100 full chunks measured 10.5 ms, over Redis's slow-log line).
PAGE = 50
#: Payloads up to this many characters travel with the first page's script call (one
#: command: the script stores them as they are); a larger one, with its attachments, is
#: written by a plain SET just before, which Redis copies far faster than a script does.
INLINE_PAYLOAD = 64 * 1024
#: Recipients moved by webhook events that one cancel call puts back in its chunk's
#: ledger entry (a few commands each): past it, the call ends after the chunk it is on
#: and the next call goes on, so a page of chunks whose every recipient was moved stays
#: well under Redis's 10 ms slow-log line.
CANCEL_BUDGET = 1000
#: Seconds a payload written before its batch's first page is kept should that page never
#: run (its producer died between the two): the page keeps it as long as the batch.
PAYLOAD_PENDING = 600


class ClaimOutcome(StrEnum):
    #: The chunk is this worker's for one attempt; its slot comes ``wait`` seconds on.
    CLAIMED = "claimed"
    #: No slot whose time is known: wait in line for one (the chunk is held meanwhile).
    WAITING = "waiting"
    #: A bulk chunk waits in its lane without a thread: when its slot nears, the lane
    #: grants it and parks its task call, and the worker that claims it then adopts it.
    QUEUED = "queued"
    #: The next slot (or the end of a cool-down) is further off than a sender may wait.
    LATER = "later"
    #: The account's sending is held (a rejected key).
    HELD = "held"
    #: The monthly quota would be overdrawn: the chunk is ``throttled`` until it is not.
    OVER_QUOTA = "quota"
    #: Its send is paused: the chunk is held ``paused`` (no task kept) until it is resumed.
    PAUSED = "paused"
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
    #: The chunk's lane and tenant ('' for none).
    lane: str = "transactional"
    tenant: str = ""

    @property
    def member(self) -> str:
        """This attempt's entry in the rate-limit windows."""
        return codec.member(self.chunk_id, self.attempt)


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
    #: The chunk's state after the call ('' when unknown).
    state: str = ""
    #: A bulk chunk granted a slot in this call and handed to the caller's thread.
    handed: str = ""


@dataclass(slots=True)
class Canceled:
    """What a cancel did: chunks it canceled, found final already, found in flight (they
    end as their answer says, canceled unless it was sent); whether it finished the send."""

    canceled: int = 0
    final: int = 0
    in_flight: int = 0
    finished: bool = False
    has_callback: bool = False


@dataclass(slots=True)
class Paused:
    """What a pause did: chunks it paused, found final already, found in flight (they end
    as their answer says; a retry they earn is paused when it comes)."""

    paused: int = 0
    final: int = 0
    in_flight: int = 0


def _parked(park: tuple[Call, float] | None) -> tuple[str | None, float | None]:
    """A task call to park and when it is due, as the scripts take them (``park``, ``due``)."""
    if park is None:
        return None, None
    call, due = park
    return call.member(due), due


class CreateArgs(TypedDict):
    ttl: int
    batch_id: str
    #: ``whole``; ``stage`` (the first page of a staged batch) or ``page`` (a later one).
    mode: str
    #: The batch's fields: on the first page only (its payload is written before it).
    batch: NotRequired[dict[str, str]]
    refused: list[list[str]]
    #: Each chunk's fields, in the order of the chunk keys.
    chunks: list[dict[str, str]]


class CommitArgs(TypedDict):
    batch_id: str
    ttl: int


class CancelArgs(TypedDict):
    who: str
    whole: bool
    #: How many recipients moved by events one call may put back (see cancel.lua).
    budget: int
    limit: LimitArgs


class PauseArgs(TypedDict):
    who: str
    limit: LimitArgs


class ResumeArgs(TypedDict):
    limit: LimitArgs


class ClaimArgs(TypedDict):
    worker: str
    takeover: bool
    note: str
    token: str
    max_wait: float
    limit: LimitArgs


class FinishArgs(TypedDict):
    state: str
    fields: dict[str, str]
    log: dict[str, Any]
    #: ``None`` (left out) where ``finish.lua`` is to do nothing of the kind.
    expect: str | None
    member: str | None
    went_out: bool
    cool_down: float | None
    hold: str | None
    park: str | None
    due: float | None
    ledger_note: str
    ago: float | None
    hand_off: bool
    limit: LimitArgs


class GiveBackArgs(TypedDict):
    member: str
    #: The state to return to; ``None``: the script decides from the attempts.
    back: str | None
    note: str
    park: str | None
    due: float | None
    limit: LimitArgs


class LeaveLineArgs(TypedDict):
    entry: str
    token: str
    park: str | None
    due: float | None
    limit: LimitArgs


class ReplayArgs(TypedDict):
    ttl: int
    who: str
    #: The states a chunk may be replayed from (never ``sent``).
    states: list[str]


class BuryArgs(TypedDict):
    ttl: int
    #: The dead chunk's hash and its log's entry.
    fields: dict[str, str]
    entry: dict[str, Any]


class Batches(BatchReads):
    """Writes (and, inherited, reads) batches and chunks; one per process, shared by threads."""

    def __init__(self, redis: Any, *, retention: int) -> None:
        self.redis = redis
        self.retention = retention
        self._create = scripts.load(redis, "create")
        self._commit = scripts.load(redis, "commit")
        self._cancel = scripts.load(redis, "cancel")
        self._pause = scripts.load(redis, "pause")
        self._resume = scripts.load(redis, "resume")
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
        batch: ProducerFields | None = None,
        extra: Mapping[str, str] | None = None,
        refused: Sequence[tuple[str, str]] = (),
        lane: str = "transactional",
        tenant: str | None = None,
    ) -> tuple[str, bool]:
        """Record a batch and its chunks; ``(batch_id, created)``.

        A batch of up to :data:`PAGE` chunks is one script call. A larger one is written
        a page per call, staged (no claim sends a chunk of it), then committed in one
        more: all or nothing, and no call holds Redis for more than a few milliseconds
        whatever the size. With an ``idempotency_key`` already used, nothing is written
        and the first batch's id comes back with ``created`` false (the key is taken at
        the commit, so a producer that died while staging left none). ``refused`` are the
        recipients the producer kept back (``(address, why)``), in the ledger only.
        ``batch`` sets more of the record's fields (:class:`StoredBatch`'s), ``extra``
        raw fields of its hash.
        """
        batch_fields = {
            **StoredBatch(
                id=batch_id,
                kind=kind,
                chunks=len(chunks),
                recipients=sum(len(c.recipients) for c in chunks),
                counts={State.QUEUED: len(chunks)},
                lane=lane,
                tenant=tenant,
                idempotency_key=idempotency_key,
                **(batch or {}),
            ).to_hash(),
            **(dict(extra) if extra else {}),
        }
        stored = [
            StoredChunk(
                id=spec.id,
                batch=batch_id,
                index=spec.index,
                kind=kind,
                state=State.QUEUED,
                queue=queue,
                lane=lane,
                tenant=tenant,
                recipients=list(spec.recipients),
                fields=dict(spec.overrides),
                due_at=spec.due_at,
            ).to_hash()
            for spec in chunks
        ]
        head = [
            keys.idempotency(idempotency_key) if idempotency_key else keys.absent(),
            keys.batch(batch_id),
            keys.batch_payload(batch_id),
            keys.active(),
            keys.ledger(batch_id),
            keys.ledger_counts(batch_id),
        ]
        refused_rows = [[a, why] for a, why in refused]
        whole = len(chunks) <= PAGE
        payload_key, payload_text = head[2], compact_json(payload)

        def write_payload(pipe: Any) -> None:
            # megabytes of attachments: a plain SET, where a script would copy them
            pipe.set(payload_key, payload_text, ex=PAYLOAD_PENDING, nx=True)

        for start in range(0, max(len(chunks), 1), PAGE):
            page = range(start, min(start + PAGE, len(chunks)))
            first = start == 0
            args = CreateArgs(
                ttl=self.retention,
                batch_id=batch_id,
                mode="whole" if whole else ("stage" if first else "page"),
                refused=refused_rows if first else [],
                chunks=[stored[i] for i in page],
            )
            page_keys = [*head, *(keys.chunk(chunks[i].id) for i in page)]
            if first:
                args["batch"] = batch_fields
            if first and len(payload_text) <= INLINE_PAYLOAD:
                created, found = self._create(
                    keys=page_keys, args=[*scripts.args(args), payload_text]
                )
            elif first:
                created, found = scripts.call_after(
                    self.redis,
                    self._create,
                    write_payload,
                    keys=page_keys,
                    args=scripts.args(args),
                )
            else:
                created, found = self._create(keys=page_keys, args=scripts.args(args))
            if not int(created):
                if first:
                    return as_text(found), False
                raise RuntimeError(f"batch {batch_id} was discarded while it was being written")
        if whole:
            return batch_id, True
        committed, found = self._commit(
            keys=head[:2], args=scripts.args(CommitArgs(batch_id=batch_id, ttl=self.retention))
        )
        if not int(committed):
            # another call with the key committed first: this copy is never sent
            self.discard(batch_id, len(chunks))
            if as_text(found):
                return as_text(found), False
            raise RuntimeError(f"batch {batch_id} was discarded while it was being written")
        return batch_id, True

    def cancel(
        self, batch_id: str, chunk_ids: Sequence[str], *, limit: Limit, who: str, whole: bool
    ) -> Canceled:
        """Cancel chunks of a send, a page per script call (``whole``: the send itself is
        marked, so a chunk claimed or written later is canceled too)."""
        out = Canceled()
        args = scripts.args(
            CancelArgs(who=who, whole=whole, budget=CANCEL_BUDGET, limit=limit.args())
        )
        start = 0
        while True:
            page = chunk_ids[start : start + PAGE]
            canceled, final, flying, finished, callback, done = self._cancel(
                keys=[*limit.keys(), keys.batch(batch_id), *(keys.chunk(c) for c in page)],
                args=args,
            )
            out.canceled += int(canceled)
            out.final += int(final)
            out.in_flight += int(flying)
            out.finished = out.finished or bool(as_text(finished))
            out.has_callback = out.has_callback or bool(as_text(callback))
            # a page whose ledger work ran over the budget stops early: go on from there
            start += max(int(done), 1)
            if start >= len(chunk_ids):
                return out

    def pause(self, batch_id: str, chunk_ids: Sequence[str], *, limit: Limit, who: str) -> Paused:
        """Pause a send, a page per script call (the first marks the send, so a chunk
        claimed, served or written later is paused then)."""
        out = Paused()
        for start in range(0, max(len(chunk_ids), 1), PAGE):
            page = chunk_ids[start : start + PAGE]
            paused, final, flying = self._pause(
                keys=[*limit.keys(), keys.batch(batch_id), *(keys.chunk(c) for c in page)],
                args=scripts.args(PauseArgs(who=who, limit=limit.args())),
            )
            out.paused += int(paused)
            out.final += int(final)
            out.in_flight += int(flying)
        return out

    def resume(self, batch_id: str, chunk_ids: Sequence[str], *, limit: Limit) -> int:
        """Resume a paused send, a page per script call; how many chunks were resumed."""
        resumed = 0
        for start in range(0, max(len(chunk_ids), 1), PAGE):
            page = chunk_ids[start : start + PAGE]
            resumed += int(
                self._resume(
                    keys=[*limit.keys(), keys.batch(batch_id), *(keys.chunk(c) for c in page)],
                    args=scripts.args(ResumeArgs(limit=limit.args())),
                )
            )
        return resumed

    def publish_handed_now(self, chunk_id: str) -> None:
        """A chunk handed off that its thread will not send: its parked call is due now
        (the relay publishes it) instead of a second after its slot."""
        call = self.redis.hget(keys.chunk(chunk_id), "reserved_call")
        if call is not None:
            self.redis.zadd(keys.parked(), {call: self.now()}, xx=True)

    def discard(self, batch_id: str, chunks: int) -> None:
        """Delete a batch that was staged and never committed, a page at a time."""
        for start in range(0, chunks, PAGE):
            pipe = self.redis.pipeline(transaction=False)
            ids = [f"{batch_id}.{i}" for i in range(start, min(start + PAGE, chunks))]
            for c in ids:  # one key per command: a cluster pipeline takes no multi-key DEL
                pipe.delete(keys.chunk(c))
                pipe.delete(keys.chunk_log(c))
            pipe.zrem(keys.active(), *ids)
            for queue in Queue:
                pipe.zrem(keys.unclaimed(queue.value), *ids)
            pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        for key in (keys.batch, keys.batch_payload, keys.ledger, keys.ledger_counts):
            pipe.delete(key(batch_id))
        pipe.zrem(keys.staged(), batch_id)
        pipe.execute()

    def abandoned(self, begun_before: float, limit: int = 100) -> list[str]:
        """Batches staged before then and never committed (their producer died)."""
        raw = self.redis.zrangebyscore(keys.staged(), "-inf", begun_before, start=0, num=limit)
        return [as_text(b) for b in raw]

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
        batch_id = batch_id_of(chunk_id)
        outcome, wait, attempt, previous, now, lane, tenant = self._claim(
            keys=[
                keys.chunk(chunk_id),
                keys.batch(batch_id),
                keys.chunk_log(chunk_id),
                *limit.keys(),
            ],
            args=scripts.args(
                ClaimArgs(
                    worker=worker,
                    takeover=takeover,
                    note=note,
                    token=token,
                    max_wait=max_wait,
                    limit=limit.args(),
                )
            ),
        )
        before = as_text(previous)
        return Claim(
            chunk_id,
            ClaimOutcome(as_text(outcome)),
            float(wait),
            int(attempt),
            State(before) if before else None,
            float(now),
            as_text(lane) or "transactional",
            as_text(tenant),
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
        answered_at: float | None = None,
        email_id: str | None = None,
        cool_down: float | None = None,
        hold: str | None = None,
        park: tuple[Call, float] | None = None,
        ledger_note: str = "",
        hand_off: bool = False,
    ) -> Finish:
        """Move a chunk to ``state`` (final, ``retrying``, or ``sending`` for an attempt of
        unknown fate) with its outcome's fields, and account for its slot ``member``: the
        request ``went_out`` counts one more period from its answer, or frees its slot at
        once. ``answered_at`` is when the answer was read (``time.monotonic()``): the
        script stamps the answer that much before it runs, not when it runs, so a worker
        slow to finish does not hold the slot for its own delay (``now`` when omitted).

        In the same call: a 429's ``cool_down`` for every worker, an account ``hold``, and
        a task call to ``park`` until its due time. A chunk that is already final (or not
        ``expect``-ed) is left alone (``NOOP``): a late duplicate never rewrites history.
        With ``hand_off`` the first bulk chunk the call grants a slot is handed to the
        caller (``Finish.handed``) to send next on the same thread.
        """
        stored = encode(fields or {})
        if email_id:
            stored["email_id"] = email_id
        parked, due = _parked(park)
        outcome, previous, callback, cooled, after, handed = self._finish(
            keys=[
                keys.chunk(chunk_id),
                keys.batch(batch_id_of(chunk_id)),
                keys.chunk_log(chunk_id),
                keys.dead_letters(),
                keys.email_index(email_id) if email_id else keys.absent(),
                keys.parked(),
                keys.failed_letters(),
                *limit.keys(),
            ],
            args=scripts.args(
                FinishArgs(
                    state=state.value,
                    fields=stored,
                    log=dict(log or {}),
                    expect=expect.value if expect else None,
                    member=member or None,
                    went_out=went_out,
                    cool_down=cool_down or None,
                    hold=hold or None,
                    park=parked,
                    due=due,
                    ledger_note=ledger_note,
                    ago=_ago(answered_at),
                    hand_off=hand_off,
                    limit=limit.args(),
                )
            ),
        )
        return Finish(
            FinishOutcome(as_text(outcome)),
            as_text(previous),
            bool(callback),
            float(as_text(cooled) or 0),
            as_text(after),
            as_text(handed),
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
        # unknown (a grant read from a wake list): the script decides from the attempts
        previous = claim.previous if claim.previous is not State.SENDING else State.RETRYING
        parked, due = _parked(park)
        given = self._give_back(
            keys=[
                keys.chunk(chunk_id),
                keys.batch(batch_id_of(chunk_id)),
                keys.chunk_log(chunk_id),
                keys.parked(),
                *limit.keys(),
            ],
            args=scripts.args(
                GiveBackArgs(
                    member=claim.member,
                    back=previous.value if previous is not None else None,
                    note=note,
                    park=parked,
                    due=due,
                    limit=limit.args(),
                )
            ),
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
        parked, due = _parked(park)
        left = self._leave_line(
            keys=[keys.chunk(chunk_id), keys.parked(), *limit.keys()],
            args=scripts.args(
                LeaveLineArgs(
                    entry=codec.line_entry(chunk_id, worker, token),
                    token=token,
                    park=parked,
                    due=due,
                    limit=limit.args(),
                )
            ),
        )
        return as_text(left) == "left"

    def replay(
        self, chunk_id: str, *, who: str = "operator", states: Iterable[State] = (State.DEAD,)
    ) -> bool:
        """Move a dead chunk (or one in another of ``states``, never a sent one) back to
        ``queued`` with its attempts reset; true when it was replayed."""
        outcome, _ = self._replay(
            keys=[
                keys.chunk(chunk_id),
                keys.batch(batch_id_of(chunk_id)),
                keys.chunk_log(chunk_id),
                keys.active(),
                keys.dead_letters(),
                keys.failed_letters(),
            ],
            args=scripts.args(
                ReplayArgs(
                    ttl=self.retention,
                    who=who,
                    states=[s.value for s in states if s is not State.SENT],
                )
            ),
        )
        return as_text(outcome) == "replayed"

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
            args=scripts.args(
                BuryArgs(
                    ttl=self.retention,
                    fields=orphan,
                    entry={"error": dict(error), "note": "no record"},
                )
            ),
        )
        return bool(int(buried))

    def mark_callback_sent(self, batch_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.batch(batch_id), CALLBACK_SENT_AT, f"{self.now():.6f}")
        pipe.zrem(keys.callbacks_due(), batch_id)
        pipe.execute()

    def callbacks_due(self, finished_before: float) -> list[str]:
        """Batches that finished before then and whose callback was never marked sent."""
        due = self.redis.zrangebyscore(keys.callbacks_due(), "-inf", finished_before)
        return [as_text(b) for b in due]


def _ago(monotonic_at: float | None) -> float | None:
    """Seconds since ``monotonic_at``, read as late as possible: just before the call."""
    return None if monotonic_at is None else max(0.0, time.monotonic() - monotonic_at)
