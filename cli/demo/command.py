"""``outbox demo``: the command; its work is in :mod:`outbox.cli.demo.run`."""

from __future__ import annotations

import click

from outbox.cli.output import EXIT_FAILED, EXIT_USAGE, fail, print_json

__all__ = ["demo"]


def _storms(_ctx: click.Context, _param: click.Parameter, text: str) -> tuple[int, float]:
    """``N`` or ``NxSECONDS`` (``2x0.5``): how many 429 storms and how long each lasts."""
    count, _, seconds = text.lower().partition("x")
    try:
        storms, length = int(count), float(seconds or 0.5)
    except ValueError:
        raise click.BadParameter(f"expected N or NxSECONDS (e.g. 2x0.5), not {text!r}") from None
    if storms < 0 or not 0 < length <= 10:
        raise click.BadParameter("storms must be >= 0 and last 0 to 10 seconds")
    return storms, length


def _sandbox_rate(_ctx: click.Context, _param: click.Parameter, text: str) -> str:
    """The sandbox's own rate notation (``10/s``, ``600/m``, ``0`` for none)."""
    from outbox.sandbox import parse_rate

    try:
        parse_rate(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return text


@click.command()
@click.option(
    "--recipients",
    type=click.IntRange(min=400),
    default=3000,
    show_default=True,
    help="Recipients in the mix (bad and suppressed ones included).",
)
@click.option(
    "--rate",
    default="50/s",
    show_default=True,
    callback=_sandbox_rate,
    help="The sandbox's rate limit (10/s, 600/m; 0 = none); outbox's is set to the same.",
)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 0.5),
    default=0.05,
    show_default=True,
    help="Share of API requests the sandbox answers 500/502/503.",
)
@click.option(
    "--burst-429",
    "burst_429",
    default="2x0.5",
    show_default=True,
    callback=_storms,
    help="429 storms during the run: N or NxSECONDS.",
)
@click.option(
    "--burst-5xx",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Consecutive requests answered 503 once, mid-run.",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="The sandbox's answer time.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 500),
    default=50,
    show_default=True,
    help="Worker threads.",
)
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    default=None,
    help="Use this Redis instead of the embedded stack: its database is the "
    "broker, the next one the records (redis://127.0.0.1:6379/13 -> 13 and 14). The "
    "records are kept an hour; nothing else the demo writes there is left behind.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds to wait for every send to be final.",
)
@click.option(
    "--quota",
    "quota_left",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="The quota phase: the announcement is queued last, with N emails left in the "
    "month's allowance (default: half its recipients); what that does not cover waits "
    "throttled until the allowance is raised.",
)
@click.option(
    "--no-quota", is_flag=True, help="No quota phase: the announcement goes with the rest."
)
@click.option("--seed", type=int, default=None, help="Seed for the mix and the faults.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def demo(
    recipients: int,
    rate: str,
    fail_rate: float,
    burst_429: tuple[int, float],
    burst_5xx: int,
    latency_ms: float,
    concurrency: int,
    redis_url: str | None,
    timeout: float,
    quota_left: int | None,
    no_quota: bool,
    seed: int | None,
    as_json: bool,
) -> None:
    """Run the whole queue in one process against the sandbox, with faults, and check it.

    No Redis, broker or API key needed: the sandbox, fakeredis, an in-memory broker and
    a Celery worker all run in this process. Exit 0 only when every deliverable
    recipient reached the API exactly once, the suppressed one failed, the invalid
    sends were refused, nothing is dead and (unless --no-quota) part of the announcement
    waited for the monthly quota, then went.
    """
    from outbox.cli.demo.mix import announcement_size

    if no_quota and quota_left is not None:
        raise click.UsageError("--quota and --no-quota exclude each other")
    campaign = announcement_size(recipients)
    if quota_left is not None and quota_left >= campaign:
        raise click.BadParameter(
            f"the announcement has {campaign} recipients; with {quota_left} left in the "
            f"allowance nothing would wait (give fewer than {campaign})",
            param_hint="--quota",
        )
    try:
        from outbox.cli.demo.options import DemoOptions
        from outbox.cli.demo.run import run_demo
        from outbox.cli.demo.stack import StackError
        from outbox.cli.demo.view import render_summary
        from outbox.cli.demo.view import stderr as _err
        from outbox.cli.demo.view import stdout as _out
    except ImportError as exc:
        fail(
            f"the demo needs what smtp2go-outbox[demo] installs ({exc.name} is missing): "
            "pip install 'smtp2go-outbox[demo]'",
            EXIT_USAGE,
            as_json=as_json,
        )

    storms, storm_seconds = burst_429
    options = DemoOptions(
        recipients=recipients,
        rate=rate,
        fail_rate=fail_rate,
        storms=storms,
        storm_seconds=storm_seconds,
        burst_5xx=burst_5xx,
        latency_ms=latency_ms,
        concurrency=concurrency,
        redis_url=redis_url,
        timeout=timeout,
        seed=seed,
        quota=not no_quota,
        quota_left=quota_left,
    )
    err = _err()
    live = None if as_json and not err.is_terminal else (err if as_json else _out())
    try:
        report = run_demo(options, console=live)
    except StackError as exc:
        fail(str(exc), exc.exit_code, as_json=as_json)
    except KeyboardInterrupt:
        if live is not None:
            live.print()  # end the progress display's last line
        fail("interrupted", 130, as_json=as_json)
    if as_json:
        print_json(report.as_json())
    else:
        render_summary(report, _out())
    if not report.ok:
        raise click.exceptions.Exit(EXIT_FAILED)
