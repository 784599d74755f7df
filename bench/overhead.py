"""Overhead: CPU and memory a worker process spends per delivered message.

For sizing a fleet. One ``celery -A outbox.worker worker`` process (threads pool, concurrency
``--concurrency``, 100 by default) delivers ``--messages`` single-recipient emails to the
sandbox (latency 50 ms, no limit). Measured from ``/proc``:

* CPU (user + system) of the worker process from ready-and-idle to drained, divided by
  the messages: the worker's CPU per delivered message;
* the same for the sandbox process per request it answered (the baseline: the cheapest
  possible HTTP server-side handling of the same request on the same machine);
* peak resident memory of the worker (``VmHWM``) and its memory when idle after
  start-up (``VmRSS``);
* the floor of the stack: the same worker's CPU per task for Celery's built-in
  ``celery.ping`` (a task that does nothing), published the same way, so what a send
  costs above Celery itself can be read off.

The sandbox runs on a core of its own and the worker on the others (``taskset``, where
the machine has two cores or more), and the backlog is enqueued while the worker does
not consume: the figures are each process's own, not what a neighbour costs it. (With
everything on the same two cores, and the producer enqueueing meanwhile, both figures
come out higher, the worker's by about a third.)

Then the cost of tracing (the ``otel`` extra), each mode with a worker of its own, in
alternating rounds so drift in the machine falls on every mode alike; each mode's figure
is its best round (what the machine's other work adds is never negative):

* ``not installed``: the worker cannot import ``opentelemetry`` (a package first on its
  path that raises ``ImportError``, as where the extra is not installed);
* ``installed, unconfigured``: the API and SDK importable, no tracer provider set (an
  app that installed the extra and has not set tracing up);
* ``exporting``: run as OpenTelemetry's docs run Celery, ``opentelemetry-instrument``
  with Celery's and httpx's instrumentations, every span exported over OTLP/HTTP to a
  collector in this process.

    python -m bench.overhead [--messages 3000] [--concurrency 100] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import harness as h

NAME = "overhead"
#: The targets (issue "Half the CPU per send"): CPU per delivered message, absolute and
#: as a ratio to the sandbox's CPU per request in the same run.
TARGET_MS = 2.4
TARGET_VS_SANDBOX = 2.7
#: Tracing that is not installed or not configured must cost no more than the noise:
#: the CPU per message within this ratio of the mode without it.
TARGET_UNTRACED_RATIO = 1.05
MODES = ("not installed", "installed, unconfigured", "exporting")


def run(args: argparse.Namespace) -> dict[str, Any]:
    logs = h.logdir()
    result: dict[str, Any] = {
        "benchmark": NAME,
        "machine": h.machine(),
        "quick": args.quick,
        "settings": {
            "messages": args.messages,
            "concurrency": args.concurrency,
            "pool": "threads",
            "sandbox_latency_ms": args.latency_ms,
        },
    }
    sandbox_cpus, worker_cpus = h.split_cores()
    result["settings"] |= {"sandbox_cpus": sandbox_cpus, "worker_cpus": worker_cpus}
    sandbox = h.start_sandbox(
        rate="0", latency_ms=args.latency_ms, log=logs / "outbox.sandbox.log", cpus=sandbox_cpus
    )
    try:
        h.flush()
        h.install_producer()
        fleet = h.Fleet(sandbox, logs)
        with h.stage(f"one worker, threads x{args.concurrency}: starting"):
            (worker,) = fleet.start(1, concurrency=args.concurrency, cpus=worker_cpus)
        idle_rss = h.proc_status_kb(worker.pid, "VmRSS")
        idle_hwm = h.proc_status_kb(worker.pid, "VmHWM")
        threads_idle = len(list((Path("/proc") / str(worker.pid) / "task").iterdir()))
        # The backlog is enqueued while the worker does not consume, so the producer's
        # work never shares the measured time with the worker's.
        with h.paused(fleet, "email"):
            h.enqueue_singles(args.messages, description="enqueueing")
            cpu0, sb0 = h.cpu_seconds(worker.pid), h.cpu_seconds(sandbox.pid)
            req0 = sandbox.stats()["requests"]
        with h.stage(f"{args.messages} messages"):
            h.wait_drained(
                sandbox, args.messages, timeout=args.messages / 10 + 60, description="delivering"
            )
        cpu1, sb1 = h.cpu_seconds(worker.pid), h.cpu_seconds(sandbox.pid)
        requests = sandbox.stats()["requests"] - req0
        peak = h.proc_status_kb(worker.pid, "VmHWM")
        rss = h.proc_status_kb(worker.pid, "VmRSS")
        threads = len(list((Path("/proc") / str(worker.pid) / "task").iterdir()))
        times = sandbox.message_times()
        with h.stage(f"floor: {args.messages} celery.ping tasks"):
            floor_ms = _floor(worker.pid, args.messages)
        fleet.stop_all()
        tracing = _tracing(fleet, sandbox, args, worker_cpus)
    finally:
        sandbox.stop()
        h.flush()
    worker_ms = (cpu1 - cpu0) / args.messages * 1000
    sandbox_ms = (sb1 - sb0) / max(requests, 1) * 1000
    result |= {
        "worker_cpu_ms_per_message": round(worker_ms, 3),
        "sandbox_cpu_ms_per_request": round(sandbox_ms, 3),
        "worker_vs_sandbox_cpu": h.ratio(worker_ms, sandbox_ms),
        "celery_floor_cpu_ms_per_task": round(floor_ms, 3),
        "worker_vs_floor_cpu": h.ratio(worker_ms, floor_ms),
        "tracing": tracing,
        "targets": {
            "worker_cpu_ms": TARGET_MS,
            "worker_vs_sandbox": TARGET_VS_SANDBOX,
            "unconfigured_vs_not_installed": [
                TARGET_UNTRACED_RATIO,
                tracing["unconfigured_vs_not_installed"],
            ],
        },
        "met": {
            "worker_cpu_ms": worker_ms <= TARGET_MS,
            "worker_vs_sandbox": h.ratio(worker_ms, sandbox_ms) <= TARGET_VS_SANDBOX,
            "unconfigured_vs_not_installed": tracing["unconfigured_vs_not_installed"]
            <= TARGET_UNTRACED_RATIO,
        },
        "messages_per_cpu_second": round(1000 / worker_ms, 1) if worker_ms else 0.0,
        "worker_peak_rss_mb": round(peak / 1024, 1),
        "worker_idle_rss_mb": round(idle_rss / 1024, 1),
        "worker_idle_peak_rss_mb": round(idle_hwm / 1024, 1),
        "worker_rss_after_mb": round(rss / 1024, 1),
        "worker_threads_idle": threads_idle,
        "worker_threads_busy": threads,
        "sends_per_second": round(h.span_rate(times), 1),
        "requests": requests,
    }
    return result


def _floor(pid: int, n: int) -> float:
    """The worker's CPU per ``celery.ping`` task (Celery's own no-op), in ms."""
    from outbox.worker.celery_app import app

    broker = h.redis_client(h.BROKER_URL)
    cpu0 = h.cpu_seconds(pid)
    with app.producer_or_acquire() as producer:
        for _ in range(n):
            app.send_task("celery.ping", queue="email", producer=producer)
    h.wait_until(lambda: broker.llen("email") == 0, timeout=60 + n / 50, what="the pings")
    return (_settled_cpu(pid) - cpu0) / n * 1000


def _settled_cpu(pid: int) -> float:
    """The process's CPU seconds once it stops using any: the last tasks still running
    when the queue empties, or spans still being exported, are counted."""
    last = h.cpu_seconds(pid)
    while True:
        time.sleep(0.5)
        now = h.cpu_seconds(pid)
        if now - last < 0.02:
            return last
        last = now


def _tracing(
    fleet: h.Fleet, sandbox: h.Sandbox, args: argparse.Namespace, cpus: str | None
) -> dict[str, Any]:
    """The worker's CPU per message in each tracing mode, rounds alternating the modes."""
    from support.otlp import Collector

    stub = h.logdir() / "without-otel"
    (stub / "opentelemetry").mkdir(parents=True, exist_ok=True)
    (stub / "opentelemetry" / "__init__.py").write_text(
        'raise ImportError("opentelemetry is not installed here (bench.overhead)")\n'
    )
    collector = Collector()
    exporting = {
        "OTEL_SERVICE_NAME": "outbox-worker",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }
    instrument = str(Path(h.PYTHON).with_name("opentelemetry-instrument"))
    how: dict[str, dict[str, Any]] = {
        "not installed": {"path": [stub]},
        "installed, unconfigured": {},
        "exporting": {"launcher": [instrument], "env": exporting},
    }
    runs: dict[str, list[float]] = {mode: [] for mode in MODES}
    spans: dict[str, int] = {}
    try:
        for round_ in range(args.rounds):
            for mode in MODES:
                before = len(collector.spans)
                label = f"tracing {mode}, round {round_ + 1}/{args.rounds}"
                runs[mode].append(_one_run(fleet, sandbox, args, cpus, label, **how[mode]))
                spans[mode] = len(collector.spans) - before
    finally:
        collector.close()
    best = {mode: min(values) for mode, values in runs.items()}
    calls_ms = _unconfigured_calls_ms()
    base = best["not installed"]
    return {
        "rounds": args.rounds,
        "messages": args.messages,
        "cpu_ms_per_message": {m: [round(v, 3) for v in runs[m]] for m in MODES},
        "best_cpu_ms_per_message": {m: round(v, 3) for m, v in best.items()},
        "vs_not_installed": {m: h.ratio(v, base) for m, v in best.items()},
        "spread_not_installed": h.ratio(max(runs["not installed"]), min(runs["not installed"])),
        "spans_per_message": {m: round(spans[m] / args.messages, 2) for m in MODES},
        "unconfigured_vs_not_installed": h.ratio(best["installed, unconfigured"], base),
        "unconfigured_calls_ms_per_message": round(calls_ms, 4),
        "unconfigured_calls_share": round(calls_ms / base, 4) if base else 0.0,
    }


def _unconfigured_calls_ms() -> float:
    """What one delivery's tracing calls cost in this process, with the API installed and
    no provider set: the check before its span, its slot's and its request's spans (the
    calls ``worker/delivery.py`` makes). A figure free of the runs' noise."""
    import timeit

    from outbox.core import tracing

    def one_delivery() -> None:
        if tracing.active():
            raise RuntimeError("a tracer provider is set in the benchmark's process")
        with tracing.span("outbox.slot", attributes={"outbox.attempt": 1}):
            pass
        with tracing.span("SMTP2GO /email/send", kind="client", attributes={"a": 1}) as call:
            tracing.note(call, http__response__status_code=200)

    n = 20_000
    return min(timeit.repeat(one_delivery, number=n, repeat=5)) / n * 1000


def _one_run(
    fleet: h.Fleet,
    sandbox: h.Sandbox,
    args: argparse.Namespace,
    cpus: str | None,
    label: str,
    *,
    path: Sequence[Path] = (),
    launcher: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> float:
    """One fresh worker delivers a backlog enqueued while it did not consume; its CPU
    per message, in ms."""
    with h.stage(f"{label}: starting"):
        (worker,) = fleet.start(
            1, concurrency=args.concurrency, cpus=cpus, path=path, launcher=launcher, env=env
        )
    try:
        accepted = sandbox.stats()["accepted"]
        with h.paused(fleet, "email"):
            h.enqueue_singles(args.messages, description=f"{label}: enqueueing")
            cpu0 = h.cpu_seconds(worker.pid)
        h.wait_drained(
            sandbox,
            args.messages,
            timeout=args.messages / 10 + 60,
            description=f"{label}: delivering",
            accepted_before=accepted,
        )
        return (_settled_cpu(worker.pid) - cpu0) / int(args.messages) * 1000
    finally:
        fleet.stop_all()


def show(result: dict[str, Any]) -> None:
    s = result["settings"]
    rows = [
        ("worker CPU per message", f"{result['worker_cpu_ms_per_message']:.3f} ms"),
        ("sandbox CPU per request (baseline)", f"{result['sandbox_cpu_ms_per_request']:.3f} ms"),
        ("worker / sandbox CPU", f"{result['worker_vs_sandbox_cpu']:.2f}x"),
        ("Celery's floor: CPU per no-op task", f"{result['celery_floor_cpu_ms_per_task']:.3f} ms"),
        ("worker / floor", f"{result['worker_vs_floor_cpu']:.2f}x"),
        ("messages per worker CPU second", f"{result['messages_per_cpu_second']:,.0f}"),
        ("worker peak RSS (VmHWM)", f"{result['worker_peak_rss_mb']} MB"),
        ("worker RSS idle after start-up", f"{result['worker_idle_rss_mb']} MB"),
        ("worker threads idle / busy", f"{result['worker_threads_idle']} / "
         f"{result['worker_threads_busy']}"),
        ("sends/s during the run", f"{result['sends_per_second']:,.1f}"),
    ]  # fmt: skip
    title = (
        f"overhead: 1 worker process, threads x{s['concurrency']}, {s['messages']} messages "
        f"(sandbox latency {s['sandbox_latency_ms']:g} ms)"
    )
    h.console.print(h.table(title, ["figure", "value"], rows))
    t = result["tracing"]
    modes = [
        (mode, ", ".join(f"{v:.3f}" for v in t["cpu_ms_per_message"][mode]),
         f"{t['best_cpu_ms_per_message'][mode]:.3f}", f"{t['vs_not_installed'][mode]:.2f}x",
         f"{t['spans_per_message'][mode]:g}")
        for mode in MODES
    ]  # fmt: skip
    header = ["tracing", "CPU ms/message by round", "best", "vs not installed", "spans/msg"]
    h.console.print(h.table(f"tracing: {t['rounds']} rounds", header, modes))
    h.console.print(
        f"one delivery's tracing calls, installed and unconfigured: "
        f"{t['unconfigured_calls_ms_per_message'] * 1000:.1f} us "
        f"({t['unconfigured_calls_share']:.2%} of the CPU per message)"
    )
    for name, target in result["targets"].items():
        bound = target[0] if isinstance(target, list) else target
        verdict = "met" if result["met"][name] else "NOT met"
        h.console.print(f"target {name} ≤ {bound:g}: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the tracing modes")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.concurrency, args.rounds = 150, 20, 1
    result = run(args)
    show(result)
    h.write_result(NAME, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
