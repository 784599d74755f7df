"""The chunk, as the producer splits it, records it and the record reads back.

A chunk is one API request's worth of a batch's recipients (at most 100 of each of
``to``/``cc``/``bcc``), and the unit that is claimed, retried, sent, failed or dead. It
takes three shapes, one per stage, each defined here:

* :data:`ChunkSlice`: what splitting a call gives, its recipients and its own payload
  fields (its slice of to/cc/bcc, or its SMS destinations), before the send has an id;
  a send's fingerprint is taken over these;
* :class:`ChunkSpec`: a slice given its id, its index and its due time, what
  ``Batches.create`` writes;
* :class:`StoredChunk`: everything its Redis hash holds from then on, as the scripts
  move it. The hash is written by the Lua scripts and by :meth:`StoredChunk.to_hash`,
  and read only through :meth:`StoredChunk.from_hash`: values that are not text are
  JSON, times are epoch seconds of the Redis clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from outbox.core.queues import Queue
from outbox.core.states import Kind, State
from outbox.core.text import as_text, compact_json

__all__ = [
    "CHUNK_ID",
    "ChunkSlice",
    "ChunkSpec",
    "StoredChunk",
    "batch_id_of",
    "chunk_id_for",
    "encode",
]

#: A chunk as splitting a call gives it: its recipients (for the record) and its own
#: payload fields.
ChunkSlice = tuple[list[str], dict[str, Any]]

#: A chunk id as :func:`chunk_id_for` makes it (batch ids are uuid4 hex).
CHUNK_ID = re.compile(r"[0-9a-f]{32}\.\d{1,6}")


def chunk_id_for(batch_id: str, index: int) -> str:
    """Chunk ids are derived, so a batch needs no list of them."""
    return f"{batch_id}.{index}"


def batch_id_of(chunk_id: str) -> str:
    """The send a chunk belongs to; a send's own id is returned as it is."""
    return chunk_id.rsplit(".", 1)[0]


def encode(values: Mapping[str, Any]) -> dict[str, str]:
    """Field values as the hash stores them: text as is, numbers as text, the rest JSON."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, str):
            out[name] = value
        elif isinstance(value, bool):
            out[name] = "1" if value else "0"
        elif isinstance(value, float):
            out[name] = f"{value:.6f}"
        elif isinstance(value, int):
            out[name] = str(value)
        else:
            out[name] = compact_json(value)
    return out


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    """A chunk as the producer records it: a :data:`ChunkSlice` with its id and place."""

    id: str
    index: int
    #: Every address (or number) of the chunk, flat, for the record.
    recipients: Sequence[str]
    #: The chunk's own payload fields (its slice of to/cc/bcc, or destination).
    overrides: Mapping[str, Any] = field(default_factory=dict)
    due_at: float | None = None


@dataclass(slots=True)
class StoredChunk:
    """Everything a chunk's hash holds."""

    id: str
    batch: str
    index: int
    kind: Kind
    state: State
    queue: Queue = Queue.EMAIL
    #: Which lane it waits in for a slot (``transactional`` or ``bulk``), and whose mail
    #: it is (``OUTBOX_TENANT_WEIGHTS``, ``OUTBOX_TENANT_LIMITS``).
    lane: str = "transactional"
    tenant: str | None = None
    recipients: list[str] = field(default_factory=list)
    #: The chunk's own payload fields, merged over the batch's shared payload to send.
    fields: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    replays: int = 0
    created_at: float | None = None
    updated_at: float | None = None
    due_at: float | None = None
    #: The worker of the current (or last) attempt, when its slot was granted, and until
    #: when its claim holds (a later claim finding it expired knows the attempt's fate
    #: is unknown).
    claimed_by: str | None = None
    claimed_at: float | None = None
    lease_until: float | None = None
    #: The token of a sender waiting in the rate-limit line for this chunk.
    waiting: str | None = None
    #: The bulk lane granted the attempt a slot while no worker held the chunk; the state
    #: it had before (the first worker to claim it adopts the attempt).
    reserved: str | None = None
    #: The API's answer: ``succeeded``/``failed`` count emails (one per request),
    #: ``failures`` are its error messages.
    request_id: str | None = None
    email_id: str | None = None
    succeeded: int | None = None
    failed: int | None = None
    failures: list[str] = field(default_factory=list)
    #: SMS message ids by destination.
    message_ids: dict[str, str] = field(default_factory=dict)
    last_error: dict[str, Any] | None = None
    #: Set when an attempt's outcome was unknown, with how it was resolved.
    ambiguous: str | None = None
    #: A dead letter for a task that named no record.
    orphan: bool = False

    @property
    def n_recipients(self) -> int:
        return len(self.recipients)

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> StoredChunk:
        text = {as_text(k): as_text(v) for k, v in raw.items()}
        values: dict[str, Any] = {}
        for spec in fields(cls):
            value = text.get(spec.name)
            if value is None or value == "":
                continue
            values[spec.name] = _DECODE.get(spec.name, str)(value)
        if "recipients" not in text:
            values["recipients"] = recipients_in(values.get("fields") or {})
        return cls(**values)

    def to_hash(self) -> dict[str, str]:
        """The whole hash (``n_recipients`` included: the scripts count with it).

        The recipients are stored once: a chunk whose payload fields list them (to, cc,
        bcc, or an SMS's destinations) has no list of its own (``recipients_of`` in
        ``common.lua`` reads them back the same way)."""
        values = {
            spec.name: getattr(self, spec.name)
            for spec in fields(self)
            if spec.name not in ("recipients", "fields")
        }
        values["kind"] = self.kind.value
        values["state"] = self.state.value
        values["queue"] = self.queue.value
        values["n_recipients"] = self.n_recipients
        out = encode(values)
        out["fields"] = compact_json(self.fields)  # kept even when empty: the scripts read it
        if not self.recipients or recipients_in(self.fields) != self.recipients:
            out["recipients"] = compact_json(self.recipients)
        return out


def recipients_in(payload: Mapping[str, Any]) -> list[str]:
    """The recipients a chunk's own payload fields name, in the order the producer
    listed them: an SMS's destinations, or to, cc and bcc."""
    if "destination" in payload:
        return list(payload["destination"])
    return [r for name in ("to", "cc", "bcc") for r in payload.get(name) or ()]


def _float(value: str) -> float:
    return float(value)


_DECODE: dict[str, Any] = {
    "index": int,
    "kind": Kind,
    "state": State,
    "queue": Queue,
    "recipients": json.loads,
    "fields": json.loads,
    "attempts": int,
    "replays": int,
    "created_at": _float,
    "updated_at": _float,
    "due_at": _float,
    "claimed_at": _float,
    "lease_until": _float,
    "succeeded": int,
    "failed": int,
    "failures": json.loads,
    "message_ids": json.loads,
    "last_error": json.loads,
    "orphan": lambda v: v == "1",
}
