"""The tasks: one per kind of message (``outbox.send_email``, ...) and the fan-out.

A send task runs one attempt of one chunk (:class:`~outbox.worker.delivery.Delivery`).
It never asks Celery for a countdown: a wait longer than its slot's is parked in Redis
(:mod:`outbox.core.store.parked`) and the task ends, so no worker holds a message it
would lose if it died. The broker's Redis transport runs without ack emulation
(``celeryconfig``): the records are the outbox, and a chunk a dead worker held comes back
when its lease runs out (:mod:`outbox.worker.relay`).

When Redis or the broker is unreachable the message goes back to the broker
(``worker.unavailable``) instead of being acknowledged as failed.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import Reject

from outbox.core.kinds import KINDS
from outbox.core.queues import TaskName
from outbox.core.states import Kind
from outbox.core.store.chunks import chunk_id_for
from outbox.core.store.parked import Call
from outbox.core.wire import VERSION_HEADER
from outbox.worker.celery_app import app
from outbox.worker.delivery import Delivery, Stop
from outbox.worker.publish import chunk_task, publish
from outbox.worker.runtime import get_runtime
from outbox.worker.unavailable import hand_back_when_unavailable

__all__ = ["deliver", "fan_out", "send_email", "send_mime", "send_sms", "send_template"]

logger = logging.getLogger(__name__)

#: Chunks one task sends in a row on hand-offs before the relay takes over (so a task
#: ends, and a worker asked to stop is never kept by a chain).
HAND_OFFS = 20
#: The kind of message of each send task.
KIND_OF = {spec.task: kind for kind, spec in KINDS.items()}


@hand_back_when_unavailable(lambda task, kind, chunk_id, *_: f"chunk {chunk_id}")
def deliver(task: Task, kind: Kind, chunk_id: str, payload: dict[str, Any]) -> str:
    """One attempt at one chunk; returns the chunk's state afterwards (or ``parked``,
    ``busy``, ``missing``: what became of the task)."""
    rt = get_runtime()
    worker = task.request.hostname or "local"
    delivery = Delivery(rt, kind, chunk_id, worker)
    try:
        # the payload format's version: a message without the header is version 1
        state = delivery.run(payload, version=task.request.get(VERSION_HEADER))
    except Stop:
        raise Reject("the worker is stopping", requeue=True) from None
    # A finish that granted a waiting bulk chunk its slot hands it to this thread, free
    # now: it is sent next, with no trip through the relay and the broker.
    for _ in range(HAND_OFFS):
        handed = delivery.handed
        if not handed:
            break
        again = chunk_task(rt.store.batches, handed)
        if again is None:
            break
        delivery = Delivery(rt, KIND_OF[again.name], handed, worker)
        try:
            delivery.run(again.args[1], version=again.version)
        except Stop:
            # its slot was given back: its call waits for another worker
            rt.store.parked.park(Call(again.name, chunk=handed), rt.store.now())
            raise Reject("the worker is stopping", requeue=True) from None
    else:
        if delivery.handed:  # the chain is long enough: the relay takes the rest
            rt.store.batches.publish_handed_now(delivery.handed)
    return state


@app.task(bind=True, name=KINDS[Kind.EMAIL].task.value)
def send_email(self: Task, chunk_id: str, payload: dict[str, Any]) -> str:
    return deliver(self, Kind.EMAIL, chunk_id, payload)


@app.task(bind=True, name=KINDS[Kind.TEMPLATE].task.value)
def send_template(self: Task, chunk_id: str, payload: dict[str, Any]) -> str:
    return deliver(self, Kind.TEMPLATE, chunk_id, payload)


@app.task(bind=True, name=KINDS[Kind.MIME].task.value)
def send_mime(self: Task, chunk_id: str, payload: dict[str, Any]) -> str:
    return deliver(self, Kind.MIME, chunk_id, payload)


@app.task(bind=True, name=KINDS[Kind.SMS].task.value)
def send_sms(self: Task, chunk_id: str, payload: dict[str, Any]) -> str:
    return deliver(self, Kind.SMS, chunk_id, payload)


@app.task(name=TaskName.FAN_OUT.value)
@hand_back_when_unavailable(lambda batch_id: f"fan-out of {batch_id}")
def fan_out(batch_id: str) -> int:
    """Publish the task of every chunk of a large batch; the number published.

    A producer call with many chunks records them all in one script call and publishes
    this one task, so the web request pays two round trips instead of one per chunk. A
    fan-out redelivered halfway publishes some chunks twice, which their claims absorb.
    """
    store = get_runtime().store
    batches = store.batches
    batch = batches.stored_batch(batch_id)
    if batch is None:
        logger.error("fan-out of %s: no record (expired?); nothing published", batch_id)
        return 0
    tasks = (chunk_task(batches, chunk_id_for(batch_id, i)) for i in range(batch.chunks))
    return publish((t for t in tasks if t is not None), store=store)
