"""How many ``email/send`` requests a second one sandbox process answers.

The sandbox must never be the bottleneck of a throughput benchmark, so this measures
its ceiling: the sandbox runs as its own process with no rate limit and no latency, and
one or more client processes drive ``email/send`` with ``httpx.AsyncClient`` at a fixed
concurrency. On a small machine the clients compete with the server for CPU, so the
requests/s figure is a lower bound of what the server alone could do; the server's own
CPU time per request (read from ``/proc``) gives the ceiling with a whole core to itself,
and holds up even when other work shares the machine.

    python -m bench.sandbox_ceiling [--requests N] [--concurrency C] [--clients P] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "results" / "sandbox_ceiling.json"
API_KEY = "api-" + "B3nchK3y" * 4
PAYLOAD = {
    "sender": "Bench <bench@example.com>",
    "to": ["Reader <reader@example.org>"],
    "subject": "Ceiling",
    "text_body": "A short message, as most transactional email is.",
    "html_body": "<p>A short message, as most transactional email is.</p>",
    "custom_headers": [{"header": "X-Bench", "value": "1"}],
}


@dataclass
class ClientResult:
    """What one client process saw: per-request latencies and the wall-clock span."""

    latencies: list[float]
    errors: int
    started: float
    finished: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sandbox exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")


async def _drive(base_url: str, requests: int, concurrency: int, start_at: float) -> ClientResult:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"X-Smtp2go-Api-Key": API_KEY}
    body = json.dumps(PAYLOAD).encode()
    latencies: list[float] = []
    errors = 0
    remaining = requests
    async with httpx.AsyncClient(base_url=base_url, limits=limits, headers=headers) as client:
        await client.post("/email/send", content=body)  # open one connection before the clock

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                begin = time.perf_counter()
                try:
                    response = await client.post("/email/send", content=body)
                    if response.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - begin)

        await asyncio.sleep(max(0.0, start_at - time.time()))
        started = time.time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        finished = time.time()
    return ClientResult(latencies, errors, started, finished)


def _without_sniffio_lookups() -> None:
    """Spare httpcore a failed ``import sniffio`` on every request when it is not installed.

    httpcore asks sniffio which event loop runs, importing it inside a function; without
    the package each call searches ``sys.path`` again (~0.3 ms a request, a third of the
    client's time). A ``None`` entry makes the import fail at once, and httpcore then
    assumes asyncio, which is what runs here.
    """
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def _client_process(
    base_url: str, requests: int, concurrency: int, start_at: float
) -> ClientResult:
    """One load-generating process (a top-level function so ``spawn`` can import it)."""
    _without_sniffio_lookups()
    try:
        import uvloop

        result: ClientResult = uvloop.run(_drive(base_url, requests, concurrency, start_at))
        return result
    except ImportError:
        return asyncio.run(_drive(base_url, requests, concurrency, start_at))


def _cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[index]


def measure(requests: int, concurrency: int, clients: int) -> dict[str, Any]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "outbox.sandbox", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--rate", "0", "--latency-ms", "0", "--api-key", API_KEY, "--log-level", "warning"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(f"{url}/_sandbox/stats", proc)
        per_client = [
            requests // clients + (1 if i < requests % clients else 0) for i in range(clients)
        ]
        share = [
            max(1, concurrency // clients + (1 if i < concurrency % clients else 0))
            for i in range(clients)
        ]
        start_at = time.time() + 2.0  # every client connected and waiting before the clock starts
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=clients, mp_context=context) as pool:
            futures = [
                pool.submit(_client_process, f"{url}/v3", n, c, start_at)
                for n, c in zip(per_client, share, strict=True)
            ]
            time.sleep(max(0.0, start_at - time.time()))
            cpu_before = _cpu_seconds(proc.pid)
            results = [f.result() for f in futures]
            cpu_after = _cpu_seconds(proc.pid)
        server = httpx.get(f"{url}/_sandbox/stats", timeout=10).json()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    latencies = sorted(x for r in results for x in r.latencies)
    seconds = max(r.finished for r in results) - min(r.started for r in results)
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {
        "benchmark": "sandbox_ceiling",
        "endpoint": "email/send",
        "requests": len(latencies),
        "concurrency": concurrency,
        "client_processes": clients,
        "seconds": round(seconds, 3),
        "requests_per_second": round(len(latencies) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p90_ms": round(_percentile(latencies, 0.90) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else 0.0,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else 0.0,
        "errors": sum(r.errors for r in results),
        "server_cpu_seconds": round(server_cpu, 2) if server_cpu is not None else None,
        "server_cpu_us_per_request": round(server_cpu / len(latencies) * 1e6, 1)
        if server_cpu and latencies
        else None,
        "server_requests_per_cpu_second": round(len(latencies) / server_cpu)
        if server_cpu
        else None,
        "load_average_before": round(load, 2) if load is not None else None,
        "server_accepted": server["by_endpoint"]["email/send"]["accepted"],
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _table(result: dict[str, Any]) -> str:
    rows = [
        ("endpoint", result["endpoint"]),
        ("requests", f"{result['requests']:,}"),
        (
            "concurrency",
            f"{result['concurrency']} over {result['client_processes']} client process(es)",
        ),
        ("seconds", f"{result['seconds']:.2f}"),
        ("requests/s", f"{result['requests_per_second']:,.0f}"),
        ("p50 latency", f"{result['p50_ms']:.2f} ms"),
        ("p90 latency", f"{result['p90_ms']:.2f} ms"),
        ("p99 latency", f"{result['p99_ms']:.2f} ms"),
        ("max latency", f"{result['max_ms']:.2f} ms"),
        ("errors", str(result["errors"])),
        ("server CPU / request", f"{result['server_cpu_us_per_request']} us"),
        ("server req / CPU-second", f"{result['server_requests_per_cpu_second']}"),
        ("load average before", f"{result['load_average_before']}"),
        ("accepted by server", f"{result['server_accepted']:,}"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = ["sandbox ceiling (rate 0, latency 0)", "-" * (width + 24)]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_ceiling", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--clients", type=int, default=2, help="load-generating processes (default 2)"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.clients < 1:
        parser.error("--requests, --concurrency and --clients must be positive")
    result = measure(args.requests, args.concurrency, args.clients)
    print(_table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
