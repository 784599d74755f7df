"""The relay: due parked calls, chunks whose holder died, and messages lost between a
worker's fetch and its claim, published again (fakeredis, the in-memory broker)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import fakeredis
import pytest
from celery import signature
from kombu.exceptions import OperationalError

from outbox import send_email
from outbox.core.queues import TaskName
from outbox.core.states import State
from outbox.core.store import keys
from outbox.core.store.batches import ClaimOutcome
from outbox.core.store.limits import Limit
from outbox.core.store.parked import Call
from outbox.core.windows import parse_windows
from outbox.worker import beat, relay
from outbox.worker.beat import sweep_stuck
from outbox.worker.relay import LOST_AFTER, recover_lost, relay_pass
from outbox.worker.runtime import Runtime


def _message(chunk_id: str, published_at: float) -> bytes:
    """A task message as kombu's Redis transport keeps it on a queue."""
    return json.dumps(
        {"body": "", "headers": {"task": "outbox.send_email", "published_at": published_at}}
    ).encode()


def test_due_calls_and_dead_holders_chunks_are_published(
    runtime: Runtime, memory_broker: Any
) -> None:
    due = send_email(
        "s@example.com", ["a@example.org"], "Hi", text_body="x", send_at=time.time() + 60
    )
    held = send_email("s@example.com", ["b@example.org"], "Hi", text_body="x")
    memory_broker.drain()
    runtime.redis.zadd(keys.parked(), {Call(TaskName.SEND_EMAIL, chunk=f"{due.id}.0").member(0): 0})
    dead = Limit("send", runtime.send_limit.windows, lease=0.01, ttl=600, line_lease=60)
    runtime.store.batches.claim(f"{held.id}.0", limit=dead, worker="gone", token="t", max_wait=5)
    time.sleep(0.05)
    assert relay_pass(runtime)[0] == 2
    published = sorted(args[0] for _, args, _ in memory_broker.drain())
    assert published == sorted([f"{due.id}.0", f"{held.id}.0"])
    assert relay_pass(runtime)[0] == 0  # the parked one released, the held one leased


def test_a_message_lost_before_its_claim_is_found_and_published_again(
    runtime: Runtime, memory_broker: Any
) -> None:
    broker = fakeredis.FakeRedis()
    lost = send_email("s@example.com", ["a@example.org"], "Hi", text_body="x")
    waiting = send_email("s@example.com", ["b@example.org"], "Hi", text_body="x")
    memory_broker.drain()
    stamped = runtime.store.now()
    # A later message still waits on the queue: the older one was taken, never claimed.
    broker.lpush("email", _message(f"{waiting.id}.0", stamped + LOST_AFTER + 1))
    assert recover_lost(runtime, broker) == 2  # the queue's oldest came after both
    runtime.redis.delete(keys.turn("look-for-lost"))
    memory_broker.drain()

    # Once the oldest waiting message is older than a chunk, that chunk may still be
    # waiting behind it: not lost.
    broker.delete("email")
    broker.lpush("email", _message(f"{waiting.id}.0", stamped - 100))
    assert recover_lost(runtime, broker) == 0
    runtime.redis.delete(keys.turn("look-for-lost"))

    # A claim takes a chunk out of the index for good.
    runtime.store.batches.claim(
        f"{lost.id}.0", limit=runtime.send_limit, worker="w", token="t", max_wait=5
    )
    broker.delete("email")
    runtime.redis.zadd(keys.unclaimed("email"), {f"{waiting.id}.0": stamped - 60})
    assert recover_lost(runtime, broker) == 1
    [(name, args, queue)] = memory_broker.drain()
    assert (name, args[0], queue) == ("outbox.send_email", f"{waiting.id}.0", "email")


def test_the_take_says_when_to_look_next_and_what_else_to_do(runtime: Runtime) -> None:
    parked = runtime.store.parked
    first = parked.take(look_every=60)
    assert (first.next_in, first.held, first.look_for_lost) == (None, False, True)
    assert parked.take(look_every=60).look_for_lost is False  # one relay per interval
    parked.park(Call(TaskName.SEND_EMAIL, chunk="a.0"), runtime.store.now() + 30)
    runtime.redis.set(keys.account_hold(), "{}")
    later = parked.take()
    assert later.next_in is not None
    assert 29 <= later.next_in <= 30
    assert later.held is True


def test_a_call_parked_for_sooner_wakes_a_sleeping_relay(runtime: Runtime) -> None:
    """A relay sleeps until the earliest item it knows of; parking one due sooner wakes
    it, parking one due later does not (it would wake for nothing)."""
    parked = runtime.store.parked
    now = runtime.store.now()
    parked.park(Call(TaskName.SEND_EMAIL, chunk="late.0"), now + 600)
    parked.take()  # the relay's last look: it consumed earlier wake-ups
    woke = threading.Event()

    def relay() -> None:
        parked.wait(30)
        woke.set()

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    parked.park(Call(TaskName.SEND_EMAIL, chunk="later.0"), now + 900)
    assert not woke.wait(0.5)
    parked.park(Call(TaskName.SEND_EMAIL, chunk="soon.0"), now + 1)
    assert woke.wait(5)
    thread.join(1)


def test_a_dead_senders_place_in_line_does_not_hold_its_chunk_for_ever(
    runtime: Runtime, memory_broker: Any
) -> None:
    """A worker that died waiting in line for a slot: once its place's lease runs out, the
    copy the relay publishes is claimed, not turned away as another worker's."""
    full = send_email("s@example.com", ["a@example.org"], "Hi", text_body="x")
    queued = send_email("s@example.com", ["b@example.org"], "Hi", text_body="x")
    memory_broker.drain()
    one = Limit("send", parse_windows("1/m"), lease=30, ttl=600, line_lease=0.01)
    batches = runtime.store.batches
    first = batches.claim(f"{full.id}.0", limit=one, worker="w1", token="t1", max_wait=5)
    assert first.outcome is ClaimOutcome.CLAIMED
    waiting = batches.claim(f"{queued.id}.0", limit=one, worker="gone", token="t2", max_wait=5)
    assert waiting.outcome is ClaimOutcome.WAITING
    time.sleep(0.05)
    assert relay_pass(runtime)[0] == 1
    assert [args[0] for _, args, _ in memory_broker.drain()] == [f"{queued.id}.0"]
    again = batches.claim(f"{queued.id}.0", limit=one, worker="w2", token="t3", max_wait=5)
    assert again.outcome is not ClaimOutcome.BUSY


def test_a_callback_whose_worker_died_before_publishing_it_is_published_by_the_sweep(
    runtime: Runtime, memory_broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = signature("myapp.tasks.on_done", options={"queue": "app"})
    handle = send_email("s@example.com", ["a@example.org"], "Hi", text_body="x", callback=done)
    memory_broker.drain()
    batches = runtime.store.batches
    claim = batches.claim(
        f"{handle.id}.0", limit=runtime.send_limit, worker="w", token="t", max_wait=5
    )
    finished = batches.finish(
        claim.chunk_id, State.SENT, limit=runtime.send_limit, member=claim.member
    )
    assert finished.has_callback  # ... and the worker dies before publishing it
    assert sweep_stuck() == 0
    assert memory_broker.drain(("app",)) == []  # within the grace its own worker may yet
    monkeypatch.setattr(beat, "CALLBACK_GRACE", -1.0)
    sweep_stuck()
    [(name, [record], _)] = memory_broker.drain(("app",))
    assert (name, record["id"], record["state"]) == ("myapp.tasks.on_done", handle.id, "sent")
    sweep_stuck()
    assert memory_broker.drain(("app",)) == []  # marked sent: once


def test_a_publish_that_fails_gives_its_take_back_due_in_seconds_not_at_the_leases_end(
    runtime: Runtime, memory_broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    due = send_email(
        "s@example.com", ["a@example.org"], "Hi", text_body="x", send_at=time.time() + 60
    )
    memory_broker.drain()
    member = Call(TaskName.SEND_EMAIL, chunk=f"{due.id}.0").member(0)
    runtime.redis.zadd(keys.parked(), {member: 0})

    def broker_down(*_: Any, **__: Any) -> int:
        raise OperationalError("[Errno 111] Connection refused")

    working = relay.publish
    monkeypatch.setattr(relay, "publish", broker_down)
    with pytest.raises(OperationalError):
        relay_pass(runtime)[0]
    again_in = runtime.redis.zscore(keys.parked(), member) - runtime.store.now()
    assert 0 < again_in <= relay.PUBLISH_RETRY  # not the take's 60 s lease
    monkeypatch.setattr(relay, "publish", working)
    runtime.redis.zadd(keys.parked(), {member: 0})  # ... and the broker is back
    assert relay_pass(runtime)[0] == 1
