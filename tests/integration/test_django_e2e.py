"""Django's mail API end to end: EmailMultiAlternatives -> the backend -> Redis broker ->
a real celery worker -> the sandbox, which must hold each message as Django built it."""

from __future__ import annotations

from email.mime.image import MIMEImage

import pytest

from outbox.core.states import State
from outbox.worker.runtime import Runtime
from tests.conftest import Sandbox
from tests.django_settings import configure
from tests.integration.conftest import Fleet, wait_all_done

configure()

from django.core.mail import EmailMultiAlternatives, get_connection  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_django_messages_arrive_intact(fleet: Fleet, producer: Runtime, sandbox: Sandbox) -> None:
    fleet.start(concurrency=4)
    logo = MIMEImage(b"\x89PNG\r\n\x1a\n" + bytes(32), "png")
    logo.add_header("Content-ID", "<logo@shop>")
    rich = EmailMultiAlternatives(
        subject="Your order ✓",
        body="Thanks, Ann",
        from_email="Shop <shop@example.com>",
        to=["Ann <ann@example.org>"],
        cc=["cc@example.org"],
        bcc=["bcc@example.org"],
        reply_to=["help@example.com"],
        headers={"X-Order": "42"},
    )
    rich.attach_alternative('<p>Thanks, <img src="cid:logo@shop"></p>', "text/html")
    rich.attach("receipt.pdf", b"%PDF-1.4 fake", "application/pdf")
    rich.attach(logo)
    rich.tags = ["receipt"]
    rich.metadata = {"user": "u7"}

    invite = EmailMultiAlternatives(
        "Meeting", "See the invitation", "Team <team@example.com>", ["bob@example.org"]
    )
    invite.attach_alternative("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "text/calendar")
    invite.tags = ["invite"]

    assert get_connection().send_messages([rich, invite]) == 2
    records = wait_all_done([rich.outbox_handle, invite.outbox_handle], timeout=60)
    assert [r.state for r in records] == [State.SENT, State.SENT]

    by_id = {m["email_id"]: m for m in sandbox.messages()}
    sent = by_id[records[0].chunks[0].email_id]
    assert sent["endpoint"] == "email/send"
    assert (sent["sender"], sent["to"], sent["cc"], sent["bcc"]) == (
        "Shop <shop@example.com>",
        ["ann@example.org"],
        ["cc@example.org"],
        ["bcc@example.org"],
    )
    assert (sent["subject"], sent["text_body"], sent["html_body"]) == (
        "Your order ✓",
        "Thanks, Ann",
        '<p>Thanks, <img src="cid:logo@shop"></p>',
    )
    assert sent["custom_headers"] == {
        "X-Order": "42",
        "Reply-To": "help@example.com",
        "X-Tag": "receipt",
        "X-Metadata-user": "u7",
        "X-Outbox-Id": records[0].chunks[0].id,  # the worker's, to find the send again
    }
    assert (sent["attachments"], sent["attachment_mimetypes"]) == (
        ["receipt.pdf"],
        ["application/pdf"],
    )
    assert (sent["inlines"], sent["inline_mimetypes"]) == (["logo@shop"], ["image/png"])

    whole = by_id[records[1].chunks[0].email_id]
    assert whole["endpoint"] == "email/mime"
    assert (whole["sender"], whole["to"], whole["subject"]) == (
        "Team <team@example.com>",
        ["bob@example.org"],
        "Meeting",
    )
    assert whole["text_body"] == "See the invitation"
    assert whole["custom_headers"]["X-Tag"] == "invite"
