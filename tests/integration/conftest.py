"""Integration fixtures: real Redis, real ``celery worker`` processes, the real sandbox."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from outbox.core.settings import Settings
from outbox.core.states import State
from outbox.core.store import Store
from outbox.core.store.reads import batch_state
from outbox.worker.runtime import Runtime, set_runtime
from support.procs import PYTHON, start, stop, wait_until
from tests.conftest import Sandbox

pytestmark = pytest.mark.integration

# The runs shared by the cluster and Sentinel tests assert as a test module does.
pytest.register_assert_rewrite("tests.integration.runs")

#: Settings for fast tests: short backoff, short cool-down, a short client timeout.
FAST_ENV = {
    "OUTBOX_RETRY_BASE": "0.2",
    "OUTBOX_RETRY_CAP": "1.5",
    "OUTBOX_COOLDOWN_SECONDS": "1",
    "OUTBOX_MAX_ATTEMPTS": "6",
    "SMTP2GO_TIMEOUT": "3",
    "OUTBOX_RATE_LIMIT": "1000/s",
    # The tests count the sandbox's requests and aim faults at the next ones: the reads
    # at start are on only where a test is about them (test_key_permissions).
    "OUTBOX_ACCOUNT_READS_AT_START": "0",
}


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def is_ready(self) -> bool:
        return "ready." in self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        stop(self.proc, sig=sig, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group: no warm shutdown, nothing acknowledged."""
        stop(self.proc, sig=signal.SIGKILL)


@dataclass
class Fleet:
    """Starts workers against the sandbox and the test databases; stops them all."""

    sandbox: Sandbox
    tmp: Path
    workers: list[Worker] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            "CELERY_BROKER_URL": os.environ["CELERY_BROKER_URL"],
            "OUTBOX_REDIS_URL": os.environ["OUTBOX_REDIS_URL"],
            "SMTP2GO_BASE_URL": self.sandbox.base_url,
            "SMTP2GO_API_KEY": self.sandbox.api_key,
            **FAST_ENV,
            **overrides,
        }

    def start(
        self,
        *,
        concurrency: int = 20,
        queues: str = "email,sms,bulk",
        wait: bool = True,
        args: tuple[str, ...] = (),
        launcher: tuple[str, ...] = (),
        **env: str,
    ) -> Worker:
        name = f"w{len(self.workers) + 1}"
        log = self.tmp / f"{name}.log"
        cmd = [*launcher, PYTHON, "-m", "celery", "-A", "outbox.worker", "worker"]
        cmd += ["-n", f"{name}@%h"]
        cmd += ["-Q", queues, "-c", str(concurrency), "-l", "info"]
        cmd += ["--without-gossip", "--without-mingle", *args]
        worker = Worker(name, start(cmd, env=self.env(**env), log=log), log)
        self.workers.append(worker)
        if wait:
            wait_until(worker.is_ready, timeout=60, what=f"worker {name} ready")
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def fleet(sandbox: Sandbox, redis_db: tuple[str, str], tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(sandbox, tmp_path)
    yield fleet
    fleet.stop_all()


@pytest.fixture
def producer(redis_db: tuple[str, str]) -> Iterator[Runtime]:
    """This process as a producer on the test databases."""
    from outbox.worker.celery_app import app

    # Another test in this process may have pointed the app at another broker and
    # closed its pools; start from fresh ones on the test broker.
    app.conf.broker_url = os.environ["CELERY_BROKER_URL"]
    app._pool = None
    app.amqp._producer_pool = None
    rt = Runtime.from_settings(Settings())
    set_runtime(rt)
    yield rt
    set_runtime(None)
    with contextlib.suppress(Exception):
        rt.redis.close()


def batch_states(store: Store, batch_ids: list[str]) -> dict[str, State | None]:
    """Many sends' states in one round trip (``None`` for an unknown id): cheap polling."""
    names = ["chunks", *(f"n:{s.value}" for s in State)]
    out: dict[str, State | None] = {}
    for batch_id, row in zip(batch_ids, store.batches.fields(batch_ids, names), strict=True):
        counts = {s.value: int(v or 0) for s, v in zip(State, row[1:], strict=True)}
        out[batch_id] = None if row[0] is None else batch_state(counts, int(row[0]))
    return out


def wait_all_done(handles: list[Any], timeout: float = 120.0) -> list[Any]:
    """Every handle's record once all are final (fails with the laggards' states).

    Polls the batch counters of all pending handles in one round trip, so the test
    process does not compete with the workers for the CPU.
    """
    from outbox.core.states import FINAL_STATES
    from outbox.worker.runtime import get_runtime

    store = get_runtime().store
    deadline = time.monotonic() + timeout
    pending = [h.id for h in handles]
    states: dict[str, Any] = {}
    while pending and time.monotonic() < deadline:
        states = batch_states(store, pending)
        pending = [i for i in pending if states[i] not in FINAL_STATES]
        if pending:
            time.sleep(0.25)
    if pending:
        laggards = {i: getattr(states.get(i), "value", None) for i in pending[:10]}
        raise AssertionError(f"{len(pending)} sends not final after {timeout:.0f}s: {laggards}")
    return [h.status() for h in handles]


def sandbox_recipients(sandbox: Sandbox) -> Callable[[], list[str]]:
    def collect() -> list[str]:
        out: list[str] = []
        for message in sandbox.messages():
            if message.get("endpoint") == "sms/send":
                out += list(message.get("destination") or [])
            else:
                out += list(message.get("recipients") or [])
        return out

    return collect


def scan_redis_for(secret: str, *urls: str) -> list[str]:
    """Every key or value (strings, hashes, lists, sets, zsets) containing ``secret``."""
    hits = []
    for url in urls:
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            if kind == "string":
                values = [client.get(key) or b""]
            elif kind == "hash":
                values = [*client.hkeys(key), *client.hvals(key)]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "set":
                values = list(client.smembers(key))
            elif kind == "zset":
                values = client.zrange(key, 0, -1)
            else:
                values = []
            if secret.encode() in key or any(secret.encode() in v for v in values):
                hits.append(f"{url} {key!r}")
    return hits
