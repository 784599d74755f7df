"""Overhead: CPU and memory a worker process spends per delivered message.

For sizing a fleet. One ``celery -A outbox.worker worker`` process (threads pool, concurrency
``--concurrency``, 100 by default) delivers ``--messages`` single-recipient emails to the
sandbox (latency 50 ms, no limit). Measured from ``/proc``:

* CPU (user + system) of the worker process from ready-and-idle to drained, divided by
  the messages: the worker's CPU per delivered message;
* the same for the sandbox process per request it answered (the baseline: the cheapest
  possible HTTP server-side handling of the same request on the same machine);
* peak resident memory of the worker (``VmHWM``) and its memory when idle after
  start-up (``VmRSS``).

The producer runs in this process while the worker drains, so the worker competes with
it for the two cores, as it would on a shared host.

    python -m bench.overhead [--messages 3000] [--concurrency 100] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench import harness as h

NAME = "overhead"


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
    sandbox = h.start_sandbox(rate="0", latency_ms=args.latency_ms, log=logs / "outbox.sandbox.log")
    try:
        h.flush()
        h.install_producer()
        fleet = h.Fleet(sandbox, logs)
        with h.stage(f"one worker, threads x{args.concurrency}: starting"):
            (worker,) = fleet.start(1, concurrency=args.concurrency)
        idle_rss = h.proc_status_kb(worker.pid, "VmRSS")
        idle_hwm = h.proc_status_kb(worker.pid, "VmHWM")
        threads_idle = len(list((Path("/proc") / str(worker.pid) / "task").iterdir()))
        cpu0, sb0 = h.cpu_seconds(worker.pid), h.cpu_seconds(sandbox.pid)
        req0 = sandbox.stats()["requests"]
        with h.stage(f"{args.messages} messages"):
            h.enqueue_singles(args.messages, description="enqueueing")
            h.wait_drained(
                sandbox, args.messages, timeout=args.messages / 10 + 60, description="delivering"
            )
        cpu1, sb1 = h.cpu_seconds(worker.pid), h.cpu_seconds(sandbox.pid)
        requests = sandbox.stats()["requests"] - req0
        peak = h.proc_status_kb(worker.pid, "VmHWM")
        rss = h.proc_status_kb(worker.pid, "VmRSS")
        threads = len(list((Path("/proc") / str(worker.pid) / "task").iterdir()))
        times = sandbox.message_times()
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


def show(result: dict[str, Any]) -> None:
    s = result["settings"]
    rows = [
        ("worker CPU per message", f"{result['worker_cpu_ms_per_message']:.3f} ms"),
        ("sandbox CPU per request (baseline)", f"{result['sandbox_cpu_ms_per_request']:.3f} ms"),
        ("worker / sandbox CPU", f"{result['worker_vs_sandbox_cpu']:.2f}x"),
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
