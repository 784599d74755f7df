"""Producer: what ``send_email`` costs the web app that calls it.

No workers run: this is only the caller's side, on the benchmark databases. Two shapes:

* **one big call**: ``send_email`` to ``--recipients`` addresses (10,000: 100 chunks,
  routed to the ``bulk`` queue), repeated ``--repeat`` times;
* **many small calls**: ``--singles`` single-recipient ``send_email`` calls;
* **one huge call**: ``send_email`` to ``--huge`` addresses (1,000,000: 10,000 chunks),
  while another client sends ``PING`` every millisecond: the call's time, the longest
  ``PING``, Redis's slow log (threshold 10 ms) and the Redis memory per recipient.

Each is measured against a plain loop of ``app.send_task`` publishing the same task
messages (same names, args and queues) with nothing recorded, which is the floor a
producer on Celery pays. Reported: wall time per call, Redis round trips and commands
per call (counted on this process's redis-py connections, broker and records alike),
and the server's ``INFO commandstats`` delta per call.

    python -m bench.producer [--recipients 10000] [--singles 10000] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any

from bench import harness as h
from outbox.core.text import as_text

NAME = "producer"
TARGET_BIG_CALL_MS = 100.0
#: The huge call's targets: the call, another client's longest PING, memory per recipient.
TARGET_HUGE_SECONDS = 3.0
TARGET_PING_MS = 20.0
TARGET_BYTES_PER_RECIPIENT = 60.0
#: Redis's slow-log line: no command or script may run longer.
SLOWLOG_US = 10_000


#: Pings Redis every millisecond until told to stop; prints how many and the longest (ms).
_PINGER = """
import sys, threading, time, redis
client = redis.Redis.from_url(sys.argv[1])
client.ping()
longest, count, stop = 0.0, 0, threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
print("ready", flush=True)
while not stop.is_set():
    begin = time.perf_counter()
    client.ping()
    longest = max(longest, time.perf_counter() - begin)
    count += 1
    time.sleep(0.001)
print(count, longest * 1000, flush=True)
"""


def huge(n: int) -> dict[str, Any]:
    """One ``send_email`` to ``n`` recipients while another client pings Redis."""
    from outbox import send_email

    message = h.email_payload(0)
    recipients = [f"reader{i}@example.org" for i in range(n)]
    admin = h.redis_client()
    previous = admin.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    h.flush()  # before the slow log is cleared: a FLUSHDB is no part of the send
    admin.config_set("slowlog-log-slower-than", SLOWLOG_US)
    admin.slowlog_reset()
    before = int(admin.info("memory")["used_memory"])
    # Another client, in a process of its own: this one's threads would wait for the GIL
    # while the send builds its chunks, and a ping would measure that, not Redis.
    pinger = subprocess.Popen(
        [sys.executable, "-c", _PINGER, h.RECORDS_URL],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert pinger.stdout is not None
    pinger.stdout.readline()  # it pings
    begin = time.perf_counter()
    handle = send_email(
        message["sender"], recipients, message["subject"], text_body=message["text_body"]
    )
    seconds = time.perf_counter() - begin
    time.sleep(0.05)
    out, _ = pinger.communicate("stop\n", timeout=30)
    count, longest = (float(x) for x in out.split())
    pings = [longest / 1000] * int(count)
    after = int(admin.info("memory")["used_memory"])
    slow = admin.slowlog_get(128)
    admin.config_set("slowlog-log-slower-than", previous)
    status_begin = time.perf_counter()
    handle.status()
    status_ms = (time.perf_counter() - status_begin) * 1000
    per_recipient = (after - before) / n
    longest_ping = max(pings) * 1000
    return {
        "recipients": n,
        "chunks": handle.chunks,
        "call_seconds": round(seconds, 3),
        "longest_ping_ms": round(longest_ping, 2),
        "pings": len(pings),
        "slow_commands": [
            {
                "ms": round(e["duration"] / 1000, 2),
                "command": as_text(e["command"], errors="replace")[:80],
            }
            for e in slow
        ],
        "redis_bytes_per_recipient": round(per_recipient, 1),
        "status_ms": round(status_ms, 1),
        "targets": {
            "call_seconds": TARGET_HUGE_SECONDS,
            "longest_ping_ms": TARGET_PING_MS,
            "redis_bytes_per_recipient": TARGET_BYTES_PER_RECIPIENT,
            "slow_log": "empty",
        },
        "met": {
            "call_seconds": seconds <= TARGET_HUGE_SECONDS,
            "longest_ping_ms": longest_ping <= TARGET_PING_MS,
            "redis_bytes_per_recipient": per_recipient <= TARGET_BYTES_PER_RECIPIENT,
            "slow_log": not slow,
        },
    }


def _measure(fn: Any, calls: int, counter: h.RoundTrips) -> dict[str, Any]:
    """Run ``fn(i)`` ``calls`` times; wall time and Redis cost per call."""
    before = h.commandstats()
    counter.reset()  # after the INFO above: count only the calls measured
    walls: list[float] = []
    with h.progress() as bar:
        task = bar.add_task(getattr(fn, "label", fn.__name__), total=calls)
        for i in range(calls):
            begin = time.perf_counter()
            fn(i)
            walls.append(time.perf_counter() - begin)
            if i % 50 == 49 or i == calls - 1:
                bar.update(task, completed=i + 1)
    trips, commands = counter.round_trips, dict(counter.commands)
    delta = h.stats_delta(before, h.commandstats())
    for own in ("info", "client|setinfo", "hello", "select"):  # the snapshots' connection
        delta.pop(own, None)
    return {
        "calls": calls,
        "total_seconds": round(sum(walls), 3),
        "median_ms": round(statistics.median(walls) * 1000, 3),
        "mean_ms": round(statistics.fmean(walls) * 1000, 3),
        "min_ms": round(min(walls) * 1000, 3),
        "max_ms": round(max(walls) * 1000, 3),
        "round_trips_per_call": round(trips / calls, 2),
        "commands_per_call": {k: round(v / calls, 2) for k, v in sorted(commands.items())},
        "server_commands_per_call": round(sum(delta.values()) / calls, 1),
        "server_evalsha_per_call": round(delta.get("evalsha", 0) / calls, 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from outbox import send_email
    from outbox.worker.celery_app import app

    result: dict[str, Any] = {
        "benchmark": NAME,
        "machine": h.machine(),
        "quick": args.quick,
        "settings": {"recipients": args.recipients, "singles": args.singles},
    }
    h.flush()
    h.install_producer()
    message = h.email_payload(0)
    recipients = [f"reader{i}@example.org" for i in range(args.recipients)]
    chunks = [recipients[i : i + 100] for i in range(0, len(recipients), 100)]
    queue = "bulk" if len(chunks) > 10 else "email"
    base = {k: v for k, v in message.items() if k != "to"}

    def big_call(i: int) -> None:
        send_email(
            message["sender"],
            recipients,
            message["subject"],
            html_body=message["html_body"],
            text_body=message["text_body"],
        )

    def big_plain(i: int) -> None:
        with app.producer_or_acquire() as producer:
            for j, part in enumerate(chunks):
                app.send_task(
                    "outbox.send_email",
                    args=[f"plain{i}.{j}", {**base, "to": part}],
                    queue=queue,
                    routing_key=queue,
                    producer=producer,
                )

    def single_call(i: int) -> None:
        h.send_single(i)

    def single_plain(i: int) -> None:
        app.send_task(
            "outbox.send_email",
            args=[f"plain.{i}", h.email_payload(i)],
            queue="email",
            routing_key="email",
        )

    big_call.label = f"send_email to {args.recipients:,}"  # type: ignore[attr-defined]
    big_plain.label = f"send_task x {len(chunks)} (plain)"  # type: ignore[attr-defined]
    single_call.label = "send_email x 1 recipient"  # type: ignore[attr-defined]
    single_plain.label = "send_task (plain)"  # type: ignore[attr-defined]

    try:
        with h.RoundTrips() as counter:
            big_call(-1)  # warm: imports, connections, scripts loaded
            single_plain(-1)
            with h.stage(f"one call to {args.recipients:,} recipients, x{args.repeat}"):
                result["big_call"] = _measure(big_call, args.repeat, counter)
                result["big_plain"] = _measure(big_plain, args.repeat, counter)
            with h.stage(f"{args.singles:,} single-recipient calls"):
                result["single_call"] = _measure(single_call, args.singles, counter)
                result["single_plain"] = _measure(single_plain, args.singles, counter)
        with h.stage(f"one call to {args.huge:,} recipients, Redis watched"):
            result["huge"] = huge(args.huge)
    finally:
        h.flush()
    result["chunks_per_big_call"] = len(chunks)
    result["ratios"] = {
        "big_call_vs_plain": h.ratio(
            result["big_call"]["median_ms"], result["big_plain"]["median_ms"]
        ),
        "single_call_vs_plain": h.ratio(
            result["single_call"]["mean_ms"], result["single_plain"]["mean_ms"]
        ),
    }
    result["target"] = {
        "big_call_median_ms": TARGET_BIG_CALL_MS,
        "met": result["big_call"]["median_ms"] < TARGET_BIG_CALL_MS,
    }
    return result


def show(result: dict[str, Any]) -> None:
    rows = []
    labels = [
        ("big_call", f"send_email, {result['settings']['recipients']:,} recipients"),
        ("big_plain", f"plain send_task x {result['chunks_per_big_call']} (baseline)"),
        ("single_call", "send_email, 1 recipient"),
        ("single_plain", "plain send_task x 1 (baseline)"),
    ]
    for key, label in labels:
        r = result[key]
        rows.append(
            (
                label,
                r["calls"],
                r["median_ms"],
                r["mean_ms"],
                r["max_ms"],
                r["round_trips_per_call"],
                sum(r["commands_per_call"].values()).__round__(2),
                r["server_evalsha_per_call"],
            )
        )
    columns = [
        "call", "calls", "median ms", "mean ms", "max ms", "round trips/call",
        "commands/call", "evalsha/call",
    ]  # fmt: skip
    h.console.print(h.table("producer cost per call (no workers)", columns, rows))
    verdict = "met" if result["target"]["met"] else "NOT met"
    h.console.print(
        f"big call: {result['big_call']['median_ms']} ms median "
        f"(target < {TARGET_BIG_CALL_MS:g} ms: {verdict}), "
        f"{result['ratios']['big_call_vs_plain']:.2f}x the plain send_task loop; "
        f"single call {result['ratios']['single_call_vs_plain']:.2f}x a plain send_task"
    )
    big = result["huge"]
    met = big["met"]
    huge_rows: list[tuple[str, str, str, bool, str]] = [
        ("the call", f"{big['call_seconds']} s", f"<= {TARGET_HUGE_SECONDS:g} s",
         met["call_seconds"], "7-9 s"),
        ("another client's longest PING", f"{big['longest_ping_ms']} ms",
         f"<= {TARGET_PING_MS:g} ms", met["longest_ping_ms"], "1.4 s (300,000)"),
        ("slow log (> 10 ms)", f"{len(big['slow_commands'])} entries", "empty",
         met["slow_log"], "3.6 s script"),
        ("Redis per recipient", f"{big['redis_bytes_per_recipient']} B",
         f"<= {TARGET_BYTES_PER_RECIPIENT:g} B", met["redis_bytes_per_recipient"], "190-209 B"),
        ("status() of it", f"{big['status_ms']} ms", "", True, ""),
    ]  # fmt: skip
    h.console.print(
        h.table(
            f"send_email to {big['recipients']:,} recipients ({big['chunks']:,} chunks)",
            ["measure", "now", "target", "met", "0.2.0 (issue's figures)"],
            [(a, b, c, "yes" if d else "NO", e) for a, b, c, d, e in huge_rows],
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.producer", description=__doc__)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="times the big call is made")
    parser.add_argument("--singles", type=int, default=10_000)
    parser.add_argument("--huge", type=int, default=1_000_000, help="recipients of the huge call")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.recipients, args.repeat, args.singles, args.huge = 1000, 2, 200, 20_000
    result = run(args)
    show(result)
    h.write_result(NAME, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
