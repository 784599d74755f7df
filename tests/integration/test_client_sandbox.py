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

from outbox.core.errors import (
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    RequestTimeout,
    ServerError,
    UnauthorizedError,
)
from outbox.core.smtp2go.client import SMTP2GOClient
from outbox.core.smtp2go.endpoints import (
    ACTIVITY_SEARCH,
    EMAIL_BATCH,
    EMAIL_MIME,
    EMAIL_SEND,
    SMS_SEND,
    SMS_SUMMARY,
    SMS_VIEW_RECEIVED,
    SMS_VIEW_SENT,
    STATS_EMAIL_BOUNCES,
    STATS_EMAIL_CYCLE,
    STATS_EMAIL_HISTORY,
    STATS_EMAIL_SPAM,
    STATS_EMAIL_SUMMARY,
    STATS_EMAIL_UNSUBS,
    SUPPRESSION_ADD,
    SUPPRESSION_REMOVE,
    SUPPRESSION_VIEW,
    TEMPLATE_ADD,
    TEMPLATE_DELETE,
    TEMPLATE_EDIT,
    TEMPLATE_SEARCH,
    TEMPLATE_VIEW,
    WEBHOOK_ADD,
    WEBHOOK_EDIT,
    WEBHOOK_REMOVE,
    WEBHOOK_VIEW,
)
from outbox.core.smtp2go.models import EmailSend
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
    result = client.call(EMAIL_SEND, request)
    assert result.request_id
    assert result.email_id
    assert not result.refused
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
    result = client.call(EMAIL_MIME, dict(mime_email=raw))
    assert result.email_id
    sent = message_with(sandbox, result.email_id)
    assert sent["endpoint"] == "email/mime"
    assert sent["subject"] == subject
    assert sent["to"] == ["dave@example.com"]


def test_email_batch(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    emails = [email(to=[f"batch{i}@example.com"]) for i in range(3)]
    result = client.call(EMAIL_BATCH, dict(emails=emails))
    assert len(result.email_ids) == 3
    assert all(result.email_ids)
    for request, email_id in zip(emails, result.email_ids, strict=True):
        assert message_with(sandbox, email_id)["subject"] == request.subject


# --------------------------------------------------------------------------- templates


def test_templates_crud_and_send(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    template_id = unique("tpl")[:20]
    added = client.call(
        TEMPLATE_ADD,
        dict(
            id=template_id,
            template_name="Welcome",
            subject="Welcome, {{ name }}",
            html_body="<p>Hi {{ name }} from {{ company }}</p>",
            text_body="Hi {{ name }} from {{ company }}",
            template_variables={"name": "there", "company": "Acme"},
            tags=["onboarding"],
        ),
    )
    assert added.data["id"] == template_id

    viewed = client.call(TEMPLATE_VIEW, {"id": template_id})
    assert viewed.data["subject"] == "Welcome, {{ name }}"

    found = client.call(TEMPLATE_SEARCH, dict(search_terms=[template_id]))
    assert [t["id"] for t in found.data["templates"]] == [template_id]
    assert found.data["total_count"] == 1

    client.call(TEMPLATE_EDIT, dict(id=template_id, subject="Hello, {{ name }}"))
    assert client.call(TEMPLATE_VIEW, {"id": template_id}).data["subject"] == "Hello, {{ name }}"

    result = client.call(
        EMAIL_SEND,
        dict(
            sender=SENDER,
            to=["erin@example.com"],
            template_id=template_id,
            template_data={"name": "Erin"},
        ),
    )
    sent = message_with(sandbox, result.email_id)
    assert sent["subject"] == "Hello, Erin"
    assert "Hi Erin from Acme" in sent["text_body"]

    deleted = client.call(TEMPLATE_DELETE, {"id": template_id})
    assert template_id in deleted.data["result"]
    with pytest.raises(NotFoundError) as info:
        client.call(TEMPLATE_VIEW, {"id": template_id})
    assert info.value.status_code == 404


# --------------------------------------------------------------------------- webhooks


def test_webhooks_crud(client: SMTP2GOClient) -> None:
    added = client.call(
        WEBHOOK_ADD,
        dict(
            url="http://127.0.0.1:9/webhooks/smtp2go",
            events=["delivered", "bounce"],
            output_format="json",
            auth_header_type="bearer",
            auth_header_value="a-webhook-secret",
        ),
    )
    hook_id = added.data["id"]
    assert isinstance(hook_id, int)
    assert added.data["events"] == ["delivered", "bounce"]

    listed = client.call(WEBHOOK_VIEW).data["result"]
    assert [hook["id"] for hook in listed] == [hook_id]

    edited = client.call(WEBHOOK_EDIT, dict(id=hook_id, events=["open", "click"]))
    assert edited.data["events"] == ["open", "click"]

    client.call(WEBHOOK_REMOVE, {"id": hook_id})
    assert client.call(WEBHOOK_VIEW).data["result"] == []
    with pytest.raises(NotFoundError):
        client.call(WEBHOOK_REMOVE, {"id": hook_id})


# --------------------------------------------------------------------------- statistics


def test_stats(client: SMTP2GOClient) -> None:
    client.call(EMAIL_SEND, email(to=["stats@example.com"]))
    summary = client.call(STATS_EMAIL_SUMMARY).data
    assert summary["email_count"] >= 1
    assert isinstance(summary["bounce_percent"], str)
    cycle = client.call(STATS_EMAIL_CYCLE).data
    assert {"cycle_start", "cycle_end", "cycle_used", "cycle_remaining", "cycle_max"} <= set(cycle)
    assert cycle["cycle_used"] >= 1
    assert "hardbounces" in client.call(STATS_EMAIL_BOUNCES).data
    assert "spam_percent" in client.call(STATS_EMAIL_SPAM).data
    assert "unsubscribe_percent" in client.call(STATS_EMAIL_UNSUBS).data
    history = client.call(STATS_EMAIL_HISTORY, dict(group_by="domain")).data
    assert [row["domain"] for row in history["history"]] == ["example.com"]


# --------------------------------------------------------------------------- activity


def test_activity_search_finds_a_send_by_its_custom_header(client: SMTP2GOClient) -> None:
    marker = unique("chunk")
    subject = unique("activity")
    other = client.call(EMAIL_SEND, email(subject=subject))
    sent = client.call(
        EMAIL_SEND,
        email(subject=subject, custom_headers=[{"header": "X-Outbox-Id", "value": marker}]),
    )
    result = client.call(
        ACTIVITY_SEARCH,
        dict(
            search_subject=subject, custom_headers=["X-Outbox-Id"], include_headers=True, limit=100
        ),
    )
    assert result.total_events >= 2
    matching = {e.email_id for e in result.events if e.header("X-Outbox-Id") == marker}
    assert matching == {sent.email_id}
    assert other.email_id in {e.email_id for e in result.events}

    by_id = client.call(ACTIVITY_SEARCH, dict(email_id=sent.email_id))
    assert by_id.events
    assert {e.email_id for e in by_id.events} == {sent.email_id}
    assert {e.event for e in by_id.events} >= {"processed"}


# --------------------------------------------------------------------------- suppressions


def test_suppressions(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    blocked = "blocked@example.com"
    added = client.call(
        SUPPRESSION_ADD, dict(email_address=blocked, block_description="asked us to stop")
    )
    assert added.data["added"] is True

    viewed = client.call(SUPPRESSION_VIEW, dict(email_address=blocked))
    assert [r["email_address"] for r in viewed.data["results"]] == [blocked]

    # The email is accepted (succeeded counts emails); the suppressed address is rejected
    # afterwards, never delivered.
    result = client.call(EMAIL_SEND, email(to=[blocked, "fine@example.com"]))
    assert not result.refused
    assert (result.succeeded, result.failed, result.failures) == (1, 0, [])
    assert result.email_id
    message = message_with(sandbox, result.email_id)
    assert (message["recipients"], message["rejected"]) == (["fine@example.com"], [blocked])

    removed = client.call(SUPPRESSION_REMOVE, dict(email_address=blocked, reasons=["manual"]))
    assert removed.data["suppressions"][0]["removed"] is True
    assert client.call(SUPPRESSION_VIEW, dict(email_address=blocked)).data["results"] == []
    assert not client.call(EMAIL_SEND, email(to=[blocked])).refused


# --------------------------------------------------------------------------- SMS


def test_sms(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    content = unique("Your code is")
    result = client.call(SMS_SEND, dict(to=["+61400000001", "+61400000002"], message=content))
    assert result.request_id
    assert result.total_sent == 2
    assert [m.destination for m in result.messages] == ["+61400000001", "+61400000002"]
    assert all(m.message_id for m in result.messages)

    recorded = [m for m in sandbox.messages() if m.get("endpoint") == "sms/send"]
    assert recorded[-1]["destination"] == ["+61400000001", "+61400000002"]
    assert recorded[-1]["content"] == content

    sent = client.call(SMS_VIEW_SENT)
    assert sent.request_id  # inside data in the real API; read from there
    assert any(m.get("content") == content for m in sent.data["messages"])

    received = client.call(SMS_VIEW_RECEIVED)
    assert received.request_id
    assert isinstance(received.data["messages"], list)

    summary = client.call(SMS_SUMMARY).data
    assert summary["total_messages"] >= 2
    assert summary["total_units"] >= 2


# --------------------------------------------------------------------------- errors


def test_wrong_key_is_401(sandbox: Sandbox) -> None:
    wrong = "api-" + "0" * 32
    with SMTP2GOClient(sandbox.base_url, wrong) as client, pytest.raises(UnauthorizedError) as info:
        client.call(EMAIL_SEND, email())
    err = info.value
    assert err.status_code == 401
    assert not err.retryable
    assert wrong not in str(err)
    assert sandbox.api_key not in str(err)


def test_server_400_names_the_field(client: SMTP2GOClient) -> None:
    with pytest.raises(BadRequestError) as info:
        client.call(EMAIL_SEND, email(subject=None, text_body=None, template_id="no-such-template"))
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
        client.call(EMAIL_SEND, email())
    err = info.value
    assert err.retryable
    assert err.retry_after is not None
    assert 1.0 <= err.retry_after <= 30.0
    assert sandbox.stats()["rate_limited"] >= 1


def test_429_from_the_shared_rate(client: SMTP2GOClient, sandbox: Sandbox) -> None:
    sandbox.configure(rate="1/m", rate_headers=True)
    client.call(EMAIL_SEND, email())
    with pytest.raises(RateLimitedError) as info:
        client.call(EMAIL_SEND, email())
    assert info.value.retry_after is not None
    assert info.value.retry_after > 0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_injected_5xx(client: SMTP2GOClient, sandbox: Sandbox, status: int) -> None:
    sandbox.configure(fail_next=1, fail_status=status)
    with pytest.raises(ServerError) as info:
        client.call(EMAIL_SEND, email())
    assert info.value.status_code == status
    assert info.value.retryable
    assert client.call(EMAIL_SEND, email()).email_id  # the next one goes through
    assert sandbox.stats()["injected_failures"] == 1


def test_hang_is_an_ambiguous_timeout(sandbox: Sandbox) -> None:
    sandbox.configure(hang_next=1, hang_seconds=10)
    request = email()
    timeout = httpx.Timeout(1.0, connect=5.0)
    with SMTP2GOClient(sandbox.base_url, sandbox.api_key, timeout=timeout) as client:
        with pytest.raises(RequestTimeout) as info:
            client.call(EMAIL_SEND, request)
        assert info.value.ambiguous is True
        assert info.value.retryable
    # The sandbox accepted it: exactly the case a blind retry would send twice.
    assert [m["subject"] for m in sandbox.messages()] == [request.subject]
