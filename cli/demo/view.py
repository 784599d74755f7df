"""The demo's closing summary: what happened, how fast, and whether it was right."""

from __future__ import annotations

import sys

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from outbox.cli.demo.report import DemoReport

__all__ = ["render_summary", "stderr", "stdout"]

#: Width when stdout is not a terminal: wide enough for the summary's tables.
PIPE_WIDTH = 120


def stdout() -> Console:
    # Built per call: click's test runner swaps sys.stdout for each invocation.
    console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    return console


def stderr() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


_CHECK_TEXT = {
    "all_final": "every send reached a final state",
    "delivered_exactly_once": "every deliverable recipient reached the API exactly once",
    "suppressed_recipient_rejected": "the suppressed reader was accepted, then rejected by the API",
    "invalid_rejected_at_producer": "invalid sends refused at the producer, nothing enqueued",
    "nothing_dead": "no chunk exhausted its retries",
    "canceled_send_never_sent": "the reminder canceled before its time never reached the API",
    "quota_waited_then_sent": "the announcement waited throttled for the quota, then went",
}


def _n(value: int) -> str:
    return f"{value:,}"


def _rate(value: float | None) -> str:
    return "unlimited" if value is None else f"{value:g}/s"


def render_summary(report: DemoReport, console: Console) -> None:
    """Print the summary tables and the verdict."""
    totals = Table(box=None, show_header=False, padding=(0, 1), expand=False)
    totals.add_column(style="dim")
    totals.add_column(justify="right", style="bold")
    totals.add_column(style="dim")
    totals.add_row("recipients", _n(report.recipients), f"in {report.sends} sends")
    totals.add_row(
        "[green]sent[/]", _n(report.sent), f"accepted by the API ({report.chunks} chunks)"
    )
    totals.add_row("[yellow]failed[/]", _n(report.failed), "rejected by the API (suppressed)")
    totals.add_row("[red]dead[/]" if report.dead else "dead", _n(report.dead), "retries exhausted")
    totals.add_row(
        "rejected at producer", _n(report.rejected_at_producer), "invalid input, never enqueued"
    )
    totals.add_row(
        "chunks retried",
        _n(report.chunks_retried),
        f"attempts > 1 ({_n(report.attempts)} attempts for {_n(report.chunks)} chunks)",
    )
    totals.add_row("429s", _n(report.rate_limited), "rate limited by the sandbox")
    totals.add_row("5xx", _n(report.injected_5xx), "injected by the sandbox")
    totals.add_row(
        "send rate",
        f"{report.achieved_rate:.1f}/s",
        f"API requests (limit {_rate(report.limit_rate)}, sandbox {_rate(report.sandbox_rate)}); "
        f"{report.accepted_rate:.1f}/s accepted, at most {report.busiest_second} in any one second",
    )
    if report.canceled:
        totals.add_row(
            "canceled",
            _n(report.canceled["chunks_canceled"]),
            "scheduled reminder taken back before its time (`outbox.cancel`): never sent",
        )
    if report.quota is not None:
        q = report.quota
        totals.add_row(
            "throttled",
            _n(q.throttled_chunks),
            f"chunks ({_n(q.throttled_recipients)} recipients) of the announcement waited for "
            f"the quota ({_n(q.left)} left of {_n(q.used + q.left)}); raised to "
            f"{_n(q.raised_to)}, {q.released} released, all final after {q.seconds:.1f} s",
        )
    if report.redis_keys_removed is not None:
        totals.add_row(
            "Redis keys removed",
            _n(report.redis_keys_removed),
            "lasting ones the demo wrote; its records expire within the hour",
        )
    totals.add_row(
        "wall time",
        f"{report.wall_seconds:.1f} s",
        f"start-up {report.setup_seconds:.1f} s, sending {report.send_seconds:.1f} s",
    )

    groups = Table(box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold")
    groups.add_column("send", no_wrap=True)
    for name in ("sends", "chunks", "recipients", "sent", "failed", "retried"):
        groups.add_column(name, justify="right")
    for row in report.groups:
        invalid = row["group"] == "invalid"
        groups.add_row(
            row["group"],
            _n(row["sends"]),
            _n(row["chunks"]) if not invalid else "-",
            _n(row["recipients"]),
            Text(_n(row["sent"]), style="green") if not invalid else Text("-"),
            Text(_n(row["failed"]), style="yellow" if row["failed"] else "")
            if not invalid
            else Text(f"{row['recipients']} refused", style="yellow"),
            _n(row["retried_chunks"]) if not invalid else "-",
        )

    checks = Text()
    for name, passed in report.checks.items():
        mark = ("✓ ", "green") if passed else ("✗ ", "bold red")
        checks.append_text(Text.assemble(mark, (_CHECK_TEXT.get(name, name), "")))
        checks.append("\n")
    if report.missing or report.duplicates or report.unexpected:
        checks.append(
            f"  missing {report.missing[:5]} duplicates {report.duplicates[:5]} "
            f"unexpected {report.unexpected[:5]}\n",
            style="red",
        )
    verdict = (
        Text(
            f"All good: {_n(report.delivered)} of {_n(report.deliverable)} deliverable "
            "recipients delivered exactly once.",
            style="bold green",
        )
        if report.ok
        else Text("Something is wrong: see the failed checks above.", style="bold red")
    )
    console.print(
        Panel(
            Group(totals, groups, checks, verdict),
            title="[bold]outbox demo[/]",
            subtitle=f"{report.mode}: broker {report.broker}, records {report.records}",
            border_style="green" if report.ok else "red",
            expand=False,
        )
    )
