"""The sandbox's command line, defined once: ``outbox sandbox`` and ``python -m outbox.sandbox``.

``cli/main.py`` registers :data:`sandbox` as a subcommand of ``outbox``; ``__main__``
runs it on its own. Only click and the configuration are imported here: the server
(uvicorn, starlette) is imported when it starts.
"""

from __future__ import annotations

import click

from outbox.sandbox.config import (
    DEFAULT_PENALTY,
    KEY_STATUSES,
    MAX_SECONDS,
    PLAN_CEILING,
    SandboxConfig,
    parse_activity_rate,
    parse_rate,
)

__all__ = ["banner", "markdown_table", "sandbox"]

_DEFAULTS = SandboxConfig()


def _rate(_ctx: click.Context, _param: click.Parameter, text: str | None) -> str | None:
    """``10/s``, ``600/m``, ``5/10s``; ``0`` or ``none`` = no limit."""
    if text is None:
        return None
    try:
        rate = parse_rate(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return str(rate) if rate else None


def _activity_rate(_ctx: click.Context, _param: click.Parameter, text: str) -> str | None:
    try:
        rate = parse_activity_rate(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return str(rate) if rate else None


def _domains(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [d.strip() for d in value.split(",") if d.strip()]


def banner(config: SandboxConfig, host: str, port: int) -> str:
    """The line printed at start: where, what limits, what key."""
    key = (
        "the key given (--api-key)"
        if config.api_key
        else "any key of the form api- and 32 letters or digits"
    )
    timeout = f"{config.penalty:g} s timeout" if config.penalty else "no timeout"
    hints = ", rate headers" if config.rate_headers else ""
    return (
        f"sandbox on http://{host}:{port}/v3 (rate {config.rate or 'unlimited'}, "
        f"{timeout}{hints}, latency {config.latency_ms:g} ms, fail rate {config.fail_rate:g}); "
        f"accepts {key}"
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8025, show_default=True, help="Port."
)
@click.option(
    "--api-key",
    default=None,
    metavar="KEY",
    help="The only key accepted (default: any key of the form api- and 32 letters or digits).",
)
@click.option(
    "--rate",
    default=_DEFAULTS.rate,
    show_default=True,
    callback=_rate,
    help="The account's limit over all /v3 requests: 10/s, 600/m, 5/10s; 0 = none.",
)
@click.option(
    "--penalty",
    type=click.FloatRange(0, MAX_SECONDS),
    default=DEFAULT_PENALTY,
    show_default=True,
    help="Seconds a client's IP is timed out (every request 429) after going over a limit.",
)
@click.option(
    "--error-limit",
    default=_DEFAULTS.error_limit,
    show_default=True,
    callback=_rate,
    metavar="RATE",
    help="4xx answers (not 429) one IP may get in a window before a timeout (the real "
    "threshold is not published: assumed); 0 for none.",
)
@click.option(
    "--rate-headers",
    is_flag=True,
    help="Send X-RateLimit-* headers and Retry-After (the real service promises neither).",
)
@click.option(
    "--fastaccept",
    is_flag=True,
    help="Answer every send as under fastaccept: only its email_id, refusals later as "
    "reject events (the OpenAPI says it will soon be the default).",
)
@click.option(
    "--activity-rate",
    default=_DEFAULTS.activity_rate,
    show_default=True,
    callback=_activity_rate,
    help="activity/search's own limit (a bare number is per minute).",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.latency_ms,
    show_default=True,
    help="Added to every answer, after the request is counted.",
)
@click.option(
    "--latency-jitter-ms",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.latency_jitter_ms,
    show_default=True,
    help="A random 0..J ms wait before a request is counted (network delay on the way in).",
)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
    default=_DEFAULTS.fail_rate,
    show_default=True,
    help="Share of /v3 requests answered 500/502/503.",
)
@click.option(
    "--verified-domains",
    callback=_domains,
    metavar="A,B",
    default=None,
    help="Sender domains the account has verified (default: any).",
)
@click.option(
    "--bounce-domain",
    default=_DEFAULTS.bounce_domain,
    show_default=True,
    help="Recipients at this domain hard-bounce.",
)
@click.option(
    "--suppress-bounces/--keep-bounces",
    default=_DEFAULTS.suppress_bounces,
    show_default=True,
    help="Add hard-bounced addresses to the suppression list, as the real service does.",
)
@click.option(
    "--key-permissions",
    default=None,
    metavar="ENDPOINTS",
    help=(
        "The endpoints the key may call, comma-separated (email/send,email/mime); others "
        "answer the permission error. Default: every endpoint. An SMTP2GO key created "
        "with the default permissions may call email/send only."
    ),
)
@click.option(
    "--cycle-max",
    type=click.IntRange(min=0),
    default=_DEFAULTS.cycle_max,
    show_default=True,
    help="The monthly allowance stats/email_cycle reports.",
)
@click.option(
    "--key-rate",
    default=None,
    callback=_rate,
    metavar="RATE",
    help="The key's own limit on sends, e.g. 100/h (default: none, as a key's default).",
)
@click.option(
    "--key-status",
    type=click.Choice(list(KEY_STATUSES)),
    default=_DEFAULTS.key_status,
    show_default=True,
    help="sandbox: sends accepted, every recipient rejected; blocked: sends refused.",
)
@click.option(
    "--plan",
    type=click.Choice(sorted(PLAN_CEILING)),
    default=_DEFAULTS.plan,
    show_default=True,
    help="The account's plan: sends past 100 % of the allowance (free) or 300 % (paid) "
    "are refused.",
)
@click.option(
    "--hang-seconds",
    type=click.FloatRange(0, MAX_SECONDS),
    default=_DEFAULTS.hang_seconds,
    show_default=True,
    help="How long a hang_next answer is held back.",
)
@click.option(
    "--webhook-retries",
    type=click.IntRange(0, 100),
    default=_DEFAULTS.webhook_retries,
    show_default=True,
    help="Extra attempts at a failed webhook call.",
)
@click.option(
    "--webhook-timeout",
    type=click.FloatRange(0, 600),
    default=_DEFAULTS.webhook_timeout,
    show_default=True,
    help="Seconds to wait for a webhook receiver.",
)
@click.option(
    "--webhook-backoff",
    type=click.FloatRange(0, 600),
    default=_DEFAULTS.webhook_backoff,
    show_default=True,
    help="First delay before a webhook retry; doubles per attempt, to 100 times it.",
)
@click.option("--seed", type=int, default=None, help="Seed for ids and random faults.")
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="uvicorn's log level.",
)
def sandbox(
    host: str,
    port: int,
    api_key: str | None,
    rate: str | None,
    penalty: float,
    error_limit: str | None,
    rate_headers: bool,
    fastaccept: bool,
    activity_rate: str | None,
    latency_ms: float,
    latency_jitter_ms: float,
    fail_rate: float,
    verified_domains: list[str] | None,
    bounce_domain: str,
    suppress_bounces: bool,
    key_permissions: str | None,
    key_rate: str | None,
    key_status: str,
    cycle_max: int,
    plan: str,
    hang_seconds: float,
    webhook_retries: int,
    webhook_timeout: float,
    webhook_backoff: float,
    seed: int | None,
    log_level: str,
) -> None:
    """Serve the local SMTP2GO v3 emulator (docs/sandbox.md)."""
    try:
        config = SandboxConfig(
            api_key=api_key,
            rate=rate,
            penalty=penalty,
            error_limit=error_limit,
            rate_headers=rate_headers,
            fastaccept=fastaccept,
            activity_rate=activity_rate,
            latency_ms=latency_ms,
            latency_jitter_ms=latency_jitter_ms,
            fail_rate=fail_rate,
            verified_domains=verified_domains,
            bounce_domain=bounce_domain,
            suppress_bounces=suppress_bounces,
            cycle_max=cycle_max,
            plan=plan,
            key_rate=key_rate,
            key_status=key_status,
            key_permissions=key_permissions.split(",") if key_permissions else None,
            hang_seconds=hang_seconds,
            webhook_retries=webhook_retries,
            webhook_timeout=webhook_timeout,
            webhook_backoff=webhook_backoff,
            seed=seed,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    from outbox.sandbox.server import run

    click.echo(banner(config, host, port), err=True)
    run(config, host, port, log_level=log_level)


def markdown_table() -> str:
    """The options table of ``docs/sandbox.md``, from the command itself."""
    lines = ["| option | default | what it does |", "|---|---|---|"]
    for param in sandbox.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        name = max(param.opts, key=len)
        if param.is_flag:
            default = "off"
        elif param.default is None:
            default = "—"
        else:
            default = f"`{param.default}`"
        lines.append(f"| `{name}` | {default} | {param.help or ''} |")
    return "\n".join(lines)
