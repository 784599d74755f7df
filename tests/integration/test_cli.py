"""The ``outbox`` command line as a process, on the real Redis test databases."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import redis

from outbox import send_email, send_sms
from outbox.core.states import State
from outbox.worker.runtime import Runtime
from support.procs import PYTHON, ROOT, free_port
from tests.conftest import BROKER_URL, RECORDS_URL

pytestmark = pytest.mark.integration


def outbox(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "CELERY_BROKER_URL": BROKER_URL,
        "OUTBOX_REDIS_URL": RECORDS_URL,
        **env,
    }
    return subprocess.run(
        [PYTHON, "-m", "outbox.cli", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.timeout(60)
def test_status_of_a_record_made_by_producers(producer: Runtime) -> None:
    handle = send_email(
        "shop@example.com", [f"u{i}@example.org" for i in range(120)], "Hi", text_body="x"
    )

    shown = outbox("status", handle.id)
    assert shown.returncode == 0, shown.stderr
    assert handle.id in shown.stdout
    assert "queued" in shown.stdout

    data = json.loads(outbox("status", handle.id, "--json").stdout)
    assert (data["state"], data["recipients"], data["chunks_total"]) == ("queued", 120, 2)

    missing = outbox("status", "0" * 32)
    assert missing.returncode == 1
    assert "no record" in missing.stderr


@pytest.mark.timeout(60)
def test_dead_list_and_replay_on_redis(producer: Runtime) -> None:
    handle = send_sms(["+61400000001", "+61400000002"], "Your code is 1234")
    chunk_id = f"{handle.id}.0"
    broker = redis.Redis.from_url(BROKER_URL)
    queued_before = broker.llen("sms")
    producer.store.batches.finish(
        chunk_id,
        State.DEAD,
        limit=producer.send_limit,
        fields={"last_error": {"type": "ServerError", "status_code": 503, "message": "busy"}},
    )

    listed = outbox("dead", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["id"], row["kind"], row["recipients"]) == (chunk_id, "sms", 2)
    assert chunk_id in outbox("dead", "list").stdout

    replayed = outbox("dead", "replay", chunk_id)
    assert replayed.returncode == 0, replayed.stderr
    assert broker.llen("sms") == queued_before + 1
    chunk = producer.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert chunk.state is State.QUEUED
    assert json.loads(outbox("dead", "list", "--json").stdout) == []


@pytest.mark.timeout(60)
def test_send_then_status(producer: Runtime) -> None:
    sent = outbox("send", "email", "--from", "shop@example.com", "--to", "ann@example.org",
                  "--subject", "Hi", "--text", "x", "--json")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    handle = json.loads(sent.stdout)
    assert json.loads(outbox("status", handle["id"], "--json").stdout)["state"] == "queued"

    bad = outbox("send", "email", "--from", "shop@example.com", "--to", "ann@example",
                 "--subject", "Hi", "--text", "x")  # fmt: skip
    assert bad.returncode == 2
    assert "to.0" in bad.stderr


@pytest.mark.timeout(60)
def test_unreachable_redis_exits_3() -> None:
    url = f"redis://127.0.0.1:{free_port()}/1"
    for args in (("status", "abc"), ("dead", "list"), ("dead", "replay", "--all")):
        done = outbox(*args, OUTBOX_REDIS_URL=url)
        assert done.returncode == 3, (args, done.stdout, done.stderr)
        assert f"cannot reach Redis at {url} (OUTBOX_REDIS_URL)" in done.stderr
        assert "Traceback" not in done.stderr
