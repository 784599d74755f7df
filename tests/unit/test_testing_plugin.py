"""``outbox_fake``, as an app's test suite gets it from the ``pytest11`` entry point."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from outbox import (
    IdempotencyConflict,
    ValidationError,
    send_email,
    send_mime,
    send_sms,
    send_template,
)
from outbox.testing import FakeOutbox


def test_the_plugin_is_registered_for_pytest() -> None:
    plugins = {e.name: e.value for e in entry_points(group="pytest11")}
    assert plugins.get("outbox") == "outbox.testing"


def test_every_send_is_recorded_with_what_it_would_send(outbox_fake: FakeOutbox) -> None:
    handle = send_email(
        "Shop <shop@example.com>",
        ["ann@example.org"],
        "Your receipt",
        text_body="Thanks",
        html_body="<p>Thanks</p>",
        cc=["books@example.com"],
        custom_headers={"X-Order": "7"},
        attachments=[
            {"filename": "receipt.pdf", "fileblob": "JVBERi0=", "mimetype": "application/pdf"}
        ],
        tenant="acme",
    )
    send_template("shop@example.com", "bob@example.org", "welcome-1", {"name": "Bob"})
    send_sms(["+61400000000"], "Your code is 123456")
    send_mime("From: a@example.com\r\nTo: c@example.org\r\nSubject: x\r\n\r\nbody")
    email, template, sms, mime = outbox_fake.messages
    assert email.id == handle.id
    assert email["to"] == ["ann@example.org"]
    assert email.cc == ["books@example.com"]
    assert email.sender == "Shop <shop@example.com>"
    assert (email.subject, email.text_body, email.html_body) == (
        "Your receipt",
        "Thanks",
        "<p>Thanks</p>",
    )
    assert email.attachments == ["receipt.pdf"]
    assert {"header": "X-Order", "value": "7"} in email.headers
    assert (email.lane, email.tenant, email.kind) == ("transactional", "acme", "email")
    assert (template.template_id, template.template_data) == ("welcome-1", {"name": "Bob"})
    assert (sms.kind, sms.to, sms.text_body) == ("sms", ["+61400000000"], "Your code is 123456")
    assert (mime.kind, mime.to) == ("mime", ["c@example.org"])
    outbox_fake.clear()
    assert outbox_fake.messages == []


def test_validation_is_the_production_one(outbox_fake: FakeOutbox) -> None:
    with pytest.raises(ValidationError) as caught:
        send_email("not an address", ["ann@example.org"], "x", text_body="y")
    assert "sender" in caught.value.errors
    assert outbox_fake.messages == []


def test_a_big_send_is_bulk_and_keys_behave_as_for_real(outbox_fake: FakeOutbox) -> None:
    everyone = [f"r{i}@example.org" for i in range(1500)]
    first = send_email("s@example.com", everyone, "News", text_body="Hi", idempotency_key="n1")
    again = send_email("s@example.com", everyone, "News", text_body="Hi", idempotency_key="n1")
    assert again.duplicate
    assert again.id == first.id
    assert len(outbox_fake.messages) == 1
    assert outbox_fake.messages[0].lane == "bulk"
    assert len(outbox_fake.messages[0].to) == 1500
    with pytest.raises(IdempotencyConflict):
        send_email("s@example.com", everyone, "Other", text_body="Hi", idempotency_key="n1")


def test_nothing_reaches_redis(outbox_fake: FakeOutbox) -> None:
    import redis

    from outbox.core.settings import Settings
    from outbox.worker.runtime import Runtime, set_runtime
    from support.procs import free_port

    closed = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    set_runtime(Runtime.from_settings(Settings(), redis_client=closed))
    try:
        send_email("s@example.com", ["ann@example.org"], "x", text_body="y")
    finally:
        set_runtime(None)
    assert len(outbox_fake.messages) == 1
