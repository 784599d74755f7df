"""Scale: what 1, 2 and 4 worker processes deliver, and what each send costs them.

The sandbox (latency 50 ms, no limit) runs on a core of its own where the machine has
more than one and ``taskset`` is there, so the workers' cost is not hidden in its; the
workers (threads pool, 50 each) share the other cores. For each fleet size the same
backlog of single-recipient emails is drained, and reported: sends per second (from
the sandbox's acceptance times, first to last), the workers' CPU per send (all their
processes, from ready to drained) and the sandbox's CPU per request in the same run.

    python -m bench.scale [--fleets 1,2,4] [--messages 4000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench import harness as h

NAME = "scale"


def one_fleet(
    sandbox: h.Sandbox, fleet: h.Fleet, size: int, args: argparse.Namespace, cpus: str | None
) -> dict[str, Any]:
    h.flush()
    sandbox.reset()
    # The workers start (and warm up) first, so their CPU is counted from idle to
    # drained; the backlog they drain is enqueued meanwhile, faster than they send.
    workers = fleet.start(size, concurrency=args.concurrency, cpus=cpus)
    pids = [pid for w in workers for pid in w.pids()]
    cpu0 = sum(h.cpu_seconds(pid) for pid in pids)
    sb0 = h.cpu_seconds(sandbox.pid)
    req0 = sandbox.stats()["requests"]
    ids = h.enqueue_singles(args.messages, description=f"{size} worker(s): enqueueing")
    h.wait_drained(
        sandbox,
        args.messages,
        timeout=args.messages / 20 + 60,
        description=f"{size} worker(s) x {args.concurrency} threads",
    )
    cpu = sum(h.cpu_seconds(pid) for pid in pids) - cpu0
    sandbox_cpu = h.cpu_seconds(sandbox.pid) - sb0
    requests = sandbox.stats()["requests"] - req0
    times = sandbox.message_times()
    states = h.timelines(ids).states
    fleet.stop_all()
    return {
        "workers": size,
        "concurrency": args.concurrency,
        "sends": len(times),
        "states": dict(states),
        "sends_per_second": round(h.span_rate(times), 1),
        "worker_cpu_ms_per_send": round(cpu / max(len(times), 1) * 1000, 3),
        "sandbox_cpu_ms_per_request": round(sandbox_cpu / max(requests, 1) * 1000, 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    logs = h.logdir()
    sandbox_cpus, worker_cpus = h.split_cores()
    result: dict[str, Any] = {
        "benchmark": NAME,
        "machine": h.machine(),
        "quick": args.quick,
        "settings": {
            "messages": args.messages,
            "concurrency": args.concurrency,
            "sandbox_latency_ms": args.latency_ms,
            "sandbox_cpus": sandbox_cpus,
            "worker_cpus": worker_cpus,
        },
        "fleets": [],
    }
    sandbox = h.start_sandbox(
        rate="0", latency_ms=args.latency_ms, log=logs / "outbox.sandbox.log", cpus=sandbox_cpus
    )
    fleet = h.Fleet(sandbox, logs)
    try:
        h.install_producer()
        for size in args.fleets:
            with h.stage(f"{size} worker process(es)"):
                result["fleets"].append(one_fleet(sandbox, fleet, size, args, worker_cpus))
    finally:
        fleet.stop_all()
        sandbox.stop()
        h.flush()
    first = result["fleets"][0]
    for row in result["fleets"]:
        row["sends_per_second_vs_one"] = h.ratio(row["sends_per_second"], first["sends_per_second"])
        row["cpu_per_send_vs_one"] = h.ratio(
            row["worker_cpu_ms_per_send"], first["worker_cpu_ms_per_send"]
        )
    return result


def show(result: dict[str, Any]) -> None:
    rows = [
        (
            r["workers"],
            f"{r['sends_per_second']:,.1f}",
            f"{r['sends_per_second_vs_one']:.2f}x",
            f"{r['worker_cpu_ms_per_send']:.3f}",
            f"{r['cpu_per_send_vs_one']:.2f}x",
            f"{r['sandbox_cpu_ms_per_request']:.3f}",
            ", ".join(f"{k} {v}" for k, v in sorted(r["states"].items())),
        )
        for r in result["fleets"]
    ]
    s = result["settings"]
    pinned = (
        f"sandbox on CPU {s['sandbox_cpus']}, workers on {s['worker_cpus']}"
        if s["sandbox_cpus"]
        else "no pinning"
    )
    title = f"scale ({s['messages']} sends each, {s['concurrency']} threads a worker; {pinned})"
    columns = [
        "workers", "sends/s", "vs 1", "worker CPU ms/send", "vs 1", "sandbox CPU ms/request",
        "states",
    ]  # fmt: skip
    h.console.print(h.table(title, columns, rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--fleets", default="1,2,4", help="worker processes, comma-separated")
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.fleets, args.messages, args.concurrency = "1,2", 100, 10
    args.fleets = [int(x) for x in str(args.fleets).split(",") if x.strip()]
    result = run(args)
    show(result)
    h.write_result(NAME, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
