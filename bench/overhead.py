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

    python -m bench.overhead [--messages 3000] [--concurrency 100] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench import harness as h

NAME = "overhead"
#: The targets (issue "Half the CPU per send"): CPU per delivered message, absolute and
#: as a ratio to the sandbox's CPU per request in the same run.
TARGET_MS = 2.4
TARGET_VS_SANDBOX = 2.7


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
        "targets": {"worker_cpu_ms": TARGET_MS, "worker_vs_sandbox": TARGET_VS_SANDBOX},
        "met": {
            "worker_cpu_ms": worker_ms <= TARGET_MS,
            "worker_vs_sandbox": h.ratio(worker_ms, sandbox_ms) <= TARGET_VS_SANDBOX,
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
    from outbox.worker.app import app

    broker = h.redis_client(h.BROKER_URL)
    cpu0 = h.cpu_seconds(pid)
    with app.producer_or_acquire() as producer:
        for _ in range(n):
            app.send_task("celery.ping", queue="email", producer=producer)
    h.wait_until(lambda: broker.llen("email") == 0, timeout=60 + n / 50, what="the pings")
    # The last few are still running when the queue empties: wait for the CPU to settle.
    last = h.cpu_seconds(pid)
    while True:
        time.sleep(0.5)
        now = h.cpu_seconds(pid)
        if now - last < 0.02:
            return (last - cpu0) / n * 1000
        last = now


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
    for name, target in result["targets"].items():
        verdict = "met" if result["met"][name] else "NOT met"
        h.console.print(f"target {name} ≤ {target:g}: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.concurrency = 150, 20
    result = run(args)
    show(result)
    h.write_result(NAME, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
