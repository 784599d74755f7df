"""Rate limit: how close a fleet gets to the account's limit, and that it never crosses it.

The sandbox answers as the real service does (``docs/smtp2go-fidelity.md``): over its
limit R, the client's IP is timed out for 60 s, every request answered 429 with no
``Retry-After``; answers take 50 ms. Three worker processes (threads pool, 50 each)
drain a backlog of single-recipient emails. Runs, each in the same process so their
ratios compare:

* **outbox, exactly R** (``OUTBOX_RATE_LIMIT`` = R): at R = 50/s and 200/s with 60 s of
  backlog, once more at 200/s with 100 ms of random delay before each request reaches
  the sandbox (``--latency-jitter-ms``), and ``120/m`` over three minutes;
* **no client limit** (baseline): only the 429s and the fleet's cool-down they trigger
  hold it back;
* **Celery's rate_limit** (baseline): no outbox limit, Celery's own per-task limit of R/3
  on each of the three workers (``app.control.rate_limit``).

The baselines cannot drain their backlog in reasonable time (each 429 costs the fleet a
minute), so they are measured over a fixed time instead and their backlog discarded.

Reported per run: the rate achieved over whole periods of the limit from the first
accepted send, as a share of R; the most sends the sandbox accepted in any window of
the limit's period (the limit is "at most N in any P"); 429s; and the cost per delivered
send inside the workers, broker included: script calls (``evalsha``) and Redis round
trips, counted by ``bench/instrument`` in the worker processes.

    python -m bench.rate_limit [--runs NAMES] [--seconds 60] [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench import harness as h

NAME = "rate_limit"
UNLIMITED = "100000/s"
#: What the issue asks of every outbox row, and of the per-minute one.
TARGET_SHARE = 0.90
TARGET_SHARE_MINUTE = 0.97


@dataclass(frozen=True)
class Run:
    name: str
    #: The sandbox's limit: N requests in any ``period`` seconds.
    count: int
    period: float
    #: What the fleet is told (``None``: Celery's rate_limit, no outbox limit).
    outbox_limit: str | None
    jitter_ms: float = 0.0
    #: Measure over this long instead of draining the backlog (the baselines).
    time_box: float | None = None
    #: Seconds of backlog, and how many of them to measure (``None``: all).
    backlog: float = 60.0
    measure: float | None = None

    @property
    def rate(self) -> float:
        return self.count / self.period

    @property
    def limit_text(self) -> str:
        unit = {1.0: "s", 60.0: "m"}.get(self.period, f"{self.period:g}s")
        return f"{self.count}/{unit}"

    @property
    def is_outbox(self) -> bool:
        return self.outbox_limit is not None and self.outbox_limit != UNLIMITED


def runs(seconds: float) -> list[Run]:
    return [
        Run("R=50/s", 50, 1.0, "50/s", backlog=seconds),
        Run("R=200/s", 200, 1.0, "200/s", backlog=seconds),
        Run("R=200/s with 100 ms jitter", 200, 1.0, "200/s", jitter_ms=100, backlog=seconds),
        Run("R=120/m over 3 min", 120, 60.0, "120/m", backlog=240.0, measure=180.0),
        Run("R=50/s no client limit", 50, 1.0, UNLIMITED, time_box=75.0),
        Run("R=200/s no client limit", 200, 1.0, UNLIMITED, time_box=75.0),
        Run("R=50/s Celery rate_limit", 50, 1.0, None, time_box=60.0),
        Run("R=200/s Celery rate_limit", 200, 1.0, None, time_box=60.0),
    ]


def achieved(times: list[float], run: Run, seconds: float | None) -> tuple[float, int]:
    """Sends per second over whole periods of the limit from the first arrival (over
    ``seconds`` when given), and how many arrived in them."""
    if len(times) < 2:
        return 0.0, len(times)
    first = times[0]
    if seconds is None:
        periods = math.floor((times[-1] - first) / run.period) or 1
        seconds = periods * run.period
    count = sum(1 for t in times if t < first + seconds)
    return count / seconds, count


def one_run(
    sandbox: h.Sandbox, fleet: h.Fleet, run: Run, args: argparse.Namespace
) -> dict[str, Any]:
    env = {"OUTBOX_RATE_LIMIT": run.outbox_limit or UNLIMITED}
    fleet.stop_all()
    h.flush()
    fleet.start(args.workers, concurrency=args.concurrency, env=env, count_redis=True)
    sandbox.reset()
    sandbox.configure(
        rate=run.limit_text,
        penalty=args.penalty,
        rate_headers=False,
        latency_ms=args.latency_ms,
        latency_jitter_ms=run.jitter_ms,
    )
    if run.outbox_limit is None:
        from outbox.worker.celery_app import app

        per_worker = f"{run.rate / args.workers:g}/s"
        replies = app.control.rate_limit(
            "outbox.send_email", per_worker, destination=fleet.hostnames(), reply=True, timeout=5
        )
        if len(replies) != args.workers:
            raise RuntimeError(f"rate_limit reached {len(replies)} of {args.workers} workers")
    n = max(2, round(run.rate * run.backlog))
    trips0, commands0 = fleet.redis_counts()
    ids = h.enqueue_singles(n, description=f"{run.name}: enqueueing {n}")
    box = run.time_box or (run.measure + 5 if run.measure else None)
    if box is None:
        h.wait_drained(sandbox, n, timeout=run.backlog * 3 + 60, description=f"{run.name}")
    else:
        h.wait_for(sandbox, n, seconds=box, description=f"{run.name} ({box:g} s)")
    stats = sandbox.stats()
    times = sorted(sandbox.message_times())
    time.sleep(0.6)  # the workers' counters are written every half second
    trips1, commands1 = fleet.redis_counts()
    states = h.timelines(ids).states
    fleet.stop_all()
    h.flush()
    rate, counted = achieved(times, run, run.measure or run.time_box)
    sent = len(times)
    commands = commands1 - commands0
    return {
        "run": run.name,
        "limit": run.limit_text,
        "rate": run.rate,
        "period": run.period,
        "outbox_rate_limit": env["OUTBOX_RATE_LIMIT"] if run.outbox_limit else "celery rate_limit",
        "outbox": run.is_outbox,
        "jitter_ms": run.jitter_ms,
        "messages": n,
        "sent": sent,
        "time_boxed": box is not None,
        "states": dict(states),
        "achieved_per_second": round(rate, 3),
        "achieved_vs_R": round(rate / run.rate, 3),
        "counted": counted,
        "worst_window": h.max_in_window(times, run.period),
        "rate_limited_429": stats["rate_limited"],
        "timeouts": stats["timeouts"],
        "worker_evalsha_per_send": round(commands.get("evalsha", 0) / max(sent, 1), 2),
        "worker_round_trips_per_send": round((trips1 - trips0) / max(sent, 1), 2),
        "worker_commands_per_send": {
            k: round(v / max(sent, 1), 2) for k, v in commands.most_common() if v
        },
    }


def verdicts(result: dict[str, Any]) -> list[str]:
    """What the targets say about the outbox rows."""
    lines = []
    for r in result["runs"]:
        if not r["outbox"]:
            continue
        share = TARGET_SHARE_MINUTE if r["period"] >= 60 else TARGET_SHARE
        ok = (
            r["rate_limited_429"] == 0
            and r["achieved_vs_R"] >= share
            and r["worst_window"] <= r["rate"] * r["period"]
        )
        lines.append(
            f"{r['run']}: {'met' if ok else 'NOT met'} (0 429s, >= {share:.2f} of R, "
            f"worst window <= N: {r['rate_limited_429']} 429s, {r['achieved_vs_R']:.3f} of R, "
            f"worst {r['worst_window']})"
        )
    return lines


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    logs = h.logdir()
    chosen = [r for r in runs(args.seconds) if not args.runs or r.name in args.runs]
    if args.quick:
        chosen = [
            Run("R=100/s", 100, 1.0, "100/s", backlog=2.0),
            Run("R=100/s no client limit", 100, 1.0, UNLIMITED, time_box=4.0),
        ]
    result: dict[str, Any] = {
        "benchmark": NAME,
        "machine": h.machine(),
        "quick": args.quick,
        "settings": {
            "workers": args.workers,
            "concurrency": args.concurrency,
            "sandbox_latency_ms": args.latency_ms,
            "penalty_s": args.penalty,
        },
        "runs": [],
    }
    sandbox = h.start_sandbox(rate="0", latency_ms=args.latency_ms, log=logs / "outbox.sandbox.log")
    fleet = h.Fleet(sandbox, logs)
    try:
        h.install_producer()
        for run in chosen:
            with h.stage(run.name):
                result["runs"].append(one_run(sandbox, fleet, run, args))
    finally:
        fleet.stop_all()
        sandbox.stop()
        h.flush()
    result["verdicts"] = verdicts(result)
    return result


def show(result: dict[str, Any]) -> None:
    rows = []
    for r in result["runs"]:
        states = ", ".join(f"{k} {v}" for k, v in sorted(r["states"].items()))
        unit = "1 min" if r["period"] >= 60 else "1 s"
        rows.append(
            (
                r["run"],
                r["outbox_rate_limit"],
                f"{r['achieved_per_second']:.2f}",
                f"{r['achieved_vs_R']:.3f}",
                f"{r['worst_window']} in {unit} (N={round(r['rate'] * r['period'])})",
                r["rate_limited_429"],
                r["worker_evalsha_per_send"],
                r["worker_round_trips_per_send"],
                states,
            )
        )
    columns = [
        "run", "OUTBOX_RATE_LIMIT", "sends/s", "/ R", "worst window", "429s",
        "evalsha/send", "round trips/send", "states",
    ]  # fmt: skip
    s = result["settings"]
    title = (
        f"rate limit ({s['workers']} workers x {s['concurrency']} threads, sandbox latency "
        f"{s['sandbox_latency_ms']:g} ms, a 429 times the client out for {s['penalty_s']:g} s)"
    )
    h.console.print(h.table(title, columns, rows))
    for line in result["verdicts"]:
        h.console.print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rate_limit", description=__doc__)
    parser.add_argument("--runs", default="", help="run names, comma-separated (default: all)")
    parser.add_argument("--seconds", type=float, default=60.0, help="backlog, in seconds at R")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--penalty", type=float, default=60.0, help="the sandbox's timeout")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.concurrency, args.penalty = 2, 10, 1.0
    args.runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    result = run_all(args)
    show(result)
    h.write_result(NAME, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
