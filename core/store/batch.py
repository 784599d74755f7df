"""The stored batch: one definition of its hash's fields, read and written through it.

A batch is one producer call. Its Redis hash is written by ``create.lua`` from
:meth:`StoredBatch.to_hash` and then by the scripts (the per-state chunk counters, the
recipient counts, ``finished_at``, the pause and cancel marks), and read through
:meth:`StoredBatch.from_hash`; a script or a pipeline that names one field names it by
the constants here. Times are epoch seconds of the Redis clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from outbox.core.states import Kind, State
from outbox.core.store.chunks import encode
from outbox.core.text import as_text
from outbox.core.tracing import FIELDS as TRACE_FIELDS
from outbox.core.wire import VERSION_HEADER

__all__ = [
    "CALLBACK_SENT_AT",
    "CANCELED_AT",
    "CHUNKS",
    "FINISHED_AT",
    "PAUSED_AT",
    "ProducerFields",
    "StoredBatch",
    "count_field",
]

#: Fields read alone (a pipeline's ``HGET``/``HMGET``).
CHUNKS = "chunks"
PAUSED_AT = "paused_at"
CANCELED_AT = "canceled_at"
CALLBACK_SENT_AT = "callback_sent_at"
FINISHED_AT = "finished_at"


def count_field(state: State) -> str:
    """The field counting the batch's chunks in ``state``."""
    return f"n:{state.value}"


class ProducerFields(TypedDict, total=False):
    """The fields of a :class:`StoredBatch` a producer sets beyond its chunks' (see there)."""

    fingerprint: str
    payload_version: str
    send_at: float
    callback: dict[str, Any]
    rejected: list[str]
    trace: dict[str, str]


@dataclass(slots=True)
class StoredBatch:
    """Everything a batch's hash holds."""

    id: str
    kind: Kind
    #: How many chunks and recipients it has (refused recipients not counted).
    chunks: int = 0
    recipients: int = 0
    #: Chunks in each state (``n:<state>``; absent states count 0).
    counts: dict[State, int] = field(default_factory=dict)
    #: Recipients the API accepted, and those of the chunks that failed or died.
    recipients_succeeded: int = 0
    recipients_failed: int = 0
    lane: str = "transactional"
    tenant: str | None = None
    idempotency_key: str | None = None
    #: What makes a repeat of its idempotency key the same message.
    fingerprint: str | None = None
    #: The format its producer wrote the payload in (``None``: 1, 0.2.0 or before).
    payload_version: str | None = None
    send_at: float | None = None
    #: The completion callback (a task call), and when it was published.
    callback: dict[str, Any] | None = None
    callback_sent_at: float | None = None
    #: Recipients refused before sending.
    rejected: list[str] = field(default_factory=list)
    #: The W3C trace context it was recorded in.
    trace: dict[str, str] = field(default_factory=dict)
    created_at: float | None = None
    #: Set while a send of many pages is being written; nothing of it goes meanwhile.
    staged: float | None = None
    finished_at: float | None = None
    canceled_at: float | None = None
    paused_at: float | None = None
    paused_by: str | None = None

    def count(self, state: State) -> int:
        return self.counts.get(state, 0)

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> StoredBatch:
        text = {as_text(k): as_text(v) for k, v in raw.items()}

        def num(name: str) -> float | None:
            value = text.get(name)
            return float(value) if value else None

        return cls(
            id=text.get("id", ""),
            kind=Kind(text["kind"]),
            chunks=int(text.get(CHUNKS) or 0),
            recipients=int(text.get("recipients") or 0),
            counts={s: int(text.get(count_field(s)) or 0) for s in State},
            recipients_succeeded=int(text.get("recipients_succeeded") or 0),
            recipients_failed=int(text.get("recipients_failed") or 0),
            lane=text.get("lane") or "transactional",
            tenant=text.get("tenant") or None,
            idempotency_key=text.get("idempotency_key") or None,
            fingerprint=text.get("fingerprint"),
            payload_version=text.get(VERSION_HEADER),
            send_at=num("send_at"),
            callback=json.loads(text["callback"]) if text.get("callback") else None,
            callback_sent_at=num(CALLBACK_SENT_AT),
            rejected=json.loads(text.get("rejected") or "[]"),
            trace={k: text[k] for k in TRACE_FIELDS if text.get(k)},
            created_at=num("created_at"),
            staged=num("staged"),
            finished_at=num(FINISHED_AT),
            canceled_at=num(CANCELED_AT),
            paused_at=num(PAUSED_AT),
            paused_by=text.get("paused_by"),
        )

    def to_hash(self) -> dict[str, str]:
        """The fields a producer writes (the scripts add ``created_at`` and ``staged``):
        every state's counter, and the optional fields that are set."""
        values: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind.value,
            CHUNKS: self.chunks,
            "recipients": self.recipients,
            **{count_field(s): self.count(s) for s in State},
            "recipients_succeeded": self.recipients_succeeded,
            "recipients_failed": self.recipients_failed,
            "lane": self.lane,
            "tenant": self.tenant or None,
            "idempotency_key": self.idempotency_key or None,
            "fingerprint": self.fingerprint,
            VERSION_HEADER: self.payload_version,
            "send_at": self.send_at,
            "callback": self.callback,
            CALLBACK_SENT_AT: self.callback_sent_at,
            "rejected": self.rejected or None,
            **self.trace,
            "created_at": self.created_at,
            "staged": self.staged,
            FINISHED_AT: self.finished_at,
            CANCELED_AT: self.canceled_at,
            PAUSED_AT: self.paused_at,
            "paused_by": self.paused_by,
        }
        return encode(values)
