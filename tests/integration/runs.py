"""Runs made on more than one set-up: a batch, a worker killed mid-batch, a dead letter
replayed. ``test_redis_cluster.py`` and ``test_redis_sentinel.py`` make them with the
records (``OUTBOX_REDIS_URL``) on a Redis other than the session's single server (the
broker stays the session's plain Redis), ``test_rabbitmq.py`` with RabbitMQ as broker.

Each run ends with :func:`~tests.integration.test_faults.assert_intent`: every
recipient accepted by the sandbox exactly once, or its chunk dead with the reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from outbox import send_email, send_sms
from outbox.core.redis_url import connect
from outbox.core.states import State
from outbox.worker.runtime import Runtime
from support.procs import wait_until
from tests.conftest import RECORDS_URL, Sandbox
from tests.integration.conftest import Fleet, wait_all_done
from tests.integration.test_cli import outbox
from tests.integration.test_faults import assert_intent, batch_counter, delivered, settled_notes

__all__ = ["SENDER", "RecordsElsewhere", "a_worker_killed_mid_batch", "records_at"]

SENDER = "shop@example.com"


def records_at(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point this process and every worker, beat and command it starts at ``url`` for the
    records, empty before and after."""
    client = connect(url)
    client.flushdb(asynchronous=True)
    monkeypatch.setenv("OUTBOX_REDIS_URL", url)
    try:
        yield url
    finally:
        client.flushdb(asynchronous=True)
        client.close()


def _nothing_in_the_default_records() -> None:
    """The session's single-server records database stayed empty: the run used the other."""
    assert redis.Redis.from_url(RECORDS_URL).dbsize() == 0


class RecordsElsewhere:
    """The runs as tests, collected in each subclass; a subclass supplies the fixture
    ``records_url``, the ``OUTBOX_REDIS_URL`` of its Redis."""

    @pytest.fixture(autouse=True)
    def records(
        self, records_url: str, redis_db: tuple[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[str]:
        yield from records_at(records_url, monkeypatch)

    @pytest.mark.timeout(90)
    def test_a_batch(self, fleet: Fleet, producer: Runtime, sandbox: Sandbox) -> None:
        a_batch(fleet, producer, sandbox)
        _nothing_in_the_default_records()

    @pytest.mark.timeout(90)
    def test_sigkill_mid_batch_then_a_new_worker_finishes_exactly_once(
        self, fleet: Fleet, producer: Runtime, sandbox: Sandbox
    ) -> None:
        a_worker_killed_mid_batch(fleet, producer, sandbox)
        _nothing_in_the_default_records()

    @pytest.mark.timeout(90)
    def test_a_dead_letter_replays(self, fleet: Fleet, producer: Runtime, sandbox: Sandbox) -> None:
        a_dead_letter_replayed(fleet, producer, sandbox)
        _nothing_in_the_default_records()


def a_batch(fleet: Fleet, producer: Runtime, sandbox: Sandbox) -> None:
    """A newsletter past the bulk threshold (fanned out by a worker), a team mail of two
    chunks, single sends and an SMS, through two real workers."""
    fleet.start(concurrency=10)
    fleet.start(concurrency=10)
    handles = [
        send_email(SENDER, [f"news{i}@example.com" for i in range(1500)], "News", text_body="y"),
        send_email(SENDER, [f"team{i}@example.com" for i in range(150)], "Team", text_body="y"),
        *(send_email(SENDER, [f"one{i}@example.com"], "Hi", text_body="y") for i in range(30)),
        send_sms([f"+614000{i:05d}" for i in range(3)], "Your code is 1234"),
    ]
    assert (handles[0].chunks, handles[1].chunks) == (15, 2)
    records = wait_all_done(handles, timeout=45)
    outcome = assert_intent(records, delivered(sandbox))
    assert outcome.sent == 1500 + 150 + 30 + 3


def a_worker_killed_mid_batch(
    fleet: Fleet,
    producer: Runtime,
    sandbox: Sandbox,
    *,
    after_kill: Callable[[], None] = lambda: None,
    **env: str,
) -> None:
    """SIGKILL with at least five of a batch's ten chunks in flight; a new worker finishes,
    each interrupted attempt looked up in ``activity/search`` before anything is resent.
    ``after_kill`` runs before the new worker starts; ``env`` goes to both workers."""
    sandbox.configure(latency_ms=500)
    first = fleet.start(concurrency=20, **env)
    big = send_email(SENDER, [f"big{i}@example.com" for i in range(1000)], "News", text_body="y")
    singles = [send_email(SENDER, [f"one{i}@example.com"], "x", text_body="y") for i in range(40)]
    wait_until(
        lambda: batch_counter(producer, big.id, State.SENDING) >= 5,
        timeout=30,
        interval=0.02,
        what="the batch's chunks in flight",
    )
    first.kill()
    killed = time.monotonic()
    assert sandbox.stats()["accepted"] < 50, "everything was sent before the kill; slow it down"
    after_kill()
    fleet.start(concurrency=20, **env)
    records = wait_all_done([big, *singles], timeout=45)
    outcome = assert_intent(records, delivered(sandbox))
    assert outcome.sent == 1040
    notes = settled_notes(records)
    assert len([c for c in records[0].chunks if c.ambiguous]) >= 5, notes
    assert all("activity/search" in note for note in notes.values()), notes
    print(f"\nSIGKILL: {len(notes)} ambiguous, all sent {time.monotonic() - killed:.1f}s after")


def a_dead_letter_replayed(fleet: Fleet, producer: Runtime, sandbox: Sandbox) -> None:
    """A send dead after its attempts (the API answers 5xx), replayed with ``outbox dead
    replay`` once the API is back: accepted once."""
    url = producer.settings.redis_url
    sandbox.configure(fail_rate=1.0)
    fleet.start(concurrency=5, OUTBOX_MAX_ATTEMPTS="2")
    handle = send_email(SENDER, ["dead@example.com"], "x", text_body="y")
    [record] = wait_all_done([handle], timeout=30)
    assert record.state is State.DEAD
    chunk_id = record.chunks[0].id

    listed = outbox("dead", "list", "--json", OUTBOX_REDIS_URL=url)
    assert listed.returncode == 0, listed.stderr
    assert [row["id"] for row in json.loads(listed.stdout)] == [chunk_id]

    sandbox.configure(fail_rate=0.0)
    replayed = outbox("dead", "replay", chunk_id, OUTBOX_REDIS_URL=url)
    assert replayed.returncode == 0, replayed.stderr
    [record] = wait_all_done([handle], timeout=30)
    assert record.state is State.SENT
    assert record.chunks[0].replays == 1
    assert json.loads(outbox("dead", "list", "--json", OUTBOX_REDIS_URL=url).stdout) == []
    assert delivered(sandbox)["dead@example.com"] == 1
