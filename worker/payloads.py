"""Task payloads: what a chunk's task message carries, and how to rebuild it from Redis.

A batch's shared payload (bodies, attachments, template data) is stored once; each
chunk stores only its own recipients. The task message carries the merged payload, so a
worker needs nothing else to send; the stored parts let sweeps, parked waits and dead
letter replays rebuild the same message later.
"""

from __future__ import annotations

import json
from typing import Any

from outbox.worker.states import Kind
from outbox.worker.store import RecordStore, batch_id_of

__all__ = ["TASK_NAMES", "chunk_call", "merge"]

#: The stable task name of each kind.
TASK_NAMES: dict[Kind, str] = {
    Kind.EMAIL: "outbox.send_email",
    Kind.TEMPLATE: "outbox.send_template",
    Kind.MIME: "outbox.send_mime",
    Kind.SMS: "outbox.send_sms",
}


def merge(base: dict[str, Any], recipients: dict[str, Any]) -> dict[str, Any]:
    """The chunk's payload: the batch's shared fields with the chunk's recipients."""
    return {**base, **recipients}


def chunk_call(store: RecordStore, chunk_id: str) -> tuple[str, list[Any], str] | None:
    """``(task name, args, queue)`` to (re)publish a chunk, or ``None`` if it expired."""
    fields = store.get_chunk_raw(chunk_id)
    base = store.get_payload(batch_id_of(chunk_id))
    if not fields or base is None:
        return None
    kind = Kind(fields["kind"])
    payload = merge(base, json.loads(fields.get("fields") or "{}"))
    return TASK_NAMES[kind], [chunk_id, payload], fields.get("queue") or "email"
