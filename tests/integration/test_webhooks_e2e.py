"""Webhooks end to end: the sandbox posts events to a real receiver process, which
publishes them to the real broker, where a real worker puts them on the records.

The sandbox posts the real service's shapes (``sandbox/webhook_bodies.py``): one ``processed``
per email listing its ``recipients``, then ``delivered``/``bounce`` per recipient, and
``sms_*`` events per number, each with its own ``id``.
"""

from __future__ import annotations

import collections
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from outbox import Handle, Record, send_email, send_sms
from outbox.core.states import State
from outbox.core.store import keys
from outbox.worker.runtime import Runtime
from support.procs import PYTHON, ROOT, free_port, running
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, wait_all_done

pytestmark = pytest.mark.integration

SECRET = "e2e-webhook-secret-0123456789"
EVENTS = ["processed", "delivered", "bounce"]
#: The sandbox's default bounce domain (``bounce.example.net``) is a special-use name that the
#: producers' address validation refuses, so the tests move it to one both accept.
BOUNCE_DOMAIN = "bounce.example.org"
BOUNCER = f"x@{BOUNCE_DOMAIN}"


@dataclass
class Receiver:
    url: str
    log: Path


@pytest.fixture
def receiver(redis_db: tuple[str, str], tmp_path: Path) -> Iterator[Receiver]:
    """``python -m outbox.worker.webhooks`` on a free port, publishing to the test broker."""
    port = free_port()
    log = tmp_path / "webhooks.log"
    args = [PYTHON, "-m", "outbox.worker.webhooks", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--secret", SECRET]
    broker, records = redis_db
    env = {"CELERY_BROKER_URL": broker, "OUTBOX_REDIS_URL": records}
    with running(args, ready_url=f"http://127.0.0.1:{port}/healthz", env=env, log=log):
        yield Receiver(url=f"http://127.0.0.1:{port}/webhooks/smtp2go", log=log)


def add_webhook(
    sandbox: Sandbox,
    url: str,
    *,
    output_format: str,
    auth_type: str,
    auth_value: str,
    sms_events: tuple[str, ...] = (),
) -> int:
    response = httpx.post(
        f"{sandbox.base_url}/webhook/add",
        json={
            "url": url,
            "events": EVENTS,
            "sms_events": list(sms_events),
            "output_format": output_format,
            "auth_header_type": auth_type,
            "auth_header_value": auth_value,
        },
        headers={"X-Smtp2go-Api-Key": sandbox.api_key},
        timeout=5,
    )
    response.raise_for_status()
    return int(response.json()["data"]["id"])


def deliveries(sandbox: Sandbox) -> dict[str, Any]:
    response = httpx.get(f"{sandbox.url}/_sandbox/webhooks", timeout=5)
    response.raise_for_status()
    return dict(response.json())


def wait_record(
    handle: Handle, predicate: Callable[[Record], bool], *, timeout: float = 30.0, what: str = ""
) -> Record:
    """The handle's record once ``predicate`` holds (fails with its events if never)."""
    deadline = time.monotonic() + timeout
    record = handle.status()
    while not predicate(record):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what or 'condition'} not met after {timeout:.0f}s: {record.events}"
            )
        time.sleep(0.1)
        record = handle.status()
    return record


def names(record: Record) -> collections.Counter[str]:
    return collections.Counter(str(e["event"]) for e in record.events)


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    ("output_format", "auth_type", "auth_value"),
    [
        ("json", "bearer", SECRET),
        ("form", "bearer", SECRET),
        ("form", "basic", f"smtp2go:{SECRET}"),
    ],
    ids=["json-bearer", "form-bearer", "form-basic"],
)
def test_delivery_and_bounce_events_reach_the_records(
    fleet: Fleet,
    producer: Runtime,
    sandbox: Sandbox,
    receiver: Receiver,
    output_format: str,
    auth_type: str,
    auth_value: str,
) -> None:
    add_webhook(
        sandbox,
        receiver.url,
        output_format=output_format,
        auth_type=auth_type,
        auth_value=auth_value,
    )
    sandbox.configure(bounce_domain=BOUNCE_DOMAIN)
    fleet.start(concurrency=4)

    handle = send_email("shop@example.com", ["ann@example.org"], "Receipt", text_body="thanks")
    [sent] = wait_all_done([handle], timeout=60)
    assert sent.state is State.SENT
    [email_id] = sent.email_ids
    record = wait_record(
        handle,
        lambda r: names(r)["delivered"] >= 1 and names(r)["processed"] >= 1,
        what="delivered",
    )
    assert names(record) == {"processed": 1, "delivered": 1}
    delivered = next(e for e in record.events if e["event"] == "delivered")
    assert delivered["email_id"] == email_id
    assert delivered["rcpt"] == "ann@example.org"
    assert delivered["subject"] == "Receipt"
    processed = next(e for e in record.events if e["event"] == "processed")
    assert processed["recipients"] == ["ann@example.org"]
    assert processed["rcpt"] is None
    assert [e["event"] for e in record.events] == ["processed", "delivered"]  # by received_at
    assert all(len(e["event_id"]) == 32 for e in record.events)
    assert delivered["message"].startswith("250 ")
    assert record.ledger == {"delivered": 1}

    bounced = send_email("shop@example.com", [BOUNCER], "Hello", text_body="hi")
    record = wait_record(bounced, lambda r: names(r)["bounce"] >= 1, what="bounce")
    bounce = next(e for e in record.events if e["event"] == "bounce")
    assert bounce["bounce"] == "hard"
    assert bounce["rcpt"] == BOUNCER
    assert bounce["email_id"] == record.email_ids[0]
    assert "delivered" not in names(record)
    assert record.ledger == {"hard-bounced": 1}
    assert producer.redis.sismember(keys.suppressed(), BOUNCER)

    shouting = BOUNCER.upper()
    again = send_email("shop@example.com", [shouting], "Hello again", text_body="hi")
    assert again.rejected == (shouting,)
    assert again.chunks == 0
    # Every delivery was accepted at once: authenticated, parsed, answered 200.
    log = deliveries(sandbox)["deliveries"]
    assert log
    assert all(d["ok"] and d["status"] == 200 and d["attempts"] == 1 for d in log), log
    # Nothing strayed: every event found its message.
    assert producer.redis.llen(keys.webhook_unmatched()) == 0


@pytest.mark.timeout(150)
def test_each_notification_is_recorded_once(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, receiver: Receiver
) -> None:
    # Two webhooks to the same receiver, one JSON and one form: every event arrives twice,
    # in two encodings, each time as a notification of its own (its own ``id``).
    add_webhook(sandbox, receiver.url, output_format="json", auth_type="bearer", auth_value=SECRET)
    add_webhook(sandbox, receiver.url, output_format="form", auth_type="bearer", auth_value=SECRET)
    fleet.start(concurrency=4)
    handle = send_email(
        "shop@example.com", ["ann@example.org", "bob@example.org"], "Hi", text_body="x"
    )
    wait_all_done([handle], timeout=60)
    # 2 hooks x (1 processed for the email + 1 delivered per recipient)
    wait_until_deliveries_settle(sandbox, expected=2 * (1 + 2))
    record = wait_record(handle, lambda r: names(r)["delivered"] >= 4, what="four delivered")
    time.sleep(1.0)  # let any late duplicate reach the worker
    record = handle.status()
    assert names(record) == {"processed": 2, "delivered": 4}, record.events
    assert len({e["event_id"] for e in record.events}) == 6
    assert {e["rcpt"] for e in record.events if e["event"] == "delivered"} == {
        "ann@example.org",
        "bob@example.org",
    }
    # Each recipient moved once, whichever notification came first.
    assert record.ledger == {"delivered": 2}

    # The provider's retries (the same notification, its ``id`` unchanged), in either
    # encoding, change nothing.
    auth = {"Authorization": f"Bearer {SECRET}"}
    for event in record.events:
        raw = event["raw"]
        assert httpx.post(receiver.url, json=raw, headers=auth, timeout=5).status_code == 200
        form = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
        body = str(httpx.QueryParams(raw))
        assert httpx.post(receiver.url, content=body, headers=form, timeout=5).status_code == 200
    time.sleep(1.5)
    again = handle.status()
    assert names(again) == {"processed": 2, "delivered": 4}
    assert again.ledger == {"delivered": 2}


@pytest.mark.timeout(150)
def test_sms_events_reach_their_numbers(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, receiver: Receiver
) -> None:
    lifecycle = ("sending", "submitted", "delivered")
    add_webhook(
        sandbox,
        receiver.url,
        output_format="form",
        auth_type="bearer",
        auth_value=SECRET,
        sms_events=lifecycle,
    )
    fleet.start(concurrency=4)
    numbers = ["+61400000001", "+61400000002"]
    handle = send_sms(numbers, "Your parcel is on its way")
    [sent] = wait_all_done([handle], timeout=60)
    assert sent.state is State.SENT
    message_ids = sent.chunks[0].message_ids
    assert set(message_ids) == set(numbers)
    # An event that beat the worker's record of the answer is looked for again shortly.
    expected = {name: 2 for name in lifecycle}
    record = wait_record(handle, lambda r: names(r) == expected, what="every SMS event")
    for event in record.events:
        assert event["channel"] == "sms"
        assert event["provider_event"] == f"sms_{event['event']}"
        assert event["message_id"] == message_ids[event["rcpt"]]
    assert record.ledger == {"delivered": 2}
    assert producer.redis.llen(keys.webhook_unmatched()) == 0


def wait_until_deliveries_settle(sandbox: Sandbox, *, expected: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = deliveries(sandbox)
        done = [d for d in state["deliveries"] if d["status"] is not None or d["error"]]
        if len(done) >= expected and state["pending"] == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"sandbox webhook deliveries not settled: {deliveries(sandbox)}")


@pytest.mark.timeout(120)
def test_wrong_secret_is_refused_and_records_nothing(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, receiver: Receiver
) -> None:
    sandbox.configure(webhook_retries=0)
    add_webhook(
        sandbox, receiver.url, output_format="json", auth_type="bearer", auth_value="not-the-secret"
    )
    fleet.start(concurrency=2)
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    wait_all_done([handle], timeout=60)
    wait_until_deliveries_settle(sandbox, expected=2)
    log = deliveries(sandbox)["deliveries"]
    assert [d["status"] for d in log] == [401, 401], log
    time.sleep(1.0)
    assert handle.status().events == []


@pytest.mark.timeout(30)
def test_receiver_refuses_to_start_without_a_secret() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OUTBOX_WEBHOOK_SECRET"}
    port = str(free_port())
    result = subprocess.run(
        [PYTHON, "-m", "outbox.worker.webhooks", "--host", "127.0.0.1", "--port", port],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2
    assert b"OUTBOX_WEBHOOK_SECRET" in result.stderr


@pytest.mark.timeout(90)
def test_event_ahead_of_its_record_is_retried_then_parked(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, receiver: Receiver
) -> None:
    fleet.start(concurrency=2)
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    [sent] = wait_all_done([handle], timeout=60)
    chunk_id = sent.chunks[0].id
    auth = {"Authorization": f"Bearer {SECRET}"}
    early = {"event": "open", "email_id": "LATE-1", "rcpt": "ann@example.org", "time": "t1"}
    stray = {"event": "open", "email_id": "NOT-OURS", "rcpt": "ann@example.org", "time": "t1"}
    for body in (early, stray):
        assert httpx.post(receiver.url, json=body, headers=auth, timeout=5).status_code == 200
    # The send is recorded only now (as when a webhook beats the worker's bookkeeping):
    # the task, retrying on the broker, finds it.
    time.sleep(0.5)
    producer.redis.set(keys.email_index("LATE-1"), chunk_id, ex=600)
    record = wait_record(handle, lambda r: names(r)["open"] == 1, what="late open")
    assert record.events[0]["email_id"] == "LATE-1"

    deadline = time.monotonic() + 40
    while producer.redis.llen(keys.webhook_unmatched()) == 0:
        assert time.monotonic() < deadline, "the stray event was never parked"
        time.sleep(0.25)
    [parked] = producer.redis.lrange(keys.webhook_unmatched(), 0, -1)
    assert b"NOT-OURS" in parked
    assert names(handle.status()) == {"open": 1}
    # Each look that found no record yet ended 'not_yet', its next look parked in Redis.
    retries = sum(w.log.read_text(errors="replace").count("'not_yet'") for w in fleet.workers)
    assert retries >= 2, "the tasks never looked again"
