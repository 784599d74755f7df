"""Fault tests: the webhook receiver flooded with events, duplicates and garbage.

A real receiver process (``python -m outbox.worker.webhooks``) publishes to the session's
broker and a real worker records the events; 10,000 requests arrive at once from an
``httpx.AsyncClient``.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from outbox import send_email
from outbox.core.store import keys
from outbox.worker.runtime import Runtime
from support.procs import PYTHON, free_port, running, wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, wait_all_done
from tests.integration.test_faults import SENDER, assert_intent, delivered

pytestmark = pytest.mark.integration

SECRET = "flood-webhook-secret-0123456789"
AUTH = {"Authorization": f"Bearer {SECRET}"}
EVENTS = ("processed", "delivered", "open", "click")


@dataclass
class Receiver:
    url: str
    health: str
    log: Path


@pytest.fixture
def receiver(redis_db: tuple[str, str], tmp_path: Path) -> Iterator[Receiver]:
    port = free_port()
    log = tmp_path / "webhooks.log"
    args = [PYTHON, "-m", "outbox.worker.webhooks", "--host", "127.0.0.1", "--port", str(port)]
    env = {
        "CELERY_BROKER_URL": redis_db[0],
        "OUTBOX_REDIS_URL": redis_db[1],
        "OUTBOX_WEBHOOK_SECRET": SECRET,
    }
    base = f"http://127.0.0.1:{port}"
    with running(args, ready_url=f"{base}/healthz", env=env, log=log):
        yield Receiver(url=f"{base}/webhooks/smtp2go", health=f"{base}/healthz", log=log)


#: Bodies that are not events: each is answered 400 and publishes nothing.
GARBAGE: list[tuple[bytes, str]] = [
    (b"{not json", "application/json"),
    (b"[1, 2, 3]", "application/json"),
    (b'{"email_id": "x"}', "application/json"),  # no event name
    (b'{"event": ""}', "application/json"),
    (json.dumps({"event": "x" * 500}).encode(), "application/json"),
    (b'"just a string"', "application/json"),
    (b"\xff\xfe\x00garbage", "application/octet-stream"),
    (b"email_id=abc&rcpt=a%40b.c", "application/x-www-form-urlencoded"),  # no event
    (b"", "application/json"),
    (b"[" * 5000 + b"]" * 5000, "application/json"),  # nested past any sane depth
]


@dataclass
class Request:
    body: bytes
    content_type: str
    #: The digest-identity of the event, ``None`` for garbage.
    key: tuple[Any, ...] | None


def flood(
    email_ids: dict[str, str], *, unique: int, duplicates: int, garbage: int
) -> list[Request]:
    """``unique`` distinct events over the messages, then repeats of some, then junk."""
    rng = random.Random(7)
    valid: list[Request] = []
    ids = sorted(email_ids)
    for n in range(unique):
        email_id = ids[n % len(ids)]
        event = {
            "event": EVENTS[n % len(EVENTS)],
            "email_id": email_id,
            "rcpt": email_ids[email_id],
            "time": f"2024-01-01T00:00:{n // 60 % 60:02d}.{n:06d}Z",
            "sender": SENDER,
        }
        if n % 3 == 0:  # SMTP2GO's default output format
            valid.append(Request(_form(event), "application/x-www-form-urlencoded", _key(event)))
        else:
            valid.append(Request(json.dumps(event).encode(), "application/json", _key(event)))
    repeats = [rng.choice(valid) for _ in range(duplicates)]
    junk = [Request(*GARBAGE[i % len(GARBAGE)], None) for i in range(garbage)]
    requests = valid + repeats + junk
    rng.shuffle(requests)
    return requests


def _form(event: dict[str, str]) -> bytes:
    return str(httpx.QueryParams(event)).encode()


def _key(event: dict[str, str]) -> tuple[Any, ...]:
    return (event["event"], event["email_id"], event["time"])


async def post_all(
    receiver: Receiver, requests: list[Request], *, clients: int = 8, connections: int = 4
) -> tuple[list[int], list[float], list[float]]:
    """Every request at once (``clients`` x ``connections`` in flight); statuses,
    latencies, and the latencies of health checks made meanwhile.

    Several small clients rather than one with many connections: httpx's pool costs
    grow with its size, and the test would measure the client instead of the receiver.
    """
    statuses: list[int] = [0] * len(requests)
    latencies: list[float] = [0.0] * len(requests)
    health: list[float] = []
    pending = list(range(len(requests)))

    async def client() -> None:
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as http:

            async def sender() -> None:
                while pending:
                    i = pending.pop()
                    request = requests[i]
                    headers = {**AUTH, "Content-Type": request.content_type}
                    started = time.perf_counter()
                    response = await http.post(receiver.url, content=request.body, headers=headers)
                    latencies[i] = time.perf_counter() - started
                    statuses[i] = response.status_code

            await asyncio.gather(*(sender() for _ in range(connections)))

    async def prober() -> None:
        async with httpx.AsyncClient(timeout=10.0) as probe:
            while pending:
                started = time.perf_counter()
                (await probe.get(receiver.health)).raise_for_status()
                health.append(time.perf_counter() - started)
                await asyncio.sleep(0.2)

    await asyncio.gather(prober(), *(client() for _ in range(clients)))
    return statuses, latencies, health


def recorded_events(rt: Runtime, chunk_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    pipe = rt.redis.pipeline(transaction=False)
    for chunk_id in chunk_ids:
        pipe.hvals(keys.chunk_events(chunk_id))
    return {
        chunk_id: [json.loads(v) for v in values]
        for chunk_id, values in zip(chunk_ids, pipe.execute(), strict=True)
    }


@pytest.mark.timeout(120)
def test_webhook_flood_records_each_valid_event_once(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, receiver: Receiver
) -> None:
    """10,000 requests at once: 8,000 distinct events, 1,000 repeats, 1,000 junk bodies.

    Fault: The webhook receiver flooded: 10,000 concurrent posts, repeats and junk among
        them
    Outcome: every valid event recorded once on its message (repeats collapse), every
        junk body answered 400 and dropped, `/healthz` answers throughout; timings in
        `docs/reliability.md`
    """
    fleet.start(concurrency=20)
    handles = [send_email(SENDER, [f"hook{i}@example.org"], "x", text_body="y") for i in range(10)]
    records = wait_all_done(handles, timeout=30)
    assert_intent(records, delivered(sandbox))
    email_ids = {r.email_ids[0]: r.chunks[0].recipients[0] for r in records}
    chunk_of = {r.email_ids[0]: r.chunks[0].id for r in records}

    requests = flood(email_ids, unique=8000, duplicates=1000, garbage=1000)
    started = time.monotonic()
    statuses, latencies, health = asyncio.run(post_all(receiver, requests))
    posted = time.monotonic()

    for request, status in zip(requests, statuses, strict=True):
        assert status == (400 if request.key is None else 200), (status, request.body[:80])
    wanted: dict[str, set[tuple[Any, ...]]] = {chunk_id: set() for chunk_id in chunk_of.values()}
    for request in requests:
        if request.key is not None:
            wanted[chunk_of[request.key[1]]].add(request.key)
    assert sum(len(v) for v in wanted.values()) == 8000

    def all_recorded() -> bool:
        found = recorded_events(producer, list(wanted))
        return sum(len(v) for v in found.values()) >= 8000

    wait_until(all_recorded, timeout=60, interval=0.5, what="8,000 events recorded")
    recorded = time.monotonic()
    found = recorded_events(producer, list(wanted))
    for chunk_id, events in found.items():
        keys_found = [(e["event"], e["email_id"], e["time"]) for e in events]
        assert len(keys_found) == len(set(keys_found)), f"{chunk_id} has an event twice"
        assert set(keys_found) == wanted[chunk_id]
    assert producer.redis.llen(keys.webhook_unmatched()) == 0
    assert health, "no health check ran during the flood"
    assert max(health) < 2.0, f"/healthz took {max(health):.2f}s under the flood"
    p50, p99 = (
        statistics.quantiles(latencies, n=100)[49],
        statistics.quantiles(latencies, n=100)[98],
    )
    print(
        f"\nwebhook flood: 10,000 posts answered in {posted - started:.1f}s "
        f"({10000 / (posted - started):.0f}/s; p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
        f"/healthz max {max(health) * 1000:.0f} ms); all 8,000 events recorded "
        f"{recorded - started:.1f}s after the first post"
    )
