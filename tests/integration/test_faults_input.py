"""Generated input through the real system: producer -> Redis -> a real worker process ->
the sandbox, compared field by field with what was asked for.

The bulk of the generated examples (bad ones included) run in seconds against fakeredis
and the in-memory broker in ``tests/property/``; this is the smaller sample that proves
the same through real processes.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outbox import send_email
from outbox.core.smtp2go.models import address_key
from outbox.worker.runtime import Runtime
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, wait_all_done
from tests.integration.test_faults import assert_intent, delivered
from tests.property.strategies import good_email

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(emails=st.lists(good_email, min_size=12, max_size=12))
def test_generated_emails_arrive_intact_through_a_real_worker(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, emails: list[dict[str, Any]]
) -> None:
    """A sample of generated emails, delivered by a real worker, compared field by field.

    Fault: Generated emails (unicode names and subjects, custom headers, attachments)
        through real processes
    Outcome: each arrives at the sandbox as sent: sender, recipients, subject, bodies,
        headers and file names unchanged
    """
    if not fleet.workers:
        fleet.start(concurrency=8)
    sandbox.reset()
    # Every recipient distinct across the sample, so "exactly once" is per address.
    for i, email in enumerate(emails):
        email["to"] = [_tagged(a, f"g{i}x{j}") for j, a in enumerate(email["to"])]
    handles = [send_email(**email) for email in emails]
    records = wait_all_done(handles, timeout=60)
    assert_intent(records, delivered(sandbox))
    by_id = {m["email_id"]: m for m in sandbox.messages()}
    for email, record in zip(emails, records, strict=True):
        [chunk] = record.chunks
        message = by_id[chunk.email_id]
        assert message["sender"] == email["sender"].strip()
        assert {address_key(r) for r in message["recipients"]} == {
            address_key(a) for a in email["to"]
        }
        assert message["subject"] == email["subject"]
        assert message["text_body"] == email["text_body"]
        assert message["html_body"] == email["html_body"]
        for name, value in email["custom_headers"].items():
            assert message["custom_headers"][name] == value
        assert message["attachments"] == [a["filename"] for a in email["attachments"]]


def _tagged(address: str, tag: str) -> str:
    """``address`` with ``tag.`` in front of its local part, display name kept."""
    name, bracket, rest = address.rpartition("<")
    return f"{name}<{tag}.{rest}" if bracket else f"{tag}.{address}"
