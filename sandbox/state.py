"""Everything the sandbox remembers: records, counters, limits and armed faults.

All of it lives in one process and is touched only from the event loop, so there are
no locks; ``POST /_sandbox/reset`` replaces it wholesale.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from outbox.sandbox.config import Rate, SandboxConfig, parse_activity_rate, parse_rate
from outbox.sandbox.endpoints import ENDPOINTS, endpoint_names
from outbox.sandbox.limits import ErrorWindows, RateLimiter, Timeouts
from outbox.sandbox.records import EmailRecord, SmsRecord, Template, Webhook

__all__ = [
    "Counters",
    "EndpointCounters",
    "Faults",
    "SandboxState",
]

_ID_ALPHABET = string.ascii_letters + string.digits
_HEX = "0123456789abcdef"


class EndpointCounters:
    """Per-endpoint counts reported by ``/_sandbox/stats``."""

    __slots__ = ("accepted", "injected_failures", "rate_limited", "requests", "soft_failed")

    def __init__(self) -> None:
        self.requests = 0
        self.accepted = 0
        self.rate_limited = 0
        self.injected_failures = 0
        self.soft_failed = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "rate_limited": self.rate_limited,
            "injected_failures": self.injected_failures,
            "soft_failed": self.soft_failed,
        }


@dataclass(slots=True)
class Counters:
    """Whole-server counts; ``accepted`` is every 2xx answer of a ``/v3`` endpoint."""

    requests: int = 0
    accepted: int = 0
    rate_limited: int = 0
    injected_failures: int = 0
    #: Sends answered 200 with ``succeeded: 0, failed: 1`` (``soft_fail_next``, an
    #: unverified sender): counted in ``accepted`` too, as they are 2xx answers.
    soft_failed: int = 0
    hung: int = 0
    invalid: int = 0
    unauthorized: int = 0
    not_found: int = 0
    webhooks_delivered: int = 0
    webhooks_failed: int = 0
    webhooks_skipped: int = 0
    by_endpoint: dict[str, EndpointCounters] = field(
        default_factory=lambda: {path: EndpointCounters() for path in ENDPOINTS}
    )


@dataclass(slots=True)
class Faults:
    """Faults armed through ``POST /_sandbox/config``; all off after a reset."""

    fail_rate: float = 0.0
    fail_next: int = 0
    fail_status: int = 503
    #: Restricts ``fail_next`` and ``fail_rate`` to these endpoints; ``None`` = all.
    fail_endpoints: frozenset[str] | None = None
    #: The next N sends answer 200 with ``succeeded: 0, failed: 1`` and deliver nothing.
    soft_fail_next: int = 0
    hang_next: int = 0
    hang_seconds: float = 30.0
    #: ``time.monotonic()`` until which every ``/v3`` request is answered 429.
    storm_until: float = 0.0


class SandboxState:
    """The mutable world behind one sandbox app."""

    def __init__(self, config: SandboxConfig) -> None:
        self.initial = config
        self.reset()

    def reset(self) -> None:
        """Forget everything and return to the start-up configuration."""
        config = self.initial
        self.api_key = config.api_key
        #: What the key may call (``None``: every endpoint), as ``api_keys/permissions``
        #: reports it; others answer the permission error.
        self.key_permissions = endpoint_names(config.key_permissions)
        self.latency = config.latency_ms / 1000.0
        self.verified_domains = _domains(config.verified_domains)
        self.bounce_domain = config.bounce_domain.lower()
        self.webhook_retries = config.webhook_retries
        self.webhook_timeout = config.webhook_timeout
        self.webhook_backoff = config.webhook_backoff
        self.suppress_bounces = config.suppress_bounces
        self.allow_external_webhooks = config.allow_external_webhooks
        self.cycle_max = config.cycle_max
        self.plan = config.plan
        #: Recipients accepted per month ("YYYY-MM", UTC): what the plan's ceiling counts.
        self.cycle_sent: dict[str, int] = {}
        self.seed = config.seed
        self.rng = random.Random(config.seed)
        self.set_rate(parse_rate(config.rate))
        self.set_activity_rate(parse_activity_rate(config.activity_rate))
        self.set_key_rate(parse_rate(config.key_rate))
        self.key_status = config.key_status
        self.set_error_limit(parse_rate(config.error_limit))
        self.penalty = config.penalty
        self.rate_headers = config.rate_headers
        self.fastaccept = config.fastaccept
        self.jitter = config.latency_jitter_ms / 1000.0
        self.timeouts = Timeouts()
        self.faults = Faults(fail_rate=config.fail_rate, hang_seconds=config.hang_seconds)
        self.counters = Counters()
        self.messages: list[EmailRecord | SmsRecord] = []
        self.emails: list[EmailRecord] = []
        self.sms: list[SmsRecord] = []
        self.sms_received: list[dict[str, Any]] = []
        self.templates: dict[str, Template] = {}
        self.webhooks: dict[int, Webhook] = {}
        self.next_webhook_id = 1
        #: Lower-cased address or domain -> reason -> the entry as ``suppression/view`` shows it.
        self.suppressions: dict[str, dict[str, dict[str, Any]]] = {}
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=10_000)
        release = getattr(self, "release", None)
        if release is not None:
            release.set()  # wake answers held by hang_next so a reset does not wait for them
        self.release = asyncio.Event()

    def set_rate(self, rate: Rate | None) -> None:
        self.limiter = RateLimiter(rate) if rate else None

    def set_activity_rate(self, rate: Rate | None) -> None:
        self.activity_limiter = RateLimiter(rate) if rate else None

    def set_key_rate(self, rate: Rate | None) -> None:
        self.key_limiter = RateLimiter(rate) if rate else None

    def set_error_limit(self, rate: Rate | None) -> None:
        self.error_windows = ErrorWindows(rate) if rate else None

    def set_verified_domains(self, domains: list[str] | None) -> None:
        self.verified_domains = _domains(domains)

    # -- ids ----------------------------------------------------------------------------

    def email_id(self) -> str:
        """An id shaped like both captured ones: 6, 11 and 4 letters or digits
        (``1w4x2g-FnQW0hPru7M-NRRC``, .NET captures; ``1wvlsG-7tiG0Lhs7a5-fDer``, #4190)."""
        chars = "".join(self.rng.choices(_ID_ALPHABET, k=21))
        return f"{chars[:6]}-{chars[6:17]}-{chars[17:]}"

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def event_id(self) -> str:
        """A webhook call's ``id``: 32 hex digits, as captured from the real service."""
        return "".join(self.rng.choices(_HEX, k=32))

    def token(self, k: int) -> str:
        return "".join(self.rng.choices(_ID_ALPHABET, k=k))

    # -- suppressions -------------------------------------------------------------------

    def suppressed(self, address: str) -> bool:
        """Whether a bare address is blocked, by itself or by its whole domain."""
        if not self.suppressions:
            return False
        lowered = address.lower()
        return lowered in self.suppressions or lowered.rpartition("@")[2] in self.suppressions

    def suppress(self, address: str, description: str, reason: str) -> dict[str, Any]:
        entry = {
            "email_address": address,
            "block_description": description,
            "reason": reason,
            "complaint": "",
            "subject": None,
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "added": time.time(),
        }
        self.suppressions.setdefault(address.lower(), {})[reason] = entry
        return entry

    def unsuppress(self, address: str, reason: str) -> bool:
        entries = self.suppressions.get(address.lower(), {})
        removed = entries.pop(reason, None) is not None
        if not entries:
            self.suppressions.pop(address.lower(), None)
        return removed

    def next_index(self) -> int:
        return len(self.messages)


def _domains(domains: list[str] | None) -> frozenset[str] | None:
    if domains is None:
        return None
    return frozenset(d.strip().lower() for d in domains if d.strip())
