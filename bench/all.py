"""Run every benchmark and rewrite the results section of ``BENCHMARKS.md``.

Each benchmark runs as its own process (``python -m bench.NAME``), one after another so
they never compete for the two cores, and writes ``bench/results/NAME.json``; then the
part of ``BENCHMARKS.md`` between the ``results:start`` and ``results:end`` markers is
regenerated from those files. Everything outside the markers is left as written.

    python -m bench.all [--quick] [--only throughput,storm] [--report-only] [--no-report]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from bench.report import BENCHMARKS, RESULTS, ROOT, write_report

#: ``--quick`` for ours; the ceiling's own small sizes for the one without a quick mode.
QUICK_ARGS: dict[str, list[str]] = {
    "sandbox_ceiling": ["--requests", "2000", "--concurrency", "16"],
}


def command(name: str, quick: bool) -> list[str]:
    args = [sys.executable, "-m", f"bench.{name}"]
    if quick:
        args += QUICK_ARGS.get(name, ["--quick"])
    if name == "sandbox_ceiling" and os.environ.get("BENCH_RESULTS_DIR"):
        args += ["--json", str(RESULTS / "sandbox_ceiling.json")]
    return args


def run_all(names: list[str], quick: bool) -> dict[str, dict[str, Any]]:
    outcomes: dict[str, dict[str, Any]] = {}
    for name in names:
        args = command(name, quick)
        shown = " ".join(["python", *args[1:]])
        print(f"\n=== {shown}", flush=True)
        started = time.monotonic()
        code = subprocess.call(args, cwd=ROOT)
        outcomes[name] = {
            "command": shown,
            "exit": code,
            "seconds": round(time.monotonic() - started, 1),
        }
        print(f"=== {name}: exit {code} in {outcomes[name]['seconds']} s", flush=True)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.all", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every benchmark's quick mode")
    parser.add_argument(
        "--only", default="", help="comma-separated subset of " + ",".join(BENCHMARKS)
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite BENCHMARKS.md from the JSON files"
    )
    parser.add_argument("--no-report", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or BENCHMARKS
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {sorted(unknown)}")
    outcomes = None if args.report_only else run_all(names, args.quick)
    if not args.no_report:
        write_report(outcomes, args.quick)
    failed = [n for n, o in (outcomes or {}).items() if o["exit"] != 0]
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
