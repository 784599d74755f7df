"""What every benchmark shares: the sandbox, worker fleets, Redis accounting, results.

Benchmarks run real processes the way an operator would: ``python -m outbox.sandbox`` and
``celery -A outbox.worker worker`` subprocesses on free loopback ports, Redis databases 8
(broker) and 9 (records) of the server in ``BENCH_REDIS`` (default
``redis://127.0.0.1:6379``). Only those two databases are ever flushed. Every process a
benchmark starts is stopped by its pid (its own process group) when the benchmark ends,
also on Ctrl-C.

Importing this module points *this* process (a producer) at the benchmark databases, so
import it before anything imports ``producers`` or ``worker``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from outbox.core.text import as_text
from support import procs
from support.procs import free_port as free_port
from support.procs import wait_until as wait_until

ROOT = Path(__file__).resolve().parent.parent
#: Where results go; the CI smoke test points this at a temporary folder.
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or ROOT / "bench" / "results")
INSTRUMENT = ROOT / "bench" / "instrument"
PYTHON = sys.executable
#: A key of the real format, known only to the benchmarks' sandboxes.
API_KEY = "api-" + "B3nchOnlyK3y" * 2 + "B3nchOnl"

REDIS_BASE = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379").rstrip("/")
#: Broker and records databases: the benchmarks flush these two and no others.
BROKER_DB, RECORDS_DB = (int(x) for x in os.environ.get("BENCH_DBS", "8,9").split(","))
BROKER_URL = f"{REDIS_BASE}/{BROKER_DB}"
RECORDS_URL = f"{REDIS_BASE}/{RECORDS_DB}"

# This process is a producer on the benchmark databases; celeryconfig reads these once.
os.environ["CELERY_BROKER_URL"] = BROKER_URL
os.environ["OUTBOX_REDIS_URL"] = RECORDS_URL
os.environ.pop("SMTP2GO_API_KEY", None)

#: Worker settings every benchmark shares unless it overrides them.
WORKER_ENV = {
    "OUTBOX_RETRY_BASE": "0.5",
    "OUTBOX_RETRY_CAP": "5",
    "OUTBOX_COOLDOWN_SECONDS": "2",
    "SMTP2GO_TIMEOUT": "10",
    "OUTBOX_RATE_LIMIT": "100000/s",
    # the benchmarks count requests: no reads of the account beside the sends
    "OUTBOX_ACCOUNT_READS_AT_START": "0",
}

#: Wide enough for the result tables when the output is a file or a pipe (CI, bench.all).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)

# -- processes --------------------------------------------------------------------------
# Started, stopped and waited for with the test suite's helpers (``tests/procs.py``);
# what the benchmarks add is stopping whatever is left at exit or on SIGTERM.

_started: list[subprocess.Popen[bytes]] = []


def start_process(
    args: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own process group (so it can be stopped whole, by pid); it
    is stopped at exit or on SIGTERM if the benchmark has not stopped it by then."""
    proc = procs.start(args, env=env, log=log)
    _started.append(proc)
    return proc


def stop_process(proc: subprocess.Popen[bytes], *, timeout: float = 15.0) -> None:
    """SIGTERM the process group started for ``proc``; SIGKILL it if it lingers."""
    procs.stop(proc, timeout=timeout)
    if proc in _started:
        _started.remove(proc)


def _stop_everything() -> None:
    for proc in list(_started):
        with contextlib.suppress(Exception):
            stop_process(proc, timeout=5)


def _on_signal(signum: int, frame: Any) -> None:
    _stop_everything()
    raise SystemExit(128 + signum)


atexit.register(_stop_everything)
signal.signal(signal.SIGTERM, _on_signal)


def logdir() -> Path:
    """A temporary folder for this run's process logs; removed at exit unless
    ``BENCH_KEEP_LOGS=1`` (then its path is printed)."""
    path = Path(tempfile.mkdtemp(prefix="outbox-bench-"))
    if os.environ.get("BENCH_KEEP_LOGS"):
        console.print(f"[dim]logs in {path}[/dim]")
    else:
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# -- /proc ------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of ``pid`` (its threads included), from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def proc_status_kb(pid: int, key: str) -> int:
    """A ``kB`` figure of /proc/<pid>/status (``VmHWM``, ``VmRSS``)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


# -- the sandbox ------------------------------------------------------------------------


@dataclass
class Sandbox:
    """A running ``python -m outbox.sandbox`` and its control endpoints."""

    proc: subprocess.Popen[bytes]
    url: str

    @property
    def base_url(self) -> str:
        return f"{self.url}/v3"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def configure(self, **config: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/_sandbox/config", json=config, timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def reset(self) -> None:
        httpx.post(f"{self.url}/_sandbox/reset", timeout=10).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_sandbox/stats", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def messages(self, since: int = 0) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_sandbox/messages", params={"since": since}, timeout=60)
        response.raise_for_status()
        return list(response.json()["messages"])

    def message_times(self) -> list[float]:
        return sorted(float(m["time"]) for m in self.messages())

    def stop(self) -> None:
        stop_process(self.proc)


def split_cores() -> tuple[str | None, str | None]:
    """``taskset`` CPU lists giving the sandbox a core of its own and the workers the
    rest, or ``(None, None)`` where that cannot be done (one core, no ``taskset``)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or shutil.which("taskset") is None:
        return None, None
    return str(cores[0]), ",".join(str(c) for c in cores[1:])


@contextlib.contextmanager
def paused(fleet: Fleet, queue: str) -> Iterator[None]:
    """The fleet's workers stop consuming ``queue`` inside the block (remote control)."""
    from outbox.worker.celery_app import app

    hosts = fleet.hostnames()
    app.control.cancel_consumer(queue, destination=hosts, reply=True, timeout=5)
    try:
        yield
    finally:
        app.control.add_consumer(queue, destination=hosts, reply=True, timeout=5)


def _pinned(cpus: str | None) -> list[str]:
    """A ``taskset`` prefix that keeps a process on ``cpus`` (none when not asked)."""
    return ["taskset", "-c", cpus] if cpus else []


def start_sandbox(
    *, rate: str = "0", latency_ms: float = 50.0, log: Path | None = None, cpus: str | None = None
) -> Sandbox:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [*_pinned(cpus), PYTHON, "-m", "outbox.sandbox", "--host", "127.0.0.1"]
    args += ["--port", str(port)]
    args += ["--rate", rate, "--latency-ms", f"{latency_ms:g}", "--api-key", API_KEY]
    args += ["--log-level", "warning"]
    proc = start_process(args, log=log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"sandbox exited with {proc.returncode} (log: {log})")
        return httpx.get(f"{url}/_sandbox/stats", timeout=1).is_success

    wait_until(ready, timeout=30, what="the sandbox")
    return Sandbox(proc, url)


# -- workers ----------------------------------------------------------------------------


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        """The worker process and its pool children (prefork)."""
        return [self.proc.pid, *children(self.proc.pid)]


@dataclass
class Fleet:
    """``celery -A outbox.worker worker`` processes against one sandbox and the bench databases."""

    sandbox: Sandbox
    dir: Path
    workers: list[Worker] = field(default_factory=list)
    #: The environment overrides the running workers were started with.
    started_env: dict[str, str] | None = None
    _serial: int = 0

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            "CELERY_BROKER_URL": BROKER_URL,
            "OUTBOX_REDIS_URL": RECORDS_URL,
            "SMTP2GO_BASE_URL": self.sandbox.base_url,
            "SMTP2GO_API_KEY": API_KEY,
            **WORKER_ENV,
            **overrides,
        }

    def start(
        self,
        n: int,
        *,
        concurrency: int = 50,
        pool: str = "threads",
        queues: str = "email,bulk",
        wait: bool = True,
        env: dict[str, str] | None = None,
        count_redis: bool = False,
        cpus: str | None = None,
        launcher: Sequence[str] = (),
        path: Sequence[Path] = (),
    ) -> list[Worker]:
        """Start ``n`` workers at once; with ``wait``, return when every one answers a ping.

        ``count_redis`` loads ``bench/instrument/sitecustomize.py`` into each worker so
        :meth:`redis_counts` can tell its Redis round trips and commands. ``launcher``
        goes before the Python command (``opentelemetry-instrument``); ``path`` goes first
        on the worker's ``PYTHONPATH``.
        """
        started = []
        for _ in range(n):
            self._serial += 1
            name = f"bench{self._serial}"
            log = self.dir / f"{name}.log"
            cmd = [*_pinned(cpus), *launcher, PYTHON, "-m", "celery", "-A", "outbox.worker"]
            cmd += ["worker"]
            cmd += ["-n", f"{name}@%h"]
            # Celery reads ``--pool prefork`` as "the configured default", which outbox sets
            # to threads; ``processes`` is prefork by its other name.
            cli_pool = "processes" if pool == "prefork" else pool
            cmd += ["-Q", queues, "-c", str(concurrency), "--pool", cli_pool, "-l", "warning"]
            cmd += ["--without-gossip", "--without-mingle"]
            wenv = self.env(**(env or {}))
            first = [*path, *([INSTRUMENT] if count_redis else [])]
            if first:
                wenv["PYTHONPATH"] = os.pathsep.join(str(p) for p in [*first, ROOT])
            if count_redis:
                wenv["BENCH_REDIS_COUNT_FILE"] = str(self.dir / f"{name}.redis")
            worker = Worker(name, start_process(cmd, env=wenv, log=log), log)
            started.append(worker)
        self.workers += started
        if wait:
            self.wait_ready(started)
        return started

    def wait_ready(self, workers: Sequence[Worker], timeout: float = 60.0) -> None:
        from outbox.worker.celery_app import app

        names = {f"{w.name}@{socket.gethostname()}" for w in workers}

        def ready() -> bool:
            for w in workers:
                if w.proc.poll() is not None:
                    raise RuntimeError(f"worker {w.name} exited; see {w.log}")
            replies = app.control.ping(destination=sorted(names), timeout=0.5)
            seen = {name for reply in replies for name in reply}
            return names <= seen

        wait_until(ready, timeout=timeout, what="workers to answer a ping", interval=0.2)

    def redis_counts(self) -> tuple[int, Counter[str]]:
        """Round trips and commands by name of every counted worker process so far."""
        trips = 0
        commands: Counter[str] = Counter()
        for path in self.dir.glob("*.redis.*"):
            if path.suffix == ".tmp":
                continue
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text())
                trips += int(data["round_trips"])
                commands.update({k: int(v) for k, v in data["commands"].items()})
        return trips, commands

    def hostnames(self) -> list[str]:
        return [f"{w.name}@{socket.gethostname()}" for w in self.workers]

    def stop_all(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.proc.pid, signal.SIGTERM)
        for worker in self.workers:
            stop_process(worker.proc, timeout=20)
        self.workers.clear()
        self.started_env = None


# -- Redis ------------------------------------------------------------------------------


def redis_client(url: str = RECORDS_URL) -> redis.Redis[bytes]:
    return redis.Redis.from_url(url)


def flush() -> None:
    """Empty the benchmark databases (8 and 9) and nothing else."""
    for url in (BROKER_URL, RECORDS_URL):
        redis_client(url).flushdb(asynchronous=True)


def commandstats() -> dict[str, int]:
    """Calls per command on the whole server (``INFO commandstats``)."""
    info = redis_client().info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


def stats_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return {k: v for k, v in delta.items() if v}


def other_redis_clients() -> int:
    """Clients on the server that are not on the benchmark databases (noise in the counts)."""
    clients = redis_client().client_list()
    return sum(1 for c in clients if c.get("db") not in (str(BROKER_DB), str(RECORDS_DB)))


class RoundTrips:
    """Counts this process's Redis commands and round trips (records and broker alike).

    Patches redis-py's connection class: a plain command is one round trip, a pipeline
    is one round trip however many commands it carries.
    """

    def __init__(self) -> None:
        self.commands: Counter[str] = Counter()
        self.round_trips = 0
        self._lock = threading.Lock()
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> RoundTrips:
        from redis.connection import AbstractConnection

        counter = self
        send_command = AbstractConnection.send_command
        pack_commands = AbstractConnection.pack_commands

        def counted_send(conn: Any, *args: Any, **kwargs: Any) -> Any:
            with counter._lock:
                counter.round_trips += 1
                counter.commands[_name(args)] += 1
            return send_command(conn, *args, **kwargs)

        def counted_pack(conn: Any, commands: Any) -> Any:
            commands = list(commands)
            with counter._lock:
                counter.round_trips += 1
                for cmd in commands:
                    counter.commands[_name(cmd)] += 1
            return pack_commands(conn, commands)

        self._saved = {"send_command": send_command, "pack_commands": pack_commands}
        AbstractConnection.send_command = counted_send  # type: ignore[method-assign,assignment]
        AbstractConnection.pack_commands = counted_pack  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        from redis.connection import AbstractConnection

        AbstractConnection.send_command = self._saved["send_command"]  # type: ignore[method-assign,assignment]
        AbstractConnection.pack_commands = self._saved["pack_commands"]  # type: ignore[method-assign,assignment]

    def reset(self) -> None:
        with self._lock:
            self.commands.clear()
            self.round_trips = 0

    @property
    def total_commands(self) -> int:
        return sum(self.commands.values())


def _name(args: Sequence[Any]) -> str:
    if not args:
        return "?"
    head = args[0]
    text = as_text(head)
    return text.split()[0].lower()


# -- records ----------------------------------------------------------------------------


def install_producer() -> Any:
    """Make this process a producer on the benchmark databases; returns its runtime."""
    from outbox.core.settings import Settings
    from outbox.worker.runtime import Runtime, set_runtime

    rt = Runtime.from_settings(Settings())
    set_runtime(rt)
    return rt


def active_chunks() -> int:
    """Chunks not final yet (the records' ``active`` index)."""
    from outbox.core.store import keys

    return int(redis_client().zcard(keys.active()))


@dataclass
class Timelines:
    """What the records say about a set of chunks."""

    #: Seconds from each sent chunk's creation to its ``sent`` entry.
    latencies: list[float] = field(default_factory=list)
    #: Final (or current) state of every chunk.
    states: Counter[str] = field(default_factory=Counter)
    #: Redis-clock times of every ``retrying`` entry (a failed attempt).
    retries: list[float] = field(default_factory=list)
    #: Redis-clock times of every ``sent`` entry.
    sent_at: list[float] = field(default_factory=list)
    #: Attempts at the API over all chunks.
    attempts: int = 0


def timelines(chunk_ids: Sequence[str]) -> Timelines:
    """Read every chunk's hash and history (pipelined, after the run)."""
    from outbox.core.store import keys

    client = redis_client()
    out = Timelines()
    step = 2000
    for start in range(0, len(chunk_ids), step):
        part = chunk_ids[start : start + step]
        pipe = client.pipeline(transaction=False)
        for chunk_id in part:
            pipe.hmget(keys.chunk(chunk_id), "created_at", "state", "attempts")
            pipe.lrange(keys.chunk_log(chunk_id), 0, -1)
        replies = pipe.execute()
        for i in range(0, len(replies), 2):
            created, state, attempts = replies[i]
            out.states[state.decode() if state else "missing"] += 1
            out.attempts += int(attempts or 0)
            for raw in replies[i + 1]:
                entry = json.loads(raw)
                if entry.get("state") == "retrying":
                    out.retries.append(float(entry["at"]))
                elif entry.get("state") == "sent":
                    out.sent_at.append(float(entry["at"]))
                    if created:
                        out.latencies.append(float(entry["at"]) - float(created))
    return out


def sent_latencies(chunk_ids: Sequence[str]) -> tuple[list[float], Counter[str]]:
    """Seconds from each chunk's creation to its ``sent`` entry, and the final states."""
    t = timelines(chunk_ids)
    return t.latencies, t.states


# -- figures ----------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))
    return ordered[index]


def span_rate(times: Sequence[float]) -> float:
    """Sends per second between the first and the last of ``times``."""
    if len(times) < 2:
        return 0.0
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else 0.0


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most events inside any sliding window of ``window`` seconds."""
    ordered = sorted(times)
    best = 0
    j = 0
    for i, t in enumerate(ordered):
        while ordered[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else 0.0


def machine() -> dict[str, Any]:
    info = redis_client().info("server")
    load1, load5, _ = os.getloadavg()
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "redis": info.get("redis_version"),
        "platform": platform.platform(),
        "loadavg_at_start": [round(load1, 2), round(load5, 2)],
        "other_redis_clients_at_start": other_redis_clients(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    console.print(f"[dim]wrote {path}[/dim]")
    return path


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        t.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[str(x) for x in row])
    return t


@contextlib.contextmanager
def stage(description: str) -> Iterator[None]:
    started = time.monotonic()
    console.print(f"[cyan]…[/cyan] {description}")
    yield
    console.print(f"[green]✓[/green] {description} [dim]({time.monotonic() - started:.1f}s)[/dim]")


def wait_drained(
    sandbox: Sandbox,
    expected: int,
    *,
    timeout: float,
    description: str = "delivering",
    accepted_before: int = 0,
) -> float:
    """Wait until no chunk is active (every chunk final), with a progress bar.

    The bar counts the sandbox's accepted sends towards ``expected``; completion is the
    records' ``active`` index running empty, so chunks that end ``dead`` or ``failed``
    finish the wait too. Returns the seconds it took; raises ``TimeoutError``.
    """
    started = time.monotonic()
    deadline = started + timeout
    with progress() as bar:
        task = bar.add_task(description, total=expected)
        while True:
            done = sandbox.stats()["accepted"] - accepted_before
            bar.update(task, completed=min(done, expected))
            if active_chunks() == 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{description}: {done}/{expected} accepted, {active_chunks()} chunks "
                    f"active after {timeout:.0f}s"
                )
            time.sleep(0.1)
    return time.monotonic() - started


def wait_for(sandbox: Sandbox, expected: int, *, seconds: float, description: str) -> None:
    """Watch the sandbox accept sends for ``seconds`` from the first one, with a bar
    (a time-boxed run: its backlog is not drained)."""
    first: float | None = None
    with progress() as bar:
        task = bar.add_task(description, total=expected)
        while True:
            done = sandbox.stats()["accepted"]
            bar.update(task, completed=min(done, expected))
            now = time.monotonic()
            if first is None and done:
                first = now
            if (first is not None and now - first >= seconds) or done >= expected:
                return
            time.sleep(0.2)


def email_payload(i: int) -> dict[str, Any]:
    """The single-recipient message every benchmark sends."""
    return {
        "sender": "Shop <shop@example.com>",
        "to": [f"customer{i}@example.org"],
        "subject": f"Your order #{i}",
        "text_body": "Thanks for your order. It ships tomorrow.",
        "html_body": "<p>Thanks for your order. It ships tomorrow.</p>",
    }


def send_single(i: int) -> str:
    """One single-recipient ``send_email`` call; its chunk id (``<batch>.0``)."""
    from outbox import send_email

    message = email_payload(i)
    handle = send_email(
        message["sender"],
        message["to"],
        message["subject"],
        html_body=message["html_body"],
        text_body=message["text_body"],
    )
    return f"{handle.id}.0"


def enqueue_singles(n: int, *, description: str = "enqueueing", offset: int = 0) -> list[str]:
    """``n`` single-recipient ``send_email`` calls, with a progress bar; their chunk ids."""
    ids: list[str] = []
    with progress() as bar:
        task = bar.add_task(description, total=n)
        for i in range(n):
            ids.append(send_single(offset + i))
            if i % 50 == 49:
                bar.update(task, completed=i + 1)
        bar.update(task, completed=n)
    return ids
