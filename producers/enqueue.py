"""Recording a send and putting its tasks on the broker: the outbox of every producer call.

A call is recorded in one Redis script call (its chunks, the shared payload, its ledger,
the idempotency key), then its tasks are published. The record is the outbox: once it
is written the message will go, so a broker that cannot be reached does not fail the
call; the chunks' task calls are parked in Redis, due now, and the relay of any worker
publishes them within a second or two of the broker coming back. Only when nothing could
be recorded (Redis unreachable) does the call raise :class:`~outbox.core.errors.EnqueueError`,
and then nothing will ever be sent.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from kombu.exceptions import OperationalError

from outbox.core import tracing
from outbox.core.errors import EnqueueError
from outbox.core.kinds import SEND_TASKS, lane_for, queue_for
from outbox.core.queues import Queue, TaskName
from outbox.core.states import Kind
from outbox.core.store.batch import ProducerFields
from outbox.core.store.chunks import ChunkSlice, ChunkSpec, batch_id_of, chunk_id_for
from outbox.core.store.parked import Call
from outbox.core.text import compact_json
from outbox.core.wire import PAYLOAD_VERSION
from outbox.handle import Handle
from outbox.options import Options
from outbox.worker.publish import Task, chunk_tasks, publish
from outbox.worker.runtime import Runtime, get_runtime

__all__ = ["enqueue"]

logger = logging.getLogger(__name__)


def _before_sending(exc: redis.RedisError) -> bool:
    """Did Redis fail before the command could reach it (nothing can have been written)?"""
    cause = exc.__context__ or exc.__cause__
    if isinstance(cause, ConnectionRefusedError | socket.gaierror):
        return True
    return "connecting to" in str(exc).lower()


def _record(rt: Runtime, batch_id: str, **create: Any) -> tuple[str, bool]:
    batches = rt.store.batches
    try:
        return batches.create(batch_id, **create)
    except redis.RedisError as exc:
        if _before_sending(exc):
            raise EnqueueError(f"Redis is unreachable; nothing was recorded: {exc}") from exc
        failure = exc
    # The script may or may not have run: ask (it is one atomic call, all or nothing).
    for pause in (0.0, 0.2, 0.5):
        time.sleep(pause)
        try:
            if batches.stored_batch(batch_id) is not None:
                return batch_id, True
            raise EnqueueError(f"Redis failed while recording; nothing was recorded: {failure}")
        except redis.RedisError:
            continue
    raise EnqueueError(
        f"Redis failed while recording and cannot be asked whether it was: {failure}. If it "
        "was, the message is sent later; an idempotency_key makes calling again safe",
        recorded=None,
    ) from failure


def fingerprint(
    kind: Kind,
    base: Mapping[str, Any],
    chunks: Sequence[ChunkSlice],
    options: Options,
    lane: str,
) -> str:
    """What makes two calls the same message, hashed: an idempotency key that comes back
    with another fingerprint is a conflict, not a repeat."""
    digest = hashlib.sha256()
    head = {
        "kind": kind.value,
        "base": base,
        "send_at": options.send_at,
        "callback": options.callback,
        "lane": lane,
        "tenant": options.tenant,
    }
    digest.update(compact_json(head).encode())
    for recipients, overrides in chunks:
        digest.update(b"\0")
        digest.update(compact_json([recipients, overrides]).encode())
    return digest.hexdigest()


def enqueue(
    kind: Kind,
    base: Mapping[str, Any],
    chunks: Sequence[ChunkSlice],
    options: Options,
    *,
    refused: Sequence[tuple[str, str]] = (),
) -> Handle:
    """Record a call's chunks and publish their tasks; its handle."""
    attributes = {"outbox.kind": kind.value, "outbox.chunks": len(chunks),
                  "outbox.lane": options.lane, "outbox.tenant": options.tenant}  # fmt: skip
    with tracing.span("outbox.enqueue", kind="producer", attributes=attributes) as current:
        handle = _enqueue(kind, base, chunks, options, refused)
        tracing.note(current, outbox__send_id=handle.id, outbox__recipients=handle.recipients)
        return handle


def _enqueue(
    kind: Kind,
    base: Mapping[str, Any],
    chunks: Sequence[ChunkSlice],
    options: Options,
    refused: Sequence[tuple[str, str]],
) -> Handle:
    rt = get_runtime()
    batch_id = uuid.uuid4().hex
    lane = options.lane or lane_for(kind, len(chunks), rt.settings.bulk_threshold)
    queue = queue_for(kind, len(chunks), rt.settings.bulk_threshold, lane=lane)
    specs = [
        ChunkSpec(chunk_id_for(batch_id, i), i, recipients, overrides, options.send_at)
        for i, (recipients, overrides) in enumerate(chunks)
    ]
    # the format of the payload, kept so a later publish marks it as this one does; the
    # trace context, where every later publish finds the send's trace
    record = ProducerFields(payload_version=str(PAYLOAD_VERSION), trace=tracing.carrier())
    if options.idempotency_key is not None:
        record["fingerprint"] = fingerprint(kind, base, chunks, options, lane)
    if options.send_at is not None:
        record["send_at"] = options.send_at
    if options.callback is not None:
        record["callback"] = options.callback
    if refused:
        record["rejected"] = [address for address, _ in refused]
    found, created = _record(
        rt,
        batch_id,
        kind=kind,
        chunks=specs,
        payload=base,
        queue=queue,
        idempotency_key=options.idempotency_key,
        batch=record,
        refused=refused,
        lane=lane,
        tenant=options.tenant,
    )
    if not created:
        assert options.idempotency_key is not None
        return Handle.of_repeat(rt, found, options.idempotency_key, record["fingerprint"])
    calls = [Call(SEND_TASKS[kind], chunk=spec.id) for spec in specs]
    if not specs:
        pass  # every recipient was refused: the record says so, nothing to send
    elif options.send_at is not None and options.send_at > time.time():
        rt.store.parked.park_many(calls, options.send_at)
    else:
        _publish(rt, kind, base, specs, queue, calls)
    return Handle(
        id=batch_id,
        kind=kind.value,
        chunks=len(specs),
        recipients=sum(len(r) for r, _ in chunks),
        rejected=tuple(address for address, _ in refused),
    )


def _publish(
    rt: Runtime,
    kind: Kind,
    base: Mapping[str, Any],
    specs: Sequence[ChunkSpec],
    queue: Queue,
    calls: Sequence[Call],
) -> None:
    batch_id = batch_id_of(specs[0].id)
    if len(specs) > rt.settings.bulk_threshold:
        # One task that publishes the rest from a worker: two round trips here, not 100.
        tasks = [Task(TaskName.FAN_OUT, [batch_id], queue)]
    else:
        tasks = chunk_tasks(kind, base, [(s.id, s.overrides) for s in specs], queue)
    try:
        publish(tasks)
    except (OperationalError, redis.RedisError, OSError) as exc:
        try:
            rt.store.parked.park_many(calls, rt.store.now())
        except redis.RedisError:
            logger.error(
                "send %s is recorded but neither the broker nor Redis can be reached (%s); "
                "the stuck sweep publishes it once they are back",
                batch_id,
                exc,
            )
            return
        logger.warning(
            "the broker is unreachable (%s); send %s is recorded and will be published by a "
            "worker's relay as soon as it is back",
            exc,
            batch_id,
        )
