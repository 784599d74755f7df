"""Shared fixtures: a real sandbox process, a real Redis database, test keys."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from support.procs import PYTHON, free_port, running, wait_until
from support.redis_servers import Servers, cluster, missing, sentinel

#: A key of the real format (``api-`` and 32 letters or digits), known only to tests.
TEST_API_KEY = "api-" + "T3stK3y0nlyF0rT3sts0000000000AB"[:32].ljust(32, "0")

REDIS_HOST = "127.0.0.1"
REDIS_PORT = int(os.environ.get("OUTBOX_TEST_REDIS_PORT", "0"))
#: Database 1 is the broker, 2 the records: the same layout as production, on a server
#: of the session's own.
BROKER_URL = ""
RECORDS_URL = ""
_private_redis: subprocess.Popen[bytes] | None = None


def _start_private_redis() -> int:
    """A redis-server of this session's own on a free port, so parallel test runs (and a
    developer's data on 6379) never share databases. Falls back to 127.0.0.1:6379 when no
    ``redis-server`` binary is installed."""
    global _private_redis
    binary = shutil.which("redis-server")
    if binary is None:
        return 6379
    port = free_port()
    _private_redis = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = redis.Redis(host=REDIS_HOST, port=port, socket_timeout=1)
    wait_until(lambda: bool(client.ping()), timeout=10, what=f"redis-server on {port}")
    atexit.register(_stop_private_redis)
    return port


def _stop_private_redis() -> None:
    if _private_redis is not None and _private_redis.poll() is None:
        _private_redis.terminate()
        _private_redis.wait(10)


def pytest_configure(config: pytest.Config) -> None:
    # The test process is a producer: point it at the test databases before anything
    # imports the Celery config (which reads the environment once).
    global REDIS_PORT, BROKER_URL, RECORDS_URL
    if not REDIS_PORT:
        REDIS_PORT = _start_private_redis()
    BROKER_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/1"
    RECORDS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/2"
    os.environ["CELERY_BROKER_URL"] = BROKER_URL
    os.environ["OUTBOX_REDIS_URL"] = RECORDS_URL
    os.environ.pop("SMTP2GO_API_KEY", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    _stop_private_redis()


@dataclass
class Sandbox:
    """A running sandbox process and the calls tests make on its control endpoints."""

    url: str
    api_key: str
    log: Path

    @property
    def base_url(self) -> str:
        return f"{self.url}/v3"

    def reset(self) -> None:
        httpx.post(f"{self.url}/_sandbox/reset", timeout=5).raise_for_status()

    def configure(self, **config: Any) -> None:
        httpx.post(f"{self.url}/_sandbox/config", json=config, timeout=5).raise_for_status()

    def messages(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_sandbox/messages", timeout=10)
        response.raise_for_status()
        data = response.json()
        return list(data["messages"] if isinstance(data, dict) else data)

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_sandbox/stats", timeout=5)
        response.raise_for_status()
        return dict(response.json())


@pytest.fixture(scope="session")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    port = free_port()
    log = tmp_path_factory.mktemp("sandbox") / "outbox.sandbox.log"
    url = f"http://127.0.0.1:{port}"
    args = [PYTHON, "-m", "outbox.sandbox", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--api-key", TEST_API_KEY, "--rate", "0", "--latency-ms", "0"]
    # The service's webhook retries (35 over 48 h) compressed to seconds.
    args += ["--webhook-backoff", "0.2"]
    with running(args, ready_url=f"{url}/_sandbox/stats", log=log):
        yield Sandbox(url=url, api_key=TEST_API_KEY, log=log)


@pytest.fixture
def sandbox(sandbox_process: Sandbox) -> Sandbox:
    """The session's sandbox, reset to a clean state (no messages, no faults, no limit)."""
    sandbox_process.reset()
    return sandbox_process


def _redis_available() -> bool:
    try:
        return bool(redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_server() -> str:
    """``host:port`` of the real Redis the integration tests use (.ci/run starts one)."""
    if not _redis_available():
        pytest.fail(
            f"integration tests need Redis on {REDIS_HOST}:{REDIS_PORT} (.ci/run starts it)"
        )
    return f"{REDIS_HOST}:{REDIS_PORT}"


@pytest.fixture
def redis_db(redis_server: str) -> Iterator[tuple[str, str]]:
    """The two test databases on the real Redis, flushed: (broker URL, records URL)."""
    broker, records = os.environ["CELERY_BROKER_URL"], os.environ["OUTBOX_REDIS_URL"]
    for url in (broker, records):
        redis.Redis.from_url(url).flushdb(asynchronous=True)
    yield broker, records
    for url in (broker, records):
        redis.Redis.from_url(url).flushdb(asynchronous=True)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """A Redis Cluster of three masters for the session (``.url``: its OUTBOX_REDIS_URL)."""
    reason = missing("redis-server", "redis-cli")
    if reason:
        pytest.skip(f"no Redis Cluster: {reason}")
    with cluster(tmp_path_factory.mktemp("redis-cluster")) as servers:
        yield servers


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """A master, its replica and a Sentinel for the session (``.url``: OUTBOX_REDIS_URL)."""
    reason = missing("redis-server")
    if reason:
        pytest.skip(f"no Sentinel: {reason}")
    with sentinel(tmp_path_factory.mktemp("redis-sentinel")) as servers:
        yield servers
