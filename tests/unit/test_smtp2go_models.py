"""Every limit of the payload models, as tables, and what ``to_wire`` sends."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from outbox.core.smtp2go.models import (
    MAX_EMAIL_REQUEST_BYTES,
    MAX_HEADER_LINE,
    MAX_RECIPIENTS,
    RECIPIENTS_ROOM,
    ActivityEvent,
    ActivitySearch,
    APIResult,
    Attachment,
    BatchResult,
    BatchSend,
    CustomHeader,
    EmailSend,
    Inline,
    MimeSend,
    SendResult,
    SmsSend,
    SmsSendResult,
    SuppressionAdd,
    SuppressionRemove,
    TemplateAdd,
    TemplateEdit,
    WebhookAdd,
    WebhookEdit,
    field_errors_of,
    validate_address,
)
from outbox.core.text import wire_json

BLOB = base64.b64encode(b"%PDF-1.4 not really").decode()


def rcpts(n: int) -> list[str]:
    return [f"user{i}@example.com" for i in range(n)]


def email(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sender": "Shop <shop@example.com>",
        "to": ["alice@example.com"],
        "subject": "Your order",
        "text_body": "Thanks!",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def errors_of(data: dict[str, Any], model: type[Any] = EmailSend) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return field_errors_of(info.value)


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    "value",
    [
        "alice@example.com",
        "Alice <alice@example.com>",
        '"Doe, Jane" <jane@example.com>',
        "<bob@example.com>",
        "first.last+tag@sub.example.co.uk",
        "Jöhn <j@exämple.com>",
        "  padded@example.com  ",
    ],
)
def test_valid_addresses(value: str) -> None:
    assert validate_address(value) == value.strip()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "no-at-sign",
        "a@nodot",
        "a@",
        "@example.com",
        "a@example.com, b@example.com",
        "a@example.com;b@example.com",
        "Name <a@example.com",
        "Name <a@example.com> trailing",
        "a@example.com garbage",
        "Evil\r\nBcc: x@example.com <a@example.com>",
        "a@example.com\n",
        "Name\n <a@example.com>",
        "a@ex ample.com",
    ],
)
def test_invalid_addresses(value: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        validate_address(value)


# --------------------------------------------------------------------------- recipients


@pytest.mark.parametrize(
    ("field", "count", "ok"),
    [
        ("to", 0, False),
        ("to", 1, True),
        ("to", MAX_RECIPIENTS, True),
        ("to", MAX_RECIPIENTS + 1, False),
        ("cc", 0, True),
        ("cc", MAX_RECIPIENTS, True),
        ("cc", MAX_RECIPIENTS + 1, False),
        ("bcc", MAX_RECIPIENTS, True),
        ("bcc", MAX_RECIPIENTS + 1, False),
    ],
)
def test_recipient_limits(field: str, count: int, ok: bool) -> None:
    data = email(**{field: rcpts(count)})
    if ok:
        assert len(getattr(EmailSend.model_validate(data), field)) == count
    else:
        assert field in errors_of(data)


def test_each_list_has_its_own_limit() -> None:
    sent = EmailSend.model_validate(email(to=rcpts(100), cc=rcpts(100), bcc=rcpts(100))).to_wire()
    assert (len(sent["to"]), len(sent["cc"]), len(sent["bcc"])) == (100, 100, 100)


def test_every_bad_recipient_is_named() -> None:
    errors = errors_of(email(to=["ok@example.com", "bad", "fine@example.com", "x@y"]))
    assert set(errors) == {"to.1", "to.3"}


def test_single_string_recipient_becomes_a_list() -> None:
    assert EmailSend.model_validate(email(to="alice@example.com")).to == ["alice@example.com"]


# --------------------------------------------------------------------------- subject & body


@pytest.mark.parametrize(
    ("overrides", "bad_field"),
    [
        ({"subject": "x" * 256}, "subject"),
        ({"subject": "Hello\r\nBcc: evil@example.com"}, "subject"),
        ({"subject": "Hello\nthere"}, "subject"),
        ({"text_body": ..., "html_body": ...}, "html_body"),
        ({"text_body": "", "html_body": ""}, "html_body"),
        ({"sender": "Evil\r\n <shop@example.com>"}, "sender"),
        ({"reply_to": "not-an-address"}, "reply_to"),
        ({"reply_to": "N" * 970 + " <help@example.com>"}, "reply_to"),
        ({"template_data": {"when": datetime.now()}}, "template_data"),
        ({"template_data": {"x": float("nan")}}, "template_data"),
        ({"template_data": ["not", "an", "object"]}, "template_data"),
    ],
)
def test_invalid_email_fields(overrides: dict[str, Any], bad_field: str) -> None:
    assert bad_field in errors_of(email(**overrides))


def test_subject_255_is_fine() -> None:
    assert EmailSend.model_validate(email(subject="x" * 255)).subject == "x" * 255


def test_template_without_subject_or_body_is_fine() -> None:
    sent = EmailSend.model_validate(
        email(subject=..., text_body=..., template_id="welcome-1", template_data={"name": "Al"})
    ).to_wire()
    assert sent["template_id"] == "welcome-1"
    assert sent["template_data"] == {"name": "Al"}
    assert "subject" not in sent


def test_html_only_is_fine() -> None:
    assert EmailSend.model_validate(email(text_body=..., html_body="<p>hi</p>")).html_body


def test_several_cross_field_problems_are_all_named() -> None:
    errors = errors_of(
        email(
            text_body=...,
            reply_to="r@example.com",
            custom_headers=[{"header": "Reply-To", "value": "x@example.com"}],
        )
    )
    assert {"reply_to", "html_body"} <= set(errors)


@pytest.mark.parametrize("subject", [..., "", None])
def test_an_email_without_a_subject_is_accepted(subject: Any) -> None:
    """The OpenAPI (v3.0.4) requires only ``sender`` and ``to``, with a body or a
    template: the API takes an email without a subject, and so do the models."""
    sent = EmailSend.model_validate(email(subject=subject)).to_wire()
    assert "subject" not in sent or sent["subject"] == ""


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("header", "value", "ok"),
    [
        ("X-Order", "42", True),
        # "Name: value" is one line of at most 998 characters (RFC 5322)
        ("X-" + "a" * 993, "v", True),
        ("X-" + "a" * 994, "v", False),
        ("X-Order", "v" * 989, True),
        ("X-Order", "v" * 990, False),
        ("Content-Type", "text/plain", False),
        ("content-transfer-encoding", "8bit", False),
        ("MIME-Version", "1.0", False),
        ("X-Order", "a\r\nBcc: evil@example.com", False),
        ("X-Order", "a\nb", False),
        ("Bad Header", "v", False),
        ("Bad:Header", "v", False),
        ("", "v", False),
        ("X-Ünicode", "v", False),
    ],
)
def test_custom_header_rules(header: str, value: str, ok: bool) -> None:
    data = {"header": header, "value": value}
    if ok:
        assert CustomHeader.model_validate(data).to_wire() == data
    else:
        with pytest.raises(ValidationError):
            CustomHeader.model_validate(data)


def test_bad_header_is_named_by_position() -> None:
    errors = errors_of(
        email(
            custom_headers=[
                {"header": "X-A", "value": "1"},
                {"header": "MIME-Version", "value": "1"},
            ]
        )
    )
    assert set(errors) == {"custom_headers.1.header"}


def test_custom_headers_from_a_mapping() -> None:
    sent = EmailSend.model_validate(email(custom_headers={"X-A": "1", "X-B": "2"})).to_wire()
    assert sent["custom_headers"] == [
        {"header": "X-A", "value": "1"},
        {"header": "X-B", "value": "2"},
    ]


def test_reply_to_travels_as_a_header() -> None:
    sent = EmailSend.model_validate(email(reply_to="Help <help@example.com>")).to_wire()
    assert "reply_to" not in sent
    assert sent["custom_headers"] == [{"header": "Reply-To", "value": "Help <help@example.com>"}]


def test_reply_to_twice_is_refused() -> None:
    data = email(
        reply_to="help@example.com",
        custom_headers=[{"header": "reply-to", "value": "x@example.com"}],
    )
    assert "reply_to" in errors_of(data)


# --------------------------------------------------------------------------- attachments


@pytest.mark.parametrize(
    ("attachment", "ok"),
    [
        ({"filename": "a.pdf", "mimetype": "application/pdf", "fileblob": BLOB}, True),
        ({"filename": "a.pdf", "fileblob": BLOB}, True),
        ({"filename": "a.jpg", "url": "https://cdn.example.com/a.jpg"}, True),
        ({"filename": "a.pdf", "fileblob": BLOB, "url": "https://cdn.example.com/a"}, False),
        ({"filename": "a.pdf", "mimetype": "application/pdf"}, False),
        ({"filename": "a.pdf", "fileblob": "not base64!!"}, False),
        ({"filename": "a.pdf", "fileblob": "abc"}, False),
        ({"filename": "a.pdf", "fileblob": ""}, False),
        ({"filename": "a.pdf", "url": "ftp://example.com/a"}, False),
        ({"filename": "", "fileblob": BLOB}, False),
        ({"filename": "a\r\n.pdf", "fileblob": BLOB}, False),
        ({"filename": "a.pdf", "mimetype": "pdf", "fileblob": BLOB}, False),
    ],
)
def test_attachment_rules(attachment: dict[str, Any], ok: bool) -> None:
    if ok:
        Attachment.model_validate(attachment)
    else:
        with pytest.raises(ValidationError):
            Attachment.model_validate(attachment)


def test_attachment_fields_on_the_wire() -> None:
    wire = Attachment(filename="a.pdf", fileblob=BLOB).to_wire()
    assert wire == {"filename": "a.pdf", "mimetype": "application/pdf", "fileblob": BLOB}
    wrapped = "\n".join(BLOB[i : i + 8] for i in range(0, len(BLOB), 8))
    assert Attachment(filename="a.pdf", fileblob=wrapped).fileblob == BLOB


def test_content_bytes_travel_as_base64_with_a_guessed_mimetype() -> None:
    for content in (b"%PDF-1.4 not really", bytearray(b"%PDF-1.4 not really")):
        wire = Attachment.model_validate({"filename": "a.pdf", "content": content}).to_wire()
        assert wire == {"filename": "a.pdf", "mimetype": "application/pdf", "fileblob": BLOB}
    inline = Inline.model_validate({"filename": "logo.png", "content": b"\x89PNG", "cid": "logo"})
    assert inline.to_wire() == {
        "filename": "logo",
        "mimetype": "image/png",
        "fileblob": base64.b64encode(b"\x89PNG").decode(),
    }


@pytest.mark.parametrize(
    ("attachment", "field", "says"),
    [
        ({"filename": "a.txt", "content": "not base64!"}, "content", "must be bytes"),
        ({"filename": "a.txt", "content": 12}, "content", "not int"),
        ({"filename": "a.txt", "content": b""}, "content", "must not be empty"),
        ({"filename": "a.txt", "fileblob": b"raw bytes!"}, "fileblob", "as content, or a url"),
        ({"filename": "a.txt", "data": b"x"}, "data", "not a field of an attachment"),
        ({"filename": "a.txt"}, "fileblob", "give one of fileblob (base64 text), url"),
        ({"filename": "a.txt", "content": b"x", "fileblob": BLOB}, "content", "only one of"),
    ],
)
def test_a_bad_file_names_its_field_and_what_is_accepted(
    attachment: dict[str, Any], field: str, says: str
) -> None:
    errors = errors_of(email(attachments=[{"filename": "ok.pdf", "fileblob": BLOB}, attachment]))
    assert set(errors) == {f"attachments.1.{field}"}
    assert says in errors[f"attachments.1.{field}"]
    if field == "data" or says.startswith("give"):  # the shapes a file may take, listed
        assert "url, content (bytes) or path" in errors[f"attachments.1.{field}"]


def test_bad_attachment_is_named_by_position() -> None:
    data = email(
        attachments=[{"filename": "a.pdf", "fileblob": BLOB}, {"filename": "b", "fileblob": "@@"}]
    )
    assert set(errors_of(data)) == {"attachments.1.fileblob"}


def test_inline_cid_becomes_the_filename_and_is_not_sent() -> None:
    inline = Inline.model_validate({"filename": "logo.png", "fileblob": BLOB, "cid": "logo123"})
    assert inline.to_wire() == {"filename": "logo123", "mimetype": "image/png", "fileblob": BLOB}


def test_inline_without_cid_keeps_filename() -> None:
    inline = Inline(filename="logo.png", mimetype="image/png", fileblob=BLOB)
    assert inline.to_wire()["filename"] == "logo.png"


# --------------------------------------------------------------------------- size


#: What a producer may put in one ``email/send`` body (it keeps room for 300 recipients).
ROOM = MAX_EMAIL_REQUEST_BYTES - RECIPIENTS_ROOM


def _json_bytes(model: EmailSend) -> int:
    return len(wire_json(model.to_wire()))


def test_the_request_limit_counts_the_body_as_sent() -> None:
    """The 50 MB of the 2026-06-11 changelog are the request's bytes: JSON escapes count
    (a newline travels as two bytes), and the message is measured as the client sends it."""
    small = EmailSend.model_validate(email(text_body="x"))
    overhead = _json_bytes(small) - 1
    fits = EmailSend.model_validate(email(text_body="\n" * ((ROOM - overhead) // 2)))
    assert fits.request_bytes == _json_bytes(fits) <= ROOM
    errors = errors_of(email(text_body="\n" * ((ROOM - overhead) // 2 + 1)))
    assert set(errors) == {"text_body"}
    assert "over the 50.0 MB SMTP2GO takes for /email/send" in errors["text_body"]


def test_a_message_at_the_limit_is_fine_and_one_byte_more_is_not() -> None:
    overhead = _json_bytes(EmailSend.model_validate(email(text_body="x"))) - 1
    EmailSend.model_validate(email(text_body="x" * (ROOM - overhead)))
    assert set(errors_of(email(text_body="x" * (ROOM - overhead + 1)))) == {"text_body"}


def test_attachments_count_base64_encoded_and_are_named() -> None:
    blob = "A" * (MAX_EMAIL_REQUEST_BYTES // 4 * 4)  # valid base64, the limit on its own
    errors = errors_of(email(attachments=[{"filename": "big.bin", "fileblob": blob}]))
    assert set(errors) == {"attachments.0"}
    assert errors["attachments.0"].startswith(
        "big.bin is 37.5 MB (50.0 MB base64-encoded, as it is sent): the request would be "
        "50.0 MB, over the 50.0 MB SMTP2GO takes for /email/send"
    )


def test_the_file_that_takes_the_request_over_is_named_with_what_would_fit() -> None:
    """Two 20 MB files fit on disk (40 MB) but not as sent (53.3 MB): the second is the
    one over, and the message says what it could be beside the first."""
    twenty = b"\0" * 20_000_000
    files = [{"filename": "a.bin", "content": twenty}, {"filename": "b.bin", "content": twenty}]
    errors = errors_of(email(attachments=files))
    assert set(errors) == {"attachments.1"}
    assert errors["attachments.1"] == (
        "b.bin is 20.0 MB (26.7 MB base64-encoded, as it is sent): the request would be "
        "53.3 MB, over the 50.0 MB SMTP2GO takes for /email/send; with the rest of the "
        "message this file can be at most 17.4 MB"
    )
    twenty_one = {"filename": "logo.png", "content": b"\0" * 21_000_000}
    errors = errors_of(email(attachments=files[:1], inlines=[twenty_one]))
    assert set(errors) == {"inlines.0"}
    # A body over the limit on its own is named, whatever files come with it.
    errors = errors_of(email(text_body="x" * MAX_EMAIL_REQUEST_BYTES, attachments=files[:1]))
    assert set(errors) == {"text_body"}


def test_mime_limit_counts_the_base64_the_message_travels_as() -> None:
    head = "From: a@example.com\r\nTo: b@example.com\r\n\r\n"
    raw = (MAX_EMAIL_REQUEST_BYTES - len('{"mime_email":""}')) // 4 * 3
    MimeSend(mime_email=head + "x" * (raw - len(head)))
    with pytest.raises(ValidationError, match="/email/mime"):
        MimeSend(mime_email=head + "x" * (raw - len(head) + 1))


def test_a_header_line_may_be_as_long_as_rfc_5322_allows() -> None:
    """The 127 characters of the 2017 docs are gone: a one-click List-Unsubscribe with
    long signed links goes as given."""
    links = ", ".join(f"<https://example.com/u/{'a' * 200}{i}>" for i in range(3))
    EmailSend.model_validate(
        email(
            custom_headers={
                "List-Unsubscribe": links,
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        )
    )
    name = "X-Long"
    EmailSend.model_validate(email(custom_headers={name: "v" * (MAX_HEADER_LINE - len(name) - 2)}))
    errors = errors_of(email(custom_headers={name: "v" * (MAX_HEADER_LINE - len(name) - 1)}))
    assert set(errors) == {"custom_headers.0.value"}
    assert "998" in errors["custom_headers.0.value"]


# --------------------------------------------------------------------------- to_wire


def test_to_wire_omits_none_and_empty() -> None:
    sent = EmailSend.model_validate(email()).to_wire()
    assert sent == {
        "sender": "Shop <shop@example.com>",
        "to": ["alice@example.com"],
        "subject": "Your order",
        "text_body": "Thanks!",
    }
    assert None not in sent.values()
    assert "null" not in json.dumps(sent)


def test_to_wire_keeps_nulls_inside_template_data() -> None:
    sent = EmailSend.model_validate(
        email(template_id="tpl-12", template_data={"coupon": None, "items": []})
    ).to_wire()
    assert sent["template_data"] == {"coupon": None, "items": []}


def test_schedule_is_iso_8601_and_naive_means_utc() -> None:
    when = datetime(2030, 1, 2, 3, 4, 5)
    sent = EmailSend.model_validate(email(schedule=when)).to_wire()
    assert datetime.fromisoformat(sent["schedule"]) == when.replace(tzinfo=UTC)


def test_wire_form_validates_back_to_itself() -> None:
    original = EmailSend.model_validate(
        email(
            reply_to="help@example.com",
            cc=["c@example.com"],
            custom_headers=[{"header": "X-A", "value": "1"}],
            attachments=[{"filename": "a.pdf", "fileblob": BLOB}],
            inlines=[{"filename": "l.png", "fileblob": BLOB, "cid": "logo"}],
            schedule=datetime(2030, 1, 1, tzinfo=UTC),
            fastaccept=True,
        )
    )
    wire = original.to_wire()
    assert EmailSend.model_validate(wire).to_wire() == wire


def test_unknown_fields_are_refused() -> None:
    assert "subjet" in errors_of(email(subjet="typo"))


def test_mime_is_sent_base64_and_accepted_either_way() -> None:
    raw = "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nbody"
    encoded = base64.b64encode(raw.encode()).decode()
    assert MimeSend(mime_email=raw).to_wire() == {"mime_email": encoded}
    assert MimeSend(mime_email=encoded).mime_email == raw
    for bad in ("", "   ", "bm90IG1pbWU=", "%%%"):
        with pytest.raises(ValidationError):
            MimeSend(mime_email=bad)


def test_batch_serialises_each_email() -> None:
    batch = BatchSend.model_validate({"emails": [email(), email(reply_to="r@example.com")]})
    wire = batch.to_wire()
    assert len(wire["emails"]) == 2
    assert wire["emails"][1]["custom_headers"][0]["header"] == "Reply-To"
    with pytest.raises(ValidationError):
        BatchSend.model_validate({"emails": []})


# --------------------------------------------------------------------------- SMS


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("+61400000000", True),
        ("+12025550959", True),
        ("+1234567", True),
        ("+123456789012345", True),
        ("61400000000", False),
        ("+0400000000", False),
        ("+123456", False),
        ("+1234567890123456", False),
        ("+61 400 000 000", False),
        ("", False),
    ],
)
def test_e164(number: str, ok: bool) -> None:
    data = {"destination": [number], "content": "code 1234"}
    if ok:
        assert SmsSend.model_validate(data).destination == [number]
    else:
        assert "destination.0" in errors_of(data, SmsSend)


@pytest.mark.parametrize(
    ("count", "ok"), [(0, False), (1, True), (MAX_RECIPIENTS, True), (MAX_RECIPIENTS + 1, False)]
)
def test_sms_destination_limits(count: int, ok: bool) -> None:
    data = {"destination": [f"+614000{i:05d}" for i in range(count)], "content": "hi"}
    if ok:
        SmsSend.model_validate(data)
    else:
        assert "destination" in errors_of(data, SmsSend)


def test_sms_aliases_serialise_to_wire_names() -> None:
    sms = SmsSend.model_validate({"to": ["+61400000000"], "message": "Your code is 1234"})
    assert sms.to_wire() == {"destination": ["+61400000000"], "content": "Your code is 1234"}


@pytest.mark.parametrize(
    "data",
    [
        {"destination": ["+61400000000"], "content": ""},
        {"destination": ["+61400000000"], "content": "   "},
        {"destination": ["+61400000000"]},
        {"destination": ["+61400000000"], "content": "x", "sender": "ACME"},
    ],
)
def test_invalid_sms(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SmsSend.model_validate(data)


# --------------------------------------------------------------------------- other requests


@pytest.mark.parametrize(
    ("overrides", "ok"),
    [
        ({}, True),
        ({"id": "abcd"}, False),
        ({"id": "a" * 24}, True),
        ({"id": "a" * 25}, False),
        ({"template_name": ""}, False),
        ({"template_name": "n" * 64}, True),
        ({"template_name": "n" * 65}, False),
        ({"html_body": ...}, False),
        ({"template_variables": ["name", "company"]}, True),
    ],
)
def test_template_add(overrides: dict[str, Any], ok: bool) -> None:
    data: dict[str, Any] = {
        "id": "welcome",
        "template_name": "Welcome",
        "subject": "Hi {{ name }}",
        "html_body": "<p>Hi {{ name }}</p>",
        "text_body": "Hi {{ name }}",
    }
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not ...}
    if ok:
        TemplateAdd.model_validate(data)
    else:
        with pytest.raises(ValidationError):
            TemplateAdd.model_validate(data)


def test_template_variables_list_becomes_object() -> None:
    edit = TemplateEdit(id="welcome", template_variables=["name"])  # type: ignore[arg-type]
    assert edit.to_wire() == {"id": "welcome", "template_variables": {"name": ""}}


def test_webhook_secret_hidden_in_repr_revealed_on_wire() -> None:
    hook = WebhookAdd.model_validate(
        {
            "url": "https://hooks.example.com/smtp2go",
            "events": ["delivered", "bounce"],
            "output_format": "json",
            "auth_header_type": "bearer",
            "auth_header_value": "s3cret-token",
        }
    )
    assert "s3cret-token" not in repr(hook)
    assert hook.to_wire()["auth_header_value"] == "s3cret-token"
    assert WebhookEdit(id=7, events=["open"]).to_wire() == {"id": 7, "events": ["open"]}
    with pytest.raises(ValidationError):
        WebhookAdd.model_validate({"url": "ftp://x", "events": []})
    with pytest.raises(ValidationError):
        WebhookAdd.model_validate({"url": "https://x.example.com", "output_format": "xml"})


@pytest.mark.parametrize(
    ("value", "ok"),
    [("a@example.com", True), ("example.com", True), ("nodot", False), ("a@b", False)],
)
def test_suppression_address_or_domain(value: str, ok: bool) -> None:
    if ok:
        assert SuppressionAdd(email_address=value).to_wire() == {"email_address": value}
    else:
        with pytest.raises(ValidationError):
            SuppressionAdd(email_address=value)
    with pytest.raises(ValidationError):
        SuppressionRemove(email_address="a@example.com", reasons=[])


def test_activity_search_limits_and_names() -> None:
    query = ActivitySearch.model_validate(
        {"email_id": "1er8bV-6Tw0Mi-7h", "limit": 1000, "start_date": "2030-01-01"}
    )
    assert query.to_wire() == {
        "start_date": "2030-01-01T00:00:00",
        "search_email_id": "1er8bV-6Tw0Mi-7h",
        "limit": 1000,
    }
    for limit in (0, 1001):
        with pytest.raises(ValidationError):
            ActivitySearch(limit=limit)


# --------------------------------------------------------------------------- responses


def test_a_send_answer_counts_emails_and_says_when_it_refused_one() -> None:
    """``succeeded``/``failed`` count emails (a request is one email, whatever its
    recipients) and ``failures`` are messages; the answer is 200 either way (OpenAPI
    v3.0.4, ``/email/send`` 200; onetimesecret issue #4190 for a live refusal)."""
    ok = SendResult.from_payload({"request_id": "r1", "data": {"succeeded": 1, "email_id": "e"}})
    assert (ok.request_id, ok.succeeded, ok.refused) == ("r1", 1, False)
    bad = SendResult.from_payload(
        {
            "request_id": "r2",
            "data": {"succeeded": 0, "failed": 1, "failures": ["domain verify fail"]},
        }
    )
    assert bad.refused
    assert bad.failures == ["domain verify fail"]
    fast = SendResult.from_payload({"request_id": "r3", "data": {"email_id": "e3"}})
    assert (fast.succeeded, fast.failed, fast.email_id, fast.refused) == (None, None, "e3", False)


def test_batch_result_shapes() -> None:
    listed = BatchResult.from_payload(
        {"request_id": "r", "data": [{"email_id": "a"}, {"schedule_id": "s"}, {"email_id": "c"}]}
    )
    assert listed.email_ids == ["a", None, "c"]
    wrapped = BatchResult.from_payload({"request_id": "r", "data": {"email_ids": ["a", "b"]}})
    assert wrapped.email_ids == ["a", "b"]


def test_sms_and_views_results() -> None:
    sms = SmsSendResult.from_payload(
        {
            "request_id": "r",
            "data": {
                "statuses": {"queued": 1},
                "total_sent": 1,
                "messages": [
                    {"destination": "+61400000000", "message_id": "m", "status": "queued"}
                ],
            },
        }
    )
    assert (sms.total_sent, sms.messages[0].message_id) == (1, "m")
    inner = APIResult.from_payload({"data": {"request_id": "inside", "messages": []}})
    assert inner.request_id == "inside"
    text = APIResult.from_payload({"request_id": "r", "data": "Successfully deleted template"})
    assert text.data == {"result": "Successfully deleted template"}


@pytest.mark.parametrize(
    "event",
    [
        {"custom_headers": {"X-Outbox-Id": "c1"}},
        {"headers": "Subject: hi\r\nX-Outbox-Id: c1\r\n"},
        {"headers": {"x-outbox-id": "c1"}},
        {"headers": [{"header": "X-Outbox-Id", "value": "c1"}]},
    ],
)
def test_activity_event_header_lookup(event: dict[str, Any]) -> None:
    assert ActivityEvent.model_validate(event).header("X-Outbox-Id") == "c1"
    assert ActivityEvent.model_validate(event).header("X-Other") is None
