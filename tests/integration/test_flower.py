"""Flower against a real worker: the send tasks show up, the API key does not.

A real ``celery -A outbox.worker worker`` (the ``fleet`` fixture) and a real Flower process
(``celery -A outbox.worker flower``, as ``deploy/`` runs it, with basic auth from
``FLOWER_BASIC_AUTH``) share the test broker. Flower 2.x refuses its HTTP API without
an auth setting (or ``FLOWER_UNAUTHENTICATED_API``), and builds ``/api/tasks`` from the
workers' task events. Workers send none by default (``celeryconfig``): a fleet nobody
watches pays nothing for them. Flower turns them on itself, broadcasting
``enable_events`` every few seconds, and each worker logs when it did; events sent
before that are lost, so the test waits for that line before sending anything.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from outbox import send_email
from outbox.core.states import State
from outbox.worker.runtime import Runtime
from support.procs import PYTHON, free_port, start, stop, wait_http, wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, wait_all_done

pytestmark = pytest.mark.integration

FLOWER_USER = "ops"
FLOWER_PASSWORD = "flower-test-password"  # a throwaway test credential


class Flower:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.proc = proc
        self.log = log
        self.client = httpx.Client(base_url=url, auth=(FLOWER_USER, FLOWER_PASSWORD), timeout=10.0)

    def get(self, path: str, **params: Any) -> httpx.Response:
        if self.proc.poll() is not None:
            raise AssertionError(f"flower exited:\n{self.log.read_text(errors='replace')[-3000:]}")
        response = self.client.get(path, params=params)
        response.raise_for_status()
        return response


@pytest.fixture
def flower(fleet: Fleet, tmp_path: Path) -> Iterator[Flower]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "flower.log"
    cmd = [PYTHON, "-m", "celery", "-A", "outbox.worker", "flower", f"--port={port}"]
    cmd += ["--address=127.0.0.1"]
    env = fleet.env(FLOWER_BASIC_AUTH=f"{FLOWER_USER}:{FLOWER_PASSWORD}")
    proc = start(cmd, env=env, log=log)
    flower = Flower(url, proc, log)
    try:
        wait_http(f"{url}/healthcheck", timeout=30, proc=proc)
        yield flower
    finally:
        flower.client.close()
        stop(proc)


def _alive_workers(flower: Flower) -> dict[str, bool]:
    """Workers Flower knows from their events (heartbeats), by node name."""
    return dict(flower.get("/api/workers", status="true").json())


@pytest.mark.timeout(150)
def test_flower_shows_send_tasks_and_never_the_api_key(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, flower: Flower
) -> None:
    # The API needs the credentials: this is what deploy/ relies on.
    anonymous = httpx.get(f"{flower.url}/api/tasks", timeout=5)
    assert anonymous.status_code == 401

    worker = fleet.start(concurrency=4)
    wait_until(
        lambda: any(
            n.startswith(f"{worker.name}@") and up for n, up in _alive_workers(flower).items()
        ),
        timeout=30,
        interval=0.2,
        what="flower to hear the worker's heartbeat",
    )
    assert "task events: OFF" in worker.log.read_text()  # until something watches
    wait_until(
        lambda: "Events of group {task} enabled by remote" in worker.log.read_text(),
        timeout=30,
        interval=0.2,
        what="flower to turn the worker's task events on",
    )

    handles = [
        send_email("shop@example.com", [f"flower{i}@example.com"], f"Order {i}", text_body="thanks")
        for i in range(3)
    ]
    handles.append(
        send_email(
            "news@example.com",
            ["ann@example.com", "bob@example.com"],
            "Newsletter",
            html_body="<p>news</p>",
        )
    )
    records = wait_all_done(handles, timeout=60)
    assert all(record.state is State.SENT for record in records), records
    chunk_ids = {chunk.id for record in records for chunk in record.chunks}
    assert len(chunk_ids) == 4

    def tasks_by_chunk() -> dict[str, dict[str, Any]]:
        tasks = flower.get("/api/tasks", taskname="outbox.send_email").json()
        found: dict[str, dict[str, Any]] = {}
        for uuid, task in tasks.items():
            for chunk_id in chunk_ids:
                if chunk_id in str(task.get("args")):
                    found[chunk_id] = {**task, "uuid": uuid}
        return found

    def all_succeeded() -> bool:
        found = tasks_by_chunk()
        return set(found) == chunk_ids and all(t["state"] == "SUCCESS" for t in found.values())

    # Events reach Flower shortly after the task ends; poll instead of sleeping.
    wait_until(all_succeeded, timeout=30, interval=0.25, what="flower to show every task SUCCESS")
    found = tasks_by_chunk()
    for record in records:
        for chunk in record.chunks:
            task = found[chunk.id]
            assert task["name"] == "outbox.send_email"
            assert task["worker"].startswith(f"{worker.name}@")
            # Operators see which chunk a task sends, never the message: recipients,
            # subjects and bodies stay in Redis (``outbox status`` shows them).
            args = str(task["args"])
            assert chunk.id in args
            assert "<message>" in args
            for recipient in chunk.recipients:
                assert recipient not in args
    assert "Order 0" not in str(found[records[0].chunks[0].id])

    # The API key is nowhere in what Flower serves: task lists, task details, workers
    # (freshly inspected, which includes each worker's stats, queues and Celery config).
    # An inspect waits ~1 s for replies, so a busy machine may need another round.
    inspected: list[str] = []

    def workers_inspected() -> bool:
        body = flower.get("/api/workers", refresh="true").text
        inspected.append(body)
        return f'"{worker.name}@' in body and "registered" in body

    wait_until(workers_inspected, timeout=30, interval=0.5, what="flower to inspect the worker")
    bodies = [
        flower.get("/api/tasks").text,
        flower.get("/api/tasks", taskname="outbox.send_email", state="SUCCESS").text,
        flower.get("/api/workers").text,
        *inspected,
        *(flower.get(f"/api/task/info/{task['uuid']}").text for task in found.values()),
    ]
    assert "outbox.send_email" in inspected[-1]
    for body in bodies:
        assert sandbox.api_key not in body


def _listening_addresses(port: int) -> set[str]:
    """The local addresses of the IPv4 sockets listening on ``port`` (Linux's table)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _remote, state = line.split()[1:4]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


@pytest.mark.timeout(60)
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
def test_flower_listens_on_loopback_unless_given_an_address(fleet: Fleet, tmp_path: Path) -> None:
    """Its pages show recipients and subjects: without ``--address`` it is not served
    beyond this machine (Flower's own default is every interface)."""
    port = free_port()
    cmd = [PYTHON, "-m", "celery", "-A", "outbox.worker", "flower", f"--port={port}"]
    env = fleet.env(FLOWER_BASIC_AUTH=f"{FLOWER_USER}:{FLOWER_PASSWORD}")
    proc = start(cmd, env=env, log=tmp_path / "flower.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthcheck", timeout=30, proc=proc)
        assert _listening_addresses(port) == {"127.0.0.1"}
    finally:
        stop(proc)


@pytest.mark.timeout(60)
def test_flower_refuses_to_start_without_authentication(fleet: Fleet) -> None:
    env = {k: v for k, v in {**os.environ, **fleet.env()}.items() if not k.startswith("FLOWER_")}
    result = subprocess.run(
        [PYTHON, "-m", "celery", "-A", "outbox.worker", "flower", f"--port={free_port()}"],
        env=env,
        capture_output=True,
        timeout=45,
        check=False,
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode != 0, output
    assert "FLOWER_BASIC_AUTH" in output
    assert "Visit me" not in output
