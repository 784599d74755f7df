"""Security against real processes: where the API key may never show up, and a worker
that would send it in clear text refusing to start.

Unit-level claims (error text, reprs, the receiver's checks, the URL guard) are in
``tests/unit/test_security.py``; this module checks what the running system exposes:
every command Redis runs (``MONITOR``: each task message as it is published, every
record written) while a run with retries, failures and a timeout is under way, both
Redis databases afterwards, the worker's debug log, and Flower's pages and API.
"""

from __future__ import annotations

import ast
import base64
import collections
import json
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest
import redis

from outbox import send_email, send_sms, send_template
from outbox.core.states import State
from outbox.worker.runtime import Runtime
from support.procs import PYTHON, ROOT, wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, scan_redis_for, wait_all_done
from tests.integration.test_faults import SENDER, assert_intent, delivered
from tests.integration.test_flower import (  # the fixture, shared with test_flower.py
    Flower,
    _alive_workers,
    flower,  # noqa: F401
)

pytestmark = pytest.mark.integration


#: One argument of a ``MONITOR`` line, quoted and escaped as Redis's ``sdscatrepr`` does.
_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')


def _monitor_args(line: bytes) -> list[bytes]:
    """The arguments of one ``MONITOR`` line, unescaped (the escapes are Python's)."""
    return [ast.literal_eval('b"' + arg.decode("latin-1") + '"') for arg in _ARG.findall(line)]


class BrokerWatch(threading.Thread):
    """Every command Redis runs while the run is under way, through ``MONITOR``: each
    task message as it is pushed (a worker pops it within milliseconds), every record
    and script argument, every database."""

    def __init__(self, url: str, secret: str) -> None:
        super().__init__(daemon=True)
        self.url, self.secret = url, secret.encode()
        self.stopped = threading.Event()
        self.ready = threading.Event()
        self.seen = 0
        #: Chunk id -> how many times its send task was published.
        self.published: collections.Counter[str] = collections.Counter()
        self.leaks: list[bytes] = []

    def run(self) -> None:
        client = redis.Redis.from_url(self.url)
        with client.monitor() as monitor:
            self.ready.set()
            while not self.stopped.is_set():
                line = monitor.connection.read_response()
                if isinstance(line, str):
                    line = line.encode()
                args = _monitor_args(line)
                if any(self.secret in arg for arg in args) or self.secret in line:
                    self.leaks.append(line[:300])
                if len(args) == 3 and args[0].upper() == b"LPUSH":
                    self._task(args[2])

    def _task(self, raw: bytes) -> None:
        message = json.loads(raw)
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        self.seen += 1
        name = message.get("headers", {}).get("task", "")
        if self.secret in raw or self.secret in body:
            self.leaks.append(raw[:300])
        if name.startswith("outbox.send_"):
            args, _kwargs, _embed = json.loads(body)
            self.published[args[0]] += 1

    def stop(self) -> None:
        self.stopped.set()
        redis.Redis.from_url(self.url).ping()  # one more line, so the read returns
        self.join(5)


@pytest.mark.timeout(150)
def test_the_api_key_appears_nowhere(
    fleet: Fleet,
    producer: Runtime,
    sandbox: Sandbox,
    flower: Flower,  # noqa: F811
    redis_db: tuple[str, str],
) -> None:
    """A run with every kind of outcome, then a search for the key in all it left behind.

    Fault: The API key, looked for everywhere operators and other systems can see
    Outcome: a run with retries, a 400, a timeout and a reconciliation leaves the key in
        no broker message, no Redis key or value, no worker log line (debug level), no
        Flower page or API answer
    """
    broker_url, records_url = redis_db
    key = sandbox.api_key
    worker = fleet.start(concurrency=8, args=("-l", "debug"), SMTP2GO_TIMEOUT="2")
    wait_until(
        lambda: any(
            n.startswith(f"{worker.name}@") and up for n, up in _alive_workers(flower).items()
        ),
        timeout=30,
        interval=0.2,
        what="flower to hear the worker",
    )
    watch = BrokerWatch(broker_url, key)
    watch.start()
    assert watch.ready.wait(5)
    # Retries (503s), a refused request (400: a template the account does not have; an
    # unverified sender is answered 200 with failed: 1 instead), a hung answer (timeout,
    # then activity/search).
    sandbox.configure(fail_next=4, fail_status=503)
    handles = [
        send_email(SENDER, [f"sec{i}@example.com"], f"Order {i}", text_body="t") for i in range(6)
    ]
    handles.append(send_sms(["+61400000002"], "code 999"))
    refused = send_template(SENDER, ["sec-x@example.com"], "no-such-template", {})
    wait_all_done([*handles, refused], timeout=60)
    sandbox.configure(hang_next=1, hang_seconds=10)
    hung = send_email(SENDER, ["sec-hang@example.com"], "Hang", text_body="t")
    records = wait_all_done([*handles, refused, hung], timeout=60)
    watch.stop()

    outcome = assert_intent(records, delivered(sandbox))
    assert outcome.sent == 8
    assert outcome.failed == 1
    assert records[-2].state is State.FAILED
    assert records[-1].chunks[0].ambiguous

    assert watch.seen >= len(records)
    retried = [chunk for chunk, n in watch.published.items() if n > 1]
    assert retried, "the watch never saw a retry the worker published"
    assert watch.leaks == []
    assert scan_redis_for(key, broker_url, records_url) == []
    logs = {w.log.name: w.log.read_text(errors="replace") for w in fleet.workers}
    logs[flower.log.name] = flower.log.read_text(errors="replace")
    assert "DEBUG" in logs[worker.log.name]
    assert "activity/search" in logs[worker.log.name]
    for name, text in logs.items():
        assert key not in text, name

    task_ids = list(flower.get("/api/tasks").json())
    assert task_ids
    pages = ["/", "/workers", "/tasks", "/broker", "/api/tasks", "/api/task/types"]
    pages += ["/api/workers?refresh=true", f"/worker/{worker.name}@" + _host(flower, worker.name)]
    pages += [f"/task/{t}" for t in task_ids[:20]]
    pages += [f"/api/task/info/{t}" for t in task_ids[:20]]
    for page in pages:
        body = flower.client.get(page).text
        assert key not in body, page


def _host(ui: Flower, name: str) -> str:
    return next(n for n in _alive_workers(ui) if n.startswith(f"{name}@")).split("@", 1)[1]


@pytest.mark.timeout(60)
def test_a_worker_refuses_plain_http_to_a_remote_host(fleet: Fleet, tmp_path: Path) -> None:
    """A misconfigured worker refuses to start instead of sending the key in clear text.

    Fault: `SMTP2GO_BASE_URL` set to plain http to a host that is not loopback
    Outcome: the worker exits at start with the reason (naming `SMTP2GO_ALLOW_INSECURE`)
        before it takes a task; nothing is sent
    """
    # 0.0.0.0 is not a loopback address, yet a connection to it stays on this machine.
    env = fleet.env(SMTP2GO_BASE_URL="http://0.0.0.0:9/v3")
    result = subprocess.run(
        [PYTHON, "-m", "celery", "-A", "outbox.worker", "worker", "-c", "1", "--without-gossip"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        timeout=45,
        check=False,
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode != 0, output
    assert "plain http" in output
    assert "SMTP2GO_ALLOW_INSECURE" in output
    assert "ready." not in output
    assert fleet.sandbox.api_key not in output
