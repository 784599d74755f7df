"""``outbox demo`` as a person runs it: a real process, checked by its JSON summary."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from outbox.core.store import keys
from support.procs import PYTHON, ROOT
from tests.conftest import REDIS_HOST, REDIS_PORT

pytestmark = pytest.mark.integration

#: Databases of the ``--redis`` run: the URL's is the broker, the next the records.
DEMO_BROKER_DB = 13
DEMO_RECORDS_DB = 14


@pytest.fixture
def trap() -> Iterator[socket.socket]:
    """A loopback port that listens and remembers whether anyone connected to it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock
    sock.close()


def touched(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def run_demo(
    *args: str, env: dict[str, str], timeout: float = 75, recipients: int = 400
) -> dict[str, Any]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SMTP2GO_")}
    full_env.update(env)
    done = subprocess.run(
        [PYTHON, "-m", "outbox.cli", "demo", "--recipients", str(recipients), "--json", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def check_summary(summary: dict[str, Any]) -> None:
    assert summary["ok"] is True, summary["checks"]
    assert all(summary["checks"].values())
    assert summary["recipients"] == {
        "total": 400,
        "enqueued": 397,
        "sent": 396,
        "failed": 1,
        "dead": 0,
        "rejected_at_producer": 3,
    }
    delivery = summary["delivery"]
    assert delivery["deliverable"] == delivery["delivered"] == 396
    assert delivery["duplicates"] == delivery["missing"] == delivery["unexpected"] == []
    # The mix: 40 transactional, 12 templates, 4 MIME, 1 SMS send (20 numbers, 1 chunk),
    # the 250-reader newsletter (3 chunks), the announcement (71 members, 1 chunk).
    assert summary["sends"] == 62
    assert summary["chunks"]["total"] == 61
    newsletter = next(g for g in summary["groups"] if g["group"] == "newsletter")
    assert (newsletter["chunks"], newsletter["sent"], newsletter["failed"]) == (3, 249, 1)
    # The faults were really there, and were ridden out by retries.
    assert summary["sandbox"]["injected_5xx"] >= 8  # the burst alone
    assert summary["sandbox"]["rate_limited_429"] >= 1
    assert summary["chunks"]["retried"] >= 1
    assert summary["chunks"]["attempts"] == summary["sandbox"]["api_requests"]
    assert summary["rate"]["limit_per_second"] == 50  # the account's own limit, exactly
    # A strict one-second window at the service never saw more than the limit. (The
    # average over the run can sit a little above it: n sends in k whole windows span
    # only k - 1 of them from the first to the last.)
    assert 0 < summary["rate"]["busiest_second"] <= 50
    assert summary["seconds"]["wall"] < 60


def check_quota(summary: dict[str, Any]) -> None:
    """The quota phase: the announcement (71 members, one chunk) queued with 35 emails
    left in the allowance waited throttled, and the raise let it go."""
    quota = summary["quota"]
    assert summary["checks"]["quota_waited_then_sent"] is True
    assert quota["campaign"] == {"recipients": 71, "chunks": 1}
    assert quota["left_when_queued"] == 35
    assert quota["throttled"] == {"chunks": 1, "recipients": 71}
    assert quota["sent"] is True
    assert quota["raised_to"] > quota["allowance"]["short"]
    announcement = next(g for g in summary["groups"] if g["group"] == "announcement")
    assert (announcement["chunks"], announcement["sent"], announcement["failed"]) == (1, 71, 0)


@pytest.mark.timeout(90)
def test_demo_embedded_needs_neither_redis_nor_broker(trap: socket.socket) -> None:
    port = trap.getsockname()[1]
    summary = run_demo(
        env={
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0",
            "OUTBOX_REDIS_URL": f"redis://127.0.0.1:{port}/1",
        }
    )
    check_summary(summary)
    check_quota(summary)
    assert summary["mode"] == "embedded"
    assert summary["broker"].startswith("memory://")
    assert summary["redis_keys_removed"] is None
    assert not touched(trap), "the embedded demo connected to the configured Redis"


@pytest.mark.timeout(120)
def test_the_readme_demo_at_its_default_size_passes_every_check() -> None:
    """3,000 recipients, as the README's first command runs it: the announcement is a
    bulk send (22 chunks) whose chunks wait in the lane, and the quota still holds."""
    summary = run_demo(env={}, recipients=3000, timeout=100)
    assert summary["ok"] is True, summary["checks"]
    quota = summary["quota"]
    assert quota["campaign"]["chunks"] > 10
    assert 0 < quota["throttled"]["chunks"] < quota["campaign"]["chunks"]
    assert (
        quota["throttled"]["recipients"]
        >= quota["campaign"]["recipients"] - quota["left_when_queued"]
    )
    assert summary["canceled"]["state"] == "canceled"
    assert summary["canceled"]["reached_api"] is False


@pytest.mark.timeout(90)
def test_demo_without_the_quota_phase() -> None:
    summary = run_demo("--no-quota", env={})
    check_summary(summary)
    assert summary["quota"] is None
    assert "quota_waited_then_sent" not in summary["checks"]


@pytest.fixture
def demo_dbs(redis_server: str) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    broker = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=DEMO_BROKER_DB)
    records = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=DEMO_RECORDS_DB)
    for client in (broker, records):
        client.flushdb(asynchronous=True)
    yield broker, records
    for client in (broker, records):
        client.flushdb(asynchronous=True)
        client.close()


@pytest.mark.timeout(90)
def test_demo_on_real_redis(demo_dbs: tuple[redis.Redis, redis.Redis], trap: socket.socket) -> None:
    broker, records = demo_dbs
    port = trap.getsockname()[1]
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{DEMO_BROKER_DB}"
    summary = run_demo(
        "--redis",
        url,
        env={
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0",
            "OUTBOX_REDIS_URL": f"redis://127.0.0.1:{port}/1",
        },
    )
    check_summary(summary)
    check_quota(summary)
    assert summary["mode"] == "redis"
    assert summary["broker"] == url
    assert summary["records"] == f"redis://{REDIS_HOST}:{REDIS_PORT}/{DEMO_RECORDS_DB}"
    assert not touched(trap), "--redis must replace the configured URLs, not add to them"
    # The records are in the next database, the tasks all consumed from the broker's.
    # (a batch's own hash; its payload, ledger and counts are keys under it)
    batches = [k for k in records.scan_iter(keys.batch("*")) if k.count(b":") == 2]
    assert len(batches) == 60  # the sends and the reminder it canceled
    assert records.zcard(keys.dead_letters()) == 0
    assert all(broker.llen(queue) == 0 for queue in ("email", "sms", "bulk"))
    # Nothing outlives the hour the demo keeps its records for: the lasting keys it wrote
    # (kombu's bindings, the quota read's allowance left until the month's end) are gone.
    assert summary["redis_keys_removed"] >= 3
    assert records.get(keys.quota_left()) is None
    for client in (broker, records):
        pipe = client.pipeline(transaction=False)
        names = list(client.scan_iter(count=1000))
        for name in names:
            pipe.ttl(name)
        lasting = {n: t for n, t in zip(names, pipe.execute(), strict=True) if t == -1 or t > 3600}
        assert lasting == {}, lasting


@pytest.mark.timeout(60)
def test_demo_on_unreachable_redis_exits_3(trap: socket.socket) -> None:
    port = trap.getsockname()[1]
    trap.close()  # nothing listens there now
    done = subprocess.run(
        [PYTHON, "-m", "outbox.cli", "demo", "--redis", f"redis://127.0.0.1:{port}/5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 3, done.stderr
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/5" in done.stderr
