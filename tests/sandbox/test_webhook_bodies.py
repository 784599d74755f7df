"""Webhook bodies in the shape the real service posts them.

Sources: the two bodies captured live on 2026-03-24 in Alos-no/Smtp2Go.NET
``tests/Smtp2Go.NET.UnitTests/Models/WebhookPayloadFormParsingTests.cs`` (a ``processed``
and a ``delivered``, form-encoded), the payload tables of
https://developers.smtp2go.com/docs/webhooks-overview (email and SMS fields, retries),
and the OpenAPI 3.0.4 ``/webhook/add`` (``output_format`` form or json).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from support.procs import wait_until
from tests.conftest import Sandbox
from tests.sandbox.conftest import Receiver, email, ok

pytestmark = pytest.mark.integration

#: ``time`` as captured: ``2026-03-24T08:23:19Z``.
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
#: ``sendtime`` as captured: ``2026-03-24T08:23:19.052765+00:00``.
SENDTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
#: ``id`` as captured: ``6dfa7d3b4514c1f5f0e916bc0cc0395c``.
EVENT_ID = re.compile(r"^[0-9a-f]{32}$")
#: Every key of both captured bodies.
COMMON = {
    "Message-Id",
    "Subject",
    "auth",
    "email_id",
    "event",
    "from",
    "from_address",
    "from_name",
    "id",
    "message-id",
    "sender",
    "sendtime",
    "subject",
    "time",
}


def form(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode(), keep_blank_values=True)


def single(fields: dict[str, list[str]]) -> dict[str, Any]:
    """Form fields as one value each, except the repeated ``recipients``."""
    return {k: v if k == "recipients" else v[0] for k, v in fields.items()}


def hook(api: httpx.Client, receiver: Receiver, **fields: Any) -> None:
    ok(api.post("/webhook/add", json={"url": receiver.url, **fields}))


def test_form_bodies_have_the_captured_keys_and_formats(
    api: httpx.Client, sandbox: Sandbox, receiver: Receiver
) -> None:
    """``processed`` once per email with ``recipients`` (repeated form key: only a
    one-recipient body was captured) and ``srchost``; ``delivered`` per recipient with
    ``rcpt``, ``host``, ``message``, ``context``; both with every captured common key."""
    hook(api, receiver, events=["processed", "delivered"])
    body = email(sender="Shop <shop@example.com>", to=["ann@example.org", "bob@example.org"])
    email_id = ok(api.post("/email/send", json=body))["email_id"]
    wait_until(lambda: len(receiver.requests) == 3, timeout=10, what="3 webhook calls")
    processed, *delivered = (single(form(r.body)) for r in receiver.requests)

    assert set(processed) == COMMON | {"recipients", "srchost"}
    assert processed["event"] == "processed"
    assert processed["recipients"] == ["ann@example.org", "bob@example.org"]
    assert processed["srchost"] == "127.0.0.1"
    assert [d["rcpt"] for d in delivered] == ["ann@example.org", "bob@example.org"]
    for event in delivered:
        assert set(event) == COMMON | {"rcpt", "host", "message", "context"}
        assert event["event"] == "delivered"
        assert event["message"].startswith("250 ")
        assert event["context"] == "Unavailable"
    for event in (processed, *delivered):
        assert event["email_id"] == email_id
        assert event["auth"] == sandbox.api_key[:16]  # api- and 12 characters
        assert (event["from"], event["from_address"]) == (
            "Shop <shop@example.com>",
            "shop@example.com",
        )
        assert (event["from_name"], event["sender"]) == ("Shop", "shop@example.com")
        assert event["Subject"] == event["subject"] == "Your order"
        assert (
            event["Message-Id"] == event["message-id"] == f"<E{email_id}@message-id.smtpcorp.com>"
        )
        assert TIME.match(event["time"]), event["time"]
        assert SENDTIME.match(event["sendtime"]), event["sendtime"]
        assert event["sendtime"][:19] == event["time"][:19]
        assert EVENT_ID.match(event["id"])
    assert len({e["id"] for e in (processed, *delivered)}) == 3


def test_json_bodies_carry_recipients_as_a_list(api: httpx.Client, receiver: Receiver) -> None:
    """``output_format: json``: the same fields in a JSON object."""
    hook(api, receiver, events=["processed", "bounce"], output_format="json")
    ok(api.post("/email/send", json=email(to=["ann@example.org", "x@bounce.example.net"])))
    wait_until(lambda: len(receiver.requests) == 2, timeout=10, what="2 webhook calls")
    processed, bounce = (r.json() for r in receiver.requests)
    assert processed["recipients"] == ["ann@example.org", "x@bounce.example.net"]
    assert "rcpt" not in processed
    assert set(bounce) == COMMON | {"rcpt", "host", "message", "context", "bounce"}
    assert (bounce["bounce"], bounce["rcpt"]) == ("hard", "x@bounce.example.net")


def test_a_retry_carries_the_same_id(
    api: httpx.Client, sandbox: Sandbox, receiver: Receiver
) -> None:
    """Webhooks page: failures are retried (up to 35 times over 48 h); the call is the
    same notification, so the same body and ``id``."""
    sandbox.configure(webhook_backoff=0.05)
    receiver.fail_next = 2
    hook(api, receiver, events=["delivered"], output_format="json")
    ok(api.post("/email/send", json=email()))
    wait_until(lambda: sandbox.stats()["webhooks_delivered"] == 1, timeout=10, what="delivery")
    bodies = [r.body for r in receiver.requests]
    assert len(bodies) == 3
    assert len(set(bodies)) == 1
    [entry] = httpx.get(f"{sandbox.url}/_sandbox/webhooks").json()["deliveries"]
    assert entry["id"] == receiver.requests[0].json()["id"]


def test_reject_event_for_a_suppressed_recipient(api: httpx.Client, receiver: Receiver) -> None:
    """Webhooks page, Reject: "An email will be rejected if you attempt to send it to an
    address that is listed on the account's Suppressions page"."""
    hook(api, receiver, events=["processed", "reject"], output_format="json")
    ok(api.post("/suppression/add", json={"email_address": "gone@example.org"}))
    ok(api.post("/email/send", json=email(to=["gone@example.org"])))
    wait_until(lambda: len(receiver.requests) == 1, timeout=10, what="the reject event")
    [reject] = [r.json() for r in receiver.requests]  # no processed: nobody to deliver to
    assert (reject["event"], reject["rcpt"]) == ("reject", "gone@example.org")
    assert set(reject) == COMMON | {"rcpt", "host", "message", "context"}


@pytest.mark.parametrize(
    ("event", "extra"),
    [
        ("open", {"user-agent", "read-secs", "client", "client-device", "client-os", "srchost"}),
        ("click", {"user-agent", "client", "client-device", "client-os", "srchost"}),
        ("spam", {"host", "message", "context"}),
        ("unsubscribe", {"host", "message", "context"}),
        ("bounce", {"host", "message", "context", "bounce"}),
    ],
)
def test_events_after_delivery(
    api: httpx.Client, sandbox: Sandbox, receiver: Receiver, event: str, extra: set[str]
) -> None:
    """What a recipient does later (``POST /_sandbox/events``) is posted per recipient; a
    spam complaint or an unsubscribe puts the address on the suppression list (webhooks
    page: "the address is added to Suppressions")."""
    hook(api, receiver, events=[event], output_format="json")
    email_id = ok(api.post("/email/send", json=email(to=["ann@example.org"])))["email_id"]
    later = {"email_id": email_id, "event": event, "rcpt": "ann@example.org", "bounce": "soft"}
    assert httpx.post(f"{sandbox.url}/_sandbox/events", json=later).status_code == 200
    wait_until(lambda: len(receiver.requests) == 1, timeout=10, what=f"the {event} event")
    body = receiver.requests[0].json()
    assert body["event"] == event
    assert body["rcpt"] == "ann@example.org"
    assert extra <= set(body)
    assert set(body) >= COMMON
    suppressed = ok(api.post("/suppression/view", json={}))["total_results"]
    assert suppressed == (1 if event in ("spam", "unsubscribe") else 0)
    if event == "bounce":
        assert body["bounce"] == "soft"
        names = [e["event"] for e in ok(api.post("/activity/search", json={}))["events"]]
        assert names == ["processed", "delivered", "soft-bounced"]


def test_sms_events_have_their_own_names_and_fields(api: httpx.Client, receiver: Receiver) -> None:
    """Webhooks page, SMS payload table: ``sms_*`` event names; ``destination_number``,
    ``message_id``, ``message_content``, ``source_number``, ``status_code``, ``region``,
    ``retry_count``, ``sender_email``, ``submitted_timestamp``, ``received_timestamp``
    (no SMS body was captured: values are the sandbox's)."""
    hook(
        api,
        receiver,
        sms_events=["sending", "submitted", "delivered"],
        output_format="json",
    )
    data = ok(api.post("/sms/send", json={"destination": ["+61400000000"], "content": "Code 1"}))
    wait_until(lambda: len(receiver.requests) == 3, timeout=10, what="3 SMS events")
    bodies = [r.json() for r in receiver.requests]
    assert [b["event"] for b in bodies] == ["sms_sending", "sms_submitted", "sms_delivered"]
    for body in bodies:
        assert set(body) == {
            "event",
            "id",
            "message_id",
            "destination_number",
            "source_number",
            "message_content",
            "sender_email",
            "status_code",
            "region",
            "retry_count",
            "submitted_timestamp",
            "received_timestamp",
        }
        assert body["message_id"] == data["messages"][0]["message_id"]
        assert (body["destination_number"], body["region"]) == ("+61400000000", "AU")
        assert body["message_content"] == "Code 1"
        assert EVENT_ID.match(body["id"])
