"""Everything the sandbox remembers: records, counters, limits and armed faults.

All of it lives in one process and is touched only from the event loop, so there are
no locks; ``POST /_sandbox/reset`` replaces it wholesale.
"""

from __future__ import annotations

import asyncio
import math
import random
import string
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from outbox.sandbox.config import Rate, SandboxConfig, parse_activity_rate, parse_rate

__all__ = [
    "ENDPOINTS",
    "SEND_ENDPOINTS",
    "Counters",
    "Decision",
    "EmailRecord",
    "Faults",
    "RateLimiter",
    "SandboxState",
    "SmsRecord",
    "Template",
    "Webhook",
]

#: Every SMTP2GO path the sandbox answers (after ``/v3/``).
ENDPOINTS = (
    "email/send",
    "email/mime",
    "email/batch",
    "template/add",
    "template/edit",
    "template/delete",
    "template/search",
    "template/view",
    "webhook/add",
    "webhook/view",
    "webhook/edit",
    "webhook/remove",
    "stats/email_summary",
    "stats/email_bounces",
    "stats/email_cycle",
    "stats/email_history",
    "stats/email_spam",
    "stats/email_unsubs",
    "activity/search",
    "suppression/add",
    "suppression/view",
    "suppression/remove",
    "sms/send",
    "sms/view-received",
    "sms/view-sent",
    "sms/summary",
)

#: Endpoints that send something: the ones ``hang_next`` holds back.
SEND_ENDPOINTS = frozenset({"email/send", "email/mime", "email/batch", "sms/send"})

_ID_ALPHABET = string.ascii_letters + string.digits


class Decision(NamedTuple):
    """One limiter verdict and the numbers the ``X-RateLimit-*`` headers report."""

    allowed: bool
    limit: int
    remaining: int
    #: Seconds until the window has room again (``Retry-After`` when refused).
    reset: float


class RateLimiter:
    """A sliding-window log: at most ``count`` requests in any ``period`` seconds.

    Exact and deterministic (a burst of ``count`` passes, the next is refused), which is
    what tests of a client's own limiter need; the log never holds more than ``count``
    timestamps, so each check is O(1) amortised.
    """

    __slots__ = ("_log", "count", "period")

    def __init__(self, rate: Rate) -> None:
        self.count = rate.count
        self.period = rate.period
        self._log: deque[float] = deque()

    def acquire(self, now: float) -> Decision:
        log = self._log
        horizon = now - self.period
        while log and log[0] <= horizon:
            log.popleft()
        if len(log) < self.count:
            log.append(now)
            reset = log[0] + self.period - now
            return Decision(True, self.count, self.count - len(log), reset)
        return Decision(False, self.count, 0, log[0] + self.period - now)

    def peek(self, now: float) -> Decision:
        """The current numbers without spending a slot (for answers refused otherwise)."""
        log = self._log
        live = sum(1 for t in log if t > now - self.period)
        reset = log[-live] + self.period - now if live else 0.0
        return Decision(live < self.count, self.count, self.count - live, reset)

    def __str__(self) -> str:
        return str(Rate(self.count, self.period))


class EndpointCounters:
    """Per-endpoint counts reported by ``/_sandbox/stats``."""

    __slots__ = ("accepted", "injected_failures", "rate_limited", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.accepted = 0
        self.rate_limited = 0
        self.injected_failures = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "rate_limited": self.rate_limited,
            "injected_failures": self.injected_failures,
        }


@dataclass(slots=True)
class Counters:
    """Whole-server counts; ``accepted`` is every 2xx answer of a ``/v3`` endpoint."""

    requests: int = 0
    accepted: int = 0
    rate_limited: int = 0
    injected_failures: int = 0
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
    hang_next: int = 0
    hang_seconds: float = 30.0
    #: ``time.monotonic()`` until which every ``/v3`` request is answered 429.
    storm_until: float = 0.0
    retry_after: bool = True


@dataclass(slots=True)
class EmailRecord:
    """One accepted ``email/send``, ``email/mime`` or ``email/batch`` item."""

    index: int
    endpoint: str
    email_id: str
    request_id: str
    time: float
    #: The sender as given, possibly ``Name <addr>``.
    sender: str
    #: The bare sender address.
    from_address: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    #: Bare addresses that were accepted for delivery (not suppressed).
    recipients: list[str]
    #: Suppressed addresses: answered in ``failures``, not delivered.
    rejected: list[str]
    #: Accepted recipients at the bounce domain.
    bounced: list[str]
    subject: str
    html_body: str | None
    text_body: str | None
    custom_headers: dict[str, str]
    message_id: str
    size: int
    template_id: str | None = None
    template_data: dict[str, Any] | None = None
    attachments: list[str] = field(default_factory=list)
    inlines: list[str] = field(default_factory=list)
    schedule: str | None = None
    schedule_id: str | None = None
    fastaccept: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "endpoint": self.endpoint,
            "email_id": self.email_id,
            "request_id": self.request_id,
            "time": self.time,
            "sender": self.sender,
            "from_address": self.from_address,
            "to": self.to,
            "cc": self.cc,
            "bcc": self.bcc,
            "recipients": self.recipients,
            "rejected": self.rejected,
            "bounced": self.bounced,
            "subject": self.subject,
            "html_body": self.html_body,
            "text_body": self.text_body,
            "custom_headers": self.custom_headers,
            "message_id": self.message_id,
            "size": self.size,
            "template_id": self.template_id,
            "template_data": self.template_data,
            "attachments": self.attachments,
            "inlines": self.inlines,
            "schedule": self.schedule,
            "schedule_id": self.schedule_id,
            "fastaccept": self.fastaccept,
        }


@dataclass(slots=True)
class SmsRecord:
    """One accepted ``sms/send``: a message per destination, all with the same content."""

    index: int
    request_id: str
    time: float
    sender: str | None
    destination: list[str]
    content: str
    #: Units per destination (over 160 GSM characters splits into several).
    units: int
    message_ids: list[str]
    endpoint: str = "sms/send"

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "endpoint": self.endpoint,
            "request_id": self.request_id,
            "time": self.time,
            "sender": self.sender,
            "destination": self.destination,
            "recipients": self.destination,
            "content": self.content,
            "units": self.units,
            "message_ids": self.message_ids,
        }


@dataclass(slots=True)
class Template:
    """A stored template; ``id`` is chosen by the caller (5-24 chars, case-sensitive)."""

    id: str
    name: str
    subject: str
    html_body: str
    text_body: str
    template_variables: dict[str, Any]
    tags: list[str]
    last_updated: str


@dataclass(slots=True)
class Webhook:
    """A registered webhook, shaped like the answers of ``webhook/*``."""

    id: int
    url: str
    events: list[str]
    sms_events: list[str]
    headers: list[str]
    usernames: list[str]
    output_format: str
    auth_header_type: str
    auth_header_value: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "sms_events": self.sms_events,
            "headers": self.headers,
            "usernames": self.usernames,
            "output_format": self.output_format,
            "auth_header_type": self.auth_header_type,
            "auth_header_value": self.auth_header_value,
        }


class SandboxState:
    """The mutable world behind one sandbox app."""

    def __init__(self, config: SandboxConfig) -> None:
        self.initial = config
        self.reset()

    def reset(self) -> None:
        """Forget everything and return to the start-up configuration."""
        config = self.initial
        self.api_key = config.api_key
        self.latency = config.latency_ms / 1000.0
        self.verified_domains = _domains(config.verified_domains)
        self.bounce_domain = config.bounce_domain.lower()
        self.webhook_retries = config.webhook_retries
        self.webhook_timeout = config.webhook_timeout
        self.webhook_backoff = config.webhook_backoff
        self.suppress_bounces = config.suppress_bounces
        self.allow_external_webhooks = config.allow_external_webhooks
        self.cycle_max = config.cycle_max
        self.rng = random.Random(config.seed)
        self.set_rate(parse_rate(config.rate))
        self.set_activity_rate(parse_activity_rate(config.activity_rate))
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

    def set_verified_domains(self, domains: list[str] | None) -> None:
        self.verified_domains = _domains(domains)

    # -- ids ----------------------------------------------------------------------------

    def email_id(self) -> str:
        """An id shaped like the real ones, e.g. ``1er8bV-6Tw0Mi-7h``."""
        chars = self.rng.choices(_ID_ALPHABET, k=14)
        return f"{''.join(chars[:6])}-{''.join(chars[6:12])}-{''.join(chars[12:])}"

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

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

    def next_index(self) -> int:
        return len(self.messages)


def retry_after_seconds(seconds: float) -> int:
    """``Retry-After`` is whole seconds and at least 1, so a client never spins."""
    return max(1, math.ceil(seconds))


def _domains(domains: list[str] | None) -> frozenset[str] | None:
    if domains is None:
        return None
    return frozenset(d.strip().lower() for d in domains if d.strip())
