"""Celery settings for outbox workers and beat, read from the environment.

Installed as ``outbox.worker.celeryconfig`` and loaded by ``outbox.worker.celery_app`` by that
name, so a ``celeryconfig.py`` on an application's path can never replace it; every value
comes from :class:`outbox.core.settings.Settings`, so ``.env`` and the environment are
the only places an operator edits.
"""

from __future__ import annotations

from datetime import timedelta

from kombu.entity import Exchange, Queue

from outbox.core.queues import Queue as OutboxQueue
from outbox.core.queues import TaskName
from outbox.core.settings import get_settings

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

# Acknowledge after the task has recorded its outcome. On RabbitMQ that is what brings a
# dead worker's messages back. On Redis the transport's emulation of acknowledgements is
# off (below): it cost two of a send's five round trips, and outbox's records already
# say which chunk a worker held: a claim carries a lease, and a chunk whose lease runs
# out is published again by the relay of any worker (``outbox.worker.relay``), then
# looked up before anything is resent. What only the broker held (a message taken but
# not yet claimed when its worker died) is found by the relay through the index of
# unclaimed chunks (``outbox.core.store.unclaimed``) and published again in seconds.
task_acks_late = True
task_reject_on_worker_lost = True

# Sends are I/O-bound: a thread pool of 50 per process reached ~14x the prefork
# default on the throughput benchmark (BENCHMARKS.md). One message prefetched per
# thread keeps a dying worker from taking a large backlog down with it.
worker_pool = "threads"
worker_concurrency = 50
worker_prefetch_multiplier = 1

# ``priority`` queue order makes a worker on ``email,bulk`` drain ``email`` first.
broker_transport_options = {
    "ack_emulation": False,
    "queue_order_strategy": "priority",
}

# Quorum queues (RabbitMQ) are asked for by their argument, which is also how Celery
# knows to drop global QoS (quorum queues refuse it) and to send any countdown through
# RabbitMQ's own delayed delivery; that routes only through a topic exchange (the queues'
# routing keys are plain names, so topic routes exactly as direct does).
_quorum = _settings.queue_type == "quorum"
_exchange = Exchange("outbox", type="topic" if _quorum else "direct")
task_queues = tuple(
    Queue(
        q.value,
        _exchange,
        routing_key=q.value,
        queue_arguments={"x-queue-type": "quorum"} if _quorum else None,
    )
    for q in OutboxQueue
)
task_default_queue = OutboxQueue.EMAIL.value
task_default_exchange = "outbox"
task_default_routing_key = OutboxQueue.EMAIL.value
task_routes = {
    TaskName.SEND_SMS.value: {"queue": OutboxQueue.SMS.value, "routing_key": OutboxQueue.SMS.value},
    "outbox.*": {"queue": OutboxQueue.EMAIL.value, "routing_key": OutboxQueue.EMAIL.value},
}

# Task events cost a worker ~10 % of its CPU per send and a PUBLISH each; they are off
# unless monitoring asks: Flower turns them on in the workers it watches (it broadcasts
# ``enable_events`` every few seconds). Producers send no ``task-sent`` event either.
worker_send_task_events = False
task_send_sent_event = False

beat_schedule = {
    "stats-snapshot": {
        "task": TaskName.STATS_SNAPSHOT.value,
        "schedule": timedelta(seconds=_settings.stats_interval),
    },
    "suppression-sync": {
        "task": TaskName.SYNC_SUPPRESSIONS.value,
        "schedule": timedelta(seconds=_settings.suppression_sync_interval),
    },
    "sweep-stuck": {
        "task": TaskName.SWEEP_STUCK.value,
        "schedule": timedelta(seconds=_settings.sweep_interval),
    },
    "rematch-webhook-events": {
        "task": TaskName.REMATCH_EVENTS.value,
        "schedule": timedelta(seconds=_settings.rematch_interval),
    },
    "permissions-check": {
        "task": TaskName.CHECK_PERMISSIONS.value,
        "schedule": timedelta(seconds=3600),
    },
    "quota-read": {
        "task": TaskName.SYNC_QUOTA.value,
        "schedule": timedelta(seconds=_settings.quota_interval),
    },
    "expire-records": {
        "task": TaskName.EXPIRE_RECORDS.value,
        "schedule": timedelta(seconds=_settings.expire_interval),
    },
}

# Celery reads every public name of this module as a setting, and Flower and `celery
# inspect conf` show them: the helpers imported above are not settings.
del annotations, timedelta, Exchange, Queue, OutboxQueue, TaskName, get_settings
