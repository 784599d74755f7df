"""Taking back what is queued: ``cancel`` a send (or one chunk of it).

Every chunk that has not gone out (queued on the broker, scheduled with ``send_at``,
retrying, throttled, waiting in a lane for a slot, or not yet written: a large send
still being recorded) ends ``canceled`` and is never sent afterwards. A chunk whose
request is in flight ends as its answer says: ``sent`` if SMTP2GO took it, else
``canceled`` (it is not retried). One script call per page of chunks decides each race
with a claim, so a redelivered or republished task of a canceled chunk sends nothing.
"""

from __future__ import annotations

from outbox.boundary import public_call
from outbox.errors import RecordNotFound
from outbox.handle import status
from outbox.worker.records import Record
from outbox.worker.runtime import get_runtime
from outbox.worker.store.chunks import batch_id_of, chunk_id_for

__all__ = ["cancel"]


@public_call
def cancel(send_id: str, *, who: str = "cancel()") -> Record:
    """Cancel a send (a batch id) or one of its chunks (``<batch>.<n>``); its record
    afterwards (``counts["canceled"]``). A finished send is left as it is; an unknown id
    raises :class:`~outbox.errors.RecordNotFound`. Calling again changes nothing."""
    rt = get_runtime()
    batches = rt.store.batches
    fields = batches.batch(send_id)
    whole = bool(fields)
    batch_id = send_id
    if not whole and "." in send_id:
        batch_id = batch_id_of(send_id)
        fields = batches.batch(batch_id)
        if not fields or batches.chunk(send_id) is None:
            fields = {}
    if not fields:
        raise RecordNotFound(f"no record {send_id!r} (unknown, or expired)")
    if whole:
        ids = [chunk_id_for(batch_id, i) for i in range(int(fields.get("chunks", 0)))]
    else:
        ids = [send_id]
    done = batches.cancel(batch_id, ids, limit=rt.send_limit, who=who, whole=whole)
    if done.finished and done.has_callback:
        from outbox.worker.delivery import fire_callback

        fire_callback(rt, batch_id)
    return status(send_id)
