"""The queue end to end: producers -> Redis broker -> celery worker -> sandbox."""

from __future__ import annotations

import collections
import json
import os

import pytest

from outbox import send_email, send_mime, send_sms, send_template
from outbox.core.states import State
from outbox.worker.runtime import Runtime
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, sandbox_recipients, scan_redis_for, wait_all_done

pytestmark = pytest.mark.integration


def _template(sandbox: Sandbox) -> str:
    import httpx

    body = {
        "id": "welcome-01",
        "template_name": "welcome",
        "subject": "Welcome {{ name }}",
        "html_body": "<p>Hi {{ name }}</p>",
        "text_body": "Hi {{ name }}",
    }
    r = httpx.post(
        f"{sandbox.base_url}/template/add",
        json=body,
        headers={"X-Smtp2go-Api-Key": sandbox.api_key},
        timeout=5,
    )
    r.raise_for_status()
    return "welcome-01"


@pytest.mark.timeout(180)
def test_mixed_thousand_recipients_exactly_once(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    template_id = _template(sandbox)
    fleet.start(concurrency=30)
    handles = []
    expected: list[str] = []
    for n in range(3):  # three 250-recipient newsletters: 3 chunks each
        to = [f"news{n}-{i}@example.com" for i in range(250)]
        handles.append(send_email("News <news@example.com>", to, "Issue", html_body="<p>x</p>"))
        expected += to
    for i in range(100):
        to = [f"single{i}@example.com"]
        handles.append(send_email("shop@example.com", to, f"Order {i}", text_body="thanks"))
        expected += to
    for i in range(50):
        to = [f"tmpl{i}@example.com"]
        handles.append(send_template("hi@example.com", to, template_id, {"name": f"N{i}"}))
        expected += to
    for i in range(50):
        to = f"mime{i}@example.com"
        mime = f"From: a@example.com\r\nTo: {to}\r\nSubject: m{i}\r\n\r\nbody {i}\r\n"
        handles.append(send_mime(mime))
        expected.append(to)
    numbers = [f"+614000{i:05d}" for i in range(50)]
    handles.append(send_sms(numbers, "Your code is 1234"))
    expected += numbers
    assert len(expected) == 1000

    records = wait_all_done(handles, timeout=120)
    delivered = collections.Counter(sandbox_recipients(sandbox)())
    assert sorted(delivered) == sorted(expected)
    assert max(delivered.values()) == 1, [a for a, n in delivered.items() if n > 1][:5]
    for record in records:
        assert record.state is State.SENT, record
        for chunk in record.chunks:
            assert chunk.email_id or chunk.message_ids, chunk
    assert records[0].chunks_total == 3
    # Each chunk is one email: the API's succeeded counts emails, not its 100 recipients.
    assert sum(len(c.recipients) for c in records[0].chunks) == 250

    # The API key never reaches Redis: neither the broker's messages nor the records.
    urls = os.environ["CELERY_BROKER_URL"], os.environ["OUTBOX_REDIS_URL"]
    assert scan_redis_for(sandbox.api_key, *urls) == []


@pytest.mark.timeout(120)
def test_bad_request_fails_without_retry_and_records_field_errors(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    # A template the account does not have: the API refuses the payload with a 400 naming
    # the field. (An unverified sender is no 400: the API answers 200 with failed: 1.)
    fleet.start(concurrency=4)
    handle = send_template("hi@example.com", ["a@example.com"], "no-such-template", {})
    [record] = wait_all_done([handle], timeout=30)
    assert record.state is State.FAILED
    chunk = record.chunks[0]
    assert chunk.attempts == 1
    assert chunk.last_error is not None
    assert chunk.last_error["status_code"] == 400
    assert "template_id" in json.dumps(chunk.last_error)
    assert sandbox.stats()["by_endpoint"]["email/send"]["requests"] == 1


@pytest.mark.timeout(150)
def test_faults_end_sent_exactly_once_and_dead_letters_replay(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    from outbox import status
    from outbox.worker.publish import chunk_task, publish

    sandbox.configure(fail_rate=0.3)
    fleet.start(concurrency=20, OUTBOX_MAX_ATTEMPTS="12")
    handles = [
        send_email("s@example.com", [f"f{i}@example.com"], "x", text_body="y") for i in range(60)
    ]
    records = wait_all_done(handles, timeout=90)
    assert all(r.state is State.SENT for r in records)
    delivered = collections.Counter(sandbox_recipients(sandbox)())
    assert delivered == collections.Counter(f"f{i}@example.com" for i in range(60))
    assert any(c.attempts > 1 for r in records for c in r.chunks)
    assert sandbox.stats()["injected_failures"] > 0

    # A permanently failing endpoint: dead after the attempt cap, then replayed once healed.
    sandbox.configure(fail_rate=1.0)
    handle = send_email("s@example.com", ["dead@example.com"], "x", text_body="y")
    [record] = wait_all_done([handle], timeout=60)
    assert record.state is State.DEAD
    assert record.chunks[0].attempts == 12
    chunk_id = record.chunks[0].id
    assert [c for c, _ in producer.store.batches.dead_letters()] == [chunk_id]

    sandbox.configure(fail_rate=0.0)
    assert producer.store.batches.replay(chunk_id)
    task = chunk_task(producer.store.batches, chunk_id)
    assert task is not None
    publish([task], store=producer.store)
    [record] = wait_all_done([handle], timeout=30)
    assert record.state is State.SENT
    assert status(handle.id).chunks[0].replays == 1
    assert producer.store.batches.dead_letters() == []
    assert sandbox_recipients(sandbox)().count("dead@example.com") == 1
    assert json.dumps(record.model_dump(mode="json")).count(sandbox.api_key) == 0
