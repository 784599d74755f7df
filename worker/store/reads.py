"""What the records say about batches and chunks: the reads, and the upkeep of the
indexes that point at them (dead and failed letters, the active set, the look-ups from
an ``email_id``, an SMS message id or an idempotency key).

Reads need no script: each is one command or one pipeline. :class:`Batches` writes
through the scripts and inherits these.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from outbox.worker.states import FINAL_STATES, State
from outbox.worker.store import keys
from outbox.worker.store.chunks import StoredChunk

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
        return State.DEAD if counts.get(State.DEAD.value, 0) else State.FAILED
    if counts.get(State.RETRYING.value, 0):
        return State.RETRYING
    if counts.get(State.THROTTLED.value, 0) and not counts.get(State.SENDING.value, 0):
        return State.THROTTLED  # nothing moves until the quota has room
    if counts.get(State.SENDING.value, 0) or final:
        return State.SENDING
    return State.QUEUED


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
