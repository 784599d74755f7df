"""``outbox_stack``: an app's integration test runs the real worker, sandbox and webhook
receiver in its own process, and reads what the sandbox accepted, the records and the
ledger."""

from __future__ import annotations

import time

import pytest

from outbox import State, retry_failed, send_email
from outbox.stack import OutboxStack

pytestmark = pytest.mark.timeout(60)

SHOP = "Shop <shop@example.com>"


def test_a_send_is_delivered_and_its_reports_reach_the_ledger(outbox_stack: OutboxStack) -> None:
    handle = send_email(SHOP, ["ann@example.org", "bob@example.org"], "Receipt", text_body="x")
    outbox_stack.drain()

    (sent,) = outbox_stack.sent()
    assert sent["subject"] == "Receipt"
    assert outbox_stack.record(handle).state is State.SENT
    assert outbox_stack.send_of(sent["email_id"]) == handle.id

    assert outbox_stack.deliver(sent["email_id"], "ann@example.org") == 1
    assert outbox_stack.bounce(sent["email_id"], "bob@example.org") == 1
    assert outbox_stack.fates(handle) == {
        "ann@example.org": "delivered",
        "bob@example.org": "hard-bounced",
    }
    # The hard bounce suppressed Bob here as it would in production: he is refused now.
    again = send_email(SHOP, ["bob@example.org", "cy@example.org"], "News", text_body="y")
    assert again.rejected == ("bob@example.org",)


def test_a_soft_bounce_is_sent_again_by_retry_failed(outbox_stack: OutboxStack) -> None:
    handle = send_email(SHOP, ["ann@example.org", "bob@example.org"], "Receipt", text_body="x")
    outbox_stack.drain()
    (first,) = outbox_stack.sent()
    outbox_stack.deliver(first["email_id"], "ann@example.org")
    outbox_stack.bounce(first["email_id"], "bob@example.org", kind="soft")

    again = retry_failed(handle.id)
    assert again is not None
    assert again.recipients == 1
    outbox_stack.drain()
    _, second = outbox_stack.sent()
    assert second["to"] == ["bob@example.org"]
    assert outbox_stack.send_of(second["email_id"]) == again.id
    assert outbox_stack.record(again).state is State.SENT


def test_drain_waits_out_a_retry(outbox_stack: OutboxStack) -> None:
    with outbox_stack._stack.control() as control:
        control.post(
            "/_sandbox/config", json={"fail_next": 1, "fail_status": 503}
        ).raise_for_status()
    handle = send_email(SHOP, ["ann@example.org"], "Hi", text_body="x")
    outbox_stack.drain()
    record = outbox_stack.record(handle)
    assert record.state is State.SENT
    assert record.chunks[0].attempts == 2
    assert len(outbox_stack.sent()) == 1


def test_drain_leaves_a_send_scheduled_beyond_it(outbox_stack: OutboxStack) -> None:
    hour = time.time() + 3600
    later = send_email(SHOP, ["ann@example.org"], "Later", text_body="x", send_at=hour)
    outbox_stack.drain(timeout=2)
    assert outbox_stack.sent() == []
    assert outbox_stack.record(later).state is State.QUEUED


def test_a_report_for_an_unknown_email_names_it(outbox_stack: OutboxStack) -> None:
    with pytest.raises(KeyError, match="nope"):
        outbox_stack.deliver("nope")


def test_under_fastaccept_refusals_arrive_later_and_land_in_the_ledger() -> None:
    """The service's coming default: every send answered with only its ``email_id``.
    A sender the account has not verified is accepted, then each recipient is rejected by
    a ``reject`` event; the record says sent (SMTP2GO took it), the ledger says rejected,
    and ``retry_failed`` does not send it again (another try cannot help)."""
    from outbox.stack import running

    options = {"fastaccept": True, "verified_domains": ["example.com"]}
    for stack in running(sandbox=options, webhooks=True):
        good = send_email(SHOP, ["ann@example.org"], "Receipt", text_body="x")
        bad = send_email("promo@unverified-shop.net", ["bob@example.org"], "Deal", text_body="y")
        stack.drain()
        assert stack.record(good).state is State.SENT
        assert stack.record(bad).state is State.SENT
        assert stack.record(bad).chunks[0].email_id
        assert stack.fates(good) == {"ann@example.org": "delivered"}
        assert stack.fates(bad) == {"bob@example.org": "rejected"}
        assert retry_failed(bad.id) is None


def test_a_sandbox_key_is_accepted_and_every_recipient_rejected() -> None:
    """A key in ``sandbox`` status (OpenAPI ``api_keys/add``): the API takes the email,
    then rejects each recipient (the Webhooks page: a ``reject`` for "a sandboxed key").
    The record says sent, the ledger rejected, and nothing is sent again."""
    from outbox.stack import running

    for stack in running(sandbox={"key_status": "sandbox"}, webhooks=True):
        handle = send_email(SHOP, ["ann@example.org", "bob@example.org"], "Hi", text_body="x")
        stack.drain()
        assert stack.record(handle).state is State.SENT
        assert stack.fates(handle) == {"ann@example.org": "rejected", "bob@example.org": "rejected"}
        assert retry_failed(handle.id) is None
        assert [m["recipients"] for m in stack.sent()] == [[]]  # nobody delivered to


def test_a_blocked_key_fails_the_send_with_the_apis_words_once() -> None:
    """A ``blocked`` key: the send is refused (answer's shape assumed: the captured
    failure, a 200 with ``failed: 1``); the chunk is failed with the reason, not retried."""
    from outbox.stack import running

    for stack in running(sandbox={"key_status": "blocked"}):
        handle = send_email(SHOP, ["ann@example.org"], "Hi", text_body="x")
        stack.drain()
        record = stack.record(handle)
        assert record.state is State.FAILED
        assert record.chunks[0].attempts == 1
        assert "blocked" in (record.chunks[0].last_error or {}).get("message", "")
        assert stack.sent() == []


def test_a_key_rate_matched_by_outbox_rate_limit_is_never_exceeded() -> None:
    """A key with a custom rate limit (``custom_ratelimit_value``/``_period``): set
    ``OUTBOX_RATE_LIMIT`` to it (here as a second window) and no send meets the key's 429."""
    from outbox.stack import running

    settings = {"OUTBOX_RATE_LIMIT": "50/s,4/2s"}
    for stack in running(sandbox={"key_rate": "4/2s"}, settings=settings):
        handles = [send_email(SHOP, [f"r{i}@example.org"], "Hi", text_body="x") for i in range(9)]
        stack.drain(timeout=30)
        assert all(stack.record(h).state is State.SENT for h in handles)
        assert len(stack.sent()) == 9
        assert stack.stats()["rate_limited"] == 0
