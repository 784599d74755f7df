"""The real client against the real sandbox process: every endpoint group and fault.

The sandbox validates requests from its own reading of the API, not from the client's
models, so a wrong field name in the client fails here instead of being mirrored.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from outbox.worker.smtp2go import (
    BadRequestError,
    EmailSend,
    NotFoundError,
    RateLimitedError,
    RequestTimeout,
    ServerError,
    SMTP2GOClient,
    UnauthorizedError,
)
from tests.conftest import Sandbox

pytestmark = pytest.mark.integration

SENDER = "Outbox Tests <tests@example.com>"
PDF = base64.b64encode(b"%PDF-1.4 pretend").decode()
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n pretend").decode()


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[SMTP2GOClient]:
    with SMTP2GOClient(sandbox.base_url, sandbox.api_key, timeout=10.0) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def email(**overrides: Any) -> EmailSend:
    fields: dict[str, Any] = {
        "sender": SENDER,
        "to": ["alice@example.com"],
        "subject": unique("subject"),
        "text_body": "Hello from the integration tests",
    }
    fields.update(overrides)
    return EmailSend.model_validate(fields)


def message_with(sandbox: Sandbox, email_id: str | None) -> dict[str, Any]:
    found = [m for m in sandbox.messages() if m.get("email_id") == email_id]
    assert len(found) == 1, f"no single sandbox message with email_id {email_id!r}"
    return found[0]


# --------------------------------------------------------------------------- email


def test_email_send(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    request = email(
        to=["Alice <alice@example.com>", "bob@example.com"],
        cc=["carol@example.com"],
        bcc=["audit@example.com"],
        html_body="<p>Hi <img src='cid:logo'></p>",
        reply_to="help@example.com",
        custom_headers=[{"header": "X-Order", "value": "42"}],
        attachments=[{"filename": "invoice.pdf", "fileblob": PDF}],
        inlines=[{"filename": "logo.png", "fileblob": PNG, "cid": "logo"}],
    )
    result = client.send_email(request)
    assert result.request_id
    assert result.email_id
    assert not result.partial_failure
    assert result.failed == 0

    sent = message_with(sandbox, result.email_id)
    assert sent["endpoint"] == "email/send"
    assert sent["subject"] == request.subject
    assert sent["to"] == ["alice@example.com", "bob@example.com"]
    assert sent["cc"] == ["carol@example.com"]
    assert sent["bcc"] == ["audit@example.com"]
    assert sent["custom_headers"]["X-Order"] == "42"
    assert sent["custom_headers"]["Reply-To"] == "help@example.com"
    assert sent["attachments"] == ["invoice.pdf"]
    assert sent["inlines"] == ["logo"]


def test_email_mime(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    subject = unique("mime")
    raw = (
        f"From: {SENDER}\r\nTo: dave@example.com\r\nSubject: {subject}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain body\r\n"
    )
    result = client.send_mime(mime_email=raw)
    assert result.email_id
    sent = message_with(sandbox, result.email_id)
    assert sent["endpoint"] == "email/mime"
    assert sent["subject"] == subject
    assert sent["to"] == ["dave@example.com"]


def test_email_batch(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    emails = [email(to=[f"batch{i}@example.com"]) for i in range(3)]
    result = client.send_batch(emails=emails)
    assert len(result.email_ids) == 3
    assert all(result.email_ids)
    for request, email_id in zip(emails, result.email_ids, strict=True):
        assert message_with(sandbox, email_id)["subject"] == request.subject


# --------------------------------------------------------------------------- templates


def test_templates_crud_and_send(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    template_id = unique("tpl")[:20]
    added = client.template_add(
        id=template_id,
        template_name="Welcome",
        subject="Welcome, {{ name }}",
        html_body="<p>Hi {{ name }} from {{ company }}</p>",
        text_body="Hi {{ name }} from {{ company }}",
        template_variables={"name": "there", "company": "Acme"},
        tags=["onboarding"],
    )
    assert added.data["id"] == template_id

    viewed = client.template_view(template_id)
    assert viewed.data["subject"] == "Welcome, {{ name }}"

    found = client.template_search(search_terms=[template_id])
    assert [t["id"] for t in found.data["templates"]] == [template_id]
    assert found.data["total_count"] == 1

    client.template_edit(id=template_id, subject="Hello, {{ name }}")
    assert client.template_view(template_id).data["subject"] == "Hello, {{ name }}"

    result = client.send_email(
        sender=SENDER,
        to=["erin@example.com"],
        template_id=template_id,
        template_data={"name": "Erin"},
    )
    sent = message_with(sandbox, result.email_id)
    assert sent["subject"] == "Hello, Erin"
    assert "Hi Erin from Acme" in sent["text_body"]

    deleted = client.template_delete(template_id)
    assert template_id in deleted.data["result"]
    with pytest.raises(NotFoundError) as info:
        client.template_view(template_id)
    assert info.value.status_code == 404


# --------------------------------------------------------------------------- webhooks


def test_webhooks_crud(client: SMTP2GOClient) -> None:
    added = client.webhook_add(
        url="http://127.0.0.1:9/webhooks/smtp2go",
        events=["delivered", "bounce"],
        output_format="json",
        auth_header_type="bearer",
        auth_header_value="a-webhook-secret",
    )
    hook_id = added.data["id"]
    assert isinstance(hook_id, int)
    assert added.data["events"] == ["delivered", "bounce"]

    listed = client.webhook_view().data["result"]
    assert [hook["id"] for hook in listed] == [hook_id]

    edited = client.webhook_edit(id=hook_id, events=["open", "click"])
    assert edited.data["events"] == ["open", "click"]

    client.webhook_remove(hook_id)
    assert client.webhook_view().data["result"] == []
    with pytest.raises(NotFoundError):
        client.webhook_remove(hook_id)


# --------------------------------------------------------------------------- statistics


def test_stats(client: SMTP2GOClient) -> None:
    client.send_email(email(to=["stats@example.com"]))
    summary = client.stats_email_summary().data
    assert summary["email_count"] >= 1
    assert isinstance(summary["bounce_percent"], str)
    cycle = client.stats_email_cycle().data
    assert {"cycle_start", "cycle_end", "cycle_used", "cycle_remaining", "cycle_max"} <= set(cycle)
    assert cycle["cycle_used"] >= 1
    assert "hardbounces" in client.stats_email_bounces().data
    assert "spam_percent" in client.stats_email_spam().data
    assert "unsubscribe_percent" in client.stats_email_unsubs().data
    history = client.stats_email_history(group_by="domain").data
    assert [row["domain"] for row in history["history"]] == ["example.com"]


# --------------------------------------------------------------------------- activity


def test_activity_search_finds_a_send_by_its_custom_header(client: SMTP2GOClient) -> None:
    marker = unique("chunk")
    subject = unique("activity")
    other = client.send_email(email(subject=subject))
    sent = client.send_email(
        email(subject=subject, custom_headers=[{"header": "X-Outbox-Id", "value": marker}])
    )
    result = client.activity_search(
        search_subject=subject, custom_headers=["X-Outbox-Id"], include_headers=True, limit=100
    )
    assert result.total_events >= 2
    matching = {e.email_id for e in result.events if e.header("X-Outbox-Id") == marker}
    assert matching == {sent.email_id}
    assert other.email_id in {e.email_id for e in result.events}

    by_id = client.activity_search(email_id=sent.email_id)
    assert by_id.events
    assert {e.email_id for e in by_id.events} == {sent.email_id}
    assert {e.event for e in by_id.events} >= {"processed"}


# --------------------------------------------------------------------------- suppressions


def test_suppressions(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    blocked = "blocked@example.com"
    added = client.suppression_add(email_address=blocked, block_description="asked us to stop")
    assert added.data["added"] is True

    viewed = client.suppression_view(email_address=blocked)
    assert [r["email_address"] for r in viewed.data["results"]] == [blocked]

    # The email is accepted (succeeded counts emails); the suppressed address is rejected
    # afterwards, never delivered.
    result = client.send_email(email(to=[blocked, "fine@example.com"]))
    assert not result.partial_failure
    assert (result.succeeded, result.failed, result.failures) == (1, 0, [])
    assert result.email_id
    message = message_with(sandbox, result.email_id)
    assert (message["recipients"], message["rejected"]) == (["fine@example.com"], [blocked])

    removed = client.suppression_remove(email_address=blocked, reasons=["manual"])
    assert removed.data["suppressions"][0]["removed"] is True
    assert client.suppression_view(email_address=blocked).data["results"] == []
    assert not client.send_email(email(to=[blocked])).partial_failure


# --------------------------------------------------------------------------- SMS


def test_sms(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    content = unique("Your code is")
    result = client.sms_send(to=["+61400000001", "+61400000002"], message=content)
    assert result.request_id
    assert result.total_sent == 2
    assert [m.destination for m in result.messages] == ["+61400000001", "+61400000002"]
    assert all(m.message_id for m in result.messages)

    recorded = [m for m in sandbox.messages() if m.get("endpoint") == "sms/send"]
    assert recorded[-1]["destination"] == ["+61400000001", "+61400000002"]
    assert recorded[-1]["content"] == content

    sent = client.sms_view_sent()
    assert sent.request_id  # inside data in the real API; read from there
    assert any(m.get("content") == content for m in sent.data["messages"])

    received = client.sms_view_received()
    assert received.request_id
    assert isinstance(received.data["messages"], list)

    summary = client.sms_summary().data
    assert summary["total_messages"] >= 2
    assert summary["total_units"] >= 2


# --------------------------------------------------------------------------- errors


def test_wrong_key_is_401(sandbox: Sandbox) -> None:
    wrong = "api-" + "0" * 32
    with SMTP2GOClient(sandbox.base_url, wrong) as client, pytest.raises(UnauthorizedError) as info:
        client.send_email(email())
    err = info.value
    assert err.status_code == 401
    assert not err.retryable
    assert wrong not in str(err)
    assert sandbox.api_key not in str(err)


def test_server_400_names_the_field(client: SMTP2GOClient) -> None:
    with pytest.raises(BadRequestError) as info:
        client.send_email(email(subject=None, text_body=None, template_id="no-such-template"))
    err = info.value
    assert err.status_code == 400
    assert err.request_id
    assert (err.error_code or "").endswith("NON_VALIDATING_IN_PAYLOAD")
    assert "template_id" in err.field_errors

    # The reference's SMS names bypass the models through the raw call; the API refuses them.
    with pytest.raises(BadRequestError) as info:
        client.request("sms/send", {"to": ["+61400000000"], "message": "hi"})
    assert "destination" in info.value.field_errors


def test_429_carries_retry_after(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    sandbox.configure(storm_seconds=30, rate_headers=True)  # the real service may send none
    with pytest.raises(RateLimitedError) as info:
        client.send_email(email())
    err = info.value
    assert err.retryable
    assert err.retry_after is not None
    assert 1.0 <= err.retry_after <= 30.0
    assert sandbox.stats()["rate_limited"] >= 1


def test_429_from_the_shared_rate(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    sandbox.configure(rate="1/m", rate_headers=True)
    client.send_email(email())
    with pytest.raises(RateLimitedError) as info:
        client.send_email(email())
    assert info.value.retry_after is not None
    assert info.value.retry_after > 0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_injected_5xx(client: SMTP2GOClient, sandbox: Sandbox, status: int) -> None:
    sandbox.configure(fail_next=1, fail_status=status)
    with pytest.raises(ServerError) as info:
        client.send_email(email())
    assert info.value.status_code == status
    assert info.value.retryable
    assert client.send_email(email()).email_id  # the next one goes through
    assert sandbox.stats()["injected_failures"] == 1


def test_hang_is_an_ambiguous_timeout(sandbox: Sandbox) -> None:
    sandbox.configure(hang_next=1, hang_seconds=10)
    request = email()
    timeout = httpx.Timeout(1.0, connect=5.0)
    with SMTP2GOClient(sandbox.base_url, sandbox.api_key, timeout=timeout) as client:
        with pytest.raises(RequestTimeout) as info:
            client.send_email(request)
        assert info.value.ambiguous is True
        assert info.value.retryable
    # The sandbox accepted it: exactly the case a blind retry would send twice.
    assert [m["subject"] for m in sandbox.messages()] == [request.subject]
