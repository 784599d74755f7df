"""The Django email backend on fakeredis and the in-memory broker: each message shape
becomes the task payload it should, and bad input raises where Django expects it."""

from __future__ import annotations

import base64
import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.mime.image import MIMEImage
from email.mime.text import MIMEText
from typing import Any

import fakeredis
import pytest

from outbox import EnqueueError, ValidationError
from outbox.core.errors import RecipientsRefused
from outbox.core.states import State
from outbox.worker.runtime import Runtime, set_runtime
from tests.django_settings import configure

configure()

from django.core.mail import (  # noqa: E402 - Django needs its settings first
    EmailMessage,
    EmailMultiAlternatives,
    get_connection,
    send_mail,
    send_mass_mail,
)
from django.utils.translation import gettext_lazy  # noqa: E402

pytestmark = pytest.mark.usefixtures("runtime")

#: Not a real PNG: the backend never looks inside a file.
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def published_one(memory_broker: Any) -> tuple[str, dict[str, Any]]:
    [(name, (_, payload), _)] = memory_broker.drain()
    return name, payload


def mime_of(payload: dict[str, Any]) -> email.message.EmailMessage:
    raw = base64.b64decode(payload["mime_email"])
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_send_mail_queues_one_email(memory_broker: Any) -> None:
    count = send_mail(gettext_lazy("Receipt"), "Thanks", None, ["ann@example.org"])
    assert count == 1
    assert published_one(memory_broker) == (
        "outbox.send_email",
        {
            "sender": "Shop <shop@example.com>",
            "to": ["ann@example.org"],
            "subject": "Receipt",
            "text_body": "Thanks",
        },
    )


def test_send_mail_with_html_message_sends_both_bodies(memory_broker: Any) -> None:
    send_mail("Hi", "plain", "s@example.com", ["a@example.org"], html_message="<p>html</p>")
    _, payload = published_one(memory_broker)
    assert (payload["text_body"], payload["html_body"]) == ("plain", "<p>html</p>")


def test_every_part_of_a_rich_message_reaches_the_payload(memory_broker: Any) -> None:
    logo = MIMEImage(PNG, "png")
    logo.add_header("Content-ID", "<logo@shop>")
    logo.add_header("Content-Disposition", "inline", filename="logo.png")
    message = EmailMultiAlternatives(
        subject="Your order ✓",
        body="Plain text",
        from_email="Shop <shop@example.com>",
        to=["Ann <ann@example.org>", "bob@example.org"],
        cc=["cc@example.org"],
        bcc=["bcc@example.org"],
        reply_to=["help@example.com"],
        headers={"X-Order": "42", "List-Unsubscribe": "<mailto:unsub@example.com>"},
    )
    message.attach_alternative('<p>Order <img src="cid:logo@shop"></p>', "text/html")
    message.attach("receipt.pdf", b"%PDF-1.4 fake", "application/pdf")
    message.attach("notes.txt", "ünïcode notes")  # type guessed by Django
    message.attach(logo)

    assert get_connection().send_messages([message]) == 1

    name, payload = published_one(memory_broker)
    assert name == "outbox.send_email"
    assert payload == {
        "sender": "Shop <shop@example.com>",
        "to": ["Ann <ann@example.org>", "bob@example.org"],
        "cc": ["cc@example.org"],
        "bcc": ["bcc@example.org"],
        "subject": "Your order ✓",
        "text_body": "Plain text",
        "html_body": '<p>Order <img src="cid:logo@shop"></p>',
        "custom_headers": [
            {"header": "X-Order", "value": "42"},
            {"header": "List-Unsubscribe", "value": "<mailto:unsub@example.com>"},
            {"header": "Reply-To", "value": "help@example.com"},
        ],
        "attachments": [
            {
                "filename": "receipt.pdf",
                "mimetype": "application/pdf",
                "fileblob": b64(b"%PDF-1.4 fake"),
            },
            {"filename": "notes.txt", "mimetype": "text/plain", "fileblob": b64("ünïcode notes")},
        ],
        # SMTP2GO names an inline image by its content id (models.Inline).
        "inlines": [{"filename": "logo@shop", "mimetype": "image/png", "fileblob": b64(PNG)}],
    }
    assert message.outbox_handle.recipients == 4
    assert message.outbox_handle.status().state is State.QUEUED


def test_an_html_message_and_a_mime_attachment_without_content_id(memory_broker: Any) -> None:
    message = EmailMessage("Hi", "<b>bold</b>", "s@example.com", ["a@example.org"])
    message.content_subtype = "html"
    part = MIMEText("a,b\n1,2\n", "csv")
    part.add_header("Content-Disposition", "attachment", filename="data.csv")
    message.attach(part)
    message.send()
    _, payload = published_one(memory_broker)
    assert payload["html_body"] == "<b>bold</b>"
    assert "text_body" not in payload
    assert payload["attachments"] == [
        {"filename": "data.csv", "mimetype": "text/csv", "fileblob": b64("a,b\n1,2\n")}
    ]


def test_reply_to_headers(memory_broker: Any) -> None:
    several = EmailMessage("x", "y", "s@example.com", ["a@example.org"])
    several.reply_to = ["one@example.com", "Two <two@example.com>"]
    header = EmailMessage("x", "y", "s@example.com", ["a@example.org"])
    header.reply_to = ["ignored@example.com"]
    header.extra_headers = {"reply-to": "wins@example.com", "From": "Team <team@example.com>"}
    assert get_connection().send_messages([several, header]) == 2
    [(_, (_, first), _), (_, (_, second), _)] = memory_broker.drain()
    assert first["custom_headers"] == [
        {"header": "Reply-To", "value": "one@example.com, Two <two@example.com>"}
    ]
    # Django's own message: an explicit Reply-To header beats reply_to, a From header
    # beats from_email.
    assert second["custom_headers"] == [{"header": "reply-to", "value": "wins@example.com"}]
    assert second["sender"] == "Team <team@example.com>"


def test_anymail_tags_and_metadata_travel_as_headers(memory_broker: Any) -> None:
    message = EmailMessage("x", "y", "s@example.com", ["a@example.org"])
    message.tags = ["receipt", "shop"]
    message.metadata = {"Order-Id": 42, "user": "u7"}
    message.send()
    _, payload = published_one(memory_broker)
    assert payload["custom_headers"] == [
        {"header": "X-Tag", "value": "receipt, shop"},
        {"header": "X-Metadata-Order-Id", "value": "42"},
        {"header": "X-Metadata-user", "value": "u7"},
    ]


def test_anymail_template_id_and_merge_global_data_send_a_template(memory_broker: Any) -> None:
    message = EmailMessage(to=["a@example.org"], cc=["c@example.org"])
    message.template_id = "welcome-01"
    message.merge_global_data = {"name": "Ann"}
    message.attach("terms.txt", "terms")
    assert message.send() == 1
    name, payload = published_one(memory_broker)
    assert name == "outbox.send_template"
    assert payload == {
        "sender": "Shop <shop@example.com>",
        "to": ["a@example.org"],
        "cc": ["c@example.org"],
        "template_id": "welcome-01",
        "template_data": {"name": "Ann"},
        "attachments": [
            {"filename": "terms.txt", "mimetype": "text/plain", "fileblob": b64("terms")}
        ],
    }
    assert message.outbox_handle.kind == "template"


def test_esp_extra_idempotency_key_sends_once(memory_broker: Any) -> None:
    handles = []
    for _ in range(2):
        message = EmailMessage("x", "y", "s@example.com", ["a@example.org"])
        message.esp_extra = {"idempotency_key": "order-7"}
        assert message.send() == 1  # queued once, and Django's count says sent both times
        handles.append(message.outbox_handle)
    assert handles[1].id == handles[0].id
    assert (handles[0].duplicate, handles[1].duplicate) == (False, True)
    assert len(memory_broker.drain()) == 1


def test_send_at_naive_is_in_djangos_time_zone(memory_broker: Any) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    sydney_naive = now.astimezone(timezone_of_settings()).replace(tzinfo=None)
    message = EmailMessage("x", "y", "s@example.com", ["a@example.org"])
    message.send_at = sydney_naive + timedelta(hours=1)
    message.send()
    assert memory_broker.drain() == []  # parked until due
    record = message.outbox_handle.status()
    assert record.send_at == (now + timedelta(hours=1)).timestamp()


def timezone_of_settings() -> Any:
    from django.utils import timezone

    return timezone.get_current_timezone()


def test_a_calendar_invitation_goes_whole_as_mime(memory_broker: Any) -> None:
    message = EmailMultiAlternatives("Meeting", "See the invitation", "s@example.com", ["a@x.org"])
    message.attach_alternative("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "text/calendar")
    message.cc = ["c@example.org"]
    message.tags = ["invite"]
    message.extra_headers = {"X-Room": "4"}
    assert message.send() == 1
    name, payload = published_one(memory_broker)
    assert name == "outbox.send_mime"
    assert set(payload) == {"mime_email"}
    mime = mime_of(payload)
    assert (mime["From"], mime["To"], mime["Cc"]) == ("s@example.com", "a@x.org", "c@example.org")
    assert (mime["Subject"], mime["X-Room"], mime["X-Tag"]) == ("Meeting", "4", "invite")
    types = [part.get_content_type() for part in mime.walk()]
    assert types == ["multipart/alternative", "text/plain", "text/calendar"]
    assert message.outbox_handle.kind == "mime"


def _empty_body(message: EmailMultiAlternatives) -> None:
    message.body = ""


def _nameless_attachment(message: EmailMultiAlternatives) -> None:
    message.attach(None, b"data", "application/octet-stream")


def _empty_file(message: EmailMultiAlternatives) -> None:
    message.attach("empty.txt", b"", "text/plain")


def _inline_without_content_id(message: EmailMultiAlternatives) -> None:
    part = MIMEImage(PNG, "png")
    part.add_header("Content-Disposition", "inline")
    message.attach(part)


def _long_header(message: EmailMultiAlternatives) -> None:
    # a header line over RFC 5322's 998 characters
    message.extra_headers["X-Trace"] = "x" * 1000


@pytest.mark.parametrize(
    "shape",
    [_empty_body, _nameless_attachment, _empty_file, _inline_without_content_id, _long_header],
)
def test_what_the_json_fields_cannot_say_goes_whole(memory_broker: Any, shape: Any) -> None:
    message = EmailMultiAlternatives("x", "body", "s@example.com", ["a@example.org"])
    shape(message)
    assert message.send() == 1
    name, payload = published_one(memory_broker)
    assert name == "outbox.send_mime"
    assert mime_of(payload)["To"] == "a@example.org"


def test_a_message_sent_whole_may_not_have_bcc(memory_broker: Any) -> None:
    message = EmailMultiAlternatives("x", "y", "s@example.com", ["a@example.org"], bcc=["b@x.org"])
    message.attach_alternative("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "text/calendar")
    with pytest.raises(ValidationError) as info:
        message.send()
    assert set(info.value.errors) == {"bcc"}
    assert message.outbox_handle is None
    assert memory_broker.drain() == []


def test_fail_silently_false_raises_and_nothing_is_queued(memory_broker: Any) -> None:
    with pytest.raises(ValidationError) as info:
        send_mail("x", "y", "not an address", ["a@example.org", "bad@"])
    assert {"sender", "to.1"} <= set(info.value.errors)
    assert isinstance(info.value, ValueError)  # what Django raises for a bad address
    assert memory_broker.drain() == []


def test_fail_silently_counts_only_the_messages_queued(
    memory_broker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good = EmailMessage("x", "y", "s@example.com", ["a@example.org"])
    bad = EmailMessage("Bad one", "y", "s@example.com", ["bad@"])
    other = EmailMessage("x", "y", "s@example.com", ["c@example.org"])
    nobody = EmailMessage("x", "y", "s@example.com", [])
    with caplog.at_level("WARNING", logger="outbox.django"):
        assert get_connection(fail_silently=True).send_messages([good, bad, nobody, other]) == 2
    # what fail_silently swallowed is not lost without a trace
    (line,) = caplog.records
    assert "'Bad one' not queued" in line.getMessage()
    assert "to.0" in line.getMessage()
    assert [m.outbox_handle is None for m in (good, bad, nobody, other)] == [
        False,
        True,
        True,
        False,
    ]
    assert len(memory_broker.drain()) == 2
    datatuple = [("x", "y", "s@example.com", ["d@example.org"]), ("x", "y", "s@", ["e@x.org"])]
    assert send_mass_mail(datatuple, fail_silently=True) == 1


@pytest.fixture
def redis_down(runtime: Runtime) -> Iterator[None]:
    server = fakeredis.FakeServer()
    server.connected = False
    down = Runtime.from_settings(runtime.settings, redis_client=fakeredis.FakeRedis(server=server))
    set_runtime(down)
    yield
    set_runtime(runtime)


@pytest.mark.usefixtures("redis_down")
def test_redis_down_raises_enqueue_error_unless_silent(memory_broker: Any) -> None:
    with pytest.raises(EnqueueError):
        send_mail("x", "y", "s@example.com", ["a@example.org"])
    assert send_mail("x", "y", "s@example.com", ["a@example.org"], fail_silently=True) == 0
    assert memory_broker.drain() == []


def test_every_recipient_suppressed_is_refused(memory_broker: Any, runtime: Runtime) -> None:
    runtime.store.suppressions.add("gone@example.org")
    message = EmailMessage("x", "y", "s@example.com", ["gone@example.org"])
    with pytest.raises(RecipientsRefused) as info:
        message.send()
    assert info.value.rejected == ("gone@example.org",)
    assert message.outbox_handle.status().rejected == ["gone@example.org"]
    silent = EmailMessage("x", "y", "s@example.com", ["gone@example.org"])
    assert silent.send(fail_silently=True) == 0
    assert silent.outbox_handle.rejected == ("gone@example.org",)  # recorded, and says why
    assert memory_broker.drain() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"merge_data": {"a@example.org": {"n": 1}}}, "merge_data"),
        ({"track_clicks": True}, "track_clicks"),
        ({"esp_extra": {"fastaccept": False}}, "esp_extra.fastaccept"),
        ({"esp_extra": {"idempotency_key": ""}}, "idempotency_key"),
        ({"merge_global_data": {"n": 1}}, "merge_global_data"),
        ({"extra_headers": {"To": "other@example.org"}}, "extra_headers.To"),
        ({"extra_headers": {"Content-Type": "text/plain"}}, "extra_headers.Content-Type"),
        ({"metadata": {"k": "v\r\nBcc: evil@example.com"}}, "metadata.k"),
        ({"metadata": {"bad key": "v"}}, "metadata.bad key"),
        ({"tags": ["a,b"]}, "tags.0"),
        ({"reply_to": ["ok@example.com", "bad@"]}, "reply_to.1"),
        ({"subject": "x\nBcc: evil@example.com"}, "subject"),
        ({"subject": "x" * 256}, "subject"),
    ],
)
def test_bad_input_is_named(memory_broker: Any, change: dict[str, Any], field: str) -> None:
    message = EmailMessage("x", "y", "s@example.com", ["a@example.org"])
    for name, value in change.items():
        setattr(message, name, value)
    with pytest.raises(ValidationError) as info:
        message.send()
    assert field in info.value.errors, info.value.errors
    assert memory_broker.drain() == []


def test_bad_input_in_a_message_sent_whole_is_named_too(memory_broker: Any) -> None:
    message = EmailMultiAlternatives("x", "", "s@example.com", ["a@example.org"])
    message.metadata = {"k": "v\nBcc: evil@example.com"}
    with pytest.raises(ValidationError) as info:
        message.send()
    assert set(info.value.errors) == {"metadata.k"}
    message = EmailMultiAlternatives("x", "", "s@", ["a@example.org", "b@"], cc=["c@x"])
    with pytest.raises(ValidationError) as info:
        message.send()
    assert set(info.value.errors) == {"sender", "to.1", "cc.0"}
    assert memory_broker.drain() == []


def test_a_bare_string_where_django_wants_a_list_is_a_type_error(memory_broker: Any) -> None:
    with pytest.raises(TypeError):
        EmailMessage("x", "y", "s@example.com", "a@example.org")  # Django's own check
    message = EmailMessage("x", "y", "s@example.com", ["a@example.org"])
    message.reply_to = "r@example.org"
    with pytest.raises(TypeError, match="reply_to"):
        message.send(fail_silently=True)  # a programming error is never silenced
    assert memory_broker.drain() == []


def test_anymail_unset_attributes_are_ignored(memory_broker: Any) -> None:
    unset = type("UNSET", (object,), {})  # how django-anymail marks an attribute not set
    message = EmailMessage("x", "y", "s@example.com", ["a@example.org"])
    message.track_clicks = unset
    message.esp_extra = unset
    assert message.send() == 1
    assert published_one(memory_broker)[0] == "outbox.send_email"


def test_the_system_checks_name_the_senders_outbox_would_refuse() -> None:
    from django.core import checks
    from django.test import override_settings

    from outbox.django import check_settings

    with override_settings(DEFAULT_FROM_EMAIL="webmaster@localhost", ADMINS=[]):
        found = {c.id: c for c in check_settings()}
    assert set(found) == {"outbox.E001", "outbox.W002"}
    assert "webmaster@localhost" in found["outbox.E001"].msg
    assert found["outbox.E001"].level == checks.ERROR
    assert found["outbox.W002"].obj == "SERVER_EMAIL"

    # Error reports that would be lost are an error once someone is meant to get them.
    with override_settings(ADMINS=[("Ops", "ops@example.com")]):
        assert [c.id for c in check_settings()] == ["outbox.E002"]
    with override_settings(SERVER_EMAIL="errors@example.com"):
        assert check_settings() == []
    # A project on another backend is none of outbox's business.
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend"):
        assert check_settings() == []
    # Registered with Django's framework, so `manage.py check` runs it.
    assert check_settings in checks.registry.registry.get_checks()
