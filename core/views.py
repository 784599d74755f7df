"""What ``status()`` returns: typed views of the records :mod:`outbox.core.store` keeps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, computed_field

from outbox.core.states import FINAL_STATES, State
from outbox.core.store import Store
from outbox.core.store.chunks import StoredChunk, chunk_id_for
from outbox.core.store.reads import batch_state

__all__ = ["ChunkRecord", "Record", "load_chunk", "load_record"]

#: Chunks read per round trip when a record's chunks are asked for.
_PAGE = 500


class ChunkRecord(BaseModel):
    """One API request's worth of recipients and everything that happened to it."""

    id: str
    index: int
    state: State
    attempts: int = 0
    recipients: list[str] = Field(default_factory=list)
    request_id: str | None = None
    email_id: str | None = None
    #: SMS message ids by destination.
    message_ids: dict[str, str] = Field(default_factory=dict)
    #: The API's answer: emails accepted and refused (a request is one email).
    succeeded: int | None = None
    failed: int | None = None
    #: The API's error messages in an answer (a refused email, an unverified sender).
    failures: list[str] = Field(default_factory=list)
    last_error: dict[str, Any] | None = None
    #: Set when an attempt's outcome was unknown (a worker died mid-request), with how
    #: it was resolved.
    ambiguous: str | None = None
    claimed_by: str | None = None
    created_at: float | None = None
    updated_at: float | None = None
    due_at: float | None = None
    replays: int = 0
    #: Waiting in the shared rate limit's line for a slot.
    waiting: bool = False
    #: Every transition: ``{"at", "state", "attempt"?, "worker"?, "error"?, "note"?}``.
    history: list[dict[str, Any]] = Field(default_factory=list)
    #: Delivery events from webhooks (``delivered``, ``bounce``, ``open``, ...).
    events: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return [str(h["note"]) for h in self.history if h.get("note")]

    @classmethod
    def from_stored(
        cls, chunk: StoredChunk, history: list[dict[str, Any]], events: list[dict[str, Any]]
    ) -> ChunkRecord:
        return cls(
            id=chunk.id,
            index=chunk.index,
            state=chunk.state,
            attempts=chunk.attempts,
            recipients=chunk.recipients,
            request_id=chunk.request_id,
            email_id=chunk.email_id,
            message_ids=chunk.message_ids,
            succeeded=chunk.succeeded,
            failed=chunk.failed,
            failures=chunk.failures,
            last_error=chunk.last_error,
            ambiguous=chunk.ambiguous,
            claimed_by=chunk.claimed_by,
            created_at=chunk.created_at,
            updated_at=chunk.updated_at,
            due_at=chunk.due_at,
            replays=chunk.replays,
            waiting=chunk.waiting is not None,
            history=history,
            events=events,
        )


class Record(BaseModel):
    """A producer call (a batch) and its chunks; the handle's ``status()``."""

    id: str
    kind: str
    state: State
    chunks_total: int
    recipients: int
    counts: dict[str, int]
    #: Recipients of chunks the API accepted, and of chunks failed or dead.
    recipients_succeeded: int = 0
    recipients_failed: int = 0
    #: Recipients refused before anything was enqueued (e.g. locally suppressed).
    rejected: list[str] = Field(default_factory=list)
    #: How many recipients are in each fate (queued, sent, delivered, hard-bounced, ...).
    ledger: dict[str, int] = Field(default_factory=dict)
    idempotency_key: str | None = None
    #: The lane its chunks wait in for a slot, and whose mail it is.
    lane: str = "transactional"
    tenant: str | None = None
    send_at: float | None = None
    callback: dict[str, Any] | None = None
    created_at: float | None = None
    finished_at: float | None = None
    #: Why the account's sending is held, when it is (a rejected key).
    held: str | None = None
    #: When ``cancel`` took the send back.
    canceled_at: float | None = None
    #: When ``pause`` held the send (``None`` when it is not paused).
    paused_at: float | None = None
    #: Reads the chunks when they are first asked for: the counts above answer at once,
    #: whatever the size of the send (a million recipients are 10,000 chunks).
    _chunks: list[ChunkRecord] | None = PrivateAttr(default=None)
    _load: Callable[[], list[ChunkRecord]] | None = PrivateAttr(default=None)

    def __init__(self, chunks: list[ChunkRecord] | None = None, **fields: Any) -> None:
        super().__init__(**fields)
        self._chunks = list(chunks) if chunks is not None else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def chunks(self) -> list[ChunkRecord]:
        """Every chunk with its history and events, read (a page per round trip) the first
        time they are asked for."""
        if self._chunks is None:
            self._chunks = self._load() if self._load is not None else []
        return self._chunks

    @chunks.setter
    def chunks(self, value: list[ChunkRecord]) -> None:
        self._chunks = list(value)

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def attempts(self) -> int:
        return sum(c.attempts for c in self.chunks)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for c in self.chunks for e in c.events]

    @property
    def email_ids(self) -> list[str]:
        return [c.email_id for c in self.chunks if c.email_id]


def load_record(store: Store, batch_id: str) -> Record | None:
    """The whole record of a batch (a few round trips), or ``None`` when unknown or expired."""
    batches = store.batches
    stored = batches.stored_batch(batch_id)
    if stored is None:
        return None
    total = stored.chunks
    counts = {s.value: stored.count(s) for s in State}
    ids = [chunk_id_for(batch_id, i) for i in range(total)]

    def load() -> list[ChunkRecord]:
        out = []
        for start in range(0, len(ids), _PAGE):
            out += [
                ChunkRecord.from_stored(*raw) for raw in batches.chunks(ids[start : start + _PAGE])
            ]
        return out

    record = Record(
        id=batch_id,
        kind=stored.kind.value,
        state=batch_state(counts, total),
        chunks_total=total,
        recipients=stored.recipients,
        counts=counts,
        recipients_succeeded=stored.recipients_succeeded,
        recipients_failed=stored.recipients_failed,
        rejected=stored.rejected,
        ledger=batches.ledger_counts(batch_id),
        idempotency_key=stored.idempotency_key,
        lane=stored.lane,
        tenant=stored.tenant,
        send_at=stored.send_at,
        callback=stored.callback,
        created_at=stored.created_at,
        finished_at=stored.finished_at,
        held=store.limits.hold_reason(),
        canceled_at=stored.canceled_at,
        paused_at=stored.paused_at,
    )
    record._load = load
    return record


def load_chunk(store: Store, chunk_id: str) -> ChunkRecord | None:
    """One chunk by its id (``<batch>.<index>``)."""
    rows = store.batches.chunks([chunk_id])
    return ChunkRecord.from_stored(*rows[0]) if rows else None
