"""The webhook receiver's metrics, served on its own ``GET /metrics``.

==================================  =========================================================
``outbox_webhook_events_total``     ``event``: events taken and published (names outside
                                    the known ones count as ``other``)
``outbox_webhook_requests_total``   ``code``: posts answered, by status (401s, 413s, ...)
==================================  =========================================================

Each app keeps its own registry, so several apps in one process (tests) never collide.
The page holds counts only: no address, id or secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from outbox.worker.metrics import event_label

__all__ = ["CONTENT_TYPE", "ReceiverMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ReceiverMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "outbox_webhook_events",
            "Webhook events the receiver took and published, by event.",
            ["event"],
            registry=self.registry,
        )
        self.requests = Counter(
            "outbox_webhook_requests",
            "Posts to the webhook endpoint, by the status they were answered with.",
            ["code"],
            registry=self.registry,
        )

    def received(self, events: Iterable[Mapping[str, Any]]) -> None:
        for event in events:
            self.events.labels(event_label(event.get("event"))).inc()

    def answered(self, status: int) -> None:
        self.requests.labels(str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
