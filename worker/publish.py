"""Publishing task messages: the one way outbox puts a task on the broker.

A chunk's task message carries the batch's shared payload merged with the chunk's own
recipients, so a worker needs nothing else to send. The stored parts let the relay,
the sweep and replays rebuild the same message later (:func:`chunk_task`), marked with
the payload format's version its producer recorded (:mod:`outbox.core.wire`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from outbox.core import tracing
from outbox.core.kinds import SEND_TASKS
from outbox.core.queues import Queue, TaskName
from outbox.core.store import Store
from outbox.core.store.batches import Batches
from outbox.core.store.chunks import batch_id_of
from outbox.core.views import load_record
from outbox.core.wire import PAYLOAD_VERSION, VERSION_HEADER, recorded_version
from outbox.worker.celery_app import app

__all__ = ["Task", "chunk_task", "chunk_tasks", "fire_callback", "publish", "publish_callback"]

_SENDS = frozenset(SEND_TASKS.values())


@dataclass(frozen=True, slots=True)
class Task:
    """One task message: which task, its arguments, the queue it goes to."""

    name: TaskName
    args: Sequence[Any]
    queue: Queue = Queue.EMAIL
    #: A send task's payload format (its message's ``outbox_payload`` header); a
    #: record's field that is not a number stays as it is, for the worker to refuse.
    version: int | str = PAYLOAD_VERSION


def chunk_task(batches: Batches, chunk_id: str) -> Task | None:
    """The send task of a chunk, rebuilt from its record; ``None`` if it expired.

    It keeps the version its producer recorded (none: 1, a producer of 0.2.0 or
    before), so a worker meets the payload as it was written, whoever publishes it."""
    chunk, base, version = batches.publishable(chunk_id, VERSION_HEADER)
    if chunk is None or base is None:
        return None
    args = [chunk_id, {**base, **chunk.fields}]
    return Task(SEND_TASKS[chunk.kind], args, chunk.queue, recorded_version(version))


def chunk_tasks(
    kind: Any,
    base: Mapping[str, Any],
    chunks: Iterable[tuple[str, Mapping[str, Any]]],
    queue: Queue,
) -> list[Task]:
    """The send tasks of new chunks ``(chunk id, the chunk's own fields)``."""
    name = SEND_TASKS[kind]
    return [Task(name, [chunk_id, {**base, **own}], queue) for chunk_id, own in chunks]


def publish(tasks: Iterable[Task], *, store: Store | None = None) -> int:
    """Publish ``tasks`` over one broker connection; how many were published.

    Every message carries the time it was published (``published_at``), and with a
    ``store`` its chunk is stamped unclaimed as of now, so a message lost between a
    worker's fetch and its claim is found (:mod:`outbox.core.store.unclaimed`). The
    producer's first publish needs no stamp: the create script made it. Producers send no
    ``task-sent`` event (``celeryconfig``): it would double the round trips of every
    enqueue, and Flower learns of a task from its ``task-received``.
    """
    tasks = list(tasks)
    if store is not None:
        now = store.now()
        for queue in {t.queue for t in tasks}:
            chunks = [str(t.args[0]) for t in tasks if t.queue is queue and t.name in _SENDS]
            store.unclaimed.mark(queue.value, chunks, now)
    traced = tracing.active()
    contexts = _trace_contexts(tasks, store) if traced and store is not None else {}
    published = 0
    with app.producer_or_acquire() as producer:
        for task in tasks:
            # each message goes in its send's trace, whoever publishes it and whenever
            with tracing.attached(contexts.get(_batch_of(task))):
                headers: dict[str, Any] = {"published_at": time.time()}
                if task.name in _SENDS:
                    headers[VERSION_HEADER] = task.version
                if traced:
                    headers.update(tracing.carrier())
                app.send_task(
                    task.name,
                    args=list(task.args),
                    queue=task.queue.value,
                    routing_key=task.queue.value,
                    producer=producer,
                    argsrepr=_shown(task),
                    headers=headers,
                )
            published += 1
    return published


def _batch_of(task: Task) -> str:
    if task.name in _SENDS:
        return batch_id_of(str(task.args[0]))
    if task.name is TaskName.FAN_OUT:
        return str(task.args[0])
    return ""


def _trace_contexts(tasks: Sequence[Task], store: Store) -> dict[str, dict[str, str]]:
    """The trace context each task's send was recorded with (one round trip)."""
    batch_ids = sorted({b for b in map(_batch_of, tasks) if b})
    if not batch_ids:
        return {}
    rows = store.batches.fields(batch_ids, tracing.FIELDS)
    return {
        b: {k: v for k, v in zip(tracing.FIELDS, row, strict=True) if v}
        for b, row in zip(batch_ids, rows, strict=True)
        if row[0]
    }


def _shown(task: Task) -> str:
    """How the task's arguments appear in logs and in Flower: never the message itself
    (recipients, subjects, bodies), only what identifies it."""
    if task.name in _SENDS:
        return repr([task.args[0], "<message>"])
    if task.name is TaskName.RECORD_EVENT:
        event = task.args[0] if task.args and isinstance(task.args[0], Mapping) else {}
        return repr([{"event": event.get("event"), "email_id": event.get("email_id")}])
    return repr(list(task.args))


def publish_callback(callback: Mapping[str, Any], record: Mapping[str, Any]) -> None:
    """Call a batch's completion callback (a Celery signature of the application's own)."""
    app.signature(dict(callback)).apply_async(args=[dict(record)])


def fire_callback(store: Store, batch_id: str) -> None:
    """Publish a finished batch's completion callback and mark it sent.

    The finish script indexed the batch as due; a worker that dies before the mark leaves
    it there for the stuck sweep, so the callback is published at least once (twice only
    if the worker died between publishing and marking)."""
    record = load_record(store, batch_id)
    if record is not None and record.callback is not None:
        publish_callback(record.callback, record.model_dump(mode="json"))
    store.batches.mark_callback_sent(batch_id)
