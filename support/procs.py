"""Starting and stopping real processes, shared by the tests and the benchmarks: free
ports, readiness, clean-up by process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> None:
    """Poll ``predicate`` until it holds; fail loudly after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what or predicate!r}")


def wait_http(
    url: str, *, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until ``url`` answers 2xx (and fail early if ``proc`` died)."""

    def ready() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
        return httpx.get(url, timeout=1.0).is_success

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except RuntimeError:
            raise
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")


def start(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    cwd: Path = ROOT,
) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own process group, output to ``log`` (or discarded)."""
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        list(args),
        cwd=cwd,
        env=full_env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(
    proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 15.0
) -> None:
    """Stop the process group of ``proc``: ``sig`` first, SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    else:
        # The leader is gone; make sure no child of its group survives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running(
    args: Sequence[str],
    *,
    ready_url: str | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    timeout: float = 30.0,
    cwd: Path = ROOT,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process for the duration of a ``with`` block."""
    proc = start(args, env=env, log=log, cwd=cwd)
    try:
        if ready_url:
            wait_http(ready_url, timeout=timeout, proc=proc)
        yield proc
    finally:
        stop(proc)


PYTHON = sys.executable
