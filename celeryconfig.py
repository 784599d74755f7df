"""Celery settings for outbox workers and beat, read from the environment.

Installed as ``outbox.worker.celeryconfig`` and loaded by ``outbox.worker.app`` by that
name, so a ``celeryconfig.py`` on an application's path can never replace it; every value
comes from :class:`worker.settings.Settings`, so ``.env`` and the environment are the
only places an operator edits.
"""

from __future__ import annotations

from datetime import timedelta

from kombu.entity import Exchange, Queue

from outbox.worker.settings import get_settings

_settings = get_settings()

broker_url = _settings.celery_broker_url
broker_connection_retry_on_startup = True

# JSON only: a pickle-accepting worker runs whatever a broker writer sends it.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
event_serializer = "json"

# Outcomes live in outbox's own records in Redis; Celery's result backend is not used.
task_ignore_result = True

# Acknowledge after the task has recorded its outcome; a worker that dies mid-send
# leaves the message on the broker for another worker (whose claim check then sees
# the unfinished attempt and treats it as ambiguous instead of blindly resending).
task_acks_late = True
task_reject_on_worker_lost = True

# Sends are I/O-bound: a thread pool of 50 per process reached ~14x the prefork
# default on the throughput benchmark (BENCHMARKS.md). One message prefetched per
# thread keeps a dying worker from taking a large backlog down with it.
worker_pool = "threads"
worker_concurrency = 50
worker_prefetch_multiplier = 1

# Redis broker: a dead worker's unacknowledged tasks return after the visibility
# timeout; kombu checks every interval x throttle seconds (10 x 10 by default, so
# ~100 s plus one hour). Check every 5 s against a short timeout instead; waits longer
# than half of it are parked in Redis by the task, never held as a broker countdown.
# ``priority`` queue order makes a worker on ``email,bulk`` drain ``email`` first.
broker_transport_options = {
    "visibility_timeout": _settings.visibility_timeout,
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
    "queue_order_strategy": "priority",
}

_exchange = Exchange("outbox", type="direct")
task_queues = (
    Queue("email", _exchange, routing_key="email"),
    Queue("sms", _exchange, routing_key="sms"),
    Queue("bulk", _exchange, routing_key="bulk"),
)
task_default_queue = "email"
task_default_exchange = "outbox"
task_default_routing_key = "email"
task_routes = {
    "outbox.send_sms": {"queue": "sms", "routing_key": "sms"},
    "outbox.*": {"queue": "email", "routing_key": "email"},
}

# Task events for Flower. Producers send no ``task-sent`` event: it would double the
# round trips of every enqueue, and Flower learns of a task from its ``task-received``.
worker_send_task_events = True
task_send_sent_event = False

beat_schedule = {
    "stats-snapshot": {
        "task": "outbox.beat.stats_snapshot",
        "schedule": timedelta(seconds=_settings.stats_interval),
    },
    "suppression-sync": {
        "task": "outbox.beat.sync_suppressions",
        "schedule": timedelta(seconds=_settings.suppression_sync_interval),
    },
    "sweep-stuck": {
        "task": "outbox.beat.sweep_stuck",
        "schedule": timedelta(seconds=_settings.sweep_interval),
    },
    "rematch-webhook-events": {
        "task": "outbox.beat.rematch_events",
        "schedule": timedelta(seconds=_settings.rematch_interval),
    },
    "expire-records": {
        "task": "outbox.beat.expire_records",
        "schedule": timedelta(seconds=_settings.expire_interval),
    },
}
