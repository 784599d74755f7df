"""The worker's counters and histograms, in prometheus-client (the ``metrics`` extra).

Imported only by a worker that serves metrics, and only after
:mod:`~outbox.worker.metrics.serve` has chosen the mode: prometheus-client decides at
import whether values live in this process's memory or in files shared by a prefork
pool's children.
"""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Histogram

from outbox.core.states import FINAL_STATES, Kind, State
from outbox.worker.metrics import Metrics
from outbox.worker.policy import Reason

__all__ = ["API_BUCKETS", "WAIT_BUCKETS", "Instruments"]

#: Seconds: a slot is usually granted at once or within the second; a line (a minute's
#: window filled in a burst) can hold a sender up to ``line_wait`` (at most 600 s).
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: Seconds: SMTP2GO answers a send in tens to hundreds of milliseconds; the client gives
#: up after ``SMTP2GO_TIMEOUT`` (30 s by default).
API_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Instruments(Metrics):
    """Counts into prometheus-client metrics registered on ``registry`` (``None``: on
    none, as a prefork pool wants: its scrape reads every process's files instead)."""

    def __init__(self, registry: CollectorRegistry | None, tenants: Collection[str] = ()) -> None:
        #: Tenants with a label of their own (those OUTBOX_TENANT_WEIGHTS or _LIMITS
        #: name); any other is counted as "other", so the series stay few.
        self.tenants = frozenset(tenants)
        self.sends = Counter(
            "outbox_sends",
            "Chunks this worker made final, by kind of message and final state.",
            ["kind", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "outbox_retries",
            "Attempts that end in another attempt to come, by reason.",
            ["reason"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "outbox_rate_limited", "429 answers from the API (any endpoint).", registry=registry
        )
        self.cool_down = Counter(
            "outbox_cooldown_seconds",
            "Seconds this worker's 429s added to the fleet's shared cool-down.",
            registry=registry,
        )
        self.limiter_wait = Histogram(
            "outbox_limiter_wait_seconds",
            "How long a sender waited from its claim to its rate-limit slot, by lane and "
            "tenant (a tenant not named in OUTBOX_TENANT_WEIGHTS or _LIMITS is 'other').",
            ["lane", "tenant"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.api = Histogram(
            "outbox_api_request_seconds",
            "Time of one request to the SMTP2GO API, answered or not, by endpoint.",
            ["endpoint"],
            buckets=API_BUCKETS,
            registry=registry,
        )
        self.webhook_events = Counter(
            "outbox_webhook_events_recorded",
            "Webhook events the record_event task is done with, by event and outcome.",
            ["event", "outcome"],
            registry=registry,
        )
        # Every known series exists from the start, at 0: a rate over a series that
        # appears only with its first event misses that event.
        self._sends = {
            (kind, state): self.sends.labels(kind.value, state.value)
            for kind in Kind
            for state in FINAL_STATES
        }
        self._retries = {reason: self.retries.labels(reason.value) for reason in Reason}

    def finished(self, kind: Kind, state: State) -> None:
        self._sends[kind, state].inc()

    def retried(self, reason: Reason) -> None:
        self._retries[reason].inc()

    def waited(self, seconds: float, lane: str = "transactional", tenant: str = "") -> None:
        label = tenant if not tenant or tenant in self.tenants else "other"
        self.limiter_wait.labels(lane, label).observe(max(seconds, 0.0))

    def cooled(self, seconds: float) -> None:
        if seconds > 0:
            self.cool_down.inc(seconds)

    def api_request(self, endpoint: str, seconds: float, status: int | None) -> None:
        self.api.labels(endpoint).observe(seconds)
        if status == 429:
            self.rate_limited.inc()

    def webhook_event(self, event: str, outcome: str) -> None:
        self.webhook_events.labels(event, outcome).inc()
