"""This checkout against an earlier commit, in the same run: is anything slower?

A machine that is busy elsewhere moves every figure by more than a change does, so a
figure from another day proves nothing. This checks the baseline commit out beside the
tree (a detached ``git worktree`` with its own venv, under ``--work``), then runs each
benchmark ``--rounds`` times for each side, alternating which side goes first, each side
with its own code and its own ``bench/``. The figures in :data:`FIGURES` (CPU, round trips,
rates, latencies, memory) are compared: the best round of each side (the least disturbed),
and head ÷ baseline; a figure more than 10 % worse is marked.

    python -m bench.versus --baseline 77fdc93 [--only throughput,overhead,producer]
                           [--rounds 2] [--quick] [--json PATH]

``rate_limit`` and ``lanes`` are left out unless named: they hold a fixed rate for
minutes, and what they measure (exactness, waits) does not move with CPU per send.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.report import ROOT

LOWER, HIGHER = True, False
#: Per benchmark, the figures compared (dotted paths into its JSON) and which way is better.
FIGURES: dict[str, list[tuple[str, bool]]] = {
    "throughput": [
        ("threads.worker_cpu_ms_per_send_incl_startup", LOWER),
        ("threads.sends_per_second", HIGHER),
        ("threads.worker_round_trips_per_send", LOWER),
        ("threads.redis_commands_per_send", LOWER),
        ("threads.paced.p50_ms", LOWER),
        ("threads.paced.p99_ms", LOWER),
    ],
    "overhead": [
        ("worker_cpu_ms_per_message", LOWER),
        ("worker_vs_sandbox_cpu", LOWER),
        ("worker_peak_rss_mb", LOWER),
    ],
    "scale": [
        ("fleets.0.worker_cpu_ms_per_send", LOWER),
        ("fleets.0.sends_per_second", HIGHER),
        ("fleets.-1.sends_per_second", HIGHER),
    ],
    "storm": [
        ("shared.seconds_to_full_rate_after_storm", LOWER),
        ("shared.attempts_per_message", LOWER),
    ],
    "producer": [
        ("big_call.median_ms", LOWER),
        ("big_call.round_trips_per_call", LOWER),
        ("single_call.mean_ms", LOWER),
        ("single_call.round_trips_per_call", LOWER),
        ("huge.call_seconds", LOWER),
        ("huge.longest_ping_ms", LOWER),
        ("huge.redis_bytes_per_recipient", LOWER),
    ],
}
DEFAULT = list(FIGURES)
console = Console()


def figures(name: str, result: dict[str, Any]) -> dict[str, float]:
    """The compared figures of one run (those the run has)."""
    found = {}
    for path, _ in FIGURES.get(name, []):
        value: Any = result
        for part in path.split("."):
            if isinstance(value, list):
                value = value[int(part)] if value else None
            elif isinstance(value, dict):
                value = value.get(part)
            else:
                value = None
        if isinstance(value, int | float):
            found[path] = float(value)
    return found


def checkout(commit: str, work: Path) -> Path:
    """The baseline's tree and a venv with it installed (reused when already there)."""
    tree = work / f"tree-{commit}"
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), commit],
            check=True,
        )
    python = tree / ".venv" / "bin" / "python"
    if not python.exists():
        console.print(f"installing {commit} into {tree / '.venv'} (about a minute)")
        subprocess.run([sys.executable, "-m", "venv", str(tree / ".venv")], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-e", ".[dev]",
             "--config-settings", "editable_mode=strict"],
            cwd=tree, check=True,
        )  # fmt: skip
    return python


def run(side: str, python: str, tree: Path, name: str, quick: bool, out: Path) -> dict[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    args = [python, "-m", f"bench.{name}"]
    if quick:
        args.append("--quick")
    env = {**os.environ, "BENCH_RESULTS_DIR": str(out)}
    started = time.monotonic()
    code = subprocess.call(args, cwd=tree, env=env, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    path = out / f"{name}.json"
    console.print(f"  {side:8} {name:12} exit {code} in {seconds:.0f} s")
    if code != 0 or not path.exists():
        return {}
    return figures(name, json.loads(path.read_text()))


def best(values: list[float], lower_is_better: bool) -> float:
    return min(values) if lower_is_better else max(values)


def compare(
    rounds: dict[str, dict[str, list[dict[str, float]]]], names: list[str]
) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        for figure, lower in FIGURES.get(name, []):
            b = [r[figure] for r in rounds["baseline"][name] if figure in r]
            h = [r[figure] for r in rounds["head"][name] if figure in r]
            if not b or not h:
                continue
            bb, hb = best(b, lower), best(h, lower)
            ratio = hb / bb if bb else float("nan")
            worse = ratio > 1.10 if lower else ratio < 0.90
            rows.append({
                "benchmark": name, "figure": figure, "lower_is_better": lower,
                "baseline": b, "head": h, "baseline_best": bb, "head_best": hb,
                "ratio": round(ratio, 3), "worse_by_over_10_percent": worse,
            })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versus", description=__doc__)
    parser.add_argument("--baseline", required=True, help="the commit to compare against")
    parser.add_argument("--only", default=",".join(DEFAULT))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="the benchmarks' quick sizes")
    parser.add_argument("--work", type=Path, default=Path("/tmp/outbox-versus"))
    parser.add_argument("--json", type=Path, help="write every round's figures here")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    sides = {
        "baseline": (str(checkout(commit, args.work)), args.work / f"tree-{commit}"),
        "head": (sys.executable, ROOT),
    }
    rounds: dict[str, dict[str, list[dict[str, float]]]] = {
        side: {name: [] for name in names} for side in sides
    }
    for r in range(args.rounds):
        console.print(f"round {r + 1} of {args.rounds}")
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in names:
            for side in order:
                python, tree = sides[side]
                out = args.work / f"results-{side}-{r}"
                rounds[side][name].append(run(side, python, tree, name, args.quick, out))
    rows = compare(rounds, names)
    table = Table(title=f"head {head} against baseline {commit}, best of {args.rounds} each")
    for column in ("benchmark", "figure", "baseline", "head", "head ÷ baseline"):
        table.add_column(column, justify="right" if column != "figure" else "left")
    for row in rows:
        mark = " (worse)" if row["worse_by_over_10_percent"] else ""
        table.add_row(
            row["benchmark"], row["figure"], f"{row['baseline_best']:g}",
            f"{row['head_best']:g}", f"{row['ratio']:.3f}{mark}",
        )  # fmt: skip
    console.print(table)
    if args.json:
        args.json.write_text(
            json.dumps({"baseline": commit, "head": head, "quick": args.quick, "rows": rows},
                       indent=2) + "\n"
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
