"""Watching the demo run: the producer thread, the progress bars and the line under them.

One :class:`Watch` lasts the whole run, so the bars carry on from one phase to the next:
the mix under faults, then the quota phase (:mod:`.quota`). Each look at the records is
one pipelined ``HMGET`` of the counters of the sends not yet finished (a full record
costs two round trips per send); full records are read once, at the end, for the
summary. The requests bar counts what the sandbox counted: every request to a send
endpoint, refused or not, out of those made plus one for each chunk not yet final.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
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
from outbox.cli.demo.counters import sandbox_stats, send_counters
from outbox.cli.demo.mix import Plan, PlannedSend
from outbox.cli.demo.options import Fault
from outbox.core.states import FINAL_STATES, State
from outbox.core.store.batch import FINISHED_AT, count_field
from outbox.worker.runtime import Runtime

__all__ = ["Tick", "Tracked", "Watch"]

#: Seconds between two looks at the records.
POLL_INTERVAL = 0.2

#: The per-state chunk counters the progress display reads.
_COUNTED = (
    State.CANCELED,
    State.SENDING,
    State.RETRYING,
    State.THROTTLED,
    State.SENT,
    State.FAILED,
    State.DEAD,
)


@dataclass
class Tracked:
    """A send the demo made, and how far its chunks are."""

    handle: Handle
    planned: PlannedSend
    #: Recipients and chunks in a final state.
    final: int = 0
    chunks_final: int = 0
    #: Chunks waiting for the monthly quota.
    throttled: int = 0
    done: bool = False


@dataclass(frozen=True)
class Tick:
    """What one look at the records (and, with a display, the sandbox) found."""

    #: Chunks of unfinished sends talking to the API, waiting to retry, or for the quota.
    sending: int
    retrying: int
    throttled: int
    #: Requests to the send endpoints, 429s and injected 5xx so far (with a display).
    requests: int = 0
    limited: int = 0
    injected: int = 0


class _RateColumn(ProgressColumn):
    """Recipients (or requests) per second, as the bar's task counts them."""

    def render(self, task: Task) -> Text:
        # Once done, the whole run's average: the last moments (a quota wait) say little.
        elapsed = task.elapsed if task.finished else None
        speed = task.completed / elapsed if elapsed else task.speed
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


class _Producer(threading.Thread):
    """The web app: sends through the producers while the worker delivers."""

    def __init__(self, sends: list[PlannedSend], watch: Watch) -> None:
        super().__init__(name="outbox-demo-producer", daemon=True)
        self.sends = sends
        self.watch = watch
        self.error: BaseException | None = None

    def run(self) -> None:
        watch = self.watch
        try:
            for planned in self.sends:
                if watch.stopping.is_set():
                    return
                try:
                    handle = planned.call()
                except ValidationError as exc:
                    watch.invalid.append((planned, exc))
                    watch.say(
                        f"  [yellow]✗ refused at the producer[/]: {planned.kind} to "
                        f"{escape(', '.join(planned.recipients))} ({', '.join(exc.errors)})"
                    )
                else:
                    watch.batches.append(Tracked(handle, planned))
                watch.enqueued(len(planned.recipients), planned.chunks)
        except BaseException as exc:  # re-raised by the main thread
            self.error = exc


class Watch:
    """The progress display, and the looks at the records and the sandbox behind it."""

    def __init__(
        self,
        rt: Runtime,
        control: Any,
        plan: Plan,
        console: Console | None,
        timeout: float,
    ) -> None:
        self.rt = rt
        self.control = control
        self.plan = plan
        self.console = console
        self.batches: list[Tracked] = []
        self.invalid: list[tuple[PlannedSend, ValidationError]] = []
        #: The faults fired, as the summary lists them.
        self.fired: list[str] = []
        self.timed_out = False
        self.stopping = threading.Event()
        self._faults: list[Fault] = []
        self._fault_chunks = 0
        self._chunks_queued = 0
        self._producer: _Producer | None = None
        self.started = time.monotonic()
        self._ended: float | None = None
        self.deadline = self.started + timeout
        self.timeout = timeout

        eta = _EtaColumn()
        self.progress = Progress(
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
        deliverable = plan.recipients - plan.invalid_recipients
        self._queued_bar = self.progress.add_task(
            "enqueued", total=plan.recipients, unit="recipients"
        )
        self._requests_bar = self.progress.add_task(
            "requests", total=plan.chunks, unit="to the API"
        )
        self._final_bar = self.progress.add_task("done", total=deliverable, unit="recipients")
        eta.progress, eta.borrow = self.progress, {self._final_bar: self._requests_bar}
        self._status = _StatusLine()
        self._live = Live(
            Group(self.progress, self._status), console=console, refresh_per_second=10
        )

    # -- the display ----------------------------------------------------------------------

    def __enter__(self) -> Watch:
        if self.console is not None:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._ended = time.monotonic()
        self.stopping.set()  # the producer stops too, on Ctrl-C or an error
        if self.console is not None:
            self._live.stop()
            self.console.print()
        if self._producer is not None:
            self._producer.join(5.0)

    def say(self, message: str) -> None:
        """A line above the bars (rich markup)."""
        if self.console is not None and not self.stopping.is_set():
            self._live.console.print(message)

    def elapsed(self) -> float:
        """Seconds since the first send (until the watch ended)."""
        return (self._ended or time.monotonic()) - self.started

    def enqueued(self, recipients: int, chunks: int) -> None:
        self.progress.advance(self._queued_bar, recipients)
        self._chunks_queued += chunks

    # -- what the run does ----------------------------------------------------------------

    def arm(self, faults: list[Fault], chunks: int) -> None:
        """Fire ``faults`` as their share of ``chunks`` is queued."""
        self._faults, self._fault_chunks = faults, chunks

    def disarm(self) -> None:
        self._faults = []

    def produce(self, sends: list[PlannedSend]) -> None:
        """Send these in a thread of their own, as a web app would (after the last ones)."""
        if self._producer is not None:
            self._producer.join()
        self._producer = _Producer(sends, self)
        self._producer.start()

    def producing(self) -> bool:
        return self._producer is not None and self._producer.is_alive()

    def until(self, done: Callable[[Tick], bool]) -> Tick:
        """Look every ``POLL_INTERVAL`` until the producer is through and ``done`` holds
        (or the run's time is up: ``timed_out``)."""
        while True:
            producing = self.producing()
            tick = self.tick()
            if self._producer is not None and self._producer.error is not None:
                raise self._producer.error
            if not producing and done(tick):
                return tick
            if time.monotonic() > self.deadline:
                self.timed_out = True
                self.say(f"  [red]timed out after {self.timeout:g} s[/]")
                return tick
            time.sleep(POLL_INTERVAL)

    def pause(self, seconds: float) -> Tick:
        """Keep the display going for ``seconds``, nothing else."""
        ends = time.monotonic() + seconds
        return self.until(lambda _tick: time.monotonic() >= ends)

    def all_done(self, _tick: Tick | None = None) -> bool:
        return all(b.done for b in self.batches)

    def tick(self) -> Tick:
        """One look: the counters of unfinished sends, the faults due, the display."""
        batches = list(self.batches)
        sending, retrying, throttled = _refresh(self.rt, batches)
        chunks_final = sum(b.chunks_final for b in batches)
        self.progress.update(self._final_bar, completed=sum(b.final for b in batches))
        self._fire()
        tick = Tick(sending, retrying, throttled)
        if self.console is None:
            return tick
        requests, limited, injected = send_counters(sandbox_stats(self.control))
        tick = Tick(sending, retrying, throttled, requests, limited, injected)
        # Every chunk not yet final takes one request more, at least.
        left = self.plan.chunks - chunks_final
        self.progress.update(self._requests_bar, completed=requests, total=requests + left)
        self._status.text = _status_line(tick)
        self._live.refresh()
        return tick

    def _fire(self) -> None:
        # Faults follow the chunks queued (a 100-recipient chunk is one request, as one
        # of a single recipient): the chunks not yet queued are requests still to come,
        # which a burst armed now is sure to meet. By the chunks delivered it may not be:
        # after a cool-down the limiter lets a second's worth go at once, and a small run
        # can end between two looks, its faults armed after the last request.
        if not self._faults:
            return
        share = self._chunks_queued / self._fault_chunks if self._fault_chunks else 1.0
        for fault in self._faults:
            if not fault.fired and share >= fault.at:
                self.control.post("/_sandbox/config", json=fault.config).raise_for_status()
                fault.fired = True
                at = self.elapsed()
                self.fired.append(f"{at:.1f}s {fault.label}")
                self.say(f"  [magenta]⚡ {at:4.1f} s[/] sandbox: {fault.label}")

    def tracked(self, sends: Iterable[PlannedSend]) -> list[Tracked]:
        """The tracked sends made from these planned ones."""
        wanted = {id(s) for s in sends}
        return [b for b in self.batches if id(b.planned) in wanted]


def _refresh(rt: Runtime, batches: list[Tracked]) -> tuple[int, int, int]:
    """Refresh each unfinished send's counters in one round trip.

    Returns ``(chunks sending, retrying, throttled)`` over the unfinished sends.
    """
    pending = [b for b in batches if not b.done]
    if not pending:
        return 0, 0, 0
    names = [FINISHED_AT, *(count_field(state) for state in _COUNTED)]
    rows = rt.store.batches.fields([b.handle.id for b in pending], names)
    sending = retrying = throttled = 0
    for batch, row in zip(pending, rows, strict=True):
        finished, *counts = row
        by_state = dict(zip(_COUNTED, (int(c or 0) for c in counts), strict=True))
        batch.chunks_final = sum(by_state[s] for s in FINAL_STATES)
        batch.throttled = by_state[State.THROTTLED]
        batch.done = finished is not None
        # Recipients in final chunks, as a share of the send (its chunks are near equal).
        chunks, recipients = batch.handle.chunks, batch.handle.recipients
        share = 1.0 if batch.done or not chunks else min(1.0, batch.chunks_final / chunks)
        batch.final = round(recipients * share)
        sending += by_state[State.SENDING]
        retrying += by_state[State.RETRYING]
        throttled += batch.throttled
    return sending, retrying, throttled


def _status_line(tick: Tick) -> Text:
    line = Text.assemble(
        ("  in flight ", "dim"),
        (f"{tick.sending:<3}", "bold"),
        (" retrying ", "dim"),
        (f"{tick.retrying:<3}", "bold yellow" if tick.retrying else "bold"),
    )
    if tick.throttled:
        line.append_text(
            Text.assemble((" throttled ", "dim"), (f"{tick.throttled}", "bold yellow"))
        )
    line.append_text(
        Text.assemble(
            (" · 429s ", "dim"),
            (f"{tick.limited}", "bold magenta" if tick.limited else "bold"),
            ("  5xx ", "dim"),
            (f"{tick.injected}", "bold red" if tick.injected else "bold"),
        )
    )
    return line
