"""Publishing a large batch's chunk tasks from a worker instead of the web app.

A producer call with many chunks records them all in one script call and publishes a
single ``outbox.fan_out`` task; a worker publishes the chunk tasks. The web request
pays two round trips instead of one per chunk (a 10,000-recipient call: ~100). A
fan-out redelivered halfway publishes some chunks twice, which their claims absorb; one
that meets an unreachable Redis or broker is handed back (``worker.unavailable``).
"""

from __future__ import annotations

import logging

from outbox.worker.app import app
from outbox.worker.payloads import chunk_call
from outbox.worker.runtime import get_runtime
from outbox.worker.store import chunk_id_for
from outbox.worker.unavailable import hand_back_when_unavailable

__all__ = ["FAN_OUT_TASK", "fan_out"]

logger = logging.getLogger(__name__)

FAN_OUT_TASK = "outbox.fan_out"


@app.task(name=FAN_OUT_TASK)
@hand_back_when_unavailable(lambda batch_id: f"fan-out of {batch_id}")
def fan_out(batch_id: str) -> int:
    """Publish the task of every chunk of ``batch_id``; the number published."""
    store = get_runtime().store
    batch = store.get_batch_raw(batch_id)
    if not batch:
        logger.error("fan-out of %s: no record (expired?); nothing published", batch_id)
        return 0
    published = 0
    with app.producer_or_acquire() as producer:
        for index in range(int(batch.get("chunks", 0))):
            built = chunk_call(store, chunk_id_for(batch_id, index))
            if built is None:
                continue
            name, args, queue = built
            app.send_task(name, args=args, queue=queue, routing_key=queue, producer=producer)
            published += 1
    return published
