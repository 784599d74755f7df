"""Sharing the limit among the app's own mail, with real workers and the sandbox.

A transactional send overtakes a campaign that saturates the limit; two tenants' campaigns
share it by their weights; a producer killed while it writes a large send leaves nothing
of it sent, and calling again with the same key sends it exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from outbox import Handle, send_email
from outbox.core.states import State
from outbox.core.store import keys
from outbox.core.text import as_text
from outbox.worker.runtime import Runtime
from support.procs import wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, wait_all_done

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SENDER = "News <news@example.com>"
RATE = 10


def _campaign(chunks: int, tag: str, tenant: str | None = None) -> str:
    handle = send_email(
        SENDER,
        [f"{tag}{i}@example.org" for i in range(chunks * 100)],
        "This week",
        text_body="Hello.",
        tenant=tenant,
    )
    return handle.id


def _limited_fleet(fleet: Fleet, sandbox: Sandbox, **env: str) -> None:
    sandbox.configure(rate=f"{RATE}/s", latency_ms=20, penalty=60)
    for _ in range(2):
        fleet.start(concurrency=20, queues="email,bulk", OUTBOX_RATE_LIMIT=f"{RATE}/s", **env)


def test_a_transactional_send_overtakes_a_campaign_that_saturates_the_limit(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    _limited_fleet(fleet, sandbox)
    campaign = _campaign(RATE * 20, "news")  # twenty seconds of the whole limit
    wait_until(lambda: len(sandbox.messages()) >= RATE * 2, timeout=30, what="the campaign")
    calls = {}
    for i in range(6):
        address = f"reset{i}@example.com"
        calls[address] = time.time()
        handle = send_email(SENDER, [address], "Reset your password", text_body="A link.")
        assert handle.status().lane == "transactional"
        time.sleep(0.5)
    wait_until(
        lambda: {m["recipients"][0] for m in sandbox.messages()} >= set(calls),
        timeout=30,
        what="the resets",
    )
    messages = sandbox.messages()
    arrived = {m["recipients"][0]: m["time"] for m in messages if m["recipients"][0] in calls}
    waits = [arrived[a] - sent for a, sent in calls.items()]
    # the next free slot, not the campaign's hundreds of waiting chunks (~20 s of them)
    assert max(waits) < 1.0, waits
    news_after = [m for m in messages if m["recipients"][0].startswith("news")]
    assert max(m["time"] for m in news_after) > max(arrived.values())  # still draining
    assert sandbox.stats()["rate_limited"] == 0
    record = producer.store.batches.batch(campaign)
    assert record["lane"] == "bulk"


def test_two_tenants_share_the_limit_by_their_weights(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    _limited_fleet(fleet, sandbox, OUTBOX_TENANT_WEIGHTS="acme=3,globex=1")
    _campaign(RATE * 12, "acme-", tenant="acme")
    _campaign(RATE * 12, "globex-", tenant="globex")
    wait_until(lambda: len(sandbox.messages()) >= RATE * 10, timeout=40, what="both campaigns")
    messages = sorted(sandbox.messages(), key=lambda m: m["time"])
    start = messages[0]["time"] + 1.0
    inside = [m for m in messages if m["time"] >= start][: RATE * 8]
    shares = Counter(m["recipients"][0].split("-")[0] for m in inside)
    assert abs(shares["acme"] / len(inside) - 0.75) <= 0.1, shares
    assert sandbox.stats()["rate_limited"] == 0


_STAGING_PRODUCER = """
import os, sys, time
from outbox import Handle, send_email
from outbox.worker.runtime import get_runtime

batches = get_runtime().store.batches
create, commit = batches._create, batches._commit
pages = 0
stop_at = sys.argv[1]

def paced(*args, **kw):
    global pages
    reply = create(*args, **kw)
    pages += 1
    if stop_at == "staging" and pages == 2:
        print("two pages written", flush=True)
        time.sleep(60)
    return reply

def committed(*args, **kw):
    reply = commit(*args, **kw)
    if stop_at == "committed":
        print("committed", flush=True)
        time.sleep(60)
    return reply

batches._create, batches._commit = paced, committed
recipients = [f"big{i}@example.org" for i in range(40_000)]
handle = send_email("News <news@example.com>", recipients, "Big", text_body="Hi.",
                    idempotency_key="big-send-1")
print("done", handle.id, flush=True)
"""


def _big_send() -> Handle:
    """The send the killed producer was writing, made again with the same key."""
    return send_email(
        SENDER,
        [f"big{i}@example.org" for i in range(40_000)],
        "Big",
        text_body="Hi.",
        idempotency_key="big-send-1",
    )


def _producer_killed(tmp_path: Path, when: str) -> None:
    """Run a producer process that writes a 400-chunk send and SIGKILL it ``when``."""
    script = tmp_path / "producer.py"
    script.write_text(_STAGING_PRODUCER)
    proc = subprocess.Popen([sys.executable, str(script), when], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() in ("two pages written", "committed"), line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def test_a_producer_killed_while_staging_sends_nothing_and_calling_again_sends_once(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    fleet.start(concurrency=20, queues="email,bulk")
    _producer_killed(tmp_path, "staging")
    staged = producer.store.batches.abandoned(producer.store.now() + 1)
    assert len(staged) == 1
    time.sleep(3)
    assert sandbox.messages() == []  # nothing of the half-written send went out
    again = _big_send()
    assert again.id != staged[0]
    (record,) = wait_all_done([again], timeout=120)
    assert record.state is State.SENT
    recipients = [r for m in sandbox.messages() for r in m["recipients"]]
    assert len(recipients) == 40_000
    assert len(set(recipients)) == 40_000  # each exactly once


def test_a_producer_killed_after_the_commit_sends_everything_once_and_its_key_holds(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    fleet.start(concurrency=20, queues="email,bulk")
    _producer_killed(tmp_path, "committed")
    recorded = producer.store.redis.get(keys.idempotency("big-send-1"))
    assert recorded is not None
    first = as_text(recorded)
    again = _big_send()
    assert again.id == first
    # its tasks were never published: the relays find its chunks unclaimed and send them
    (record,) = wait_all_done([again], timeout=150)
    assert record.state is State.SENT
    recipients = [r for m in sandbox.messages() for r in m["recipients"]]
    assert len(recipients) == 40_000
    assert len(set(recipients)) == 40_000
