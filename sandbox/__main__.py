"""``python -m outbox.sandbox``: serve the SMTP2GO emulator from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from outbox.sandbox.config import SandboxConfig, parse_activity_rate, parse_rate
from outbox.sandbox.server import run

_DEFAULTS = SandboxConfig()


def _rate(text: str) -> str | None:
    try:
        return str(rate) if (rate := parse_rate(text)) else None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _activity_rate(text: str) -> str | None:
    try:
        return str(rate) if (rate := parse_activity_rate(text)) else None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _domains(text: str) -> list[str]:
    return [d.strip() for d in text.split(",") if d.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m outbox.sandbox", description="A local SMTP2GO v3 API emulator."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8025)
    p.add_argument(
        "--rate",
        type=_rate,
        default=_DEFAULTS.rate,
        help="shared limit over all /v3 requests: 10/s, 600/m, 5/10s; 0 or none = unlimited",
    )
    p.add_argument("--latency-ms", type=float, default=_DEFAULTS.latency_ms)
    p.add_argument(
        "--fail-rate",
        type=float,
        default=_DEFAULTS.fail_rate,
        help="share of /v3 requests answered 500/502/503",
    )
    p.add_argument(
        "--api-key",
        default=None,
        help="the only key accepted (default: any key of the form api- and 32 letters/digits)",
    )
    p.add_argument("--verified-domains", type=_domains, default=None, metavar="A,B")
    p.add_argument("--bounce-domain", default=_DEFAULTS.bounce_domain)
    p.add_argument("--activity-rate", type=_activity_rate, default=_DEFAULTS.activity_rate)
    p.add_argument("--webhook-retries", type=int, default=_DEFAULTS.webhook_retries)
    p.add_argument("--webhook-timeout", type=float, default=_DEFAULTS.webhook_timeout)
    p.add_argument("--hang-seconds", type=float, default=_DEFAULTS.hang_seconds)
    p.add_argument(
        "--suppress-bounces",
        action="store_true",
        help="add hard-bounced addresses to the suppression list, as the real service does",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = SandboxConfig(
            api_key=args.api_key,
            rate=args.rate,
            latency_ms=args.latency_ms,
            fail_rate=args.fail_rate,
            verified_domains=args.verified_domains,
            bounce_domain=args.bounce_domain,
            webhook_retries=args.webhook_retries,
            webhook_timeout=args.webhook_timeout,
            seed=args.seed,
            activity_rate=args.activity_rate,
            hang_seconds=args.hang_seconds,
            suppress_bounces=args.suppress_bounces,
        )
    except ValueError as exc:
        print(f"python -m outbox.sandbox: {exc}", file=sys.stderr)
        return 2
    print(
        f"sandbox on http://{args.host}:{args.port}/v3 "
        f"(rate {config.rate or 'unlimited'}, latency {config.latency_ms:g} ms)",
        file=sys.stderr,
        flush=True,
    )
    run(config, args.host, args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
