"""What a send's answer means, and what the API accepts that an older reading refused.

Sources (quoted in ``docs/smtp2go-fidelity.md``): the OpenAPI 3.0.4 description of the
API (``api-evangelist/smtp2go`` ``openapi/_original/smtp2go-openapi-original.yml``), the
live answers captured in onetimesecret/onetimesecret#4190, and the webhooks page
https://developers.smtp2go.com/docs/webhooks-overview.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from support.procs import wait_until
from tests.conftest import Sandbox
from tests.sandbox.conftest import Receiver, email, field_error, ok

pytestmark = pytest.mark.integration

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(16)).decode()
UNVERIFIED = (
    "An error occurred during the SMTP request: Verification failed for <x@unverified.test>"
    "\nUnrouteable address\ndomain verify fail <x@unverified.test>"
)


def search(api: httpx.Client, **body: Any) -> list[tuple[str, str]]:
    events = ok(api.post("/activity/search", json=body))["events"]
    return [(e["event"], e["recipient"]) for e in events]


def test_succeeded_and_failed_count_emails_not_recipients(api: httpx.Client) -> None:
    """OpenAPI 3.0.4 ``/email/send`` 200: "An email with multiple recipients is classed as 1
    email"; ``failures`` is "An array containing any error messages"."""
    body = email(to=["a@example.org", "b@example.org"], cc=["c@example.org"])
    data = ok(api.post("/email/send", json=body))
    assert data == {"succeeded": 1, "failed": 0, "failures": [], "email_id": data["email_id"]}


def test_unverified_sender_is_a_200_with_the_captured_failure(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """onetimesecret/onetimesecret#4190, captured without ``fastaccept``: HTTP 200,
    ``succeeded: 0, failed: 1``, the SMTP error in ``failures``, ``email_id: ""``."""
    sandbox.configure(verified_domains=["example.com"])
    ok(api.post("/email/send", json=email(sender="Shop <shop@example.com>")))
    data = ok(api.post("/email/send", json=email(sender="x@unverified.test")))
    assert data == {"succeeded": 0, "failed": 1, "failures": [UNVERIFIED], "email_id": ""}
    assert len(sandbox.messages()) == 1  # nothing of the refused one
    mime = "From: x@unverified.test\r\nTo: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"
    assert ok(api.post("/email/mime", json={"mime_email": mime}))["failures"] == [UNVERIFIED]
    stats = sandbox.stats()
    assert stats["soft_failed"] == 2
    assert stats["by_endpoint"]["email/send"]["soft_failed"] == 1


def test_unverified_sender_under_fastaccept_answers_an_id_and_is_rejected_later(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """#4190 with ``fastaccept: true``: ``{"email_id": ...}`` only; the webhooks page: an
    email "will be rejected if ... sending is attempted from an unverified sender"."""
    sandbox.configure(verified_domains=["example.com"])
    data = ok(api.post("/email/send", json=email(sender="x@unverified.test", fastaccept=True)))
    assert set(data) == {"email_id"}
    assert data["email_id"]
    [message] = sandbox.messages()
    assert message["recipients"] == []
    assert message["rejected"] == ["ann@example.org"]
    assert message["reject_reason"] == "unverified sender"
    assert search(api, email_id=data["email_id"]) == [("rejected", "ann@example.org")]


def test_a_suppressed_recipient_is_accepted_then_rejected(
    api: httpx.Client, sandbox: Sandbox, receiver: Receiver
) -> None:
    """Webhooks page: "If delivery is attempted to a suppressed address, it will be
    rejected" (a ``reject`` event; ``rejected`` in activity). The answer is not documented:
    the email is accepted (assumption), the suppressed recipients are not delivered."""
    ok(api.post("/webhook/add", json={"url": receiver.url, "events": ["reject"]}))
    ok(api.post("/suppression/add", json={"email_address": "gone@example.org"}))
    ok(api.post("/suppression/add", json={"email_address": "blocked.test"}))
    body = email(to=["ann@example.org", "Gone <gone@example.org>", "x@blocked.test"])
    data = ok(api.post("/email/send", json=body))
    assert (data["succeeded"], data["failed"], data["failures"]) == (1, 0, [])
    [message] = sandbox.messages()
    assert message["recipients"] == ["ann@example.org"]
    assert sorted(message["rejected"]) == ["gone@example.org", "x@blocked.test"]
    assert ("rejected", "gone@example.org") in search(api, email_id=data["email_id"])
    wait_until(lambda: len(receiver.requests) == 2, timeout=10, what="two reject events")


def test_every_recipient_suppressed_is_still_an_accepted_email(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """The same inference: one email, accepted; its only recipient rejected."""
    ok(api.post("/suppression/add", json={"email_address": "gone@example.org"}))
    data = ok(api.post("/email/send", json=email(to=["gone@example.org"])))
    assert (data["succeeded"], data["failed"]) == (1, 0)
    assert data["email_id"]
    assert sandbox.messages()[0]["recipients"] == []
    assert search(api, email_id=data["email_id"]) == [("rejected", "gone@example.org")]


def test_soft_fail_next_answers_200_failed_and_delivers_nothing(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """The shape of a send that fails (#4190, OpenAPI 3.0.4): 200, ``succeeded: 0, failed:
    1``, a message in ``failures``, ``email_id: ""``. ``sms/send`` has no ``failed`` count:
    its closest shape is every message with status ``failed`` (a status of the enum)."""
    sandbox.configure(soft_fail_next=3)
    sent = ok(api.post("/email/send", json=email()))
    assert (sent["succeeded"], sent["failed"], sent["email_id"]) == (0, 1, "")
    [failure] = sent["failures"]
    assert failure.startswith("An error occurred during the SMTP request: ")
    mime = "From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\n\r\nbody\r\n"
    assert ok(api.post("/email/mime", json={"mime_email": mime}))["failed"] == 1
    sms = ok(api.post("/sms/send", json={"destination": ["+61400000000"], "content": "hi"}))
    assert sms["total_sent"] == 0
    assert sms["statuses"] == {"queued": 0, "failed": 1}
    assert [m["status"] for m in sms["messages"]] == ["failed"]
    assert sandbox.messages() == []
    stats = sandbox.stats()
    assert stats["soft_failed"] == 3
    assert stats["accepted"] == 3  # they are 200 answers
    assert ok(api.post("/email/send", json=email()))["succeeded"] == 1  # only the next 3


def test_a_subject_is_not_required(api: httpx.Client, sandbox: Sandbox) -> None:
    """OpenAPI 3.0.4 ``/email/send``: ``required: [sender, to]``; a batch item, though,
    has ``required: [sender, to, subject]``."""
    ok(api.post("/email/send", json=email(subject=None)))
    assert sandbox.messages()[0]["subject"] == ""
    batch = {"emails": [email(), email(subject=None)]}
    assert field_error(api.post("/email/batch", json=batch)) == "emails[1].subject"


def test_an_attachment_needs_no_mimetype(api: httpx.Client, sandbox: Sandbox) -> None:
    """OpenAPI 3.0.4: attachment and inline items ``required: [filename]``; ``fileblob``
    "Required if no url is specified". Without a mimetype the type is inferred from the
    name (how the service does it is not documented)."""
    body = email(
        attachments=[
            {"filename": "report.pdf", "fileblob": PNG},
            {"filename": "data.bin-unknown", "url": "https://cdn.example.com/d"},
            {"filename": "both.png", "fileblob": PNG, "url": "https://cdn.example.com/b.png"},
        ],
        inlines=[{"filename": "logo.png", "fileblob": PNG}],
    )
    ok(api.post("/email/send", json=body))
    [message] = sandbox.messages()
    assert message["attachment_mimetypes"] == [
        "application/pdf",
        "application/octet-stream",
        "image/png",
    ]
    assert message["inline_mimetypes"] == ["image/png"]


def test_an_address_given_twice_is_one_recipient(api: httpx.Client, sandbox: Sandbox) -> None:
    """One recipient, delivered and counted once, however often it is listed."""
    body = email(
        to=["ann@example.org", "Ann <ANN@example.org>"],
        cc=["ann@example.org", "bob@example.org"],
        bcc=["bob@example.org"],
    )
    ok(api.post("/email/send", json=body))
    assert sandbox.messages()[0]["recipients"] == ["ann@example.org", "bob@example.org"]
    assert ok(api.post("/stats/email_cycle", json={}))["cycle_used"] == 2
    assert [e for e, _ in search(api)] == ["processed", "delivered"] * 2


def test_a_scheduled_batch_item_answers_only_its_schedule_id(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """OpenAPI 3.0.4 ``/email/batch`` example: ``[{email_id}, {schedule_id}]`` in order."""
    when = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S +0000")
    data = ok(api.post("/email/batch", json={"emails": [email(), email(schedule=when)]}))
    assert [set(item) for item in data] == [{"email_id"}, {"schedule_id"}]
    assert [m["schedule_id"] for m in sandbox.messages()] == [None, data[1]["schedule_id"]]


def test_suppression_view_honours_start_and_end_date(api: httpx.Client) -> None:
    """OpenAPI 3.0.4 ``/suppression/view`` takes ``start_date`` and ``end_date``."""
    ok(api.post("/suppression/add", json={"email_address": "old@example.org"}))
    between = datetime.now(UTC)
    time.sleep(0.05)
    ok(api.post("/suppression/add", json={"email_address": "new@example.org"}))

    def listed(**body: Any) -> list[str]:
        data = ok(api.post("/suppression/view", json=body))
        return [r["email_address"] for r in data["results"]]

    assert listed() == ["old@example.org", "new@example.org"]
    assert listed(start_date=between.isoformat()) == ["new@example.org"]
    assert listed(end_date=between.isoformat()) == ["old@example.org"]
    assert field_error(api.post("/suppression/view", json={"end_date": "soon"})) == "end_date"


def test_email_cycle_counts_accepted_recipients_against_cycle_max(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """Getting started: "each recipient will count as one email from your plan's monthly
    quota"; OpenAPI 3.0.4 ``/stats/email_cycle`` fields. Rejected recipients are not sent."""
    sandbox.configure(cycle_max=10)
    ok(api.post("/suppression/add", json={"email_address": "gone@example.org"}))
    ok(api.post("/email/send", json=email(to=["a@example.org", "b@example.org"])))
    ok(api.post("/email/send", json=email(to=["gone@example.org", "c@example.org"])))
    sandbox.configure(soft_fail_next=1)
    ok(api.post("/email/send", json=email(to=["d@example.org"])))
    cycle = ok(api.post("/stats/email_cycle", json={}))
    assert (cycle["cycle_used"], cycle["cycle_remaining"], cycle["cycle_max"]) == (3, 7, 10)
    assert cycle["cycle_start"].endswith("00:00:00+00:00")


@pytest.mark.parametrize(("plan", "ceiling"), [("free", 10), ("paid", 30)])
def test_sends_past_the_plans_share_of_the_allowance_are_refused(
    api: httpx.Client, sandbox: Sandbox, plan: str, ceiling: int
) -> None:
    """SMTP2GO support, "Quota Usage Notifications": "At 100%, accounts on the free plan
    are no longer able to send"; paid plans "can continue up to three times the monthly
    limit"; past that "attempts to send will be rejected". The answer's shape is assumed
    (the captured failure's, a 200 with ``failed: 1``)."""
    sandbox.configure(cycle_max=10, plan=plan)
    for _ in range(ceiling - 1):
        ok(api.post("/email/send", json=email(to=["a@example.org"])))
    two = ok(api.post("/email/send", json=email(to=["b@example.org", "c@example.org"])))
    assert (two["succeeded"], two["failed"], two["email_id"]) == (0, 1, "")
    assert "allowance" in two["failures"][0]
    last = ok(api.post("/email/send", json=email(to=["d@example.org"])))
    assert last["succeeded"] == 1
    refused = ok(api.post("/email/send", json=email(to=["e@example.org"])))
    assert refused["failed"] == 1
    cycle = ok(api.post("/stats/email_cycle", json={}))
    assert cycle["cycle_used"] == ceiling


def test_webhook_add_needs_only_a_url_and_keeps_unknown_event_names(
    api: httpx.Client, sandbox: Sandbox, receiver: Receiver
) -> None:
    """OpenAPI 3.0.4 ``/webhook/add``: ``required: [url]``. Smtp2Go.NET
    ``WebhookCreateRequest.cs`` (from live use): "SMTP2GO silently ignores unrecognized
    event names": kept, never fired."""
    bare = ok(api.post("/webhook/add", json={"url": receiver.url}))
    assert (bare["events"], bare["sms_events"]) == ([], [])
    odd = ok(api.post("/webhook/add", json={"url": receiver.url, "events": ["bounced"]}))
    assert odd["events"] == ["bounced"]
    ok(api.post("/email/send", json=email()))
    # Calls are queued while the send is answered: none queued means none will come.
    log = httpx.get(f"{sandbox.url}/_sandbox/webhooks").json()
    assert (log["deliveries"], log["pending"]) == ([], 0)
