"""What the records say about batches and chunks: the reads, and the upkeep of the
indexes that point at them (dead and failed letters, the active set, the look-ups from
an ``email_id``, an SMS message id or an idempotency key).

Reads need no script: each is one command or one pipeline. :class:`Batches` writes
through the scripts and inherits these.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from outbox.core.states import FINAL_STATES, Fate, State
from outbox.core.store import keys
from outbox.core.store.batch import CHUNKS, StoredBatch
from outbox.core.store.chunks import StoredChunk, batch_id_of, recipients_in
from outbox.core.text import as_text

_ANGLED = re.compile(r"<([^<>]*)>")

#: Chunks read per round trip.
_PAGE = 1000


def ledger_key(rcpt: str) -> str:
    """A recipient's place in the ledger: the address itself, "Ann <Ann@X.org>" is
    ann@x.org (as ``ledger_key`` in ``common.lua``)."""
    match = _ANGLED.search(rcpt)
    return (match[1] if match else rcpt).lower()


__all__ = ["BatchReads", "LedgerEntry", "batch_state"]


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
        if counts.get(State.DEAD.value, 0):
            return State.DEAD
        if counts.get(State.FAILED.value, 0):
            return State.FAILED
        return State.CANCELED if counts.get(State.CANCELED.value, 0) else State.FAILED
    if counts.get(State.PAUSED.value, 0) and not counts.get(State.SENDING.value, 0):
        return State.PAUSED  # nothing moves until it is resumed
    if counts.get(State.RETRYING.value, 0):
        return State.RETRYING
    if counts.get(State.THROTTLED.value, 0) and not counts.get(State.SENDING.value, 0):
        return State.THROTTLED  # nothing moves until the quota has room
    if counts.get(State.SENDING.value, 0) or final:
        return State.SENDING
    return State.QUEUED


class BatchReads:
    """Reads of batches and chunks, and their indexes' upkeep."""

    redis: Any
    _clock: Any

    def now(self) -> float:
        """The clock the scripts read: on a cluster, that of the node holding outbox's slot
        (a keyless ``TIME`` would reach whichever node the client picks)."""
        now, _ = self._clock(keys=[keys.cooldown()])
        return float(now)

    def batch(self, batch_id: str) -> dict[str, str]:
        """A batch's hash as text, field by field (empty when unknown or expired)."""
        raw = self.redis.hgetall(keys.batch(batch_id))
        return {as_text(k): as_text(v) for k, v in raw.items()}

    def stored_batch(self, batch_id: str) -> StoredBatch | None:
        """A batch's record (``None`` when unknown or expired)."""
        raw = self.redis.hgetall(keys.batch(batch_id))
        return StoredBatch.from_hash(raw) if raw else None

    def fields(self, batch_ids: Sequence[str], names: Sequence[str]) -> list[list[str | None]]:
        """Some fields of many batches in one round trip (``None`` where a field is unset)."""
        pipe = self.redis.pipeline(transaction=False)
        for batch_id in batch_ids:
            pipe.hmget(keys.batch(batch_id), list(names))
        return [[None if v is None else as_text(v) for v in row] for row in pipe.execute()]

    def payload(self, batch_id: str) -> dict[str, Any] | None:
        raw = self.redis.get(keys.batch_payload(batch_id))
        return json.loads(raw) if raw else None

    def chunk(self, chunk_id: str) -> StoredChunk | None:
        raw = self.redis.hgetall(keys.chunk(chunk_id))
        return StoredChunk.from_hash(raw) if raw else None

    def publishable(
        self, chunk_id: str, batch_field: str
    ) -> tuple[StoredChunk | None, dict[str, Any] | None, str | None]:
        """A chunk, its batch's payload and one field of the batch (the payload's
        version), in one round trip: what publishing the chunk again needs."""
        batch_id = batch_id_of(chunk_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.chunk(chunk_id))
        pipe.get(keys.batch_payload(batch_id))
        pipe.hget(keys.batch(batch_id), batch_field)
        raw, payload, field = pipe.execute()
        return (
            StoredChunk.from_hash(raw) if raw else None,
            json.loads(payload) if payload else None,
            None if field is None else as_text(field),
        )

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
        """Every recipient of a batch and its fate, chunk by chunk: a recipient is where
        its chunk is unless the ledger hash says otherwise (an event moved it, or it was
        refused before sending). Read a page of chunks per round trip."""
        book = {
            as_text(k): json.loads(v) for k, v in self.redis.hgetall(keys.ledger(batch_id)).items()
        }
        total = int(self.redis.hget(keys.batch(batch_id), CHUNKS) or 0)
        out: list[LedgerEntry] = []
        seen: set[str] = set()
        for start in range(0, total, _PAGE):
            pipe = self.redis.pipeline(transaction=False)
            for index in range(start, min(start + _PAGE, total)):
                pipe.hmget(
                    keys.chunk(f"{batch_id}.{index}"), "recipients", "fields", "fate", "fate_reason"
                )
            for index, (raw_rcpts, raw_fields, fate, why) in enumerate(pipe.execute(), start):
                if raw_fields is None and raw_rcpts is None:
                    continue
                rcpts = (
                    json.loads(raw_rcpts)
                    if raw_rcpts is not None
                    else recipients_in(json.loads(raw_fields))
                )
                for rcpt in rcpts:
                    k = ledger_key(rcpt)
                    seen.add(k)
                    entry = book.get(k)
                    if entry is not None:
                        out.append(LedgerEntry(k, entry["state"], index, entry.get("reason")))
                    else:
                        state = as_text(fate) if fate else Fate.QUEUED.value
                        out.append(LedgerEntry(k, state, index, as_text(why) if why else None))
        for k, entry in book.items():
            if k not in seen:
                out.append(LedgerEntry(k, entry["state"], entry.get("chunk"), entry.get("reason")))
        return out

    def ledger_counts(self, batch_id: str) -> dict[str, int]:
        raw = self.redis.hgetall(keys.ledger_counts(batch_id))
        return {as_text(k): int(v) for k, v in raw.items() if int(v)}

    def _pages(self, key: str, limit: int, below: float | None = None) -> list[tuple[str, float]]:
        """A sorted set's members (and scores) in order, a page per command: no single
        command over a large index holds Redis for long."""
        out: list[tuple[str, float]] = []
        while len(out) < limit:
            take = min(_PAGE, limit - len(out))
            if below is None:
                rows = self.redis.zrange(key, len(out), len(out) + take - 1, withscores=True)
            else:
                rows = self.redis.zrangebyscore(
                    key, "-inf", below, start=len(out), num=take, withscores=True
                )
            out += [(as_text(member), float(score)) for member, score in rows]
            if len(rows) < take:
                break
        return out

    def dead_letters(self, limit: int = 1000) -> list[tuple[str, float]]:
        """Dead chunk ids and when they died, oldest first."""
        return self._pages(keys.dead_letters(), limit)

    def failed_letters(self, limit: int = 1000) -> list[tuple[str, float]]:
        """Failed chunk ids and when they failed, oldest first."""
        return self._pages(keys.failed_letters(), limit)

    def _forget(self, index_keys: Sequence[str], chunk_ids: Iterable[str]) -> None:
        ids = list(chunk_ids)
        for start in range(0, len(ids), _PAGE):
            page = ids[start : start + _PAGE]
            pipe = self.redis.pipeline(transaction=False)
            for key in index_keys:
                pipe.zrem(key, *page)
            pipe.execute()

    def forget_letters(self, chunk_ids: Iterable[str]) -> None:
        """Drop chunk ids (whose records expired) from the dead and failed indexes."""
        self._forget([keys.dead_letters(), keys.failed_letters()], chunk_ids)

    def active_before(self, cutoff: float, limit: int = 1000) -> list[str]:
        """Chunk ids not yet final whose last change is older than ``cutoff``."""
        return [m for m, _ in self._pages(keys.active(), limit, below=cutoff)]

    def touch_active(self, chunk_id: str, when: float) -> None:
        self.redis.zadd(keys.active(), {chunk_id: when})

    def forget_active(self, chunk_ids: Iterable[str]) -> None:
        self._forget([keys.active()], chunk_ids)

    def existing(self, key_of: Any, ids: Sequence[str]) -> list[bool]:
        """Whether each id's record (``key_of(id)``) still exists, a pipeline per page."""
        out: list[bool] = []
        for start in range(0, len(ids), _PAGE):
            pipe = self.redis.pipeline(transaction=False)
            for ident in ids[start : start + _PAGE]:
                pipe.exists(key_of(ident))
            out += [bool(n) for n in pipe.execute()]
        return out

    def chunk_for_email(self, email_id: str) -> str | None:
        raw = self.redis.get(keys.email_index(email_id))
        return as_text(raw) if raw else None

    def chunk_for_sms(self, message_id: str) -> str | None:
        raw = self.redis.get(keys.sms_index(message_id))
        return as_text(raw) if raw else None


def _event_time(event: Mapping[str, Any]) -> str:
    return str(event.get("received_at", ""))
