"""The reference's documented request bodies, translated to JSON and posted as they are.

Where the reference matches the real API they must be accepted; where it does not (SMS
and template creation) the sandbox answers as the real API would.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.conftest import Sandbox
from tests.sandbox.conftest import field_error, ok

pytestmark = pytest.mark.integration

PDF = base64.b64encode(b"%PDF-1.4 not really a pdf").decode()
WELCOME_HTML = "<h1>Welcome, {{ name }}!</h1><p>Thanks for joining {{ company }}.</p>"
LOGO = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(32)).decode()


def test_quick_start_send(api: httpx.Client) -> None:
    data = ok(
        api.post(
            "/email/send",
            json={
                "sender": "noreply@yourdomain.com",
                "to": ["recipient@example.com"],
                "subject": "Hello from SMTP2GO",
                "html_body": "<h1>Welcome!</h1><p>Your account is ready.</p>",
                "text_body": "Welcome! Your account is ready.",
            },
        )
    )
    assert data["succeeded"] == 1
    assert data["failed"] == 0


def test_base64_attachment(api: httpx.Client, sandbox: Sandbox) -> None:
    ok(
        api.post(
            "/email/send",
            json={
                "sender": "noreply@example.com",
                "to": ["user@example.com"],
                "subject": "Document attached",
                "text_body": "Please find the document attached.",
                "attachments": [
                    {"filename": "report.pdf", "fileblob": PDF, "mimetype": "application/pdf"}
                ],
            },
        )
    )
    assert sandbox.messages()[0]["attachments"] == ["report.pdf"]


def test_attachment_by_url(api: httpx.Client) -> None:
    ok(
        api.post(
            "/email/send",
            json={
                "sender": "noreply@example.com",
                "to": ["user@example.com"],
                "subject": "Image attached",
                "text_body": "Photo from our event.",
                "attachments": [
                    {
                        "filename": "photo.jpg",
                        "url": "https://cdn.example.com/photos/event.jpg",
                        "mimetype": "image/jpeg",
                    }
                ],
            },
        )
    )


def test_inline_image_with_the_reference_cid_field_is_accepted(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """The real API has no ``cid`` (the filename is the content id) and ignores the field."""
    ok(
        api.post(
            "/email/send",
            json={
                "sender": "noreply@example.com",
                "to": ["user@example.com"],
                "subject": "Newsletter",
                "html_body": '<h1>Welcome</h1><img src="cid:logo123" alt="Logo">',
                "inlines": [
                    {
                        "filename": "logo.png",
                        "fileblob": LOGO,
                        "mimetype": "image/png",
                        "cid": "logo123",
                    }
                ],
            },
        )
    )
    assert sandbox.messages()[0]["inlines"] == ["logo.png"]


def test_template_add_as_documented_lacks_the_required_id(api: httpx.Client) -> None:
    body = {
        "template_name": "welcome-email",
        "html_body": WELCOME_HTML,
        "text_body": "Welcome, {{ name }}! Thanks for joining {{ company }}.",
    }
    assert field_error(api.post("/template/add", json=body)) == "id"
    assert field_error(api.post("/template/add", json={**body, "id": "welcome-email"})) == "subject"


def test_send_with_template_as_documented(api: httpx.Client, sandbox: Sandbox) -> None:
    send = {
        "sender": "noreply@example.com",
        "to": ["user@example.com"],
        "subject": "Welcome aboard!",
        "template_id": "template-uuid-here",
        "template_data": {"name": "John", "company": "Acme Corp"},
    }
    assert field_error(api.post("/email/send", json=send)) == "template_id"
    ok(
        api.post(
            "/template/add",
            json={
                "template_name": "welcome-email",
                "id": "template-uuid-here",
                "subject": "Welcome aboard, {{ name }}!",
                "html_body": WELCOME_HTML,
                "text_body": "Welcome, {{ name }}! Thanks for joining {{ company }}.",
            },
        )
    )
    ok(api.post("/email/send", json=send))
    [message] = sandbox.messages()
    assert message["subject"] == "Welcome aboard, John!"
    assert message["text_body"] == "Welcome, John! Thanks for joining Acme Corp."


def test_contact_form_with_reply_to_and_html(api: httpx.Client) -> None:
    ok(
        api.post(
            "/email/send",
            json={
                "sender": "website@yourdomain.com",
                "to": ["support@yourdomain.com"],
                "reply_to": "visitor@example.net",
                "subject": "Contact form: Ann",
                "text_body": "From: Ann <visitor@example.net>\n\nHello",
                "html_body": (
                    "<p><strong>From:</strong> Ann <visitor@example.net></p><hr><p>Hello</p>"
                ),
            },
        )
    )


def test_webhook_add_as_documented(api: httpx.Client) -> None:
    data = ok(
        api.post(
            "/webhook/add",
            json={
                "url": "https://api.yourdomain.com/webhooks/smtp2go",
                "events": ["delivered", "bounce", "spam", "unsubscribe"],
            },
        )
    )
    assert isinstance(data["id"], int)
    assert data["output_format"] == "form"


def test_suppression_add_as_documented_uses_the_wrong_field(api: httpx.Client) -> None:
    assert field_error(api.post("/suppression/add", json={"email": "blocked@example.com"})) == (
        "email_address"
    )


def test_stats_summary_with_an_empty_body(api: httpx.Client) -> None:
    data = ok(api.post("/stats/email_summary", json={}))
    assert isinstance(data["bounce_percent"], str)
