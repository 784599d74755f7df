"""Fault tests: Redis (broker and records) restarted under running workers.

The session's Redis (``tests/conftest.py``) is shared by every test, so this one runs a
Redis of its own on a free port, configured as ``deploy/`` recommends (AOF, fsync every
second), and points a fleet and this process's producer at it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from outbox import send_email
from outbox.core.settings import Settings
from outbox.core.store import keys
from outbox.worker.runtime import Runtime, set_runtime
from support.procs import free_port, stop, wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet
from tests.integration.test_faults import (
    SENDER,
    SWEEP_ENV,
    assert_intent,
    beat,
    delivered,
    swept,
    wait_done,
)

pytestmark = pytest.mark.integration


@dataclass
class RedisServer:
    """A private ``redis-server`` with an append-only file in ``dir``; restartable."""

    dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("needs a redis-server binary")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        wait_until(lambda: bool(client.ping()), timeout=10, what=f"redis on {self.port}")

    def stop(self) -> None:
        """SIGTERM: Redis fsyncs the append-only file and exits."""
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.dir.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_producer(
    private_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    """This process as a producer on the private Redis (broker db 1, records db 2)."""
    from outbox.worker.celery_app import app

    broker, records = private_redis.url(1), private_redis.url(2)
    # Celery reads CELERY_BROKER_URL from the environment before its own config.
    monkeypatch.setenv("CELERY_BROKER_URL", broker)
    monkeypatch.setenv("OUTBOX_REDIS_URL", records)
    saved = app.conf.broker_url
    app.conf.broker_url = broker
    app._pool = None
    app.amqp._producer_pool = None
    rt = Runtime.from_settings(Settings(CELERY_BROKER_URL=broker, OUTBOX_REDIS_URL=records))
    set_runtime(rt)
    yield rt
    set_runtime(None)
    rt.redis.close()
    app.conf.broker_url = saved
    app._pool = None
    app.amqp._producer_pool = None


@pytest.mark.timeout(150)
def test_redis_restart_under_running_workers(
    fleet: Fleet,
    sandbox: Sandbox,
    private_redis: RedisServer,
    private_producer: Runtime,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Two workers mid-run lose their broker and records for three seconds.

    Fault: Redis (broker and records, AOF on) restarted for 3 s under two busy workers
    Outcome: workers reconnect and finish, none exits (`worker.compat` turns kombu's
        crash on a channel closed mid-outage into a connection error); a task cut off
        by the drop goes back to the broker (never acknowledged as failed) and its
        chunk is looked up in
        `activity/search` before any resend; a task message the transport lost is
        republished by the stuck sweep (beat); records stay consistent: exactly once
    """
    env = {
        "CELERY_BROKER_URL": private_redis.url(1),
        "OUTBOX_REDIS_URL": private_redis.url(2),
        **SWEEP_ENV,
    }
    sandbox.configure(latency_ms=200)
    workers = [fleet.start(concurrency=20, **env) for _ in range(2)]
    stack = contextlib.ExitStack()
    request.addfinalizer(stack.close)
    stack.enter_context(beat(fleet, tmp_path, **env))
    handles = [send_email(SENDER, [f"rr{i}@example.com"], "x", text_body="y") for i in range(300)]
    big = send_email(SENDER, [f"rrbig{i}@example.com" for i in range(500)], "News", text_body="y")
    wait_until(lambda: sandbox.stats()["accepted"] >= 60, timeout=30, what="60 sends")

    private_redis.stop()
    down = time.monotonic()
    accepted_at_stop = sandbox.stats()["accepted"]
    time.sleep(3)  # the outage itself, not a wait for readiness
    private_redis.start()
    up = time.monotonic()

    records = wait_done([*handles, big], timeout=100, broker_url=private_redis.url(1))
    done = time.monotonic()
    for worker in workers:
        log = worker.log.read_text(errors="replace")
        # Every worker lived through it (worker.compat), reconnecting on its own.
        assert worker.proc.poll() is None, f"{worker.name} exited:\n{log[-3000:]}"
        assert "Unrecoverable error" not in log, worker.name
        assert "Connection to broker lost" in log or "Cannot connect" in log, worker.name
        assert log.rfind("Connected to redis") > log.find("Connection to broker lost"), worker.name
    outcome = assert_intent(records, delivered(sandbox))
    assert outcome.sent == 800
    store = private_producer.store
    assert store.batches.dead_letters() == []
    assert store.batches.active_before(time.time() + 3600) == []  # nothing left unfinished
    # What was written before the restart survived it (AOF).
    assert private_producer.redis.exists(keys.batch(handles[0].id))
    republished = swept(fleet)
    print(
        f"\nRedis restart: down {up - down:.1f}s with {accepted_at_stop} of 305 sends "
        f"accepted; all final {done - up:.1f}s after it came back; "
        f"{outcome.ambiguous_chunks} chunks settled by a look-up, {republished} republished by "
        "the stuck sweep; both workers reconnected"
    )
