"""``email/send``: the answer's shape, every validation rule and scheduling.

What the answer means (counts of emails, failures as messages, suppressed recipients,
unverified senders) is pinned in ``test_send_answers.py``.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import Sandbox
from tests.sandbox.conftest import email, field_error, ok

pytestmark = pytest.mark.integration

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()


def test_accepted_send_answers_counts_and_an_email_id(api: httpx.Client, sandbox: Sandbox) -> None:
    body = email(
        to=["Ann <ann@example.org>", "bob@example.org"],
        cc=["carol@example.net"],
        bcc=["audit@example.com"],
        custom_headers=[{"header": "X-Outbox-Id", "value": "m-1"}],
    )
    data = ok(api.post("/email/send", json=body))
    assert data["succeeded"] == 1  # one email, whatever the number of recipients
    assert data["failed"] == 0
    assert data["failures"] == []
    # The captured form: 6, 11 and 4 letters or digits (1w4x2g-FnQW0hPru7M-NRRC)
    assert re.fullmatch(r"[A-Za-z0-9]{6}-[A-Za-z0-9]{11}-[A-Za-z0-9]{4}", data["email_id"])

    [message] = sandbox.messages()
    assert message["endpoint"] == "email/send"
    assert message["email_id"] == data["email_id"]
    assert message["sender"] == "Shop <shop@example.com>"
    assert message["to"] == ["ann@example.org", "bob@example.org"]
    assert message["cc"] == ["carol@example.net"]
    assert message["bcc"] == ["audit@example.com"]
    assert message["recipients"] == [
        "ann@example.org",
        "bob@example.org",
        "carol@example.net",
        "audit@example.com",
    ]
    assert message["custom_headers"] == {"X-Outbox-Id": "m-1"}
    assert message["subject"] == "Your order"
    assert message["text_body"] == "Thanks for your order."
    assert isinstance(message["time"], float)


def test_a_message_sent_twice_is_listed_twice(api: httpx.Client, sandbox: Sandbox) -> None:
    first = ok(api.post("/email/send", json=email()))
    second = ok(api.post("/email/send", json=email()))
    assert first["email_id"] != second["email_id"]
    assert [m["email_id"] for m in sandbox.messages()] == [first["email_id"], second["email_id"]]


def test_hundred_recipients_in_each_of_to_cc_and_bcc(api: httpx.Client, sandbox: Sandbox) -> None:
    def many(prefix: str) -> list[str]:
        return [f"{prefix}{i}@example.org" for i in range(100)]

    data = ok(api.post("/email/send", json=email(to=many("t"), cc=many("c"), bcc=many("b"))))
    assert data["succeeded"] == 1
    assert len(sandbox.messages()[0]["recipients"]) == 300


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("sender missing", email(sender=None), "sender"),
    ("sender not an address", email(sender="Shop"), "sender"),
    ("sender with a line break", email(sender="shop@example.com\r\nBcc: x@evil.test"), "sender"),
    ("to missing", email(to=None), "to"),
    ("to empty", email(to=[]), "to"),
    ("to a string", email(to="ann@example.org"), "to"),
    ("to over 100", email(to=[f"r{i}@example.org" for i in range(101)]), "to"),
    ("to not an address", email(to=["ann"]), "to"),
    ("to two addresses in one", email(to=["a@example.org, b@example.org"]), "to"),
    ("to with a line break", email(to=["ann@example.org\nBcc: x@evil.test"]), "to"),
    ("cc over 100", email(cc=[f"r{i}@example.org" for i in range(101)]), "cc"),
    ("bcc over 100", email(bcc=[f"r{i}@example.org" for i in range(101)]), "bcc"),
    ("bcc not an address", email(bcc=["nobody"]), "bcc"),
    ("subject over 255", email(subject="s" * 256), "subject"),
    ("subject with a line break", email(subject="Hi\r\nBcc: x@evil.test"), "subject"),
    ("no body at all", email(text_body=None, html_body=None), "text_body"),
    ("html_body not a string", email(html_body=["<p>"]), "html_body"),
    ("unknown template", email(template_id="no-such-template"), "template_id"),
    ("template_data a list", email(template_data=[1, 2]), "template_data"),
    ("custom_headers an object", email(custom_headers={"X-A": "1"}), "custom_headers"),
    (
        "custom header Content-Type",
        email(custom_headers=[{"header": "Content-Type", "value": "text/plain"}]),
        "custom_headers",
    ),
    (
        "custom header MIME-Version",
        email(custom_headers=[{"header": "mime-version", "value": "1.0"}]),
        "custom_headers",
    ),
    (
        "custom header Content-Transfer-Encoding",
        email(custom_headers=[{"header": "Content-Transfer-Encoding", "value": "7bit"}]),
        "custom_headers",
    ),
    (
        "custom header name over a line",
        email(custom_headers=[{"header": "X-" + "a" * 996, "value": "1"}]),
        "custom_headers",
    ),
    (
        "custom header line over 998",
        email(custom_headers=[{"header": "X-A", "value": "v" * 994}]),
        "custom_headers",
    ),
    (
        "custom header value with a line break",
        email(custom_headers=[{"header": "X-A", "value": "1\r\nBcc: x@evil.test"}]),
        "custom_headers",
    ),
    (
        "custom header name with a colon",
        email(custom_headers=[{"header": "X-A:", "value": "1"}]),
        "custom_headers",
    ),
    (
        "custom header without value",
        email(custom_headers=[{"header": "X-A"}]),
        "custom_headers",
    ),
    (
        "attachment without filename",
        email(attachments=[{"mimetype": "image/png", "fileblob": PNG}]),
        "attachments",
    ),
    (
        "attachment with neither fileblob nor url",
        email(attachments=[{"filename": "a.png", "mimetype": "image/png"}]),
        "attachments",
    ),
    (
        "attachment with bad base64",
        email(attachments=[{"filename": "a.png", "mimetype": "image/png", "fileblob": "@@@"}]),
        "attachments",
    ),
    (
        "attachment with a url that is not http",
        email(
            attachments=[{"filename": "a.png", "mimetype": "image/png", "url": "ftp://x.test/a"}]
        ),
        "attachments",
    ),
    (
        "inline with bad base64",
        email(inlines=[{"filename": "logo.png", "mimetype": "image/png", "fileblob": "!!"}]),
        "inlines",
    ),
    ("schedule in the past", email(schedule="2001-01-01T00:00:00Z"), "schedule"),
    (
        "schedule over 3 days ahead",
        email(schedule=(datetime.now(UTC) + timedelta(days=4)).isoformat()),
        "schedule",
    ),
    ("schedule not a date", email(schedule="next tuesday"), "schedule"),
    ("fastaccept not a boolean", email(fastaccept="yes"), "fastaccept"),
]


@pytest.mark.parametrize(
    ("body", "fieldname"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_send_is_refused_naming_the_field(
    api: httpx.Client, sandbox: Sandbox, body: dict[str, Any], fieldname: str
) -> None:
    assert field_error(api.post("/email/send", json=body)) == fieldname
    assert sandbox.messages() == []


def test_message_over_50_mb_is_refused(api: httpx.Client, sandbox: Sandbox) -> None:
    """A request body over 50 MB is refused as a whole, before it is read as a message."""
    body = email(text_body="x" * 50_000_001, html_body=None)
    assert api.post("/email/send", json=body, timeout=60).status_code == 413
    assert sandbox.messages() == []


def test_a_header_line_may_be_as_long_as_rfc_5322_allows(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """No 127-character limit in the current OpenAPI: a one-click List-Unsubscribe (RFC
    8058) with long signed links is sent as given; a line over 998 characters is not."""
    links = ", ".join(f"<https://example.com/u/{'a' * 200}{i}>" for i in range(3))
    headers = [
        {"header": "List-Unsubscribe", "value": links},
        {"header": "List-Unsubscribe-Post", "value": "List-Unsubscribe=One-Click"},
    ]
    ok(api.post("/email/send", json=email(custom_headers=headers)))
    [message] = sandbox.messages()
    assert message["custom_headers"]["List-Unsubscribe"] == links
    long = [{"header": "X-Long", "value": "v" * (998 - len("X-Long: ") + 1)}]
    assert field_error(api.post("/email/send", json=email(custom_headers=long))) == "custom_headers"


def test_unknown_fields_are_ignored_like_the_real_api(api: httpx.Client, sandbox: Sandbox) -> None:
    ok(api.post("/email/send", json=email(reply_to="help@example.com", tracking="on")))
    [message] = sandbox.messages()
    assert message["custom_headers"] == {}  # reply_to is not a field: it only works as a header


def test_attachments_and_inlines_by_blob_and_url(api: httpx.Client, sandbox: Sandbox) -> None:
    body = email(
        html_body='<img src="cid:logo.png">',
        attachments=[
            {"filename": "report.pdf", "mimetype": "application/pdf", "fileblob": PNG},
            {"filename": "photo.jpg", "mimetype": "image/jpeg", "url": "https://cdn.test/p.jpg"},
        ],
        inlines=[{"filename": "logo.png", "mimetype": "image/png", "fileblob": PNG}],
    )
    ok(api.post("/email/send", json=body))
    [message] = sandbox.messages()
    assert message["attachments"] == ["report.pdf", "photo.jpg"]
    assert message["inlines"] == ["logo.png"]


def test_fastaccept_answers_only_the_email_id(api: httpx.Client, sandbox: Sandbox) -> None:
    data = ok(api.post("/email/send", json=email(fastaccept=True)))
    assert set(data) == {"email_id"}
    assert sandbox.messages()[0]["email_id"] == data["email_id"]


def test_the_fastaccept_knob_answers_every_send_so(api: httpx.Client, sandbox: Sandbox) -> None:
    """The coming default ("will soon become the default", OpenAPI): no field needed."""
    sandbox.configure(fastaccept=True)
    assert set(ok(api.post("/email/send", json=email()))) == {"email_id"}
    sandbox.configure(fastaccept=False)
    assert "succeeded" in ok(api.post("/email/send", json=email()))


def test_schedule_answers_a_schedule_id(api: httpx.Client, sandbox: Sandbox) -> None:
    when = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S +0000")
    data = ok(api.post("/email/send", json=email(schedule=when)))
    assert data["schedule_id"]
    [message] = sandbox.messages()
    assert message["schedule_id"] == data["schedule_id"]
    assert message["schedule"].startswith(when[:10])
