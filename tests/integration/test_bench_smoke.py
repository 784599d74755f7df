"""CI smoke test of the benchmarks: each one's ``--quick`` mode runs and writes sane JSON.

Speed targets are not checked here (they live in BENCHMARKS.md, measured on a quiet
machine); this only proves every benchmark still runs end to end against real Redis
(databases 8 and 9), real ``celery worker`` processes and the sandbox, on free ports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.versus import FIGURES, figures

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _run(
    module: str, redis_server: str, tmp_path: Path, *args: str, timeout: float = 60
) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_RESULTS_DIR": str(tmp_path),
        # The session's own Redis (databases 8 and 9 there, the benchmarks' default).
        "BENCH_REDIS": f"redis://{redis_server}",
        "PYTHONUNBUFFERED": "1",
    }
    # The test process points CELERY_BROKER_URL/OUTBOX_REDIS_URL at the test databases;
    # the benchmarks choose their own from BENCH_REDIS and BENCH_DBS.
    for name in ("CELERY_BROKER_URL", "OUTBOX_REDIS_URL", "SMTP2GO_API_KEY"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    name = module.rsplit(".", 1)[1]
    path = tmp_path / f"{name}.json"
    assert path.exists(), f"{module} wrote no {path.name}:\n{proc.stdout[-2000:]}"
    data: dict[str, Any] = json.loads(path.read_text())
    # every figure bench.versus compares for it is there, where it looks
    compared = [path for path, _ in FIGURES.get(name, [])]
    assert sorted(figures(name, data)) == sorted(compared), (name, sorted(figures(name, data)))
    return data


def _machine_ok(data: dict[str, Any]) -> None:
    machine = data["machine"]
    assert machine["nproc"] >= 1
    assert machine["python"].count(".") == 2
    assert machine["redis"]


@pytest.mark.timeout(60)
def test_throughput_quick(redis_server: str, tmp_path: Path) -> None:
    data = _run("bench.throughput", redis_server, tmp_path, "--quick")
    _machine_ok(data)
    assert data["quick"] is True
    assert data["sequential"]["sends_per_second"] > 0
    for run in ("threads", "prefork"):
        assert data[run]["states"] == {"sent": data[run]["sends"]}, data[run]
        assert data[run]["sends_per_second"] > 0
        assert 0 < data[run]["backlog_p50_ms"] <= data[run]["backlog_p99_ms"]
        assert data[run]["evalsha_per_send"] >= 2  # claim and finish at least
    assert data["threads"]["paced"]["p50_ms"] > 0
    assert data["ratios"]["threads_vs_sequential"] > 0
    assert data["threads"]["worker_round_trips_per_send"] >= 3  # fetch, claim, finish
    assert set(data["met"]) == set(data["targets"]) == {
        "threads_vs_sequential", "threads_vs_prefork", "p50_ms_above_sandbox",
        "p99_ms_above_sandbox", "worker_round_trips_per_send",
    }  # fmt: skip


@pytest.mark.timeout(60)
def test_rate_limit_quick(redis_server: str, tmp_path: Path) -> None:
    data = _run("bench.rate_limit", redis_server, tmp_path, "--quick")
    _machine_ok(data)
    limited, unlimited = data["runs"]
    assert (limited["outbox"], unlimited["outbox"]) == (True, False)
    assert limited["states"] == {"sent": limited["messages"]}, limited
    for run in data["runs"]:
        assert run["achieved_per_second"] > 0
        assert 0 < run["worst_window"] <= run["rate"]  # the sandbox enforces R
        assert run["worker_evalsha_per_send"] >= 2, run
        assert run["worker_round_trips_per_send"] > run["worker_evalsha_per_send"]
    assert len(data["verdicts"]) == 1


@pytest.mark.timeout(60)
def test_storm_quick(redis_server: str, tmp_path: Path) -> None:
    data = _run("bench.storm", redis_server, tmp_path, "--quick")
    _machine_ok(data)
    for key in ("shared", "per_task"):
        run = data[key]
        assert run["states"] == {"sent": run["messages"]}, run
        assert run["requests_during_storm"] >= 1
        assert run["rate_limited_429_total"] >= 1
        assert run["attempts_per_message"] >= 1
    assert data["per_task"]["env"]["OUTBOX_SHARED_COOLDOWN"] == "0"


@pytest.mark.timeout(60)
def test_producer_quick(redis_server: str, tmp_path: Path) -> None:
    data = _run("bench.producer", redis_server, tmp_path, "--quick")
    _machine_ok(data)
    assert data["chunks_per_big_call"] == 10
    assert data["big_call"]["server_evalsha_per_call"] >= 1
    # one record script per call, one publish per chunk at least
    assert data["big_call"]["commands_per_call"]["evalsha"] == 1
    assert data["big_call"]["commands_per_call"]["lpush"] == 10
    assert data["single_call"]["round_trips_per_call"] >= 2
    assert data["single_plain"]["median_ms"] > 0
    huge = data["huge"]
    assert huge["chunks"] == 200  # 20,000 recipients in quick mode: four pages staged
    assert huge["slow_commands"] == [], huge["slow_commands"]
    assert 0 < huge["redis_bytes_per_recipient"] < 200
    assert huge["pings"] > 0


@pytest.mark.timeout(120)
def test_overhead_quick(redis_server: str, tmp_path: Path) -> None:
    data = _run("bench.overhead", redis_server, tmp_path, "--quick")
    _machine_ok(data)
    assert data["worker_cpu_ms_per_message"] > 0
    assert data["sandbox_cpu_ms_per_request"] > 0
    assert data["celery_floor_cpu_ms_per_task"] > 0
    assert set(data["met"]) == {
        "worker_cpu_ms", "worker_vs_sandbox", "unconfigured_vs_not_installed"
    }  # fmt: skip
    assert data["worker_peak_rss_mb"] >= data["worker_idle_rss_mb"] > 10
    tracing = data["tracing"]
    assert all(v > 0 for v in tracing["best_cpu_ms_per_message"].values()), tracing
    # Only the instrumented worker exports, and it exports every send's spans.
    spans = tracing["spans_per_message"]
    assert spans["not installed"] == spans["installed, unconfigured"] == 0, spans
    assert spans["exporting"] >= 3, spans


@pytest.mark.timeout(90)
def test_scale_quick(redis_server: str, tmp_path: Path) -> None:
    data = _run("bench.scale", redis_server, tmp_path, "--quick", timeout=80)
    _machine_ok(data)
    assert [f["workers"] for f in data["fleets"]] == [1, 2]
    for fleet in data["fleets"]:
        assert fleet["states"] == {"sent": data["settings"]["messages"]}, fleet
        assert fleet["worker_cpu_ms_per_send"] > 0
        assert fleet["sends_per_second"] > 0


@pytest.mark.timeout(240)
def test_lanes_quick(redis_server: str, tmp_path: Path) -> None:
    data = _run("bench.lanes", redis_server, tmp_path, "--quick", timeout=220)
    _machine_ok(data)
    runs = {r["sharing"]: r for r in data["runs"]}
    assert set(runs) == {"fifo", "lanes"}
    for run in runs.values():
        assert run["arrived"] == run["resets"] > 0
        assert run["rate_limited"] == 0
    # the first-come line makes a reset wait behind the campaign; the lanes do not
    assert runs["lanes"]["p50_ms"] < runs["fifo"]["p50_ms"]
    shares = {t["weights"] or t["caps"]: t for t in data["tenants"]}
    assert set(shares) == {"a=1,b=1", "a=3,b=1", "c=2/s"}
    assert shares["c=2/s"]["capped_max_in_1s"] <= 2
