"""Taking back what is queued: ``cancel``, ``pause`` and ``resume`` a send.

``cancel``: every chunk that has not gone out (queued on the broker, scheduled with
``send_at``, retrying, throttled, waiting in a lane for a slot, or not yet written: a
large send still being recorded) ends ``canceled`` and is never sent afterwards. A chunk
whose request is in flight ends as its answer says: ``sent`` if SMTP2GO took it, else
``canceled`` (it is not retried).

``pause``: the same chunks are held ``paused``, with no worker thread and no task kept;
``resume`` lets each go from the state it was paused in, in its lane. A chunk in flight
ends as its answer says, and a retry it earns is paused when it comes.

One script call per page of chunks decides each race with a claim, so a redelivered or
republished task of a canceled or paused chunk sends nothing.
"""

from __future__ import annotations

from outbox.boundary import public_call
from outbox.core.errors import RecordNotFound
from outbox.core.store.chunks import batch_id_of, chunk_id_for
from outbox.core.views import Record
from outbox.handle import status
from outbox.worker.publish import fire_callback
from outbox.worker.runtime import get_runtime

__all__ = ["cancel", "pause", "resume"]


def _chunks_of(send_id: str, *, chunk_allowed: bool) -> tuple[str, list[str], bool]:
    """The batch of ``send_id``, the chunk ids it names, and whether it is a whole send."""
    batches = get_runtime().store.batches
    stored = batches.stored_batch(send_id)
    if stored is not None:
        return send_id, [chunk_id_for(send_id, i) for i in range(stored.chunks)], True
    if chunk_allowed and "." in send_id:
        batch_id = batch_id_of(send_id)
        if batches.stored_batch(batch_id) and batches.chunk(send_id) is not None:
            return batch_id, [send_id], False
    raise RecordNotFound(f"no record {send_id!r} (unknown, or expired)")


@public_call
def cancel(send_id: str, *, who: str = "cancel()") -> Record:
    """Cancel a send (a batch id) or one of its chunks (``<batch>.<n>``); its record
    afterwards (``counts["canceled"]``). A finished send is left as it is; an unknown id
    raises :class:`~outbox.core.errors.RecordNotFound`. Calling again changes nothing."""
    rt = get_runtime()
    batch_id, ids, whole = _chunks_of(send_id, chunk_allowed=True)
    done = rt.store.batches.cancel(batch_id, ids, limit=rt.send_limit, who=who, whole=whole)
    if done.finished and done.has_callback:
        fire_callback(rt.store, batch_id)
    return status(send_id)


@public_call
def pause(send_id: str, *, who: str = "pause()") -> Record:
    """Pause a send: its chunks that have not gone out wait ``paused`` until
    :func:`resume`; its record afterwards (``paused_at``, ``counts["paused"]``). A
    finished send is left as it is; calling again changes nothing."""
    rt = get_runtime()
    batch_id, ids, _ = _chunks_of(send_id, chunk_allowed=False)
    rt.store.batches.pause(batch_id, ids, limit=rt.send_limit, who=who)
    return status(batch_id)


@public_call
def resume(send_id: str) -> Record:
    """Let a paused send go: each paused chunk goes on from where it was, in its lane.
    Resuming a send that is not paused changes nothing; calling again after a resume
    that was interrupted finishes it."""
    rt = get_runtime()
    batch_id, ids, _ = _chunks_of(send_id, chunk_allowed=False)
    rt.store.batches.resume(batch_id, ids, limit=rt.send_limit)
    return status(batch_id)
