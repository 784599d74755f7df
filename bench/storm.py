"""Storm: what a fleet does when the provider answers everything with 429 for a while.

A fleet (two worker processes, threads pool) is delivering a backlog at a steady,
limiter-paced rate when the sandbox starts answering every request with 429 and a
``Retry-After`` for ``--storm`` seconds (``storm_seconds``). Compared in one run:

* **shared cool-down** (shipped): the first 429 writes "nobody sends before T" into
  Redis and every worker's claim script honours it;
* **per-task Retry-After only** (baseline): ``OUTBOX_SHARED_COOLDOWN=0`` and a tiny
  ``OUTBOX_COOLDOWN_SECONDS``; each task that meets a 429 waits out its own
  ``Retry-After`` while the others keep trying.

Reported: requests the fleet sent during the storm (every one a 429), the time from the
storm's end to the first accepted send and back to full rate (the first sliding 1 s with
at least 90 % of the limiter's rate), attempts spent per message and final states.

    python -m bench.storm [--rate 100] [--storm 5] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench import harness as h

NAME = "storm"


def recovery(times: list[float], storm_end: float, rate: float) -> tuple[float, float]:
    """Seconds from ``storm_end`` to the first accepted send, and to full rate again."""
    after = sorted(t for t in times if t >= storm_end)
    if not after:
        return float("nan"), float("nan")
    first = after[0] - storm_end
    need = max(1, int(rate * 0.9))
    for i in range(len(after) - need + 1):
        if after[i + need - 1] - after[i] <= 1.0:
            return first, after[i] - storm_end
    return first, float("nan")


def one_run(
    sandbox: h.Sandbox,
    fleet: h.Fleet,
    *,
    shared: bool,
    rate: float,
    storm: float,
    before: float,
    after: float,
    workers: int,
    concurrency: int,
) -> dict[str, Any]:
    env = {"OUTBOX_RATE_LIMIT": f"{rate:g}/s", "OUTBOX_MAX_ATTEMPTS": "50"}
    if not shared:
        env |= {"OUTBOX_SHARED_COOLDOWN": "0", "OUTBOX_COOLDOWN_SECONDS": "0.001"}
    n = round(rate * (before + storm + after))
    h.flush()
    sandbox.reset()
    fleet.start(workers, concurrency=concurrency, env=env)
    label = "shared cool-down" if shared else "per-task Retry-After"
    ids = h.enqueue_singles(n, description=f"{label}: enqueueing {n}")
    # Let the fleet reach its pace, then start the storm.
    h.wait_until(
        lambda: sandbox.stats()["accepted"] >= rate * before,
        timeout=before * 10 + 30,
        what="the fleet to reach its pace",
    )
    pre = sandbox.stats()
    storm_start = time.time()
    sandbox.configure(storm_seconds=storm, rate_headers=True)
    storm_end = storm_start + storm
    with h.progress() as bar:
        task = bar.add_task(f"{label}: storm", total=round(storm * 10))
        while time.time() < storm_end:
            bar.update(task, completed=round((time.time() - storm_start) * 10))
            time.sleep(0.1)
        bar.update(task, completed=round(storm * 10))
    during = sandbox.stats()
    h.wait_drained(sandbox, n, timeout=(n / rate) * 4 + 60, description=f"{label}: draining")
    final = sandbox.stats()
    times = sandbox.message_times()
    fleet.stop_all()
    lines = h.timelines(ids)
    first, full = recovery(times, storm_end, rate)
    # When the failed attempts happened, per second of the storm (Redis clock, same host).
    buckets = [0] * (int(storm) + 2)
    for t in lines.retries:
        buckets[min(max(int(t - storm_start), 0), len(buckets) - 1)] += 1
    return {
        "cool_down": "shared" if shared else "per-task",
        "env": env,
        "messages": n,
        "states": dict(lines.states),
        "storm_seconds": storm,
        "requests_during_storm": during["requests"] - pre["requests"],
        "rate_limited_429_total": final["rate_limited"],
        #: Failed attempts recorded in each second from the storm's start (last: later).
        "failed_attempts_by_storm_second": buckets,
        "accepted_during_storm": during["accepted"] - pre["accepted"],
        "seconds_to_first_send_after_storm": round(first, 3),
        "seconds_to_full_rate_after_storm": round(full, 3),
        "attempts_per_message": round(lines.attempts / max(n, 1), 3),
        "rate_before_storm": round(h.span_rate([t for t in times if t < storm_start]), 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    logs = h.logdir()
    result: dict[str, Any] = {
        "benchmark": NAME,
        "machine": h.machine(),
        "quick": args.quick,
        "settings": {
            "rate_limit": args.rate,
            "storm_seconds": args.storm,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "sandbox_latency_ms": args.latency_ms,
        },
    }
    sandbox = h.start_sandbox(rate="0", latency_ms=args.latency_ms, log=logs / "outbox.sandbox.log")
    try:
        h.install_producer()
        fleet = h.Fleet(sandbox, logs)
        common = {
            "rate": args.rate,
            "storm": args.storm,
            "before": args.before,
            "after": args.after,
            "workers": args.workers,
            "concurrency": args.concurrency,
        }
        with h.stage("shared cool-down"):
            result["shared"] = one_run(sandbox, fleet, shared=True, **common)
        with h.stage("baseline: per-task Retry-After only"):
            result["per_task"] = one_run(sandbox, fleet, shared=False, **common)
    finally:
        sandbox.stop()
        h.flush()
    result["ratios"] = {
        "storm_requests_per_task_vs_shared": h.ratio(
            result["per_task"]["requests_during_storm"],
            result["shared"]["requests_during_storm"],
        )
    }
    return result


def show(result: dict[str, Any]) -> None:
    s = result["settings"]
    rows = []
    for key, label in (("shared", "shared cool-down"), ("per_task", "per-task Retry-After")):
        r = result[key]
        rows.append(
            (
                label,
                r["requests_during_storm"],
                " ".join(str(x) for x in r["failed_attempts_by_storm_second"]),
                r["rate_limited_429_total"],
                r["seconds_to_first_send_after_storm"],
                r["seconds_to_full_rate_after_storm"],
                r["attempts_per_message"],
                ", ".join(f"{k} {v}" for k, v in sorted(r["states"].items())),
            )
        )
    title = (
        f"storm: every request 429 for {s['storm_seconds']:g} s, fleet paced at "
        f"{s['rate_limit']:g}/s ({s['workers']} workers x {s['concurrency']} threads)"
    )
    columns = [
        "run", "requests during storm", "429s per storm second", "429s in all",
        "s to first send after", "s to full rate after", "attempts/message", "states",
    ]  # fmt: skip
    h.console.print(h.table(title, columns, rows))
    h.console.print(
        f"per-task baseline sent {result['ratios']['storm_requests_per_task_vs_shared']:.1f}x "
        "the shared cool-down's requests into the storm"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0, help="OUTBOX_RATE_LIMIT per second")
    parser.add_argument("--storm", type=float, default=5.0, help="seconds of 429s")
    parser.add_argument("--before", type=float, default=2.0, help="seconds of sends before it")
    parser.add_argument("--after", type=float, default=4.0, help="seconds of backlog after it")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.rate, args.storm, args.before, args.after, args.concurrency = 50, 1.0, 0.5, 0.5, 10
    result = run(args)
    show(result)
    h.write_result(NAME, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
