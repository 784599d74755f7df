"""Webhooks: management through the API and real deliveries to a receiver on loopback."""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from outbox.sandbox.config import SandboxConfig
from outbox.sandbox.webhooks import retry_delay
from support.procs import wait_until
from tests.conftest import Sandbox
from tests.sandbox.conftest import Receiver, email, field_error, ok

pytestmark = pytest.mark.integration


def add_hook(api: httpx.Client, url: str, **fields: Any) -> int:
    data = ok(api.post("/webhook/add", json={"url": url, **fields}))
    return int(data["id"])


def form(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode(), keep_blank_values=True)


def test_form_events_with_bearer_auth_and_chosen_headers(
    api: httpx.Client, receiver: Receiver
) -> None:
    """One ``processed`` per email, then one event per recipient, as form fields.

    The bodies' shape is pinned field by field in ``test_webhook_bodies.py``.
    """
    add_hook(
        api,
        receiver.url,
        events=["processed", "delivered", "bounce"],
        headers=["X-Outbox-Id"],
        auth_header_type="bearer",
        auth_header_value="s3cret",
    )
    body = email(
        to=["ann@example.org", "bad@bounce.example.net"],
        custom_headers=[{"header": "X-Outbox-Id", "value": "msg-42"}],
    )
    email_id = ok(api.post("/email/send", json=body))["email_id"]
    wait_until(lambda: len(receiver.requests) == 3, timeout=10, what="3 webhook calls")

    for request in receiver.requests:
        assert request.path == "/hooks/smtp2go"
        assert request.headers["Authorization"] == "Bearer s3cret"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    events = [form(r.body) for r in receiver.requests]
    processed, delivered, bounce = events
    assert processed["event"] == ["processed"]
    assert processed["recipients"] == ["ann@example.org", "bad@bounce.example.net"]
    assert "rcpt" not in processed
    assert (delivered["event"], delivered["rcpt"]) == (["delivered"], ["ann@example.org"])
    assert (bounce["event"], bounce["rcpt"]) == (["bounce"], ["bad@bounce.example.net"])
    assert bounce["bounce"] == ["hard"]
    assert "recipients" not in delivered
    for event in events:
        assert event["email_id"] == [email_id]
        assert event["sender"] == ["shop@example.com"]
        assert event["subject"] == ["Your order"]
        assert event["X-Outbox-Id"] == ["msg-42"]
        assert event["message-id"][0].startswith("<")
        assert event["time"][0].endswith("Z")
        assert event["sendtime"][0].endswith("+00:00")


def test_json_events_with_basic_auth(api: httpx.Client, receiver: Receiver) -> None:
    add_hook(
        api,
        receiver.url,
        events=["delivered"],
        output_format="json",
        auth_header_type="basic",
        auth_header_value="user:pass",
    )
    email_id = ok(api.post("/email/send", json=email(to=["a@example.org", "b@example.org"])))[
        "email_id"
    ]
    wait_until(lambda: len(receiver.requests) == 2, timeout=10, what="2 webhook calls")
    expected = "Basic " + base64.b64encode(b"user:pass").decode()
    payloads = []
    for request in receiver.requests:
        assert request.headers["Authorization"] == expected
        assert request.headers["Content-Type"] == "application/json"
        payloads.append(request.json())
    assert [(p["event"], p["rcpt"], p["email_id"]) for p in payloads] == [
        ("delivered", "a@example.org", email_id),
        ("delivered", "b@example.org", email_id),
    ]


def test_basic_value_already_in_base64_is_sent_as_is(api: httpx.Client, receiver: Receiver) -> None:
    encoded = base64.b64encode(b"hook:pw").decode()
    add_hook(
        api, receiver.url, events=["delivered"], auth_header_type="basic", auth_header_value=encoded
    )
    ok(api.post("/email/send", json=email()))
    wait_until(lambda: len(receiver.requests) == 1, timeout=10, what="1 webhook call")
    assert receiver.requests[0].headers["Authorization"] == f"Basic {encoded}"


def test_only_subscribed_events_and_rejects_for_suppressed(
    api: httpx.Client, sandbox: Sandbox, receiver: Receiver
) -> None:
    add_hook(api, receiver.url, events=["reject"], output_format="json")
    ok(api.post("/suppression/add", json={"email_address": "gone@example.org"}))
    ok(api.post("/email/send", json=email(to=["ann@example.org", "gone@example.org"])))
    wait_until(lambda: len(receiver.requests) == 1, timeout=10, what="the reject event")
    time.sleep(0.2)
    assert [(r.json()["event"], r.json()["rcpt"]) for r in receiver.requests] == [
        ("reject", "gone@example.org")
    ]


def test_a_failing_receiver_is_retried(
    api: httpx.Client, sandbox: Sandbox, receiver: Receiver
) -> None:
    sandbox.configure(webhook_backoff=0.05)
    receiver.fail_next = 2
    add_hook(api, receiver.url, events=["delivered"], output_format="json")
    email_id = ok(api.post("/email/send", json=email()))["email_id"]
    wait_until(lambda: sandbox.stats()["webhooks_delivered"] == 1, timeout=10, what="delivery")
    assert len(receiver.requests) == 3
    assert {r.json()["email_id"] for r in receiver.requests} == {email_id}
    log = httpx.get(f"{sandbox.url}/_sandbox/webhooks").json()
    [entry] = log["deliveries"]
    assert entry["attempts"] == 3
    assert entry["ok"] is True
    assert entry["status"] == 200


def test_a_slow_receiver_times_out_and_is_retried(
    api: httpx.Client, sandbox: Sandbox, receiver: Receiver
) -> None:
    sandbox.configure(webhook_backoff=0.05, webhook_timeout=0.3)
    receiver.slow_next, receiver.delay = 1, 1.0
    add_hook(api, receiver.url, events=["delivered"], output_format="json")
    started = time.monotonic()
    ok(api.post("/email/send", json=email()))
    assert time.monotonic() - started < 0.5  # the send's answer never waits for webhooks
    wait_until(lambda: sandbox.stats()["webhooks_delivered"] == 1, timeout=10, what="delivery")
    assert len(receiver.requests) == 2


def test_the_default_schedule_is_the_services_35_retries_over_about_48_hours() -> None:
    """Webhooks page: "retried up to 35 times over 48 hours" (the spacing is assumed:
    doubling from a minute, at most 100 minutes apart)."""
    config = SandboxConfig()
    delays = [retry_delay(config.webhook_backoff, n) for n in range(config.webhook_retries)]
    assert config.webhook_retries == 35
    assert delays[0] == 60
    assert max(delays) == 6000
    assert 46 <= sum(delays) / 3600 <= 50


def test_retries_are_bounded(api: httpx.Client, sandbox: Sandbox, receiver: Receiver) -> None:
    sandbox.configure(webhook_backoff=0.01, webhook_retries=2)
    receiver.fail_next = 100
    add_hook(api, receiver.url, events=["delivered"])
    ok(api.post("/email/send", json=email()))
    wait_until(lambda: sandbox.stats()["webhooks_failed"] == 1, timeout=10, what="giving up")
    assert len(receiver.requests) == 3
    assert httpx.get(f"{sandbox.url}/_sandbox/webhooks").json()["deliveries"][0]["ok"] is False


def test_sms_events(api: httpx.Client, receiver: Receiver) -> None:
    """Subscribed as ``submitted``/``delivered``, posted as ``sms_submitted``/``sms_delivered``."""
    add_hook(api, receiver.url, sms_events=["submitted", "delivered"], output_format="json")
    data = ok(api.post("/sms/send", json={"destination": ["+61400000000"], "content": "hi"}))
    wait_until(lambda: len(receiver.requests) == 2, timeout=10, what="2 SMS events")
    payloads = [r.json() for r in receiver.requests]
    assert [p["event"] for p in payloads] == ["sms_submitted", "sms_delivered"]
    assert {p["message_id"] for p in payloads} == {data["messages"][0]["message_id"]}
    assert {p["destination_number"] for p in payloads} == {"+61400000000"}


def test_other_hosts_are_never_called(api: httpx.Client, sandbox: Sandbox) -> None:
    add_hook(api, "https://hooks.example.invalid/smtp2go", events=["delivered"])
    ok(api.post("/email/send", json=email()))
    wait_until(lambda: sandbox.stats()["webhooks_skipped"] == 1, timeout=10, what="a skip")
    assert sandbox.stats()["webhooks_delivered"] == 0


def test_webhook_management(api: httpx.Client, receiver: Receiver) -> None:
    first = add_hook(api, receiver.url, events=["delivered"])
    second = add_hook(api, receiver.url + "?b", events=["bounce"], sms_events=["delivered"])
    assert first != second
    listed = ok(api.post("/webhook/view", json={}))
    assert [h["id"] for h in listed] == [first, second]
    one = ok(api.post("/webhook/view", json={"id": second}))
    assert one["events"] == ["bounce"]
    assert one["sms_events"] == ["delivered"]
    assert one["output_format"] == "form"

    edited = ok(api.post("/webhook/edit", json={"id": first, "events": ["open", "click"]}))
    assert edited["events"] == ["open", "click"]
    assert edited["url"] == receiver.url
    removed = ok(api.post("/webhook/remove", json={"id": first}))
    assert removed["id"] == first
    assert field_error(api.post("/webhook/view", json={"id": first}), 404) == "id"
    assert field_error(api.post("/webhook/remove", json={"id": first}), 404) == "id"


@pytest.mark.parametrize(
    ("body", "fieldname"),
    [
        ({"events": ["delivered"]}, "url"),
        ({"url": "not a url", "events": ["delivered"]}, "url"),
        ({"url": "http://127.0.0.1/h", "events": "delivered"}, "events"),
        (
            {"url": "http://127.0.0.1/h", "events": ["open"], "output_format": "xml"},
            "output_format",
        ),
        (
            {"url": "http://127.0.0.1/h", "events": ["open"], "auth_header_type": "digest"},
            "auth_header_type",
        ),
    ],
    ids=["no url", "bad url", "events not a list", "format", "auth"],
)
def test_invalid_webhook(api: httpx.Client, body: dict[str, Any], fieldname: str) -> None:
    assert field_error(api.post("/webhook/add", json=body)) == fieldname


def test_webhook_ids_are_integers(api: httpx.Client, receiver: Receiver) -> None:
    hook = add_hook(api, receiver.url, events=["delivered"])
    assert field_error(api.post("/webhook/view", json={"id": str(hook)})) == "id"
