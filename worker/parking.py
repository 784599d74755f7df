"""Waits longer than the broker may hold a message, kept in Redis instead.

On Redis, an unacknowledged message (and a countdown task is one, held by the worker
that reserved it) returns to the queue after the visibility timeout, so a countdown
longer than that would run twice. Such waits (long retry delays, ``send_at`` far ahead)
are *parked*: a sorted set scored by due time. Every worker process runs a small
releaser thread that publishes due calls; the take is leased, so a releaser that dies
mid-way leaves its calls to another one (a second copy is harmless: the chunk's claim
turns it into a no-op).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from outbox.worker.payloads import chunk_call
from outbox.worker.runtime import get_runtime
from outbox.worker.store import RecordStore

__all__ = ["Releaser", "release_due"]

logger = logging.getLogger(__name__)

#: Seconds between two looks at the parked set.
POLL_INTERVAL = 1.0


def release_due(app: Celery, store: RecordStore, *, limit: int = 200) -> int:
    """Publish every parked call that is due; the number published."""
    published = 0
    for call in store.take_parked(lease=60.0, limit=limit):
        built = chunk_call(store, str(call.get("chunk", "")))
        if built is None:
            logger.warning("parked call %s has no record any more; dropped", call)
        else:
            name, args, queue = built
            app.send_task(name, args=args, queue=queue, routing_key=queue)
            published += 1
        store.release(call)
    return published


class Releaser(threading.Thread):
    """The per-process thread that runs :func:`release_due` every second."""

    def __init__(self, app: Celery, interval: float = POLL_INTERVAL) -> None:
        super().__init__(name="outbox-releaser", daemon=True)
        self.app = app
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                release_due(self.app, get_runtime().store)
            except Exception:  # a Redis blip must not kill the thread
                logger.exception("releasing parked tasks failed; trying again")

    def stop(self) -> None:
        self.stopped.set()


_releaser: Releaser | None = None


@worker_ready.connect
def _start_releaser(sender: Any = None, **_: Any) -> None:
    global _releaser
    app = getattr(sender, "app", None)
    if app is None or _releaser is not None:
        return
    _releaser = Releaser(app)
    _releaser.start()


@worker_shutdown.connect
def _stop_releaser(**_: Any) -> None:
    global _releaser
    if _releaser is not None:
        _releaser.stop()
        _releaser = None
