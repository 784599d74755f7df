"""What ``outbox demo`` can be asked for, and the settings and faults that follow from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outbox.sandbox import parse_rate

__all__ = [
    "DEMO_RETENTION",
    "DemoOptions",
    "Fault",
    "demo_settings",
    "fault_schedule",
    "outbox_rate_for",
    "per_second",
]


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
    #: The quota phase: run it, and with how many emails left in the month's allowance
    #: when the campaign is queued (``None``: half the campaign's recipients).
    quota: bool = True
    quota_left: int | None = None


@dataclass
class Fault:
    """A fault the demo arms in the sandbox once this share of chunks is queued."""

    at: float
    config: dict[str, Any]
    label: str
    fired: bool = False


def per_second(rate: str) -> float | None:
    """A rate in the sandbox's notation as sends per second (``None``: unlimited)."""
    parsed = parse_rate(rate)
    return parsed.count / parsed.period if parsed else None


def outbox_rate_for(sandbox_rate: str) -> str:
    """``OUTBOX_RATE_LIMIT`` for the sandbox's limit: the limit itself, which outbox holds
    exactly, as an operator sets it to the account's (unlimited: 1000/s)."""
    parsed = parse_rate(sandbox_rate)
    return str(parsed) if parsed else "1000/s"


#: Seconds the demo's records are kept (``OUTBOX_RETENTION``).
DEMO_RETENTION = 3600
#: Attempts a chunk has beside those the 5xx burst may take from it.
SPARE_ATTEMPTS = 8


def demo_settings(options: DemoOptions) -> dict[str, str]:
    """Settings pinned for the demo (whatever the environment says): fast retries.

    The 5xx burst answers the next requests 503 whoever sends them: when one chunk is
    all that is in flight (the producer is still queueing the rest), it takes the whole
    burst on its own, so its attempts are the burst's and then as many again.
    """
    return {
        "OUTBOX_RATE_LIMIT": outbox_rate_for(options.rate),
        "OUTBOX_RETRY_BASE": "0.2",
        "OUTBOX_RETRY_CAP": "2",
        "OUTBOX_COOLDOWN_SECONDS": "1",
        "OUTBOX_MAX_ATTEMPTS": str(options.burst_5xx + SPARE_ATTEMPTS),
        "OUTBOX_BULK_THRESHOLD": "10",
        "OUTBOX_AMBIGUOUS_POLICY": "resend",
        "SMTP2GO_TIMEOUT": "5",
        # The faults aim at the next requests: no reads of the account beside the sends.
        "OUTBOX_ACCOUNT_READS_AT_START": "0",
        # Records for an hour (enough to look at them with ``outbox status``), not a week.
        "OUTBOX_RETENTION": str(DEMO_RETENTION),
    }


def fault_schedule(options: DemoOptions) -> list[Fault]:
    """Storms spread over the run, the 5xx burst in the middle."""
    faults = [
        Fault(
            at=0.8 * (i + 1) / (options.storms + 1),
            config={"storm_seconds": options.storm_seconds},
            label=f"429 storm: every request refused for {options.storm_seconds:g} s",
        )
        for i in range(options.storms)
    ]
    if options.burst_5xx:
        faults.append(
            Fault(
                at=0.45,
                config={"fail_next": options.burst_5xx, "fail_status": 503},
                label=f"5xx burst: the next {options.burst_5xx} requests answer 503",
            )
        )
    return sorted(faults, key=lambda f: f.at)
