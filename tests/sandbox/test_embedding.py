"""Running the sandbox inside another process, its command line and its configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from outbox.sandbox import SandboxConfig, parse_rate, serve_in_thread
from outbox.sandbox.config import Rate
from support.procs import PYTHON, ROOT, free_port, running
from tests.sandbox.conftest import email, ok

pytestmark = pytest.mark.integration

ANY_KEY = "api-" + "a1B2" * 8


def test_serve_in_thread_on_a_free_port() -> None:
    config = SandboxConfig(rate=None, latency_ms=0)
    with serve_in_thread(config) as running:
        assert running.port > 0
        assert running.base_url == f"http://127.0.0.1:{running.port}/v3"
        headers = {"X-Smtp2go-Api-Key": ANY_KEY}  # no fixed key: any of the real format
        ok(httpx.post(f"{running.base_url}/email/send", json=email(), headers=headers))
        short = {"X-Smtp2go-Api-Key": "api-123"}
        assert (
            httpx.post(f"{running.base_url}/email/send", json=email(), headers=short).status_code
            == 401
        )
        assert httpx.get(f"{running.url}/_sandbox/stats").json()["accepted"] == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.url}/_sandbox/stats", timeout=2)


def test_two_sandboxes_in_one_process_keep_separate_state() -> None:
    config = SandboxConfig(rate=None, latency_ms=0, api_key=ANY_KEY)
    with serve_in_thread(config) as one, serve_in_thread(config) as two:
        headers = {"X-Smtp2go-Api-Key": ANY_KEY}
        ok(httpx.post(f"{one.base_url}/email/send", json=email(), headers=headers))
        assert len(httpx.get(f"{one.url}/_sandbox/messages").json()["messages"]) == 1
        assert httpx.get(f"{two.url}/_sandbox/messages").json()["messages"] == []


def test_the_start_config_is_what_reset_restores() -> None:
    config = SandboxConfig(rate="3/s", latency_ms=0, api_key=ANY_KEY, verified_domains=["a.test"])
    with serve_in_thread(config) as running:
        httpx.post(f"{running.url}/_sandbox/config", json={"rate": None, "verified_domains": None})
        httpx.post(f"{running.url}/_sandbox/reset").raise_for_status()
        restored = httpx.get(f"{running.url}/_sandbox/config").json()
        assert restored["rate"] == "3/s"
        assert restored["verified_domains"] == ["a.test"]


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/s", Rate(10, 1.0)),
        ("600/m", Rate(600, 60.0)),
        ("5/10s", Rate(5, 10.0)),
        ("100/hour", Rate(100, 3600.0)),
        ("25", Rate(25, 1.0)),
        ("0", None),
        ("none", None),
        (None, None),
    ],
)
def test_parse_rate(text: str | None, rate: Rate | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "10/fortnight", "-3/s", "1/0s"])
def test_parse_rate_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="invalid rate"):
        parse_rate(text)


def test_config_refuses_impossible_values() -> None:
    with pytest.raises(ValueError, match="fail_rate"):
        SandboxConfig(fail_rate=1.5)
    with pytest.raises(ValueError, match="invalid rate"):
        SandboxConfig(rate="lots")


def test_command_line_refuses_a_bad_rate() -> None:
    result = subprocess.run(
        [PYTHON, "-m", "outbox.sandbox", "--rate", "lots"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "invalid rate" in result.stderr


def test_one_command_for_outbox_sandbox_and_python_m() -> None:
    """``outbox sandbox`` is the sandbox package's own command, registered, not a copy."""
    from outbox.cli.main import main
    from outbox.sandbox.command import sandbox

    assert main.commands["sandbox"] is sandbox
    result = subprocess.run(
        [PYTHON, "-m", "outbox.sandbox", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: python -m outbox.sandbox [OPTIONS]")
    for option in ("--penalty", "--error-limit", "--rate-headers", "--latency-jitter-ms"):
        assert option in result.stdout


def test_command_line_options_set_the_start_config(tmp_path: Path) -> None:
    """Every new option reaches ``GET /_sandbox/config``; the banner names the key format."""
    port = free_port()
    log = tmp_path / "sandbox.log"
    args = [PYTHON, "-m", "outbox.sandbox", "--port", str(port), "--rate", "0"]
    args += ["--penalty", "5", "--error-limit", "20/m", "--rate-headers"]
    args += ["--latency-jitter-ms", "7", "--cycle-max", "123", "--webhook-backoff", "0.5"]
    url = f"http://127.0.0.1:{port}"
    with running(args, ready_url=f"{url}/_sandbox/config", log=log):
        config = httpx.get(f"{url}/_sandbox/config").json()
    assert config["penalty"] == 5
    assert config["error_limit"] == "20/m"
    assert config["rate_headers"] is True
    assert config["latency_jitter_ms"] == 7
    assert config["cycle_max"] == 123
    assert config["webhook_backoff"] == 0.5
    assert "any key of the form api- and 32 letters or digits" in log.read_text()


def test_command_line_refuses_a_bad_error_limit() -> None:
    result = subprocess.run(
        [PYTHON, "-m", "outbox.sandbox", "--error-limit", "often"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "invalid rate" in result.stderr
