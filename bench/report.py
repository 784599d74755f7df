"""The results section of ``BENCHMARKS.md``, written from ``bench/results/*.json``.

Each benchmark's JSON becomes one subsection with its table and the verdict on its
targets; ``python -m bench.all`` calls :func:`write_report` after the runs (or alone,
``--report-only``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["BENCHMARKS", "write_report"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or ROOT / "bench" / "results")
REPORT = ROOT / "BENCHMARKS.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
#: Every benchmark, in the order they run and are reported.
BENCHMARKS = [
    "throughput", "overhead", "scale", "rate_limit", "storm", "producer", "lanes",
    "sandbox_ceiling",
]  # fmt: skip


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def _commands(counts: dict[str, float]) -> str:
    return ", ".join(f"{name} {n:g}" for name, n in counts.items()) or "-"


def _targets(d: dict[str, Any]) -> str:
    """One line per target of a benchmark: the figure, the bound, met or not."""
    lines = []
    for name, bound in d.get("targets", {}).items():
        value: Any
        if isinstance(bound, list):
            bound, value = bound
        else:
            value = d.get(
                {
                    "worker_cpu_ms": "worker_cpu_ms_per_message",
                    "worker_vs_sandbox": "worker_vs_sandbox_cpu",
                }.get(name, name)
            )
        met = d.get("met", {}).get(name)
        sign = "≥" if name.startswith("threads") else "≤"
        verdict = "met" if met else "**not met**"
        lines.append(f"- target `{name}` {sign} {bound:g}: {value} ({verdict})")
    return "\n".join(lines)


def _quick(d: dict[str, Any]) -> str:
    return " (quick sizes: not representative)" if d.get("quick") else ""


def md_throughput(d: dict[str, Any]) -> str:
    seq, thr, pre = d["sequential"], d["threads"], d["prefork"]
    r = d["ratios"]
    rows = [
        ["sequential httpx loop (baseline)", seq["sends"], seq["sends_per_second"], "1.00",
         f"{seq['p50_ms']} / {seq['p99_ms']} (request)", "-"],
        [f"Celery prefork {pre['workers']}x{pre['concurrency']} (baseline)", pre["sends"],
         pre["sends_per_second"], f"{r['prefork_vs_sequential']:.2f}",
         f"{pre['backlog_p50_ms']} / {pre['backlog_p99_ms']}",
         pre["worker_cpu_ms_per_send_incl_startup"]],
        [f"**Celery threads {thr['workers']}x{thr['concurrency']}**", thr["sends"],
         f"**{thr['sends_per_second']}**", f"**{r['threads_vs_sequential']:.2f}**",
         f"{thr['backlog_p50_ms']} / {thr['backlog_p99_ms']}",
         thr["worker_cpu_ms_per_send_incl_startup"]],
    ]  # fmt: skip
    out = [
        f"### throughput{_quick(d)}",
        "",
        f"Sandbox latency {d['settings']['latency_ms']:g} ms, no rate limit. "
        "p50/p99 is enqueue → `sent` for the Celery runs, which drain a backlog enqueued "
        "before the workers start (so it includes the wait in the queue).",
        "",
        _table(
            [
                "run",
                "sends",
                "sends/s",
                "x sequential",
                "p50 / p99 ms",
                "worker CPU ms/send (incl. start-up)",
            ],
            rows,
        ),
        "",
    ]
    if "paced" in thr:
        p = thr["paced"]
        out.append(
            f"Paced at {p['rate']:g}/s ({p['sends']} sends, threads fleet idle otherwise): "
            f"enqueue → `sent` p50 **{p['p50_ms']} ms**, p99 **{p['p99_ms']} ms**, against "
            f"the sandbox's own {seq['p50_ms']} / {seq['p99_ms']} ms for a plain request "
            f"(the sequential loop; {d['settings']['latency_ms']:g} ms configured)."
        )
        out.append("")
    out.append(
        f"Threads vs prefork {r['threads_vs_prefork']:.2f}x. Redis per send inside the workers "
        f"(threads run, broker included): {thr.get('worker_round_trips_per_send', '?')} round "
        f"trips ({_commands(thr.get('worker_commands_per_send', {}))}); server-side "
        f"{thr['evalsha_per_send']} `evalsha` and {thr['redis_commands_per_send']} commands "
        "including the scripts' inner ones."
    )
    out += ["", _targets(d)]
    return "\n".join(out)


def md_rate_limit(d: dict[str, Any]) -> str:
    s = d["settings"]
    rows = []
    for r in d["runs"]:
        n = round(r["rate"] * r["period"])
        unit = "1 min" if r["period"] >= 60 else "1 s"
        rows.append(
            [
                f"**{r['run']}**" if r["outbox"] else f"{r['run']} (baseline)",
                r["outbox_rate_limit"],
                r["achieved_per_second"],
                f"{r['achieved_vs_R']:.3f}",
                f"{r['worst_window']} in {unit} (N = {n})",
                r["rate_limited_429"],
                r["worker_evalsha_per_send"],
                r["worker_round_trips_per_send"],
                ", ".join(f"{k} {v}" for k, v in sorted(r["states"].items())),
            ]
        )
    return "\n".join(
        [
            f"### rate_limit{_quick(d)}",
            "",
            f"{s['workers']} workers x {s['concurrency']} threads, sandbox latency "
            f"{s['sandbox_latency_ms']:g} ms; going over the limit times the client out for "
            f"{s['penalty_s']:g} s with no `Retry-After`, as the real service does. The rate is "
            "over whole periods of the limit from the first accepted send; the baselines are "
            "measured over a fixed time (each 429 costs them a minute). Worker figures are "
            "per delivered send, counted inside the worker processes (records and broker).",
            "",
            _table(
                [
                    "run",
                    "OUTBOX_RATE_LIMIT",
                    "sends/s",
                    "/ R",
                    "worst window",
                    "429s",
                    "evalsha/send",
                    "round trips/send",
                    "states",
                ],
                rows,
            ),
            "",
            *[f"- {line}" for line in d.get("verdicts", [])],
        ]
    )


def md_storm(d: dict[str, Any]) -> str:
    s = d["settings"]
    rows = []
    for key, label in (("shared", "**shared cool-down**"), ("per_task", "per-task Retry-After")):
        r = d[key]
        rows.append(
            [
                label,
                r["requests_during_storm"],
                " ".join(str(x) for x in r["failed_attempts_by_storm_second"]),
                r["seconds_to_first_send_after_storm"],
                r["seconds_to_full_rate_after_storm"],
                r["attempts_per_message"],
                ", ".join(f"{k} {v}" for k, v in sorted(r["states"].items())),
            ]
        )
    return "\n".join(
        [
            f"### storm{_quick(d)}",
            "",
            f"Every request answered 429 (with `Retry-After`) for {s['storm_seconds']:g} s while "
            f"{s['workers']} workers x {s['concurrency']} threads send at "
            f"`OUTBOX_RATE_LIMIT={s['rate_limit']:g}/s`. Baseline: `OUTBOX_SHARED_COOLDOWN=0`, "
            "`OUTBOX_COOLDOWN_SECONDS=0.001`.",
            "",
            _table(
                [
                    "run",
                    "requests during storm",
                    "429s per storm second (0, 1, …, after)",
                    "s to first send after",
                    "s to full rate after",
                    "attempts/message",
                    "states",
                ],
                rows,
            ),
            "",
            f"The baseline sent {d['ratios']['storm_requests_per_task_vs_shared']:.1f}x as many "
            "requests into the storm.",
        ]
    )


def md_producer(d: dict[str, Any]) -> str:
    labels = [
        ("big_call", f"`send_email` to {d['settings']['recipients']:,} recipients"),
        ("big_plain", f"plain `send_task` x {d['chunks_per_big_call']} (baseline)"),
        ("single_call", "`send_email`, 1 recipient"),
        ("single_plain", "plain `send_task` x 1 (baseline)"),
    ]
    rows = []
    for key, label in labels:
        r = d[key]
        rows.append(
            [
                label,
                r["calls"],
                r["median_ms"],
                r["mean_ms"],
                r["round_trips_per_call"],
                r["server_evalsha_per_call"],
                ", ".join(f"{k} {v:g}" for k, v in r["commands_per_call"].items()),
            ]
        )
    met = "met" if d["target"]["met"] else "**not met**"
    return "\n".join(
        [
            f"### producer{_quick(d)}",
            "",
            _table(
                [
                    "call",
                    "calls",
                    "median ms",
                    "mean ms",
                    "round trips/call",
                    "evalsha/call",
                    "commands/call (this process)",
                ],
                rows,
            ),
            "",
            f"Target: the big call under {d['target']['big_call_median_ms']:g} ms: {met} "
            f"({d['big_call']['median_ms']} ms, {d['ratios']['big_call_vs_plain']:.2f}x the "
            f"plain loop). One small call costs {d['ratios']['single_call_vs_plain']:.2f}x a "
            "plain `send_task`.",
            *_huge(d.get("huge")),
        ]
    )


def _huge(h: dict[str, Any] | None) -> list[str]:
    if not h:
        return []
    met = h["met"]

    def verdict(name: str) -> str:
        return "met" if met[name] else "**not met**"

    rows = [
        ["the call", f"{h['call_seconds']} s", "<= 3 s", verdict("call_seconds"), "7-9 s"],
        ["another client's longest `PING`", f"{h['longest_ping_ms']} ms", "<= 20 ms",
         verdict("longest_ping_ms"), "1.4 s (at 300,000)"],
        ["Redis slow log (10 ms line)", f"{len(h['slow_commands'])} entries", "empty",
         verdict("slow_log"), "a 3.6 s script"],
        ["Redis per recipient", f"{h['redis_bytes_per_recipient']} B", "<= 60 B",
         verdict("redis_bytes_per_recipient"), "190-209 B"],
        ["`status()` of the send", f"{h['status_ms']} ms", "", "", ""],
    ]  # fmt: skip
    return [
        "",
        f"One `send_email` to {h['recipients']:,} recipients ({h['chunks']:,} chunks), while "
        "another client pings Redis every millisecond (0.2.0's figures as the issue measured "
        "them on the same kind of machine):",
        "",
        _table(["measure", "now", "target", "", "0.2.0"], rows),
    ]


def md_lanes(d: dict[str, Any]) -> str:
    rows = []
    for run in d["runs"]:
        line = "first-come line (0.2, baseline)" if run["sharing"] == "fifo" else "lanes"
        if run["sharing"] == "lanes" and run.get("lookahead", "default") != "default":
            line += f" (look-ahead {run['lookahead']} s)"
        rate = run["rate"]
        rows.append(
            [
                f"{rate}/s",
                line,
                f"{run['arrived']}/{run['resets']}",
                f"{run['p50_ms']} (<= {2000 / rate + 60:.0f})",
                f"{run['p99_ms']} (<= {5000 / rate + 100:.0f})",
                f"{run['max_ms']} (<= 1000)",
                run["campaign_share_of_r"],
                run["limit_used"],
                run["rate_limited"],
            ]
        )
    tenants = []
    for t in d["tenants"]:
        setting = f"weights {t['weights']}" if t["weights"] else f"cap {t['caps']}"
        shares = ", ".join(f"{n} {v:.3f}" for n, v in t["shares"].items())
        cap = (
            f"most of c in any 1 s: {t['capped_max_in_1s']} (cap {t['cap_per_s']})"
            if t["caps"]
            else ""
        )
        tenants.append([setting, shares, t["window_seconds"], cap, t["rate_limited"]])
    met = ", ".join(f"{k}: {'met' if v else '**not met**'}" for k, v in d["met"].items())
    plot = ["", "![a reset's wait against time](docs/img/lanes-wait.png)"] if d.get("plot") else []
    return "\n".join(
        [
            f"### lanes{_quick(d)}",
            "",
            "A reset email sent every 0.5 s while a campaign saturates R (3 workers x 50 "
            "threads, `-Q email,bulk`, the sandbox as the real service, 50 ms answers); "
            "ms from the `send_email` call to the sandbox's acceptance:",
            "",
            _table(
                [
                    "R",
                    "line",
                    "resets",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "campaign / R",
                    "all / R",
                    "429s",
                ],
                rows,
            ),
            "",
            "Tenants, each with a campaign as long as the run, while both wait:",
            "",
            _table(["setting", "shares", "over s", "cap", "429s"], tenants),
            "",
            f"Targets: {met}.",
            *plot,
        ]
    )


def md_overhead(d: dict[str, Any]) -> str:
    s = d["settings"]
    rows = [
        ["worker CPU per delivered message", f"{d['worker_cpu_ms_per_message']} ms"],
        ["sandbox CPU per request (baseline)", f"{d['sandbox_cpu_ms_per_request']} ms"],
        ["worker / sandbox", f"{d['worker_vs_sandbox_cpu']}x"],
        [
            "Celery's floor: CPU per no-op task (`celery.ping`)",
            f"{d.get('celery_floor_cpu_ms_per_task', '?')} ms",
        ],
        ["worker / floor", f"{d.get('worker_vs_floor_cpu', '?')}x"],
        ["messages per worker CPU second", d["messages_per_cpu_second"]],
        ["worker peak RSS (VmHWM)", f"{d['worker_peak_rss_mb']} MB"],
        ["worker RSS idle after start-up", f"{d['worker_idle_rss_mb']} MB"],
        ["sends/s during the run", d["sends_per_second"]],
    ]
    return "\n".join(
        [
            f"### overhead{_quick(d)}",
            "",
            f"One worker process, threads pool x{s['concurrency']}, {s['messages']} messages, "
            f"sandbox latency {s['sandbox_latency_ms']:g} ms.",
            "",
            _table(["figure", "value"], rows),
            "",
            *_tracing(d),
            _targets(d),
        ]
    )


def _tracing(d: dict[str, Any]) -> list[str]:
    """The tracing modes' table of ``bench.overhead``, when the run measured them."""
    t = d.get("tracing")
    if not t:
        return []
    rows = [
        [
            mode,
            ", ".join(f"{v:g}" for v in t["cpu_ms_per_message"][mode]),
            f"{t['best_cpu_ms_per_message'][mode]} ms",
            f"{t['vs_not_installed'][mode]}x",
            t["spans_per_message"][mode],
        ]
        for mode in t["cpu_ms_per_message"]
    ]
    header = ["tracing", "worker CPU ms/message by round", "best", "vs not installed"]
    return [
        f"Tracing (`otel` extra): a fresh worker per mode and round, {t['messages']} messages "
        f'each, {t["rounds"]} rounds alternating the modes; the spread of the "not '
        f'installed" rounds is {t["spread_not_installed"]}x.',
        "",
        _table([*header, "spans exported per message"], rows),
        "",
        f"The tracing calls one delivery makes with the API installed and no provider set, "
        f"timed in one process: {t['unconfigured_calls_ms_per_message'] * 1000:.1f} µs, "
        f"{t['unconfigured_calls_share']:.2%} of the CPU per message without tracing.",
        "",
    ]


def md_scale(d: dict[str, Any]) -> str:
    s = d["settings"]
    pinned = (
        f"the sandbox on CPU {s['sandbox_cpus']}, the workers on {s['worker_cpus']}"
        if s.get("sandbox_cpus")
        else "no CPU pinning (one core, or no `taskset`)"
    )
    rows = [
        [
            r["workers"],
            r["sends_per_second"],
            f"{r['sends_per_second_vs_one']:.2f}x",
            r["worker_cpu_ms_per_send"],
            f"{r['cpu_per_send_vs_one']:.2f}x",
            r["sandbox_cpu_ms_per_request"],
            ", ".join(f"{k} {v}" for k, v in sorted(r["states"].items())),
        ]
        for r in d["fleets"]
    ]
    return "\n".join(
        [
            f"### scale{_quick(d)}",
            "",
            f"{s['messages']} single sends drained by each fleet ({s['concurrency']} threads a "
            f"worker process), sandbox latency {s['sandbox_latency_ms']:g} ms, {pinned}.",
            "",
            _table(
                [
                    "worker processes",
                    "sends/s",
                    "vs 1",
                    "worker CPU ms/send",
                    "vs 1",
                    "sandbox CPU ms/request",
                    "states",
                ],
                rows,
            ),
        ]
    )


def md_sandbox_ceiling(d: dict[str, Any]) -> str:
    rows: list[list[Any]] = [
        ["requests", d.get("requests")],
        ["concurrency", f"{d.get('concurrency')} over {d.get('client_processes')} client(s)"],
        ["requests/s", d.get("requests_per_second")],
        ["p50 / p99 ms", f"{d.get('p50_ms')} / {d.get('p99_ms')}"],
        ["errors", d.get("errors")],
    ]
    return "\n".join(
        [
            "### sandbox_ceiling",
            "",
            "The sandbox alone (`bench/sandbox_ceiling.py`: no limit, no latency, async "
            "clients in their own processes); it must stay well above the throughput figures.",
            "",
            _table(["figure", "value"], rows),
        ]
    )


RENDER: dict[str, Callable[[dict[str, Any]], str]] = {
    "throughput": md_throughput,
    "scale": md_scale,
    "rate_limit": md_rate_limit,
    "storm": md_storm,
    "producer": md_producer,
    "lanes": md_lanes,
    "overhead": md_overhead,
    "sandbox_ceiling": md_sandbox_ceiling,
}


def render(outcomes: dict[str, dict[str, Any]] | None, quick: bool) -> str:
    machine: dict[str, Any] = {}
    parts = []
    for name in BENCHMARKS:
        data = _load(name)
        if data is None:
            continue
        machine = machine or data.get("machine", {})
        try:
            section = RENDER[name](data)
        except (KeyError, TypeError) as exc:
            section = f"### {name}\n\n(result file not understood: {exc!r})"
        m = data.get("machine") or {}
        when = m.get("measured_at") or data.get("measured_at", "?")
        noise = ""
        if "loadavg_at_start" in m:
            noise = (
                f" Load average at start {m['loadavg_at_start'][0]}; "
                f"{m.get('other_redis_clients_at_start')} other clients on the Redis server."
            )
        title, _, body = section.partition("\n")
        parts.append(f"{title}\n\n`python -m bench.{name}`, measured {when}.{noise}\n{body}")
    head = [
        START,
        "<!-- generated by `python -m bench.all`; edit outside the markers -->",
        "",
        "## Results",
        "",
    ]
    if machine:
        head += [
            f"Machine: {machine.get('nproc')} cores ({machine.get('cpu', '?')}), Python "
            f"{machine.get('python')}, Redis {machine.get('redis')}, {machine.get('platform')}. "
            "The sandbox, Redis, the producer and the workers all share those cores.",
            "",
        ]
    if outcomes:
        head += ["Commands run:", "", "```"]
        head += [
            f"{o['command']}    # exit {o['exit']}, {o['seconds']} s" for o in outcomes.values()
        ]
        head += ["```", ""]
    return "\n".join(head) + "\n" + "\n\n".join(parts) + "\n\n" + END


def write_report(outcomes: dict[str, dict[str, Any]] | None, quick: bool) -> None:
    section = render(outcomes, quick)
    text = REPORT.read_text() if REPORT.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        _, after = rest.split(END, 1)
        text = before + section + after
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    REPORT.write_text(text)
    print(f"rewrote the results section of {REPORT.relative_to(ROOT)}")
