"""Rate limit: how closely a fleet keeps to the provider's limit, and what it costs.

The sandbox enforces R requests per second (a sliding-window log: never more than R in
any second, 429 with ``Retry-After`` beyond). Three worker processes (threads pool)
drain a backlog of about ``--seconds`` seconds' worth of single-recipient emails under
each of four set-ups, for each R:

* **limiter 0.95R**: ``OUTBOX_RATE_LIMIT`` at 95 % of R, the recommended setting;
* **limiter R**: ``OUTBOX_RATE_LIMIT`` exactly R;
* **no client limit** (baseline): ``OUTBOX_RATE_LIMIT`` very high; only the 429s and
  the shared cool-down they trigger hold the fleet back;
* **celery rate_limit** (baseline): no outbox limit, Celery's own per-task limit of R/3
  per worker set on the running workers with ``app.control.rate_limit``.

Reported per run: achieved rate / R and / the configured limit (from the sandbox's
acceptance times, first to last), the most sends the sandbox accepted in any sliding
1 s window, 429s, final states, and Redis cost per send: script calls (``evalsha``) and
round trips counted inside the worker processes, and ``INFO commandstats`` deltas of the
whole server (which also count the producer, the scripts' inner commands, and anyone
else using the server).

    python -m bench.rate_limit [--rates 50,200] [--seconds 30] [--workers 3] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench import harness as h

NAME = "rate_limit"
UNLIMITED = "100000/s"


def one_run(
    sandbox: h.Sandbox,
    fleet: h.Fleet,
    *,
    rate: int,
    variant: str,
    seconds: float,
    workers: int,
    concurrency: int,
    margin: float = 0.0,
) -> dict[str, Any]:
    limit: float | None
    env: dict[str, str] = {}
    if variant == "limiter_0.95R":
        limit = round(rate * 0.95, 3)
        env["OUTBOX_RATE_LIMIT"] = f"{limit:g}/s"
    elif variant == "limiter_R":
        limit = float(rate)
        env["OUTBOX_RATE_LIMIT"] = f"{rate}/s"
    else:
        limit = float(rate) if variant == "celery_rate_limit" else None
        env["OUTBOX_RATE_LIMIT"] = UNLIMITED
    n = max(1, round(rate * seconds))

    if fleet.workers and fleet.started_env == env:
        # Same settings as the run before (the two unlimited baselines): keep the fleet,
        # empty only the records (the broker's queue is empty and its bindings stay).
        h.redis_client(h.RECORDS_URL).flushdb()
    else:
        fleet.stop_all()
        h.flush()
        fleet.start(workers, concurrency=concurrency, env=env, count_redis=True)
        fleet.started_env = dict(env)
    sandbox.reset()
    # Refuse only the requests over R, with hints, as before the sandbox timed clients out.
    sandbox.configure(rate=f"{rate}/s", penalty=0, rate_headers=True)
    if variant == "celery_rate_limit":
        from outbox.worker.app import app

        per_worker = f"{rate / workers:g}/s"
        replies = app.control.rate_limit(
            "outbox.send_email", per_worker, destination=fleet.hostnames(), reply=True, timeout=5
        )
        if len(replies) != workers:
            raise RuntimeError(f"rate_limit reached {len(replies)} of {workers} workers")
    trips0, commands0 = fleet.redis_counts()
    before = h.commandstats()
    label = f"R={rate}/s {variant}"
    ids = h.enqueue_singles(n, description=f"{label}: enqueueing {n}")
    # Celery's own limit can run far below R: measure it over a bounded time instead of
    # waiting for the whole backlog (the rate is what matters, not the last message).
    box = seconds * 2 + 5 if variant == "celery_rate_limit" else seconds * 6 + 60
    try:
        h.wait_drained(sandbox, n, timeout=box, description=f"{label}: delivering")
        time_boxed = False
    except TimeoutError:
        if variant != "celery_rate_limit":
            raise
        time_boxed = True
    after = h.commandstats()
    stats = sandbox.stats()
    times = sandbox.message_times()
    time.sleep(0.6)  # the workers' counters are written every half second
    trips1, commands1 = fleet.redis_counts()
    lines = h.timelines(ids)
    if variant == "celery_rate_limit" or time_boxed:
        fleet.stop_all()  # Celery's limit stays on these workers
        h.flush()  # and a time-boxed run leaves its backlog behind
    states = lines.states
    first = min(times) if times else 0.0

    delta = h.stats_delta(before, after)
    worker_commands = commands1 - commands0
    achieved = h.span_rate(times)
    sent = len(times)
    return {
        "rate": rate,
        "variant": variant,
        "configured_limit": limit,
        "outbox_rate_limit": env["OUTBOX_RATE_LIMIT"],
        "messages": n,
        "sent": sent,
        #: Stopped after a fixed time with messages still queued (Celery's limit only).
        "time_boxed": time_boxed,
        "states": dict(states),
        "seconds": round(max(times) - min(times), 3) if times else 0.0,
        "achieved_per_second": round(achieved, 2),
        "achieved_vs_R": round(achieved / rate, 3),
        "achieved_vs_limit": round(achieved / limit, 3) if limit else None,
        #: The limiter's own pace: OUTBOX_RATE_LIMIT spaced by OUTBOX_RATE_MARGIN.
        "effective_limit": round(limit / (1 + margin), 2)
        if limit and variant.startswith("limiter")
        else None,
        "max_in_1s_window": h.max_in_window(times, 1.0),
        "requests": stats["requests"],
        "rate_limited_429": stats["rate_limited"],
        "attempts_per_send": round(lines.attempts / max(n, 1), 3),
        #: When failed attempts (429s) happened, seconds after the first accepted send.
        "retries_at_s": [round(t - first, 2) for t in sorted(lines.retries)][:50],
        "worker_evalsha_per_send": round(worker_commands.get("evalsha", 0) / max(sent, 1), 2),
        "worker_round_trips_per_send": round((trips1 - trips0) / max(sent, 1), 2),
        "worker_commands_per_send": {
            k: round(v / max(sent, 1), 2) for k, v in worker_commands.most_common() if v
        },
        "server_evalsha_per_send": round(
            (delta.get("evalsha", 0) + delta.get("eval", 0)) / max(sent, 1), 2
        ),
        "server_commands_per_send": round(sum(delta.values()) / max(sent, 1), 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    logs = h.logdir()
    result: dict[str, Any] = {
        "benchmark": NAME,
        "machine": h.machine(),
        "quick": args.quick,
        "settings": {
            "workers": args.workers,
            "concurrency": args.concurrency,
            "seconds_of_backlog": args.seconds,
            "sandbox_latency_ms": args.latency_ms,
        },
        "runs": [],
    }
    from outbox.worker.settings import Settings

    # Spacing the limiter adds on top of OUTBOX_RATE_LIMIT, if this version has one.
    margin = float(getattr(Settings(), "rate_margin", 0.0))
    result["settings"]["OUTBOX_RATE_MARGIN"] = margin
    sandbox = h.start_sandbox(rate="0", latency_ms=args.latency_ms, log=logs / "outbox.sandbox.log")
    fleet = h.Fleet(sandbox, logs)
    try:
        h.install_producer()
        for rate in args.rates:
            for variant in args.variants:
                with h.stage(f"R={rate}/s, {variant}"):
                    result["runs"].append(
                        one_run(
                            sandbox,
                            fleet,
                            rate=rate,
                            variant=variant,
                            seconds=args.seconds,
                            workers=args.workers,
                            concurrency=args.concurrency,
                            margin=margin,
                        )
                    )
    finally:
        fleet.stop_all()
        sandbox.stop()
        h.flush()
    return result


def show(result: dict[str, Any]) -> None:
    rows = []
    for r in result["runs"]:
        vs_limit = f"{r['achieved_vs_limit']:.3f}" if r["achieved_vs_limit"] else "-"
        states = ", ".join(f"{k} {v}" for k, v in sorted(r["states"].items()))
        rows.append(
            (
                f"R={r['rate']}/s {r['variant']}",
                f"{r['achieved_per_second']:.1f}",
                f"{r['achieved_vs_R']:.3f}",
                vs_limit,
                f"{r['max_in_1s_window']} (R+1={r['rate'] + 1})",
                r["rate_limited_429"],
                r["worker_evalsha_per_send"],
                r["worker_round_trips_per_send"],
                r["server_evalsha_per_send"],
                r["server_commands_per_send"],
                states,
            )
        )
    columns = [
        "run", "sends/s", "/ R", "/ limit", "max in 1 s", "429s", "evalsha/send (workers)",
        "round trips/send (workers)", "evalsha/send (server)", "cmds/send (server)", "states",
    ]  # fmt: skip
    s = result["settings"]
    title = (
        f"rate limit ({s['workers']} workers x {s['concurrency']} threads, "
        f"~{s['seconds_of_backlog']:g} s of backlog, "
        f"sandbox latency {s['sandbox_latency_ms']:g} ms)"
    )
    h.console.print(h.table(title, columns, rows))
    h.console.print(
        "[dim]server counts include the producer's create script (1 evalsha per send), the "
        "scripts' inner commands and other clients of the server.[/dim]"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rate_limit", description=__doc__)
    parser.add_argument("--rates", default="50,200", help="sandbox limits R, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="backlog, in seconds at R")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--variants",
        default="limiter_0.95R,limiter_R,no_client_limit,celery_rate_limit",
        help="which set-ups to run, comma-separated",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.rates, args.seconds, args.workers, args.concurrency = "100", 0.8, 2, 10
    args.rates = [int(x) for x in str(args.rates).split(",") if x.strip()]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    known = {"limiter_0.95R", "limiter_R", "no_client_limit", "celery_rate_limit"}
    if not set(args.variants) <= known:
        parser.error(f"--variants: choose from {sorted(known)}")
    result = run(args)
    show(result)
    h.write_result(NAME, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
