"""The queues and the task names: one vocabulary for producers, workers and the config.

``celeryconfig`` declares and routes the queues from :class:`Queue`, and everything that
publishes names tasks by :class:`TaskName`, so a queue or a task is spelled once.
"""

from __future__ import annotations

from enum import StrEnum

from outbox.worker.states import Kind

__all__ = ["SEND_TASKS", "Queue", "TaskName", "queue_for"]


class Queue(StrEnum):
    #: Emails, templates and MIME of up to ``OUTBOX_BULK_THRESHOLD`` chunks; webhook events.
    EMAIL = "email"
    #: Larger batches (newsletters), drained after ``email`` by workers that take both.
    BULK = "bulk"
    #: SMS.
    SMS = "sms"


class TaskName(StrEnum):
    SEND_EMAIL = "outbox.send_email"
    SEND_TEMPLATE = "outbox.send_template"
    SEND_MIME = "outbox.send_mime"
    SEND_SMS = "outbox.send_sms"
    #: Publishes the chunk tasks of a large batch from a worker.
    FAN_OUT = "outbox.fan_out"
    #: Not a task: the parked-set member that has a relay serve the bulk lane when a
    #: thread-less chunk's slot nears (``serve.lua``).
    SERVE_LINE = "outbox.serve_line"
    #: Records one webhook event on its message.
    RECORD_EVENT = "outbox.record_event"
    #: Scheduled jobs (``celeryconfig.beat_schedule``).
    STATS_SNAPSHOT = "outbox.beat.stats_snapshot"
    SYNC_SUPPRESSIONS = "outbox.beat.sync_suppressions"
    SYNC_QUOTA = "outbox.beat.sync_quota"
    CHECK_PERMISSIONS = "outbox.beat.check_permissions"
    SWEEP_STUCK = "outbox.beat.sweep_stuck"
    REMATCH_EVENTS = "outbox.beat.rematch_events"
    EXPIRE_RECORDS = "outbox.beat.expire_records"


#: The send task of each kind of message.
SEND_TASKS: dict[Kind, TaskName] = {
    Kind.EMAIL: TaskName.SEND_EMAIL,
    Kind.TEMPLATE: TaskName.SEND_TEMPLATE,
    Kind.MIME: TaskName.SEND_MIME,
    Kind.SMS: TaskName.SEND_SMS,
}


def queue_for(kind: Kind, chunks: int, bulk_threshold: int, *, lane: str | None = None) -> Queue:
    """Where a batch's chunks go: SMS to ``sms``, the bulk lane (by default, batches of
    more than ``bulk_threshold`` chunks) to ``bulk``, the rest to ``email``."""
    if kind is Kind.SMS:
        return Queue.SMS
    if lane is None:
        lane = "bulk" if chunks > bulk_threshold else "transactional"
    return Queue.BULK if lane == "bulk" else Queue.EMAIL
