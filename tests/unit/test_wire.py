"""The worker recognises what producers write, and only that, without validating again."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from outbox.core.smtp2go.models import EmailSend, MimeSend, SmsSend
from outbox.core.states import Kind
from outbox.core.wire import OUTBOX_ID_HEADER, PoisonPayload, check, tagged

EMAIL = EmailSend(
    sender="Shop <shop@example.com>",
    to=["ann@example.org"],
    cc=["bob@example.org"],
    subject="Receipt",
    text_body="Thanks",
    reply_to="help@example.com",
    custom_headers={"X-Order": "7"},
    attachments=[{"filename": "r.txt", "fileblob": base64.b64encode(b"hi").decode()}],
).to_wire()
TEMPLATE = EmailSend(
    sender="shop@example.com", to=["ann@example.org"], template_id="T-1", template_data={"n": 1}
).to_wire()
MIME = MimeSend(mime_email="From: a@example.com\r\nTo: b@example.org\r\n\r\nhi").to_wire()
SMS = SmsSend(destination=["+61400000000"], content="code 1").to_wire()


@pytest.mark.parametrize(
    ("kind", "payload"),
    [(Kind.EMAIL, EMAIL), (Kind.TEMPLATE, TEMPLATE), (Kind.MIME, MIME), (Kind.SMS, SMS)],
)
def test_what_a_producer_writes_is_recognised(kind: Kind, payload: dict[str, Any]) -> None:
    assert check(kind, payload) is payload


@pytest.mark.parametrize(
    ("kind", "payload", "fields"),
    [
        # an older producer's shape
        (Kind.EMAIL, {"from": "a@example.com", "recipients": ["b@example.org"], "body": "x"},
         {"from", "recipients", "body", "sender", "to", "html_body"}),
        (Kind.EMAIL, {**EMAIL, "to": "nobody"}, {"to.0"}),
        (Kind.EMAIL, {**EMAIL, "to": []}, {"to"}),
        (Kind.EMAIL, {**EMAIL, "cc": ["ok@example.org", "not an address"]}, {"cc.1"}),
        (Kind.EMAIL, {**EMAIL, "subject": "Hi\r\nBcc: everyone@example.org"}, {"subject"}),
        (Kind.EMAIL, {**EMAIL, "custom_headers": [{"header": "X-A", "value": "1\n2"}]},
         {"custom_headers"}),
        (Kind.EMAIL, {**EMAIL, "attachments": [{"filename": "a.txt"}]}, {"attachments"}),
        (Kind.EMAIL, {"sender": "a@example.com", "to": ["b@example.org"]}, {"html_body"}),
        (Kind.TEMPLATE, {**TEMPLATE, "template_data": [1, 2]}, {"template_data"}),
        (Kind.MIME, {"mime_email": "not base64 at all!"}, {"mime_email"}),
        (Kind.SMS, {**SMS, "destination": ["0400 000 000"]}, {"destination.0"}),
        (Kind.SMS, {**SMS, "content": "  "}, {"content"}),
        (Kind.SMS, "not even an object", {"__root__"}),
    ],
)  # fmt: skip
def test_poison_is_named_field_by_field(kind: Kind, payload: Any, fields: set[str]) -> None:
    with pytest.raises(PoisonPayload) as refused:
        check(kind, payload)
    assert set(refused.value.field_errors) == fields


def test_an_email_carries_its_chunk_id_once() -> None:
    again = {**EMAIL, "custom_headers": [{"header": "x-outbox-id", "value": "forged"}]}
    for payload in (EMAIL, again):
        body = tagged(Kind.EMAIL, payload, "c" * 32 + ".0")
        ids = [h for h in body["custom_headers"] if h["header"].lower() == "x-outbox-id"]
        assert ids == [{"header": OUTBOX_ID_HEADER, "value": "c" * 32 + ".0"}]
    assert "custom_headers" not in TEMPLATE
    assert tagged(Kind.TEMPLATE, TEMPLATE, "t.0")["custom_headers"][-1]["value"] == "t.0"
    assert EMAIL["custom_headers"][-1]["header"] == "Reply-To"  # the original is untouched


def test_a_mime_message_carries_its_chunk_id_as_its_first_header() -> None:
    body = tagged(Kind.MIME, MIME, "m" * 32 + ".0")
    raw = base64.b64decode(body["mime_email"])
    assert raw.startswith(b"X-Outbox-Id: " + b"m" * 32 + b".0\r\nFrom: a@example.com")
    assert tagged(Kind.MIME, body, "other.0") == body  # tagged once
    assert tagged(Kind.SMS, SMS, "s.0") == SMS
