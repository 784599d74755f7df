"""What a send returns, how to read its record, and how to send again to whom it failed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from outbox.boundary import public_call
from outbox.core.errors import IdempotencyConflict, RecordNotFound
from outbox.core.states import Fate
from outbox.core.store.chunks import batch_id_of
from outbox.core.views import Record, load_chunk, load_record
from outbox.worker.runtime import get_runtime

if TYPE_CHECKING:
    from outbox.worker.runtime import Runtime

__all__ = ["RETRYABLE_FATES", "Handle", "status"]

#: Ledger fates worth sending to again: the request failed or died (the cause may have
#: been fixed since), the SMS network failed to deliver (``sms_failed``: a gateway
#: failure, a dropped message), or the mailbox soft-bounced. Never a recipient that was
#: delivered, suppressed, hard-bounced, rejected or complained.
RETRYABLE_FATES = frozenset({Fate.FAILED, Fate.DEAD, Fate.SOFT_BOUNCED})


@dataclass(frozen=True)
class Handle:
    """What a send returns: the id to ask about, and what was enqueued."""

    id: str
    kind: str
    chunks: int
    recipients: int
    #: True when an earlier call with the same idempotency key created this record.
    duplicate: bool = False
    #: Recipients refused before enqueueing (locally suppressed).
    rejected: tuple[str, ...] = field(default=())

    @classmethod
    def of_existing(cls, rt: Runtime, batch_id: str) -> Handle:
        """The handle of a batch recorded earlier (a repeated idempotency key)."""
        stored = rt.store.batches.stored_batch(batch_id)
        return cls(
            id=batch_id,
            kind=stored.kind.value if stored else "",
            chunks=stored.chunks if stored else 0,
            recipients=stored.recipients if stored else 0,
            duplicate=True,
        )

    def status(self) -> Record:
        return status(self.id)

    @classmethod
    def of_repeat(cls, rt: Runtime, batch_id: str, key: str, fingerprint: str) -> Handle:
        """The first handle of an idempotency key, when this call's message is the one it
        sent (same fingerprint); :class:`~outbox.core.errors.IdempotencyConflict` otherwise."""
        batch = rt.store.batches.stored_batch(batch_id)
        stored = batch.fingerprint if batch else None
        if stored is not None and stored != fingerprint:
            raise IdempotencyConflict(key, batch_id)
        return cls.of_existing(rt, batch_id)

    def wait(self, timeout: float = 60.0, interval: float = 0.25) -> Record:
        """Poll until every chunk is final; raises ``TimeoutError`` with the last state."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.status()
            if record.done:
                return record
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.id} still {record.state} after {timeout:.0f}s")
            time.sleep(interval)


@public_call
def status(handle_id: str) -> Record:
    """The record of a send (a batch id) or of one of its chunks (``<batch>.<n>``)."""
    store = get_runtime().store
    record = load_record(store, handle_id)
    if record is None and "." in handle_id:
        record = load_record(store, batch_id_of(handle_id))
        if record is not None:
            chunk = load_chunk(store, handle_id)
            record.chunks = [chunk] if chunk else []
    if record is None:
        raise RecordNotFound(f"no record {handle_id!r} (unknown, or expired)")
    return record
