"""``outbox demo``: the whole queue at work in one process, checked against the sandbox.

It starts the stack (:mod:`.stack`), creates the template and the suppression the mix
needs, arms the sandbox's faults (a rate limit, random 5xx, a 5xx burst, 429 storms),
sends the mix (:mod:`.mix`) through the public producers and watches the records until
every recipient is final (:mod:`.watch`). Then, unless turned off, the quota phase
(:mod:`.quota`): the campaign, held back until now, meets a month's allowance too short
for it, waits ``throttled`` and goes once the allowance is raised. :mod:`.report` works
out the summary and its verdict from the records and the sandbox.
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

from outbox import cancel
from outbox.cli.demo.counters import SEND_ENDPOINTS
from outbox.cli.demo.mix import GROUPS, TEMPLATE_ID, Plan, build_plan, schedule_reminder
from outbox.cli.demo.options import DemoOptions, demo_settings, fault_schedule
from outbox.cli.demo.quota import QuotaPhase, default_left, run_quota_phase
from outbox.cli.demo.report import DemoReport, build_report
from outbox.cli.demo.stack import DemoStack, redacted_url
from outbox.cli.demo.watch import Watch
from outbox.core.smtp2go.endpoints import SUPPRESSION_ADD, TEMPLATE_ADD
from outbox.sandbox import SandboxConfig
from outbox.worker.runtime import Runtime

__all__ = ["DemoOptions", "DemoReport", "run_demo"]


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
    # They are for the sends: a look-up or a quota read never spends the 5xx burst.
    faults = {"fail_rate": options.fail_rate, "fail_endpoints": list(SEND_ENDPOINTS)}
    control.post("/_sandbox/config", json=faults).raise_for_status()


def quota_left(options: DemoOptions, plan: Plan) -> int | None:
    """Emails the allowance has left in the quota phase (``None``: no quota phase)."""
    if not options.quota:
        return None
    if options.quota_left is not None:
        return options.quota_left
    return default_left(len(plan.campaign.recipients))


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
            webhook_backoff=0.2,
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
                report = _send(rt, control, stack, options, plan, console, setup_seconds)
        finally:
            stack.stop()
    report.redis_keys_removed = stack.keys_removed
    # Shutting down is part of the wait a person sees.
    report.wall_seconds = time.monotonic() - started
    return report


def _send(
    rt: Runtime,
    control: Any,
    stack: DemoStack,
    options: DemoOptions,
    plan: Plan,
    console: Console | None,
    setup_seconds: float,
) -> DemoReport:
    """The mix under faults, then the quota phase; the summary of both."""
    left = quota_left(options, plan)
    later = [plan.campaign] if left is not None else []
    first = [s for s in plan.sends if not any(s is c for c in later)]
    quota: QuotaPhase | None = None
    with Watch(rt, control, plan, console, options.timeout) as watch:
        watch.arm(fault_schedule(options), chunks=sum(s.chunks for s in first))
        # an order refunded just after its reminder was scheduled: take the reminder back
        reminder = schedule_reminder(plan.run)
        cancel(reminder.id, who="the demo (order refunded)")
        watch.produce(first)
        watch.until(watch.all_done)
        watch.disarm()
        if left is not None and not watch.timed_out:
            quota = run_quota_phase(rt, control, watch, plan.campaign, left)
    return build_report(
        rt=rt,
        control=control,
        stack=stack,
        options=options,
        plan=plan,
        watch=watch,
        quota=quota,
        setup_seconds=setup_seconds,
        started=watch.started,
        canceled_id=reminder.id,
    )


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
    left = quota_left(options, plan)
    grid.add_row(
        "quota",
        "off (--no-quota)"
        if left is None
        else f"then the {plan.campaign.group} to {len(plan.campaign.recipients):,} with "
        f"{left:,} emails left in the month's allowance: the rest waits throttled until "
        "it is raised (--quota N, --no-quota)",
    )
    console.print(f"[bold]outbox demo[/] [dim]{where}[/]")
    console.print(grid)
