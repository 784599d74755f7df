"""Throughput: how many single-recipient emails a small fleet delivers per second.

The sandbox answers every send after 50 ms with no rate limit, and the shared limiter is
set out of the way (``OUTBOX_RATE_LIMIT`` very high), so what is measured is the queue
itself: broker, records, worker threads, HTTP client. Three figures from one run:

* **sequential** (baseline): one ``httpx.Client`` posting the same sends one after
  another, the rate a naive loop in a web request would reach;
* **prefork** (baseline): the same Celery setup with ``--pool prefork`` at its default
  concurrency (one process per core);
* **threads**: the shipped setup, ``--pool threads`` with 50 threads per process.

Each Celery run drains a backlog enqueued before its workers start; its rate is taken
from the sandbox's own acceptance times (first to last), so worker start-up is not
counted. Latency is from a chunk's ``created_at`` to its ``sent`` history entry: in the
backlog run it includes the wait in the queue, so a second, paced phase enqueues at a
steady rate below capacity and reports the latency a single message sees. What outbox
adds is that latency less the sandbox's own, as the sequential loop measured it in the
same run at the same percentile (the sandbox's server and a client's request cost a few
milliseconds above its configured 50 ms, more on a busy machine).

    python -m bench.throughput [--messages 5000] [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from bench import harness as h

NAME = "throughput"
#: The targets (issue "Half the CPU per send"): same-run ratios, and the latency of one
#: message above the sandbox's own when the fleet is not saturated.
TARGET_VS_SEQUENTIAL = 20.0
TARGET_VS_PREFORK = 8.0
TARGET_P50_ABOVE_MS = 5.0
TARGET_P99_ABOVE_MS = 25.0
TARGET_ROUND_TRIPS = 4.0


def sequential_loop(sandbox: h.Sandbox, n: int) -> dict[str, Any]:
    """The plain baseline: ``n`` sends, one after another, over one keep-alive client."""
    import httpx

    headers = {"X-Smtp2go-Api-Key": h.API_KEY, "Content-Type": "application/json"}
    latencies: list[float] = []
    with httpx.Client(base_url=sandbox.base_url + "/", headers=headers, timeout=10) as client:
        client.post("email/send", content=json.dumps(h.email_payload(-1)))
        started = time.perf_counter()
        with h.progress() as bar:
            task = bar.add_task("sequential httpx loop", total=n)
            for i in range(n):
                body = {
                    **h.email_payload(i),
                    "custom_headers": [{"header": "X-Outbox-Id", "value": f"seq.{i}"}],
                }
                begin = time.perf_counter()
                response = client.post("email/send", content=json.dumps(body))
                response.raise_for_status()
                latencies.append(time.perf_counter() - begin)
                bar.advance(task)
        seconds = time.perf_counter() - started
    return {
        "sends": n,
        "seconds": round(seconds, 3),
        "sends_per_second": round(n / seconds, 1),
        "p50_ms": round(h.percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(h.percentile(latencies, 0.99) * 1000, 1),
    }


def celery_drain(
    sandbox: h.Sandbox,
    fleet: h.Fleet,
    n: int,
    *,
    workers: int,
    pool: str,
    concurrency: int,
    paced: int = 0,
    paced_rate: float = 100.0,
) -> dict[str, Any]:
    """Enqueue ``n`` sends, start the workers, time the drain; then an optional paced phase."""
    h.flush()
    sandbox.reset()
    ids = h.enqueue_singles(n, description=f"enqueueing {n} ({pool})")
    before = h.commandstats()
    # Counted from each worker's start (its warm-up's few round trips included): the
    # backlog is waiting, so a worker is sending before it could be asked anything.
    started = fleet.start(workers, pool=pool, concurrency=concurrency, count_redis=True, wait=False)
    cpu_before = {w.pid: 0.0 for w in started}
    drain = h.wait_drained(
        sandbox, n, timeout=max(60.0, n / 5), description=f"{pool} pool, {workers}x{concurrency}"
    )
    after = h.commandstats()
    time.sleep(0.6)  # the workers' counters are written every half second
    trips1, commands1 = fleet.redis_counts()
    cpu = sum(h.cpu_seconds(pid) for w in started for pid in w.pids()) - sum(cpu_before.values())
    times = sandbox.message_times()
    latencies, states = h.sent_latencies(ids)
    delta = h.stats_delta(before, after)
    result: dict[str, Any] = {
        "pool": pool,
        "workers": workers,
        "concurrency": concurrency,
        "sends": len(times),
        "states": dict(states),
        "seconds": round(max(times) - min(times), 3) if times else 0.0,
        "drain_seconds_incl_startup": round(drain, 3),
        "sends_per_second": round(h.span_rate(times), 1),
        "backlog_p50_ms": round(h.percentile(latencies, 0.5) * 1000, 1),
        "backlog_p99_ms": round(h.percentile(latencies, 0.99) * 1000, 1),
        "worker_cpu_ms_per_send_incl_startup": round(cpu / max(n, 1) * 1000, 3),
        "evalsha_per_send": round((delta.get("evalsha", 0) + delta.get("eval", 0)) / n, 2),
        "worker_round_trips_per_send": round(trips1 / max(n, 1), 2),
        "worker_commands_per_send": {
            k: round(v / max(n, 1), 2) for k, v in commands1.most_common() if v
        },
        "redis_commands_per_send": round(sum(delta.values()) / n, 1),
    }
    if paced:
        index = len(sandbox.messages())
        ids = []
        with h.progress() as bar:
            task = bar.add_task(f"paced phase at {paced_rate:g}/s", total=paced)
            t0 = time.perf_counter()
            for i in range(paced):
                pause = t0 + i / paced_rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                ids.append(h.send_single(100_000 + i))
                bar.advance(task)
        h.wait_drained(sandbox, n + paced, timeout=60, description="paced phase draining")
        latencies, states = h.sent_latencies(ids)
        result["paced"] = {
            "sends": paced,
            "rate": paced_rate,
            "states": dict(states),
            "p50_ms": round(h.percentile(latencies, 0.5) * 1000, 1),
            "p99_ms": round(h.percentile(latencies, 0.99) * 1000, 1),
            "accepted_after_index": len(sandbox.messages()) - index,
        }
    fleet.stop_all()
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    logs = h.logdir()
    result: dict[str, Any] = {"benchmark": NAME, "machine": h.machine(), "quick": args.quick}
    sandbox = h.start_sandbox(rate="0", latency_ms=args.latency_ms, log=logs / "outbox.sandbox.log")
    try:
        h.install_producer()
        fleet = h.Fleet(sandbox, logs)
        with h.stage(f"sequential baseline: {args.sequential} sends"):
            sandbox.reset()
            result["sequential"] = sequential_loop(sandbox, args.sequential)
        with h.stage(f"threads pool: {args.messages} sends, {args.workers}x{args.concurrency}"):
            result["threads"] = celery_drain(
                sandbox,
                fleet,
                args.messages,
                workers=args.workers,
                pool="threads",
                concurrency=args.concurrency,
                paced=args.paced,
                paced_rate=args.paced_rate,
            )
        prefork_c = os.cpu_count() or 1
        label = f"prefork baseline: {args.prefork_messages} sends, {args.workers}x{prefork_c}"
        with h.stage(label):
            result["prefork"] = celery_drain(
                sandbox,
                fleet,
                args.prefork_messages,
                workers=args.workers,
                pool="prefork",
                concurrency=prefork_c,
            )
    finally:
        sandbox.stop()
        h.flush()
    seq = result["sequential"]["sends_per_second"]
    threads = result["threads"]["sends_per_second"]
    result["ratios"] = {
        "threads_vs_sequential": h.ratio(threads, seq),
        "prefork_vs_sequential": h.ratio(result["prefork"]["sends_per_second"], seq),
        "threads_vs_prefork": h.ratio(threads, result["prefork"]["sends_per_second"]),
    }
    paced = result["threads"].get("paced")
    sandbox_ms = (result["sequential"]["p50_ms"], result["sequential"]["p99_ms"])
    above = (
        (round(paced["p50_ms"] - sandbox_ms[0], 1), round(paced["p99_ms"] - sandbox_ms[1], 1))
        if paced
        else None
    )
    trips = result["threads"]["worker_round_trips_per_send"]
    result["targets"] = {
        "threads_vs_sequential": [TARGET_VS_SEQUENTIAL, result["ratios"]["threads_vs_sequential"]],
        "threads_vs_prefork": [TARGET_VS_PREFORK, result["ratios"]["threads_vs_prefork"]],
        "p50_ms_above_sandbox": [TARGET_P50_ABOVE_MS, above[0] if above else None],
        "p99_ms_above_sandbox": [TARGET_P99_ABOVE_MS, above[1] if above else None],
        "worker_round_trips_per_send": [TARGET_ROUND_TRIPS, trips],
    }
    result["met"] = {
        "threads_vs_sequential": result["ratios"]["threads_vs_sequential"] >= TARGET_VS_SEQUENTIAL,
        "threads_vs_prefork": result["ratios"]["threads_vs_prefork"] >= TARGET_VS_PREFORK,
        "p50_ms_above_sandbox": bool(above and above[0] <= TARGET_P50_ABOVE_MS),
        "p99_ms_above_sandbox": bool(above and above[1] <= TARGET_P99_ABOVE_MS),
        "worker_round_trips_per_send": trips <= TARGET_ROUND_TRIPS,
    }
    result["settings"] = {
        "latency_ms": args.latency_ms,
        "sandbox_rate": "unlimited",
        "OUTBOX_RATE_LIMIT": h.WORKER_ENV["OUTBOX_RATE_LIMIT"],
    }
    return result


def show(result: dict[str, Any]) -> None:
    seq, thr, pre = result["sequential"], result["threads"], result["prefork"]
    rows = [
        ("sequential httpx loop", seq["sends"], seq["sends_per_second"], "1.00",
         seq["p50_ms"], seq["p99_ms"], "-", "-"),
        (f"prefork {pre['workers']}x{pre['concurrency']}", pre["sends"],
         pre["sends_per_second"], f"{result['ratios']['prefork_vs_sequential']:.2f}",
         pre["backlog_p50_ms"], pre["backlog_p99_ms"], pre["evalsha_per_send"],
         pre["redis_commands_per_send"]),
        (f"threads {thr['workers']}x{thr['concurrency']}", thr["sends"],
         thr["sends_per_second"], f"{result['ratios']['threads_vs_sequential']:.2f}",
         thr["backlog_p50_ms"], thr["backlog_p99_ms"], thr["evalsha_per_send"],
         thr["redis_commands_per_send"]),
    ]  # fmt: skip
    h.console.print(
        h.table(
            f"throughput (sandbox latency {result['settings']['latency_ms']:g} ms, no rate limit)",
            ["run", "sends", "sends/s", "x sequential", "p50 ms", "p99 ms", "evalsha/send",
             "redis cmds/send"],
            rows,
        )
    )  # fmt: skip
    h.console.print(
        "[dim]p50/p99: enqueue → sent for the Celery runs (backlog: includes queue wait); "
        "request latency for the loop. Redis counts are server-wide (scripts' inner "
        "commands included).[/dim]"
    )
    if "paced" in thr:
        paced = thr["paced"]
        h.console.print(
            f"paced {paced['sends']} sends at {paced['rate']:g}/s: enqueue → sent "
            f"p50 {paced['p50_ms']} ms, p99 {paced['p99_ms']} ms"
        )
    for name, (target, value) in result["targets"].items():
        met = result["met"][name]
        shown = "-" if value is None else f"{value:.2f}"
        bound = "≤" if name.startswith(("p", "worker")) else "≥"
        h.console.print(
            f"{name}: {shown} (target {bound} {target:g}): {'met' if met else 'NOT met'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--prefork-messages", type=int, default=500)
    parser.add_argument("--paced", type=int, default=300, help="sends in the paced phase")
    parser.add_argument("--paced-rate", type=float, default=100.0)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.sequential, args.prefork_messages = 200, 20, 40
        args.paced, args.concurrency = 20, 20
    result = run(args)
    show(result)
    h.write_result(NAME, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
