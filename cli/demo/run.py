"""``outbox demo``: the whole queue at work in one process, checked against the sandbox.

It starts the stack (:mod:`outbox.cli.demo.stack`), creates the template and the
suppression the mix needs, arms the sandbox's faults (a rate limit, random 5xx, a 5xx
burst, 429 storms), sends the mix (:mod:`outbox.cli.demo.mix`) through the public
producers and watches the records until every recipient is final. The verdict comes
from the sandbox, the independent oracle: its ``/_sandbox/messages`` must show every
deliverable recipient exactly once, the suppressed reader rejected, and nothing for the
invalid sends; the records must show nothing dead.

The recipient counts come from the chunks' states and the sandbox's rejections, not from
the API's ``succeeded``/``failed``: those count emails (one per chunk), not recipients.

Progress is read cheaply: one pipelined ``HMGET`` of the batch counters of the sends
not yet finished per tick (a full record costs two round trips per send); full records
are read once, at the end, for the summary.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
from rich.table import Table
from rich.text import Text

from outbox import Handle, ValidationError
from outbox.cli.demo.mix import GROUPS, TEMPLATE_ID, Plan, PlannedSend, build_plan
from outbox.cli.demo.stack import DemoStack, redacted_url
from outbox.sandbox import SandboxConfig, parse_rate
from outbox.worker.records import Record, load_record
from outbox.worker.runtime import Runtime
from outbox.worker.smtp2go.endpoints import SUPPRESSION_ADD, TEMPLATE_ADD
from outbox.worker.states import FINAL_STATES, State

__all__ = ["DemoOptions", "DemoReport", "run_demo"]

#: Seconds between two looks at the records.
POLL_INTERVAL = 0.2
#: The sandbox endpoints that send (the ones the rate limit and faults are about).
SEND_ENDPOINTS = ("email/send", "email/mime", "sms/send")


@dataclass
class DemoOptions:
    """The knobs of ``outbox demo``; see its ``--help``."""

    recipients: int = 3000
    rate: str = "50/s"
    fail_rate: float = 0.05
    #: 429 storms: how many, and how long each lasts.
    storms: int = 2
    storm_seconds: float = 0.5
    #: Consecutive requests answered 503 once, mid-run.
    burst_5xx: int = 8
    latency_ms: float = 20.0
    concurrency: int = 50
    redis_url: str | None = None
    timeout: float = 120.0
    seed: int | None = None


@dataclass
class Fault:
    """A fault the demo arms in the sandbox once this share of chunks is final."""

    at: float
    config: dict[str, Any]
    label: str
    fired: bool = False


@dataclass
class _Batch:
    handle: Handle
    planned: PlannedSend
    #: Recipients and chunks in a final state.
    final: int = 0
    chunks_final: int = 0
    done: bool = False


@dataclass
class DemoReport:
    """Everything the summary shows; ``as_json`` is what ``--json`` prints."""

    mode: str
    broker: str
    records: str
    recipients: int
    enqueued: int
    sent: int
    failed: int
    dead: int
    rejected_at_producer: int
    #: Recipients of the sends the plan made invalid on purpose.
    invalid_planned: int
    sends: int
    chunks: int
    chunks_retried: int
    attempts: int
    rate_limited: int
    injected_5xx: int
    api_requests: int
    sandbox_rate: float | None
    limit_rate: float
    achieved_rate: float
    accepted_rate: float
    #: The most sends the sandbox accepted within any one second: what a strict window at
    #: the service counts, and what the limiter promises to keep at or under the limit.
    busiest_second: int
    setup_seconds: float
    send_seconds: float
    wall_seconds: float
    timed_out: bool
    delivered: int
    deliverable: int
    duplicates: list[str]
    missing: list[str]
    unexpected: list[str]
    suppressed_ok: bool
    groups: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    @property
    def checks(self) -> dict[str, bool]:
        return {
            "all_final": not self.timed_out,
            "delivered_exactly_once": not (self.duplicates or self.missing or self.unexpected)
            and self.delivered == self.deliverable,
            "suppressed_recipient_rejected": self.suppressed_ok,
            "invalid_rejected_at_producer": self.rejected_at_producer == self.invalid_planned
            and self.enqueued == self.recipients - self.invalid_planned,
            "nothing_dead": self.dead == 0,
        }

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": self.checks,
            "mode": self.mode,
            "broker": self.broker,
            "records": self.records,
            "recipients": {
                "total": self.recipients,
                "enqueued": self.enqueued,
                "sent": self.sent,
                "failed": self.failed,
                "dead": self.dead,
                "rejected_at_producer": self.rejected_at_producer,
            },
            "delivery": {
                "deliverable": self.deliverable,
                "delivered": self.delivered,
                "duplicates": self.duplicates,
                "missing": self.missing,
                "unexpected": self.unexpected,
            },
            "sends": self.sends,
            "chunks": {
                "total": self.chunks,
                "retried": self.chunks_retried,
                "attempts": self.attempts,
            },
            "sandbox": {
                "api_requests": self.api_requests,
                "rate_limited_429": self.rate_limited,
                "injected_5xx": self.injected_5xx,
            },
            "rate": {
                "sandbox_per_second": self.sandbox_rate,
                "limit_per_second": self.limit_rate,
                "achieved_per_second": round(self.achieved_rate, 2),
                "accepted_per_second": round(self.accepted_rate, 2),
                "busiest_second": self.busiest_second,
            },
            "seconds": {
                "setup": round(self.setup_seconds, 2),
                "sending": round(self.send_seconds, 2),
                "wall": round(self.wall_seconds, 2),
            },
            "groups": self.groups,
            "faults": self.faults,
        }


def _busiest(times: list[float], period: float) -> int:
    """The most of ``times`` that fall within any one ``period`` (a sliding window)."""
    ordered = sorted(times)
    most = start = 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= period:
            start += 1
        most = max(most, end - start + 1)
    return most


def _per_second(rate: str) -> float | None:
    parsed = parse_rate(rate)
    return parsed.count / parsed.period if parsed else None


def outbox_rate_for(sandbox_rate: str) -> str:
    """``OUTBOX_RATE_LIMIT`` for the sandbox's limit: the limit itself, which outbox holds
    exactly, as an operator sets it to the account's (unlimited: 1000/s)."""
    parsed = parse_rate(sandbox_rate)
    return str(parsed) if parsed else "1000/s"


def demo_settings(options: DemoOptions) -> dict[str, str]:
    """Settings pinned for the demo (whatever the environment says): fast retries."""
    return {
        "OUTBOX_RATE_LIMIT": outbox_rate_for(options.rate),
        "OUTBOX_RETRY_BASE": "0.2",
        "OUTBOX_RETRY_CAP": "2",
        "OUTBOX_COOLDOWN_SECONDS": "1",
        # Enough attempts for one chunk to meet every injected fault and still go: the
        # whole 5xx burst, a refusal in each storm, and two to spare.
        "OUTBOX_MAX_ATTEMPTS": str(max(8, options.burst_5xx + options.storms + 2)),
        "OUTBOX_BULK_THRESHOLD": "10",
        "OUTBOX_AMBIGUOUS_POLICY": "resend",
        "SMTP2GO_TIMEOUT": "5",
    }


def fault_schedule(options: DemoOptions) -> list[Fault]:
    """The first storm and the 5xx burst meet the first requests, the other storms later.

    A fleet at the limit has a window's worth of requests on the wire at once, so a fault
    armed once some share of the chunks is final can find nothing left to refuse. Armed
    at the start, both are certain to be met: the storm refuses the first requests, and
    the burst answers the retries that follow its cool-down."""
    faults = [
        Fault(
            at=0.8 * i / options.storms,
            config={"storm_seconds": options.storm_seconds},
            label=f"429 storm: every request refused for {options.storm_seconds:g} s",
        )
        for i in range(options.storms)
    ]
    if options.burst_5xx:
        faults.append(
            Fault(
                at=0.0,
                config={"fail_next": options.burst_5xx, "fail_status": 503},
                label=f"5xx burst: the next {options.burst_5xx} requests answer 503",
            )
        )
    return sorted(faults, key=lambda f: f.at)


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


@contextmanager
def _quiet_logging(console: Console | None, secret: str) -> Iterator[None]:
    """Warnings (and worse) from the worker above the progress display, key redacted."""
    from outbox.worker.logs import install_secret_filter

    root = logging.getLogger()
    handler: logging.Handler
    if console is not None:
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, markup=False)
    else:
        handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    install_secret_filter(secret)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)


def _progress_snapshot(rt: Runtime, batches: list[_Batch]) -> tuple[int, int]:
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


def _sandbox_stats(client: Any) -> dict[str, Any]:
    response = client.get("/_sandbox/stats")
    response.raise_for_status()
    return dict(response.json())


def _send_counters(stats: dict[str, Any]) -> tuple[int, int, int]:
    """``(requests, 429s, injected 5xx)`` over the send endpoints."""
    by = stats.get("by_endpoint", {})
    rows = [by.get(path, {}) for path in SEND_ENDPOINTS]
    return (
        sum(int(r.get("requests", 0)) for r in rows),
        sum(int(r.get("rate_limited", 0)) for r in rows),
        sum(int(r.get("injected_failures", 0)) for r in rows),
    )


def _setup_sandbox(rt: Runtime, control: Any, options: DemoOptions, plan: Plan) -> None:
    """The template the welcome emails use, the reader who unsubscribed, then faults."""
    rt.client.call(
        TEMPLATE_ADD,
        {
            "id": TEMPLATE_ID,
            "template_name": "Welcome",
            "subject": "Welcome to Acme, {{ name }}",
            "html_body": "<p>Hi {{ name }}, your account {{ account }} is ready.</p>",
            "text_body": "Hi {{ name }}, your account {{ account }} is ready.",
        },
    )
    rt.client.call(
        SUPPRESSION_ADD, {"email_address": plan.suppressed, "block_description": "unsubscribed"}
    )
    # Faults are armed only now, so the two calls above cannot be refused by them.
    # The faults are for the sends: a look-up or a quota read never spends the 5xx burst.
    faults = {"fail_rate": options.fail_rate, "fail_endpoints": list(SEND_ENDPOINTS)}
    control.post("/_sandbox/config", json=faults).raise_for_status()


def _outcome(record: Record, rejected: set[str]) -> tuple[int, int]:
    """``(sent, failed)`` recipients of a record: a ``sent`` chunk's recipients were
    accepted, less those the API rejected afterwards (suppressed); a ``failed`` chunk's
    failed. Dead chunks are counted apart."""
    sent = failed = 0
    for chunk in record.chunks:
        if chunk.state is State.SENT:
            refused = sum(1 for r in chunk.recipients if r.lower() in rejected)
            sent += len(chunk.recipients) - refused
            failed += refused
        elif chunk.state is State.FAILED:
            failed += len(chunk.recipients)
    return sent, failed


def run_demo(
    options: DemoOptions,
    console: Console | None = None,
) -> DemoReport:
    """Run the demo; ``console`` shows live progress (``None``: silent)."""
    started = time.monotonic()
    run = uuid.uuid4().hex[:8]
    plan = build_plan(options.recipients, run=run, seed=options.seed)
    stack = DemoStack(
        sandbox_config=SandboxConfig(
            rate=options.rate,
            latency_ms=options.latency_ms,
            fail_rate=0.0,
            seed=options.seed,
            # Going over the limit costs a one-second timeout with hints, not the real
            # service's minute without: the demo shows retries, and must end quickly.
            penalty=1.0,
            rate_headers=True,
        ),
        settings_overrides=demo_settings(options),
        concurrency=options.concurrency,
        redis_url=options.redis_url,
    )
    with _quiet_logging(console, stack.api_key):
        try:
            rt = stack.start()
            with stack.control() as control:
                _setup_sandbox(rt, control, options, plan)
                if console is not None:
                    _print_header(console, options, plan, stack)
                setup_seconds = time.monotonic() - started
                report = _send_and_watch(
                    rt, control, stack, options, plan, console, started, setup_seconds
                )
        finally:
            stack.stop()
    # Shutting down is part of the wait a person sees.
    report.wall_seconds = time.monotonic() - started
    return report


def _print_header(console: Console, options: DemoOptions, plan: Plan, stack: DemoStack) -> None:
    assert stack.sandbox is not None
    settings = demo_settings(options)
    if stack.mode == "embedded":
        where = "embedded · fakeredis records · memory:// broker · in-process worker"
    else:
        broker, records = redacted_url(stack.broker_url), redacted_url(stack.records_url)
        where = f"Redis · broker {broker} · records {records} · in-process worker"
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    faults = [f"{options.fail_rate:.0%} random 5xx"]
    if options.storms:
        faults.append(f"{options.storms} x 429 storm of {options.storm_seconds:g} s")
    if options.burst_5xx:
        faults.append(f"a burst of {options.burst_5xx} x 503")
    grid.add_row(
        "sandbox",
        f"{stack.sandbox.url} · limit {options.rate} · {options.latency_ms:g} ms · "
        + " · ".join(faults),
    )
    grid.add_row(
        "outbox",
        f"limit {settings['OUTBOX_RATE_LIMIT']} · backoff {settings['OUTBOX_RETRY_BASE']}-"
        f"{settings['OUTBOX_RETRY_CAP']} s · {settings['OUTBOX_MAX_ATTEMPTS']} attempts · "
        f"{options.concurrency} worker threads",
    )
    groups = collections.Counter(s.group for s in plan.sends)
    mix = ", ".join(f"{groups[g]} {g}" for g in GROUPS if groups[g])
    grid.add_row("mix", f"{plan.recipients:,} recipients in {len(plan.sends)} sends: {mix}")
    console.print(f"[bold]outbox demo[/] [dim]{where}[/]")
    console.print(grid)


class _Producer(threading.Thread):
    """The web app: sends the plan through the producers while the worker delivers."""

    def __init__(self, plan: Plan, say: Callable[[str], None], advance: Callable[[int], None]):
        super().__init__(name="outbox-demo-producer", daemon=True)
        self.plan = plan
        self.say = say
        self.advance = advance
        self.batches: list[_Batch] = []
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
                    self.batches.append(_Batch(handle, planned))
                self.advance(len(planned.recipients))
        except BaseException as exc:  # re-raised by the main thread
            self.error = exc


def _send_and_watch(
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
                requests, limited, injected = _send_counters(_sandbox_stats(control))
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
    stats = _sandbox_stats(control)
    response = control.get("/_sandbox/messages")
    response.raise_for_status()
    messages = list(response.json()["messages"])
    return _report(
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


def _group_row(group: str) -> dict[str, Any]:
    return {
        "group": group,
        "sends": 0,
        "chunks": 0,
        "recipients": 0,
        "sent": 0,
        "failed": 0,
        "retried_chunks": 0,
    }


def _report(
    *,
    stack: DemoStack,
    options: DemoOptions,
    plan: Plan,
    batches: list[_Batch],
    records: list[Record],
    invalid: list[tuple[PlannedSend, ValidationError]],
    stats: dict[str, Any],
    messages: list[dict[str, Any]],
    timed_out: bool,
    setup_seconds: float,
    send_seconds: float,
    started: float,
    fired: list[str],
) -> DemoReport:
    delivered: collections.Counter[str] = collections.Counter()
    refused: set[str] = set()
    times: list[float] = []
    for message in messages:
        if message.get("endpoint") not in SEND_ENDPOINTS:
            continue
        times.append(float(message.get("time", 0.0)))
        if message.get("endpoint") == "sms/send":
            delivered.update(str(d) for d in message.get("destination") or [])
        else:
            delivered.update(str(r).lower() for r in message.get("recipients") or [])
            refused.update(str(r).lower() for r in message.get("rejected") or [])
    deliverable = [r.lower() if "@" in r else r for r in plan.deliverable]
    expected = set(deliverable)
    by_id = {r.id: r for r in records}
    dead = sum(len(c.recipients) for r in records for c in r.chunks if c.state is State.DEAD)
    outcomes = {r.id: _outcome(r, refused) for r in records}
    sent = sum(s for s, _ in outcomes.values())
    failed = sum(f for _, f in outcomes.values())
    suppressed = plan.suppressed.lower()
    suppressed_ok = suppressed in refused and suppressed not in delivered
    suppressed_ok = suppressed_ok and any(
        c.state is State.SENT and suppressed in (x.lower() for x in c.recipients)
        for r in records
        for c in r.chunks
    )
    requests, limited, injected = _send_counters(stats)
    window = (max(times) - min(times)) if len(times) > 1 else 0.0
    groups: dict[str, dict[str, Any]] = {}
    for batch in batches:
        record = by_id.get(batch.handle.id)
        row = groups.setdefault(batch.planned.group, _group_row(batch.planned.group))
        row["sends"] += 1
        row["recipients"] += batch.handle.recipients
        if record is not None:
            row["chunks"] += record.chunks_total
            row["sent"] += outcomes[record.id][0]
            row["failed"] += outcomes[record.id][1]
            row["retried_chunks"] += sum(1 for c in record.chunks if c.attempts > 1)
    for planned, _exc in invalid:
        row = groups.setdefault(planned.group, _group_row(planned.group))
        row["sends"] += 1
        row["recipients"] += len(planned.recipients)
    return DemoReport(
        mode=stack.mode,
        broker=redacted_url(stack.broker_url),
        records=redacted_url(stack.records_url),
        recipients=plan.recipients,
        enqueued=sum(b.handle.recipients for b in batches),
        sent=sent,
        failed=failed,
        dead=dead,
        rejected_at_producer=sum(len(p.recipients) for p, _ in invalid),
        invalid_planned=plan.invalid_recipients,
        sends=len(plan.sends),
        chunks=sum(r.chunks_total for r in records),
        chunks_retried=sum(1 for r in records for c in r.chunks if c.attempts > 1),
        attempts=sum(r.attempts for r in records),
        rate_limited=limited,
        injected_5xx=injected,
        api_requests=requests,
        sandbox_rate=_per_second(options.rate),
        limit_rate=_per_second(demo_settings(options)["OUTBOX_RATE_LIMIT"]) or 0.0,
        achieved_rate=requests / window if window else 0.0,
        accepted_rate=(len(times) - 1) / window if window else 0.0,
        busiest_second=_busiest(times, 1.0),
        setup_seconds=setup_seconds,
        send_seconds=send_seconds,
        wall_seconds=time.monotonic() - started,
        timed_out=timed_out,
        delivered=sum(delivered[r] for r in expected),
        deliverable=len(deliverable),
        duplicates=sorted(a for a, n in delivered.items() if n > 1)[:20],
        missing=sorted(expected - set(delivered))[:20],
        unexpected=sorted(set(delivered) - expected)[:20],
        suppressed_ok=suppressed_ok,
        groups=[groups[g] for g in GROUPS if g in groups],
        faults=fired,
    )
