"""The queues and the task names: one vocabulary for producers, workers and the config.

``celeryconfig`` declares and routes the queues from :class:`Queue`, and everything that
publishes names tasks by :class:`TaskName`, so a queue or a task is spelled once. Which
kind of message goes where, and by which task, is :mod:`outbox.core.kinds`'s table.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Queue", "TaskName"]


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
