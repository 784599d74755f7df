"""What ``status()`` returns: typed views of the records ``worker.store`` keeps."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from outbox.worker.states import State
from outbox.worker.store import RecordStore, batch_state, chunk_id_for

__all__ = ["ChunkRecord", "Record", "load_chunk", "load_record"]


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
    succeeded: int = 0
    failed: int = 0
    #: Recipients the API refused in an accepted request (e.g. suppressed ones).
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
    #: Every transition: ``{"at", "state", "attempt"?, "worker"?, "error"?, "note"?}``.
    history: list[dict[str, Any]] = Field(default_factory=list)
    #: Delivery events from webhooks (``delivered``, ``bounce``, ``open``, ...).
    events: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return [str(h["note"]) for h in self.history if h.get("note")]


class Record(BaseModel):
    """A producer call (a batch) and its chunks; the handle's ``status()``."""

    id: str
    kind: str
    state: State
    chunks_total: int
    recipients: int
    counts: dict[str, int]
    recipients_succeeded: int = 0
    recipients_failed: int = 0
    #: Recipients refused before anything was enqueued (e.g. locally suppressed).
    rejected: list[str] = Field(default_factory=list)
    idempotency_key: str | None = None
    send_at: float | None = None
    callback: dict[str, Any] | None = None
    created_at: float | None = None
    finished_at: float | None = None
    chunks: list[ChunkRecord] = Field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state in {State.SENT, State.FAILED, State.DEAD}

    @property
    def attempts(self) -> int:
        return sum(c.attempts for c in self.chunks)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for c in self.chunks for e in c.events]

    @property
    def email_ids(self) -> list[str]:
        return [c.email_id for c in self.chunks if c.email_id]


def _num(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _chunk(fields: dict[str, str], history: list[dict[str, Any]], events: list[Any]) -> ChunkRecord:
    def js(name: str, default: Any) -> Any:
        raw = fields.get(name)
        return json.loads(raw) if raw else default

    return ChunkRecord(
        id=fields["id"],
        index=int(fields.get("index", 0)),
        state=State(fields["state"]),
        attempts=int(fields.get("attempts", 0)),
        recipients=js("recipients", []),
        request_id=fields.get("request_id") or None,
        email_id=fields.get("email_id") or None,
        message_ids=js("message_ids", {}),
        succeeded=int(fields.get("succeeded", 0)),
        failed=int(fields.get("failed", 0)),
        failures=js("failures", []),
        last_error=js("last_error", None),
        ambiguous=fields.get("ambiguous") or None,
        claimed_by=fields.get("claimed_by") or None,
        created_at=_num(fields.get("created_at")),
        updated_at=_num(fields.get("updated_at")),
        due_at=_num(fields.get("due_at")),
        replays=int(fields.get("replays", 0)),
        history=history,
        events=events,
    )


def load_record(store: RecordStore, batch_id: str) -> Record | None:
    """The whole record of a batch (two round trips), or ``None`` when unknown or expired."""
    fields = store.get_batch_raw(batch_id)
    if not fields:
        return None
    total = int(fields.get("chunks", 0))
    counts = {s.value: int(fields.get(f"n:{s.value}", 0)) for s in State}
    ids = [chunk_id_for(batch_id, i) for i in range(total)]
    chunks = [_chunk(*raw) for raw in store.get_chunks_raw(ids)]
    return Record(
        id=batch_id,
        kind=fields.get("kind", ""),
        state=batch_state(counts, total),
        chunks_total=total,
        recipients=int(fields.get("recipients", 0)),
        counts=counts,
        recipients_succeeded=int(fields.get("recipients_succeeded", 0)),
        recipients_failed=int(fields.get("recipients_failed", 0)),
        rejected=json.loads(fields.get("rejected") or "[]"),
        idempotency_key=fields.get("idempotency_key") or None,
        send_at=_num(fields.get("send_at")),
        callback=json.loads(fields["callback"]) if fields.get("callback") else None,
        created_at=_num(fields.get("created_at")),
        finished_at=_num(fields.get("finished_at")),
        chunks=chunks,
    )


def load_chunk(store: RecordStore, chunk_id: str) -> ChunkRecord | None:
    """One chunk by its id (``<batch>.<index>``)."""
    rows = store.get_chunks_raw([chunk_id])
    return _chunk(*rows[0]) if rows else None
