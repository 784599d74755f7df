"""A key as SMTP2GO creates it by default (``/email/send`` only), with real workers, a
real beat and the sandbox counting error answers towards a timeout as the service does."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from outbox import Handle, send_email
from outbox.core.states import State
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, wait_all_done
from tests.integration.test_faults import beat

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_a_default_key_sends_and_the_jobs_ask_nothing_it_may_not(
    fleet: Fleet, sandbox: Sandbox, producer: object, tmp_path: Path
) -> None:
    """Fault: The key may call /email/send only; beat asks for the quota, statistics and
    suppressions every second, and five error answers a minute time the IP out
    Outcome: 20 sends over 30 s all arrive once, no 429 and no timeout; the one whose
    answer was lost cannot be looked up and ends dead with the reason, never sent twice;
    each refused endpoint is asked at most once (then known, fleet-wide, for an hour)"""
    sandbox.configure(key_permissions=["email/send"], error_limit="5/m", penalty=60)
    fleet.start(concurrency=4, SMTP2GO_TIMEOUT="2", OUTBOX_ACCOUNT_READS_AT_START="1")
    sandbox.configure(hang_next=1, hang_seconds=10)  # the first send's answer is lost
    fast = {
        "OUTBOX_QUOTA_INTERVAL": "1",
        "OUTBOX_STATS_INTERVAL": "1",
        "OUTBOX_SUPPRESSION_SYNC_INTERVAL": "1",
    }
    handles: list[Handle] = []
    with beat(fleet, tmp_path, **fast):
        for i in range(20):
            handles.append(
                send_email("Shop <shop@example.com>", [f"c{i}@example.org"], "Hi", text_body="x")
            )
            time.sleep(1.5)
        records = wait_all_done(handles, timeout=60)
    assert [r.state for r in records] == [State.DEAD] + [State.SENT] * 19
    (lost,) = records[0].chunks
    assert "activity/search" in (lost.ambiguous or ""), lost
    assert lost.attempts == 1
    stats = sandbox.stats()
    assert stats["rate_limited"] == 0, stats
    assert stats["timeouts"] == 0, stats
    assert len(sandbox.messages()) == 20
    asked = {path: c["requests"] for path, c in stats["by_endpoint"].items() if c["requests"]}
    for path in ("stats/email_cycle", "stats/email_summary", "suppression/view"):
        assert asked.get(path, 0) <= 1, asked
    # The worker said at start which features are off, and what turns each on.
    logs = "".join(w.log.read_text(errors="replace") for w in fleet.workers)
    assert "the API key may call only email/send" in logs
    assert "needs /stats/email_cycle" in logs
