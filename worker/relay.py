"""The relay: a thread in every worker process that puts work back on the broker.

It takes (leased, so one worker takes each) the parked task calls that are due and the
chunks whose holder's lease ran out (a worker died mid-attempt or in line), and
publishes their tasks; a republished chunk's claim finds the expired lease and looks the
attempt up before anything is resent. Every ten seconds one relay of the fleet looks
for messages a dead worker took off a Redis queue before claiming their chunk
(:func:`recover_lost`), and while the account's sending is held it probes the key
(:mod:`outbox.worker.account`).

It does not poll. One script call takes what is due and says when the next item is
due; the relay then blocks on a wake list until that time, and whatever parks a call
due sooner pushes to the list (``park`` in ``common.lua``). An idle fleet costs a
couple of round trips per relay every ``IDLE_WAKE`` seconds, so even at a low rate
limit a send pays almost nothing for the relay (``BENCHMARKS.md``).

A call is released only after it was published: a relay that dies in between leaves it
to another relay after the lease (a second copy is a no-op at the claim).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from outbox.core.queues import Queue, TaskName
from outbox.core.store.parked import Due
from outbox.worker.account import probe_hold
from outbox.worker.broker import broker_client
from outbox.worker.publish import Task, chunk_task, publish
from outbox.worker.runtime import Runtime, get_runtime

__all__ = ["Relay", "recover_lost", "relay_pass"]

logger = logging.getLogger(__name__)

#: The longest a relay sleeps: a lease granted meanwhile for sooner than anything it
#: knew of is noticed this late at most (its holder died: a send is late, not lost).
IDLE_WAKE = 10.0
#: Most items of each kind taken at once; a full take is followed by another at once.
TAKE_LIMIT = 200
#: How long a taken call is leased to the relay that took it.
TAKE_LEASE = 60.0
#: How soon what a failed publish leased is due again (the broker may be back by then).
PUBLISH_RETRY = 2.0
#: A message is claimed within milliseconds of a worker taking it off its queue: a chunk
#: still unclaimed this long after a message published later was still waiting was lost
#: with the worker that took it (room, too, for clocks a little apart).
LOST_AFTER = 10.0
#: Seconds between two looks for lost messages (one worker of the fleet looks).
LOOK_FOR_LOST_EVERY = 10.0


def relay_pass(rt: Runtime, *, limit: int = TAKE_LIMIT) -> tuple[int, Due]:
    """Publish every due parked call and every chunk whose lease ran out: how many, and
    what the take said about what comes next.

    A publish that fails (the broker is down) gives back what this take leased and did
    not publish, due again in ``PUBLISH_RETRY`` seconds rather than at the lease's end:
    the outbox sends within seconds of the broker coming back."""
    store = rt.store
    due = store.parked.take(lease=TAKE_LEASE, limit=limit, look_every=LOOK_FOR_LOST_EVERY)
    published = 0
    pending = [member for _, member in due.calls]
    try:
        ready: list[Task] = []
        for call, member in due.calls:
            if call.task is TaskName.SERVE_LINE:
                # released first: a turn asked for meanwhile is then never lost
                store.parked.release(member)
                pending.remove(member)
                store.limits.serve(rt.send_limit)
                continue
            if call.chunk is not None:
                task = chunk_task(store.batches, call.chunk)
            else:
                task = Task(call.task, list(call.args), Queue.EMAIL)
            if task is None:
                logger.warning("parked call %s has no record any more; dropped", call)
            else:
                ready.append(task)
        # one publish for the whole take (a bulk lane grants many calls due at once),
        # then every member released in one round trip
        published += publish(ready, store=store) if ready else 0
        store.parked.release_many(pending)
        pending = []
        tasks = []
        for chunk_id in due.expired:
            task = chunk_task(store.batches, chunk_id)
            if task is not None:
                logger.warning(
                    "chunk %s: its holder's lease ran out (a worker died); published again",
                    chunk_id,
                )
                tasks.append(task)
        published += publish(tasks, store=store) if tasks else 0
    except Exception:
        store.parked.due_again(pending, due.expired, store.now() + PUBLISH_RETRY)
        raise
    return published, due


def _published_at(raw: bytes | str) -> float | None:
    try:
        value = json.loads(raw)["headers"]["published_at"]
    except (ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def recover_lost(rt: Runtime, broker: Any) -> int:
    """Publish again the chunks whose message a worker took off a Redis queue and lost
    before claiming them (see :mod:`outbox.core.store.unclaimed`); how many. Two round
    trips: the oldest message of every queue, then the unclaimed chunks older than it."""
    store = rt.store
    now = store.now()
    pipe = broker.pipeline(transaction=False)
    for queue in Queue:
        pipe.lindex(queue.value, -1)
    cutoffs = {}
    for queue, oldest in zip(Queue, pipe.execute(), strict=True):
        waiting_since = _published_at(oldest) if oldest is not None else None
        cutoffs[queue.value] = (waiting_since if waiting_since is not None else now) - LOST_AFTER
    found = 0
    for queue_name, lost in store.unclaimed.older_than_many(cutoffs).items():
        queue = Queue(queue_name)
        if not lost:
            continue
        tasks = {c: chunk_task(store.batches, c) for c in lost}
        store.unclaimed.forget(queue.value, [c for c, task in tasks.items() if task is None])
        again = [task for task in tasks.values() if task is not None]
        if again:
            logger.warning(
                "%d chunk(s) of queue %s were taken by a worker that died before claiming "
                "them; published again: %s",
                len(again),
                queue.value,
                ", ".join(str(t.args[0]) for t in again[:5]),
            )
            found += publish(again, store=store)
    return found


class Relay(threading.Thread):
    """The per-process thread that runs :func:`relay_pass` whenever something is due."""

    def __init__(self) -> None:
        super().__init__(name="outbox-relay", daemon=True)
        self.stopped = threading.Event()

    def run(self) -> None:
        broker = broker_client()
        while not self.stopped.is_set():
            try:
                rt = get_runtime()
                self._once(rt, broker)
            except Exception:  # a Redis blip must not kill the thread
                if self.stopped.is_set():
                    return  # stopping: its connection may have been closed under it
                logger.exception("relaying parked tasks failed; trying again")
                self.stopped.wait(1.0)

    def _once(self, rt: Runtime, broker: Any) -> None:
        _, due = relay_pass(rt)
        wait = IDLE_WAKE if due.next_in is None else min(due.next_in, IDLE_WAKE)
        if due.held:
            probe_hold(rt)
            wait = min(wait, rt.settings.hold_probe_interval)
        if due.look_for_lost and broker is not None:
            recover_lost(rt, broker)
        if len(due.calls) >= TAKE_LIMIT or len(due.expired) >= TAKE_LIMIT:
            wait = 0.0  # more is due than one take holds
        if not self.stopped.is_set():
            rt.store.parked.wait(max(wait, 0.0))

    def stop(self) -> None:
        self.stopped.set()


_relay: Relay | None = None


@worker_ready.connect
def _start(sender: Any = None, **_: Any) -> None:
    global _relay
    if _relay is None:
        _relay = Relay()
        _relay.start()


@worker_shutting_down.connect
def _wake_waiters(**_: Any) -> None:
    """A warm shutdown waits for running tasks: senders waiting for a slot give it back
    (their tasks return to the broker) instead of holding the shutdown up."""
    rt = get_runtime()
    rt.store.limits.stop_waiting(rt.send_limit, list(rt.waiting))


@worker_shutdown.connect
def _stop(**_: Any) -> None:
    global _relay
    if _relay is not None:
        _relay.stop()
        _relay = None
