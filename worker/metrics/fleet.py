"""Gauges of the whole fleet, read from Redis and the broker when Prometheus scrapes.

Nothing here runs on the send path: :class:`FleetCollector` reads when a scrape asks,
in the one process that serves the worker's metrics, in one Redis round trip for the
records (:meth:`Store.overview <outbox.core.store.Store.overview>`) and one for the
queue depths on a Redis broker (a passive declare per queue on RabbitMQ). Every worker
reports the same fleet-wide values: aggregate them with ``max``, not ``sum``.

====================================  =========================================================
``outbox_store_up``                   1 when the records' Redis answered this scrape
``outbox_dead_letters``               chunks in the dead letters (retries exhausted)
``outbox_failed_letters``             chunks refused for good
``outbox_parked_calls``               task calls parked in Redis until their time
``outbox_chunks_canceled_total``      chunks canceled (``outbox.cancel``), fleet-wide
``outbox_chunks_paused``              chunks of paused sends, waiting for ``resume``
``outbox_sending_held``               1 while the account's sending is held (a refused key)
``outbox_cooldown_remaining_seconds`` seconds of shared cool-down left after a 429
``outbox_quota_remaining``, ...       the monthly quota as last read (once beat has read it)
``outbox_broker_up``                  1 when the broker answered this scrape
``outbox_queue_depth{queue}``         messages waiting on each queue
====================================  =========================================================
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from outbox.core.queues import Queue
from outbox.core.store import Store
from outbox.worker.broker import broker_client

__all__ = [
    "QUEUES",
    "QUOTA_GAUGES",
    "AmqpDepth",
    "FleetCollector",
    "RedisDepth",
    "queue_depth_reader",
]

logger = logging.getLogger(__name__)

#: The quota record's numeric fields (``stats/email_cycle`` as beat keeps it) -> gauge.
QUOTA_GAUGES: dict[str, tuple[str, str]] = {
    "cycle_remaining": ("outbox_quota_remaining", "Emails the monthly quota has left."),
    "cycle_used": ("outbox_quota_used", "Emails sent in the quota's current cycle."),
    "cycle_max": ("outbox_quota_max", "The monthly quota."),
    "read_at": ("outbox_quota_read_timestamp_seconds", "When the quota was last read."),
}

#: The queues whose depth is reported.
QUEUES = tuple(queue.value for queue in Queue)
#: Queue name -> messages waiting; raises when the broker cannot be reached.
DepthReader = Callable[[], dict[str, int]]


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class RedisDepth:
    """Queue depths on a Redis broker: ``LLEN`` of each queue's lists, one round trip.

    kombu keeps a queue as one list per priority step (``email``, ``email\\x06\\x163``,
    ...), under the transport's ``global_keyprefix`` if one is set."""

    def __init__(
        self, client: Any, queues: Sequence[str], transport_options: Mapping[str, Any]
    ) -> None:
        from kombu.transport.redis import PRIORITY_STEPS, Channel

        self.client = client
        steps = transport_options.get("priority_steps", PRIORITY_STEPS)
        prefix = str(transport_options.get("global_keyprefix", ""))
        self.lists = {
            queue: [prefix + (f"{queue}{Channel.sep}{step}" if step else queue) for step in steps]
            for queue in queues
        }

    def __call__(self) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for names in self.lists.values():
            for name in names:
                pipe.llen(name)
        sizes = iter(pipe.execute())
        return {queue: sum(int(next(sizes)) for _ in names) for queue, names in self.lists.items()}


class AmqpDepth:
    """Queue depths on any other broker (RabbitMQ): a passive declare of each queue, on a
    connection kept between scrapes. A queue not declared yet has no messages."""

    def __init__(self, connect: Callable[[], Any], queues: Sequence[str]) -> None:
        self.connect = connect
        self.queues = list(queues)
        self.connection: Any = None

    def __call__(self) -> dict[str, int]:
        if self.connection is None:
            self.connection = self.connect()
        conn = self.connection
        try:
            conn.ensure_connection(max_retries=1)
            depths = {}
            for queue in self.queues:
                channel = conn.channel()
                try:
                    depths[queue] = int(channel.queue_declare(queue=queue, passive=True)[1])
                except conn.channel_errors:
                    depths[queue] = 0  # the broker closed the channel: the next opens another
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()
            return depths
        except Exception:
            self.connection = None
            conn.release()
            raise


def queue_depth_reader(app: Any, queues: Sequence[str] = QUEUES) -> DepthReader:
    """How this worker's broker is asked for the depth of ``queues``."""
    client = broker_client()
    if client is not None:
        return RedisDepth(client, queues, app.conf.broker_transport_options or {})
    return AmqpDepth(app.connection_for_read, queues)


class FleetCollector(Collector):
    """Reads the fleet's gauges at scrape time (one scrape at a time)."""

    def __init__(self, store: Store, depths: DepthReader | None) -> None:
        self.store = store
        self.depths = depths
        self._lock = threading.Lock()

    def describe(self) -> list[Any]:
        # Registering the collector must not read Redis: nothing to describe up front.
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        with self._lock:
            yield from self._records()
            if self.depths is not None:
                yield from self._queues(self.depths)

    def _records(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        try:
            seen = self.store.overview()
        except Exception as exc:
            logger.warning("metrics: the records' Redis did not answer (%s)", exc)
            yield _gauge("outbox_store_up", "The records' Redis answered this scrape.", 0)
            return
        yield _gauge("outbox_store_up", "The records' Redis answered this scrape.", 1)
        yield _gauge(
            "outbox_dead_letters",
            "Chunks in the dead letters (retries exhausted), waiting for a replay.",
            seen.dead_letters,
        )
        yield _gauge("outbox_failed_letters", "Chunks refused for good.", seen.failed_letters)
        yield _gauge(
            "outbox_parked_calls",
            "Task calls parked in Redis (retries, send_at, holds) until their time.",
            seen.parked,
        )
        yield CounterMetricFamily(
            "outbox_chunks_canceled",
            "Chunks canceled (outbox.cancel) before they went out, fleet-wide.",
            value=seen.canceled,
        )
        yield _gauge(
            "outbox_chunks_paused",
            "Chunks of paused sends (outbox.pause), waiting for a resume.",
            seen.paused,
        )
        yield _gauge(
            "outbox_sending_held",
            "1 while the account's sending is held: the API refused the key.",
            int(seen.held),
        )
        yield _gauge(
            "outbox_cooldown_remaining_seconds",
            "Seconds left of the fleet's shared cool-down after a 429.",
            seen.cooling_for,
        )
        # The monthly quota, once beat has read it. A wait for the next cycle (sending
        # throttled by the quota) belongs here too, as a gauge beside these, read from
        # the same overview.
        for field, (name, doc) in QUOTA_GAUGES.items():
            value = (seen.quota or {}).get(field)
            if isinstance(value, int | float) and not isinstance(value, bool):
                yield _gauge(name, doc, value)
        # What is unknown because the key may not ask (the quota, look-ups, ...).
        denied = GaugeMetricFamily(
            "outbox_api_permission_denied",
            "1 for each endpoint the API key was refused within the hour: its feature is off.",
            labels=["endpoint"],
        )
        for path in sorted(self.store.account.denials(self.store.now())):
            denied.add_metric([path], 1)
        yield denied

    def _queues(self, depths: DepthReader) -> Iterator[GaugeMetricFamily]:
        try:
            found = depths()
        except Exception as exc:
            logger.warning("metrics: the broker did not answer (%s)", exc)
            yield _gauge("outbox_broker_up", "The broker answered this scrape.", 0)
            return
        yield _gauge("outbox_broker_up", "The broker answered this scrape.", 1)
        family = GaugeMetricFamily(
            "outbox_queue_depth", "Messages waiting on each queue.", labels=["queue"]
        )
        for queue, depth in found.items():
            family.add_metric([queue], depth)
        yield family
