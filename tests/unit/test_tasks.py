"""Send tasks run in-process on fakeredis and the in-memory broker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from celery.exceptions import Retry

from outbox import send_email
from outbox.worker import tasks
from outbox.worker.runtime import Runtime, set_runtime
from outbox.worker.settings import Settings
from tests.unit.worker_run import run_task


@pytest.fixture
def slow_runtime() -> Iterator[Runtime]:
    """2 sends a second, and an API address where nothing listens: a send attempt
    would show as a transport error and a spent attempt."""
    settings = Settings(
        SMTP2GO_API_KEY="api-" + "0" * 32,
        SMTP2GO_BASE_URL="http://127.0.0.1:9/v3",
        OUTBOX_RATE_LIMIT="2/s",
    )
    rt = Runtime.from_settings(settings, redis_client=fakeredis.FakeRedis())
    set_runtime(rt)
    yield rt
    set_runtime(None)


def test_a_cool_down_during_the_slot_sleep_sends_nothing_and_spends_no_attempt(
    slow_runtime: Runtime, memory_broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = slow_runtime
    handle = send_email("from@example.com", ["to@example.org"], "Hi", text_body="x")
    [(name, args, _)] = memory_broker.drain()
    assert name == "outbox.send_email"
    assert rt.send_limiter.try_acquire().granted  # the slot now is someone else's
    slept: list[float] = []
    real_sleep = time.sleep

    def sleep_through_a_429(seconds: float) -> None:
        slept.append(seconds)
        real_sleep(seconds)  # the slot's time does come
        rt.send_limiter.cool_down(5)  # another worker got a 429 meanwhile

    monkeypatch.setattr(tasks.time, "sleep", sleep_through_a_429)
    with pytest.raises(Retry) as caught:
        run_task(tasks.send_email, *args)

    assert 0.4 < slept[0] < 0.6  # it slept for its slot, ~half a second ahead
    assert caught.value.when is not None
    assert 4.5 < float(caught.value.when) < 7  # back after the cool-down, jittered
    chunk = rt.store.get_chunk_raw(args[0])
    assert (chunk["state"], chunk["attempts"]) == ("queued", "0")
    record = rt.store.get_batch_raw(handle.id)
    assert record["n:queued"] == "1"
    assert record.get("n:sending", "0") == "0"
    [(again, again_args, _)] = memory_broker.drain()  # the requeued task
    assert (again, again_args[0]) == ("outbox.send_email", args[0])
