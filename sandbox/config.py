"""The sandbox's start-up configuration and the rate notation it is given in."""

from __future__ import annotations

import re
from dataclasses import dataclass

from outbox.sandbox.endpoints import endpoint_names

__all__ = [
    "KEY_STATUSES",
    "PLAN_CEILING",
    "Rate",
    "SandboxConfig",
    "parse_activity_rate",
    "parse_rate",
]

#: The real service times a client's IP out for "no less than 1 minute" (rate-limiting page).
DEFAULT_PENALTY = 60.0
#: The assumed threshold of error answers that times a client out (none is published).
DEFAULT_ERROR_LIMIT = "20/m"
#: The real service's first webhook retry is assumed to come after a minute; retries
#: double up to ``WEBHOOK_BACKOFF_CAP`` times it, so 35 of them span about 49 hours.
DEFAULT_WEBHOOK_BACKOFF = 60.0
#: The longest wait between two webhook attempts, as a multiple of the first.
WEBHOOK_BACKOFF_CAP = 100
#: Longest timeout, storm or hold the sandbox accepts, in seconds.
MAX_SECONDS = 3600.0
#: What a key's ``status`` may be (OpenAPI ``api_keys/add``).
KEY_STATUSES = ("allowed", "blocked", "sandbox")
#: How much of the monthly allowance each plan may send, in percent, before sends are
#: refused: "At 100%, accounts on the free plan are no longer able to send"; paid plans
#: "can continue up to three times the monthly limit" (SMTP2GO support, "Quota Usage
#: Notifications").
PLAN_CEILING = {"free": 100, "paid": 300}

_RATE = re.compile(
    r"^\s*(?P<count>\d+)\s*(?:/\s*(?P<mult>\d+(?:\.\d+)?)?\s*(?P<unit>[a-z]+)?)?\s*$",
    re.IGNORECASE,
)
_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
}
_UNLIMITED = {"", "0", "none", "off", "unlimited"}


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` requests per ``period`` seconds."""

    count: int
    period: float

    def __str__(self) -> str:
        if self.period == 1.0:
            return f"{self.count}/s"
        if self.period == 60.0:
            return f"{self.count}/m"
        return f"{self.count}/{self.period:g}s"


def parse_rate(value: str | int | float | None) -> Rate | None:
    """Read ``10/s``, ``600/m``, ``5/10s`` or ``100`` (per second); ``0``/``none`` is no limit.

    Raises ``ValueError`` with the offending text so the command line and the control
    endpoint can both report it.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"invalid rate {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid rate {value!r}: negative")
        return Rate(int(value), 1.0) if value else None
    text = value.strip().lower()
    if text in _UNLIMITED:
        return None
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"invalid rate {value!r}: expected N/s, N/m, N/h or N/<k>s")
    count = int(match["count"])
    unit = match["unit"] or "s"
    if unit not in _UNITS and unit.endswith("s"):
        unit = unit[:-1]  # "mins", "hours", "seconds"
    if unit not in _UNITS:
        raise ValueError(f"invalid rate {value!r}: unknown unit {match['unit']!r}")
    period = float(match["mult"] or 1) * _UNITS[unit]
    if period <= 0:
        raise ValueError(f"invalid rate {value!r}: empty period")
    return Rate(count, period) if count else None


def parse_activity_rate(value: str | int | float | None) -> Rate | None:
    """Like :func:`parse_rate`, but a bare number means per minute, as the real limit is."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return Rate(int(value), 60.0)
    return parse_rate(value)


@dataclass
class SandboxConfig:
    """How a sandbox starts; ``POST /_sandbox/reset`` returns to exactly this.

    The defaults are those of ``python -m outbox.sandbox`` with no options: a realistic
    account (10 requests/s, 50 ms per answer, a minute's timeout for going over, no
    rate-limit hints) rather than an idealised one.
    """

    #: The one key accepted; ``None`` accepts any key of the real format.
    api_key: str | None = None
    #: The endpoints the key may call (``None``: all). A key SMTP2GO creates with the
    #: default permissions may call ``/email/send`` only (OpenAPI ``api_keys/add``:
    #: ``endpoints`` defaults to ``[/email/send]``; developer changelog 2025-04-03).
    key_permissions: list[str] | None = None
    #: The key's own sending limit, in emails (send calls), e.g. ``"100/h"``; ``None``:
    #: unlimited, the default of a key (OpenAPI ``api_keys/add``: ``custom_ratelimit_value``
    #: and ``custom_ratelimit_period``). Over it a send is answered 429, "API key ratelimit
    #: exceeded" (rate-limiting page, as summarised by api-evangelist/smtp2go).
    key_rate: str | None = None
    #: The key's status, one of ``allowed``, ``blocked``, ``sandbox`` (OpenAPI
    #: ``api_keys/add``: "The initial status of the API key").
    key_status: str = "allowed"
    #: Shared limit over every ``/v3`` request, e.g. ``"10/s"``; ``None`` = unlimited.
    rate: str | None = "10/s"
    #: Seconds a client's IP is timed out (every ``/v3`` request answered 429) after it
    #: went over ``rate`` or ``error_limit``; 0 = refuse only the requests over the limit.
    penalty: float = DEFAULT_PENALTY
    #: How many 4xx answers (other than 429) one IP may get in a window before it is timed
    #: out; ``None`` = errors never time a client out. The real service times out a client
    #: with "too many ... error responses" (rate-limiting page) and publishes no threshold:
    #: 20 a minute is assumed.
    error_limit: str | None = DEFAULT_ERROR_LIMIT
    #: Send ``X-RateLimit-*`` headers and ``Retry-After`` (the real service promises neither).
    rate_headers: bool = False
    #: Answer every send as under ``fastaccept: true``, asked for or not: only its
    #: ``email_id``, refusals arriving later as ``reject`` events. "Will soon become the
    #: default method of sending via API" (OpenAPI ``/email/send``).
    fastaccept: bool = False
    #: Added to every ``/v3`` answer that is not refused by a limit (after counting).
    latency_ms: float = 50.0
    #: A random 0..J ms wait before a request is counted (network delay on the way in).
    latency_jitter_ms: float = 0.0
    #: Share of ``/v3`` requests answered 500/502/503 at random.
    fail_rate: float = 0.0
    #: Sender domains the account has verified; ``None`` = any sender.
    verified_domains: list[str] | None = None
    #: Recipients at this domain hard-bounce instead of being delivered.
    bounce_domain: str = "bounce.example.net"
    #: Extra attempts for a webhook delivery the receiver failed or timed out: "retried up
    #: to 35 times over 48 hours" (webhooks page).
    webhook_retries: int = 35
    #: Seconds to wait for a webhook receiver (the real service waits 10 s).
    webhook_timeout: float = 10.0
    #: First retry delay in seconds; doubles per attempt up to ``WEBHOOK_BACKOFF_CAP``
    #: times it (the schedule's shape is assumed). Tests compress the schedule by giving a
    #: small one.
    webhook_backoff: float = DEFAULT_WEBHOOK_BACKOFF
    #: Seed for ids and random faults, for reproducible runs.
    seed: int | None = None
    #: ``activity/search`` has its own limit in the real API (60 per minute).
    activity_rate: str | None = "60/m"
    #: How long a ``hang_next`` answer is held back.
    hang_seconds: float = 30.0
    #: Whether a hard bounce adds the address to the suppression list, as the real service does.
    suppress_bounces: bool = True
    #: Deliver webhooks to hosts other than loopback; off so tests never reach the network.
    allow_external_webhooks: bool = False
    #: The monthly allowance reported by ``stats/email_cycle`` (recipients).
    cycle_max: int = 100_000
    #: The account's plan: ``free`` is refused at 100 % of ``cycle_max``, ``paid`` at 300 %.
    plan: str = "free"

    def __post_init__(self) -> None:
        parse_rate(self.rate)
        parse_rate(self.error_limit)
        parse_activity_rate(self.activity_rate)
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be between 0 and 1, not {self.fail_rate}")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        if self.latency_jitter_ms < 0:
            raise ValueError("latency_jitter_ms must not be negative")
        if not 0 <= self.penalty <= MAX_SECONDS:
            raise ValueError(f"penalty must be from 0 to {MAX_SECONDS:g} seconds")
        if self.webhook_retries < 0:
            raise ValueError("webhook_retries must not be negative")
        if self.cycle_max < 0:
            raise ValueError("cycle_max must not be negative")
        parse_rate(self.key_rate)
        if self.key_status not in KEY_STATUSES:
            raise ValueError(f"key_status must be one of {', '.join(KEY_STATUSES)}")
        if self.plan not in PLAN_CEILING:
            raise ValueError(f"plan must be one of {', '.join(PLAN_CEILING)}, not {self.plan!r}")
        try:
            endpoint_names(self.key_permissions)
        except ValueError as exc:
            raise ValueError(f"key_permissions {exc}") from None
