"""Watching the demo run: the producer thread, the progress bars and the line under them.

Progress is read cheaply: one pipelined ``HMGET`` of the batch counters of the sends
not yet finished per tick (a full record costs two round trips per send); full records
are read once, at the end, for the summary.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from outbox import Handle, ValidationError
from outbox.cli.demo.mix import Plan, PlannedSend
from outbox.cli.demo.options import DemoOptions, fault_schedule
from outbox.cli.demo.report import DemoReport, build_report, sandbox_stats, send_counters
from outbox.cli.demo.stack import DemoStack
from outbox.worker.records import load_record
from outbox.worker.runtime import Runtime
from outbox.worker.states import FINAL_STATES, State

__all__ = ["Tracked", "send_and_watch"]

#: Seconds between two looks at the records.
POLL_INTERVAL = 0.2


@dataclass
class Tracked:
    """A send the demo made, and how far its chunks are."""

    handle: Handle
    planned: PlannedSend
    #: Recipients and chunks in a final state.
    final: int = 0
    chunks_final: int = 0
    done: bool = False


class _RateColumn(ProgressColumn):
    """Recipients per second, as the bar's task counts them."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "  -/s", style="cyan")


class _EtaColumn(ProgressColumn):
    """Time left. The recipients' bar borrows the requests' estimate: a request carries
    one recipient or a hundred, so recipients arrive in lumps and their own rate
    predicts nothing, while requests go at the rate limit."""

    def __init__(self) -> None:
        super().__init__()
        self.progress: Progress | None = None
        self.borrow: dict[TaskID, TaskID] = {}

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("0:00", style="dim")
        source = task
        if self.progress is not None and task.id in self.borrow:
            source = self.progress.tasks[self.borrow[task.id]]
        left = source.time_remaining
        if left is None:
            return Text("-:--", style="dim")
        return Text(f"{int(left // 60)}:{int(left % 60):02d}", style="cyan")


class _StatusLine:
    """The line under the bars: what the records and the sandbox say right now."""

    def __init__(self) -> None:
        self.text = Text("")

    def __rich__(self) -> Text:
        return self.text


def _progress_snapshot(rt: Runtime, batches: list[Tracked]) -> tuple[int, int]:
    """Refresh each unfinished batch's counters in one round trip.

    Returns ``(chunks sending, chunks retrying)`` over the unfinished batches.
    """
    pending = [b for b in batches if not b.done]
    if not pending:
        return 0, 0
    names = ["finished_at", *(f"n:{state.value}" for state in _COUNTED)]
    rows = rt.store.batches.fields([b.handle.id for b in pending], names)
    sending = retrying = 0
    for batch, row in zip(pending, rows, strict=True):
        finished, *counts = row
        by_state = dict(zip(_COUNTED, (int(c or 0) for c in counts), strict=True))
        batch.chunks_final = sum(by_state[s] for s in FINAL_STATES)
        batch.done = finished is not None
        # Recipients in final chunks, as a share of the send (its chunks are near equal).
        chunks, recipients = batch.handle.chunks, batch.handle.recipients
        share = 1.0 if batch.done or not chunks else min(1.0, batch.chunks_final / chunks)
        batch.final = round(recipients * share)
        sending += by_state[State.SENDING]
        retrying += by_state[State.RETRYING]
    return sending, retrying


#: The per-state chunk counters the progress display reads.
_COUNTED = (State.SENDING, State.RETRYING, State.SENT, State.FAILED, State.DEAD)


class _Producer(threading.Thread):
    """The web app: sends the plan through the producers while the worker delivers."""

    def __init__(self, plan: Plan, say: Callable[[str], None], advance: Callable[[int], None]):
        super().__init__(name="outbox-demo-producer", daemon=True)
        self.plan = plan
        self.say = say
        self.advance = advance
        self.batches: list[Tracked] = []
        self.invalid: list[tuple[PlannedSend, ValidationError]] = []
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            for planned in self.plan.sends:
                if self.stopping.is_set():
                    return
                try:
                    handle = planned.call()
                except ValidationError as exc:
                    self.invalid.append((planned, exc))
                    self.say(
                        f"  [yellow]✗ refused at the producer[/]: {planned.kind} to "
                        f"{escape(', '.join(planned.recipients))} ({', '.join(exc.errors)})"
                    )
                else:
                    self.batches.append(Tracked(handle, planned))
                self.advance(len(planned.recipients))
        except BaseException as exc:  # re-raised by the main thread
            self.error = exc


def send_and_watch(
    rt: Runtime,
    control: Any,
    stack: DemoStack,
    options: DemoOptions,
    plan: Plan,
    console: Console | None,
    started: float,
    setup_seconds: float,
) -> DemoReport:
    faults = fault_schedule(options)
    fired: list[str] = []
    eta = _EtaColumn()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<9}"),
        BarColumn(bar_width=None),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]:<10}"),
        _RateColumn(),
        TextColumn("[dim]ETA[/]"),
        eta,
        TimeElapsedColumn(),
        console=console,
        auto_refresh=False,
        expand=True,
    )
    status = _StatusLine()
    deliverable = plan.recipients - plan.invalid_recipients
    queued_bar = progress.add_task("enqueued", total=plan.recipients, unit="recipients")
    chunks_bar = progress.add_task("requests", total=plan.chunks, unit="chunks")
    final_bar = progress.add_task("done", total=deliverable, unit="recipients")
    eta.progress, eta.borrow = progress, {final_bar: chunks_bar}
    live = Live(Group(progress, status), console=console, refresh_per_second=10)

    def say(message: str) -> None:
        if console is not None and not producer.stopping.is_set():
            live.console.print(message)

    producer = _Producer(plan, say, lambda n: progress.advance(queued_bar, n))
    timed_out = False
    send_started = time.monotonic()
    deadline = send_started + options.timeout
    with live if console is not None else _nothing(), _stopping(producer):
        producer.start()
        while True:
            producing = producer.is_alive()
            batches = list(producer.batches)
            sending, retrying = _progress_snapshot(rt, batches)
            chunks_final = sum(b.chunks_final for b in batches)
            progress.update(final_bar, completed=sum(b.final for b in batches))
            progress.update(chunks_bar, completed=chunks_final)
            # Faults follow requests, not recipients: a 100-recipient chunk is one request.
            share = chunks_final / plan.chunks if plan.chunks else 1.0
            for fault in faults:
                if not fault.fired and share >= fault.at:
                    control.post("/_sandbox/config", json=fault.config).raise_for_status()
                    fault.fired = True
                    when = time.monotonic() - send_started
                    fired.append(f"{when:.1f}s {fault.label}")
                    say(f"  [magenta]⚡ {when:4.1f} s[/] sandbox: {fault.label}")
            if console is not None:
                requests, limited, injected = send_counters(sandbox_stats(control))
                status.text = Text.assemble(
                    ("  in flight ", "dim"),
                    (f"{sending:<3}", "bold"),
                    (" retrying ", "dim"),
                    (f"{retrying:<3}", "bold yellow" if retrying else "bold"),
                    (" · API requests ", "dim"),
                    (f"{requests:,}", "bold"),
                    ("  429s ", "dim"),
                    (f"{limited}", "bold magenta" if limited else "bold"),
                    ("  5xx ", "dim"),
                    (f"{injected}", "bold red" if injected else "bold"),
                )
                live.refresh()
            if producer.error is not None:
                raise producer.error
            if not producing and all(b.done for b in batches):
                break
            if time.monotonic() > deadline:
                timed_out = True
                say(f"  [red]timed out after {options.timeout:g} s[/]")
                break
            time.sleep(POLL_INTERVAL)
        send_seconds = time.monotonic() - send_started
    if console is not None:
        console.print()
    producer.join(5.0)
    batches = list(producer.batches)
    records = [load_record(rt.store, b.handle.id) for b in batches]
    stats = sandbox_stats(control)
    response = control.get("/_sandbox/messages")
    response.raise_for_status()
    messages = list(response.json()["messages"])
    return build_report(
        stack=stack,
        options=options,
        plan=plan,
        batches=batches,
        records=[r for r in records if r is not None],
        invalid=producer.invalid,
        stats=stats,
        messages=messages,
        timed_out=timed_out,
        setup_seconds=setup_seconds,
        send_seconds=send_seconds,
        started=started,
        fired=fired,
    )


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def _stopping(producer: _Producer) -> Iterator[None]:
    """Stop the producer thread when the watch ends, also on Ctrl-C or an error."""
    try:
        yield
    finally:
        producer.stopping.set()
