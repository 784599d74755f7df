"""Lanes and tenants: a password reset does not wait for a newsletter; tenants share.

The sandbox answers as the real service does (over its limit R the client's IP is timed
out for 60 s, every request answered 429 without hints); answers take 50 ms. Three
worker processes (threads pool, 50 each, ``-Q email,bulk``), ``OUTBOX_RATE_LIMIT``
exactly R. Runs, each in this one process so their figures compare:

* **lanes** (``OUTBOX_SHARING=lanes``, the default) and **fifo** (the first-come line of
  0.2, the baseline): one campaign (a ``send_email`` of ``R x seconds`` chunks of 100
  recipients, the bulk lane by its size) saturates R while a single-recipient
  "reset your password" email is sent every 0.5 s; at R = 20/s and 200/s. Reported: each
  reset's time from its ``send_email`` call to its arrival at the sandbox (p50, p99,
  max), the campaign's rate as a share of R while the resets were sent, and all
  arrivals' (the resets take 2/s of R themselves: at R = 20/s that is a tenth), 429s.
* **tenants**: two campaigns of tenants ``a`` and ``b`` sent together, at weights 1:1
  and 3:1 (``OUTBOX_TENANT_WEIGHTS``): each one's share of the arrivals while both wait;
  and tenant ``c`` capped at R/10 (``OUTBOX_TENANT_LIMITS``) beside an uncapped one: the
  most of ``c``'s arrivals in any window of its limit's period.

The plot (``--plot PATH``, default ``docs/img/lanes-wait.png`` on a full run) shows each
reset's wait against the time it was sent, fifo beside lanes, at each R.

    python -m bench.lanes [--seconds 60] [--rates 20,200] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench import harness as h

NAME = "lanes"
SENDER = "News <news@example.com>"
#: A reset every this many seconds while the campaign drains.
EVERY = 0.5
LATENCY_MS = 50.0
WORKERS, THREADS = 3, 50
PLOT = h.ROOT / "docs" / "img" / "lanes-wait.png"


def targets(rate: float) -> dict[str, float]:
    """The issue's targets for a transactional send at R per second (milliseconds)."""
    return {"p50_ms": 2000 / rate + 60, "p99_ms": 5000 / rate + 100, "max_ms": 1000.0}


def _campaign(chunks: int, tag: str, *, tenant: str | None = None) -> str:
    from outbox import send_email

    recipients = [f"{tag}{i}@example.org" for i in range(chunks * 100)]
    handle = send_email(SENDER, recipients, "This week's news", text_body="Hello.", tenant=tenant)
    return handle.id


def _by_prefix(messages: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [m for m in messages if str(m["recipients"][0]).startswith(prefix)]


def _fleet(sandbox: h.Sandbox, rate: int, logs: Path, **env: str) -> h.Fleet:
    logs.mkdir(parents=True, exist_ok=True)
    fleet = h.Fleet(sandbox, logs)
    fleet.start(WORKERS, concurrency=THREADS, env={"OUTBOX_RATE_LIMIT": f"{rate}/s", **env})
    return fleet


def _fresh(sandbox: h.Sandbox, rate: int) -> None:
    h.flush()
    sandbox.reset()
    sandbox.configure(rate=f"{rate}/s", latency_ms=LATENCY_MS, cycle_max=10**9)


def lane_run(
    sandbox: h.Sandbox, rate: int, seconds: float, sharing: str, lookahead: str = "", pace: str = ""
) -> dict[str, Any]:
    """A campaign that saturates R for ``seconds`` and a reset every 0.5 s meanwhile."""
    from outbox import send_email

    _fresh(sandbox, rate)
    env = {"OUTBOX_SHARING": sharing}
    if lookahead:
        env["OUTBOX_BULK_LOOKAHEAD"] = lookahead
    if pace:
        env["OUTBOX_PACE"] = pace
    fleet = _fleet(sandbox, rate, h.logdir() / f"lanes-{sharing}-{rate}", **env)
    try:
        _campaign(int(rate * seconds), "news")
        time.sleep(2.0)  # the campaign holds the limit before the first reset
        calls: list[tuple[str, float]] = []
        begin = time.time()
        with h.progress() as bar:
            task = bar.add_task(f"{sharing} at {rate}/s: resets", total=seconds - 4)
            i = 0
            while time.time() - begin < seconds - 4:
                address = f"reset{i}@example.com"
                calls.append((address, time.time()))
                send_email(SENDER, [address], "Reset your password", text_body="Your link.")
                i += 1
                next_at = begin + i * EVERY
                time.sleep(max(0.0, next_at - time.time()))
                bar.update(task, completed=min(time.time() - begin, seconds - 4))
        end = time.time()
        deadline = time.time() + 30
        arrived: dict[str, float] = {}
        while time.time() < deadline and len(arrived) < len(calls):
            time.sleep(0.5)
            arrived = {
                str(m["recipients"][0]): float(m["time"])
                for m in _by_prefix(sandbox.messages(), "reset")
            }
        messages = sandbox.messages()
        stats = sandbox.stats()
    finally:
        fleet.stop_all()
    waits = [(sent - begin, (arrived[a] - sent) * 1000) for a, sent in calls if a in arrived]
    values = [w for _, w in waits]
    news = [float(m["time"]) for m in _by_prefix(messages, "news") if begin <= m["time"] <= end]
    return {
        "sharing": sharing,
        "lookahead": lookahead or "default",
        "pace": pace or "default",
        "rate": rate,
        "resets": len(calls),
        "arrived": len(values),
        "p50_ms": round(h.percentile(values, 0.50), 1) if values else None,
        "p99_ms": round(h.percentile(values, 0.99), 1) if values else None,
        "max_ms": round(max(values), 1) if values else None,
        "campaign_share_of_r": round(len(news) / ((end - begin) * rate), 3),
        # the campaign and the resets together: the resets take 2/s of R themselves
        "limit_used": round(
            sum(1 for m in messages if begin <= m["time"] <= end) / ((end - begin) * rate), 3
        ),
        "rate_limited": int(stats.get("rate_limited", 0)),
        "max_in_1s": h.max_in_window([float(m["time"]) for m in messages], 1.0),
        "waits": [[round(t, 3), round(w, 1)] for t, w in waits],
    }


def tenant_run(
    sandbox: h.Sandbox, rate: int, seconds: float, weights: str, caps: str = ""
) -> dict[str, Any]:
    """Two tenants' campaigns sent together; each one's share while both wait."""
    _fresh(sandbox, rate)
    env = {"OUTBOX_TENANT_WEIGHTS": weights, "OUTBOX_TENANT_LIMITS": caps}
    fleet = _fleet(sandbox, rate, h.logdir() / f"tenants-{rate}-{weights or caps}", **env)
    names = ("c", "d") if caps else ("a", "b")
    try:
        chunks = int(rate * seconds)
        for name in names:
            _campaign(chunks, f"{name}-", tenant=name)
        with h.progress() as bar:
            task = bar.add_task(f"tenants {weights or caps}", total=seconds)
            begin = time.time()
            while time.time() - begin < seconds:
                time.sleep(0.5)
                bar.update(task, completed=time.time() - begin)
        messages = sandbox.messages()
        stats = sandbox.stats()
    finally:
        fleet.stop_all()
    times = {n: sorted(float(m["time"]) for m in _by_prefix(messages, f"{n}-")) for n in names}
    everything = sorted(t for ts in times.values() for t in ts)
    start = everything[0] + 2.0 if everything else 0.0
    # while both wait: from 2 s after the first arrival until the first campaign ran dry
    # (both are as long as the run, so neither does before it ends)
    stop = min(ts[-1] for ts in times.values()) - 1.0 if all(times.values()) else start
    inside = {n: [t for t in ts if start <= t <= stop] for n, ts in times.items()}
    total = sum(len(v) for v in inside.values()) or 1
    out: dict[str, Any] = {
        "rate": rate,
        "weights": weights,
        "caps": caps,
        "shares": {n: round(len(v) / total, 3) for n, v in inside.items()},
        "window_seconds": round(stop - start, 1),
        "rate_limited": int(stats.get("rate_limited", 0)),
    }
    if caps:
        out["capped_max_in_1s"] = h.max_in_window(times["c"], 1.0)
        out["cap_per_s"] = max(1, rate // 10)
    return out


def _plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = sorted({r["rate"] for r in runs})
    fig, axes = plt.subplots(1, len(rates), figsize=(6 * len(rates), 4), squeeze=False)
    for ax, rate in zip(axes[0], rates, strict=True):
        for run in (r for r in runs if r["rate"] == rate):
            xs = [t for t, _ in run["waits"]]
            ys = [w for _, w in run["waits"]]
            label = "lanes" if run["sharing"] == "lanes" else "first-come line (0.2)"
            ax.plot(xs, ys, marker=".", linewidth=0.8, label=label)
        ax.axhline(targets(rate)["p99_ms"], color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(f"R = {rate}/s: a campaign saturates R")
        ax.set_xlabel("seconds into the campaign's drain")
        ax.set_ylabel("send call -> accepted by the sandbox (ms)")
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def run(args: argparse.Namespace) -> dict[str, Any]:
    h.install_producer()
    sandbox = h.start_sandbox(rate="20/s", latency_ms=LATENCY_MS, log=h.logdir() / "sandbox.log")
    result: dict[str, Any] = {
        "benchmark": NAME,
        "machine": h.machine(),
        "quick": args.quick,
        "settings": {"seconds": args.seconds, "workers": WORKERS, "threads": THREADS},
        "runs": [],
        "tenants": [],
    }
    try:
        for rate in args.rates:
            for sharing in args.sharing:
                looks = args.lookahead if sharing == "lanes" else [""]
                paces = args.pace if sharing == "lanes" else [""]
                for look, pace in [(x, y) for x in looks for y in paces]:
                    label = sharing + "".join(
                        f" {n} {v}" for n, v in (("look-ahead", look), ("pace", pace)) if v
                    )
                    with h.stage(f"{label}, R = {rate}/s"):
                        result["runs"].append(
                            lane_run(sandbox, rate, args.seconds, sharing, look, pace)
                        )
        if args.no_tenants:
            return _done(result, args)
        tenant_rate = args.rates[0]
        for weights in ("a=1,b=1", "a=3,b=1"):
            with h.stage(f"tenants {weights} at {tenant_rate}/s"):
                result["tenants"].append(
                    tenant_run(sandbox, tenant_rate, args.tenant_seconds, weights)
                )
        cap = f"c={max(1, tenant_rate // 10)}/s"
        with h.stage(f"tenant capped {cap} at {tenant_rate}/s"):
            result["tenants"].append(
                tenant_run(sandbox, tenant_rate, args.tenant_seconds, "", caps=cap)
            )
    finally:
        sandbox.stop()
        h.flush()
    return _done(result, args)


def _done(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    result["met"] = _met(result)
    if args.plot:
        _plot(result["runs"], Path(args.plot))
        result["plot"] = str(args.plot)
    return result


def _met(result: dict[str, Any]) -> dict[str, bool]:
    met: dict[str, bool] = {}
    for run in result["runs"]:
        if run["sharing"] != "lanes":
            continue
        t = targets(run["rate"])
        key = f"{run['rate']}/s" + (
            f" look {run['lookahead']}" if run["lookahead"] != "default" else ""
        )
        met[f"{key} wait"] = (
            run["arrived"] == run["resets"]
            and run["p50_ms"] <= t["p50_ms"]
            and run["p99_ms"] <= t["p99_ms"]
            and run["max_ms"] <= t["max_ms"]
        )
        met[f"{key} limit used >= 0.90 R"] = run["limit_used"] >= 0.90
        met[f"{key} no 429"] = run["rate_limited"] == 0
    for tenants in result["tenants"]:
        if tenants["caps"]:
            met["cap held"] = tenants["capped_max_in_1s"] <= tenants["cap_per_s"]
            continue
        weights = dict(part.split("=") for part in tenants["weights"].split(","))
        total = sum(float(w) for w in weights.values())
        met[f"shares {tenants['weights']}"] = all(
            abs(tenants["shares"][n] - float(w) / total) <= 0.05 for n, w in weights.items()
        )
    for run in [*result["runs"], *result["tenants"]]:
        if run.get("sharing", "lanes") == "lanes" and run["rate_limited"]:
            met["no 429 anywhere"] = False
    return met


def show(result: dict[str, Any]) -> None:
    rows = []
    for run in result["runs"]:
        t = targets(run["rate"])
        rows.append(
            (
                f"{run['rate']}/s",
                (
                    f"lanes (look-ahead {run['lookahead']})"
                    if run["sharing"] == "lanes"
                    else "first-come line (baseline)"
                ),
                f"{run['arrived']}/{run['resets']}",
                f"{run['p50_ms']} (<= {t['p50_ms']:.0f})",
                f"{run['p99_ms']} (<= {t['p99_ms']:.0f})",
                f"{run['max_ms']} (<= 1000)",
                run["campaign_share_of_r"],
                run["limit_used"],
                run["rate_limited"],
            )
        )
    columns = [
        "R", "line", "resets", "p50 ms", "p99 ms", "max ms", "campaign / R", "all / R", "429s"
    ]  # fmt: skip
    h.console.print(h.table("a reset sent every 0.5 s while a campaign saturates R", columns, rows))
    trows = []
    for t in result["tenants"]:
        setting = t["weights"] or f"cap {t['caps']}"
        shares = ", ".join(f"{n} {s:.3f}" for n, s in t["shares"].items())
        extra = (
            f"most of c in 1 s: {t['capped_max_in_1s']} (cap {t['cap_per_s']})" if t["caps"] else ""
        )
        trows.append((setting, shares, t["window_seconds"], extra, t["rate_limited"]))
    h.console.print(
        h.table("tenants while both wait", ["setting", "shares", "over s", "cap", "429s"], trows)
    )
    h.console.print(
        "targets: "
        + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in result["met"].items())
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lanes", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="the campaign's length")
    parser.add_argument("--tenant-seconds", type=float, default=30.0)
    parser.add_argument("--rates", default="20,200", help="R values, comma-separated")
    parser.add_argument("--plot", default=None, help=f"where to draw the plot ({PLOT})")
    parser.add_argument("--sharing", default="fifo,lanes", help="which lines to run")
    parser.add_argument(
        "--lookahead", default="", help="OUTBOX_BULK_LOOKAHEAD values to compare (default: its own)"
    )
    parser.add_argument(
        "--pace", default="", help="OUTBOX_PACE values to compare (default: its own)"
    )
    parser.add_argument("--no-tenants", action="store_true", help="skip the tenants' runs")
    parser.add_argument("--quick", action="store_true", help="short runs at 20/s, for CI")
    args = parser.parse_args(argv)
    args.rates = [int(r) for r in str(args.rates).split(",")]
    args.sharing = [x for x in str(args.sharing).split(",") if x]
    args.lookahead = [x for x in str(args.lookahead).split(",")] or [""]
    args.pace = [x for x in str(args.pace).split(",")] or [""]
    if args.quick:
        args.seconds, args.tenant_seconds, args.rates = 12.0, 10.0, [20]
    elif args.plot is None:
        args.plot = str(PLOT)
    result = run(args)
    show(result)
    h.write_result(NAME, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
