"""``email/mime`` (read with the stdlib parser) and ``email/batch`` (all or nothing, in order)."""

from __future__ import annotations

import base64
from email.message import EmailMessage

import httpx
import pytest

from tests.conftest import Sandbox
from tests.sandbox.conftest import email, field_error, ok

pytestmark = pytest.mark.integration


def mime(**headers: str) -> str:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = "Ann <ann@example.org>, bob@example.org"
    message["Cc"] = "carol@example.net"
    message["Bcc"] = "audit@example.com"
    message["Subject"] = "Receipt"
    message["X-Outbox-Id"] = "mime-1"
    for name, value in headers.items():
        del message[name]
        if value:
            message[name] = value
    message.set_content("Plain receipt")
    message.add_alternative("<p>HTML receipt</p>", subtype="html")
    message.add_attachment(b"%PDF-", maintype="application", subtype="pdf", filename="r.pdf")
    return message.as_string()


def test_raw_mime_is_parsed_for_recipients_subject_and_headers(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    data = ok(api.post("/email/mime", json={"mime_email": mime()}))
    assert (data["succeeded"], data["failed"], data["failures"]) == (1, 0, [])
    [message] = sandbox.messages()
    assert message["endpoint"] == "email/mime"
    assert message["email_id"] == data["email_id"]
    assert message["from_address"] == "shop@example.com"
    assert message["to"] == ["ann@example.org", "bob@example.org"]
    assert message["cc"] == ["carol@example.net"]
    assert message["bcc"] == ["audit@example.com"]
    assert message["subject"] == "Receipt"
    assert message["custom_headers"] == {"X-Outbox-Id": "mime-1"}
    assert message["text_body"].strip() == "Plain receipt"
    assert message["html_body"].strip() == "<p>HTML receipt</p>"
    assert message["attachments"] == ["r.pdf"]


def test_base64_mime_as_documented_is_accepted(api: httpx.Client, sandbox: Sandbox) -> None:
    encoded = base64.b64encode(mime().encode()).decode()
    ok(api.post("/email/mime", json={"mime_email": encoded}))
    assert sandbox.messages()[0]["subject"] == "Receipt"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"mime_email": ""},
        {"mime_email": "%%% not mime and not base64 %%%"},
        {"mime_email": mime(From="")},
        {"mime_email": mime(From="not an address")},
        {"mime_email": mime(To="", Cc="", Bcc="")},
    ],
    ids=["missing", "empty", "garbage", "no From", "bad From", "no recipients"],
)
def test_unusable_mime_is_refused(
    api: httpx.Client, sandbox: Sandbox, body: dict[str, str]
) -> None:
    assert field_error(api.post("/email/mime", json=body)) == "mime_email"
    assert sandbox.messages() == []


def test_batch_answers_one_email_id_per_item_in_order(api: httpx.Client, sandbox: Sandbox) -> None:
    emails = [email(subject=f"Item {i}") for i in range(3)]
    data = ok(api.post("/email/batch", json={"emails": emails}))
    assert isinstance(data, list)
    assert len(data) == 3
    messages = sandbox.messages()
    assert [m["subject"] for m in messages] == ["Item 0", "Item 1", "Item 2"]
    assert [item["email_id"] for item in data] == [m["email_id"] for m in messages]
    assert {m["endpoint"] for m in messages} == {"email/batch"}


def test_batch_with_one_bad_item_sends_nothing(api: httpx.Client, sandbox: Sandbox) -> None:
    emails = [email(), email(to=["not an address"]), email()]
    assert field_error(api.post("/email/batch", json={"emails": emails})) == "emails[1].to"
    assert field_error(api.post("/email/batch", json={"emails": []})) == "emails"
    assert field_error(api.post("/email/batch", json={"emails": ["x"]})) == "emails[0]"
    assert sandbox.messages() == []
