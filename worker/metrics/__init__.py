"""What a worker counts, for Prometheus; nothing at all unless ``OUTBOX_METRICS_PORT`` is set.

The code that sends calls a :class:`Metrics` (``Runtime.metrics``). This base class
counts nothing and needs nothing installed, so a worker without the ``metrics`` extra
pays one empty method call per event. A worker started with ``OUTBOX_METRICS_PORT``
swaps in :class:`~outbox.worker.metrics.instruments.Instruments` (prometheus-client)
and serves them (:mod:`outbox.worker.metrics.serve`).

Every count is kept in the process that makes it, never in Redis: a send costs no extra
round trip. What only Redis or the broker knows (dead letters, queue depths, a hold, the
cool-down left, the quota) is read when Prometheus scrapes, by the one process that
answers the scrape (:mod:`outbox.worker.metrics.fleet`).

==========================================  =========  =====================================
name                                        type       labels and meaning
==========================================  =========  =====================================
``outbox_sends_total``                      counter    ``kind``, ``outcome`` (``sent``,
                                                       ``failed``, ``dead``): chunks made final
``outbox_retries_total``                    counter    ``reason``
                                                       (:class:`~outbox.worker.policy.Reason`)
``outbox_rate_limited_total``               counter    429 answers, any endpoint
``outbox_cooldown_seconds_total``           counter    seconds this worker's 429s added to the
                                                       fleet's cool-down (overlaps not twice)
``outbox_limiter_wait_seconds``             histogram  ``lane``, ``tenant``: from a claim to
                                                       its slot's time
``outbox_api_request_seconds``              histogram  ``endpoint``: one request to the API
``outbox_webhook_events_recorded_total``    counter    ``event``, ``outcome``: what the
                                                       ``outbox.record_event`` task did
==========================================  =========  =====================================
"""

from __future__ import annotations

from outbox.core.states import Kind, State
from outbox.worker.policy import Reason
from outbox.worker.webhooks.parse import EVENT_NAMES

__all__ = ["OTHER_EVENT", "Metrics", "event_label"]

#: The label of an event name outside :data:`EVENT_NAMES`: a name posted by anyone must
#: not make a new time series.
OTHER_EVENT = "other"
_KNOWN_EVENTS = frozenset(EVENT_NAMES.values())


def event_label(name: object) -> str:
    """The ``event`` label for a webhook event's name."""
    return name if isinstance(name, str) and name in _KNOWN_EVENTS else OTHER_EVENT


class Metrics:
    """The events a worker counts. This one counts nothing (metrics are off)."""

    def finished(self, kind: Kind, state: State) -> None:
        """A chunk was made final (``sent``, ``failed`` or ``dead``) by this worker."""

    def retried(self, reason: Reason) -> None:
        """An attempt ended in another one to come."""

    def waited(self, seconds: float, lane: str = "transactional", tenant: str = "") -> None:
        """A sender of ``lane`` (and ``tenant``) waited this long from its claim to its
        slot."""

    def cooled(self, seconds: float) -> None:
        """A 429 made the whole fleet hold off this many seconds longer."""

    def api_request(self, endpoint: str, seconds: float, status: int | None) -> None:
        """One request to the API took ``seconds`` (``status`` ``None``: no answer)."""

    def webhook_event(self, event: str, outcome: str) -> None:
        """``outbox.record_event`` is done with an event."""
