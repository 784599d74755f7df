"""The kinds' table: one row per kind, read by everything that used to branch on it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from outbox import retry_failed, send_sms
from outbox.core.kinds import KINDS, SEND_TASKS, lane_for, queue_for
from outbox.core.queues import Queue
from outbox.core.states import Kind, State
from outbox.core.store import scripts
from outbox.worker import reconcile as reconcile_module
from outbox.worker.runtime import Runtime
from outbox.worker.tasks import KIND_OF


def test_every_kind_has_one_row_and_its_task_name_stays_as_the_broker_knows_it() -> None:
    assert set(KINDS) == set(Kind)
    assert all(spec.kind is kind for kind, spec in KINDS.items())
    # on the broker and in the records of a running fleet: never renamed
    assert {k.value: t.value for k, t in SEND_TASKS.items()} == {
        "email": "outbox.send_email",
        "template": "outbox.send_template",
        "mime": "outbox.send_mime",
        "sms": "outbox.send_sms",
    }
    assert {task: kind for kind, task in SEND_TASKS.items()} == KIND_OF


def test_the_scripts_exempt_from_the_monthly_quota_only_the_unmetered_kinds() -> None:
    prelude = scripts.source("finish").splitlines()
    assert "local UNMETERED = {['sms'] = true}" in prelude
    assert [kind for kind, spec in KINDS.items() if not spec.metered] == [Kind.SMS]


@pytest.mark.parametrize(
    ("kind", "chunks", "lane", "queue"),
    [
        (Kind.EMAIL, 3, "transactional", Queue.EMAIL),
        (Kind.TEMPLATE, 11, "bulk", Queue.BULK),
        (Kind.MIME, 11, "bulk", Queue.BULK),
        (Kind.SMS, 11, "transactional", Queue.SMS),  # SMS have a queue of their own
    ],
)
def test_a_kinds_row_says_where_its_chunks_wait(
    kind: Kind, chunks: int, lane: str, queue: Queue
) -> None:
    assert lane_for(kind, chunks, bulk_threshold=10) == lane
    assert queue_for(kind, chunks, bulk_threshold=10) is queue
    assert queue_for(kind, chunks, bulk_threshold=10, lane="bulk") is (
        Queue.SMS if kind is Kind.SMS else Queue.BULK
    )


def test_a_kind_that_cannot_be_looked_up_leaves_its_fate_unknown(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = {**KINDS, Kind.SMS: dataclasses.replace(KINDS[Kind.SMS], look_up=None)}
    monkeypatch.setattr(reconcile_module, "KINDS", rows)
    found = reconcile_module.reconcile(runtime, Kind.SMS, "x.0", {"destination": ["+61400000001"]})
    assert (found.found, found.conclusive) == (False, False)
    assert "cannot be looked up" in found.how


def test_an_sms_retried_names_only_the_failed_numbers_in_its_one_list(
    runtime: Runtime, memory_broker: Any
) -> None:
    numbers = [f"+614000{i:05d}" for i in range(120)]
    handle = send_sms(numbers, "code 1")
    memory_broker.drain()
    batches = runtime.store.batches
    batches.finish(f"{handle.id}.0", State.SENT, limit=runtime.send_limit)
    error = {"type": "ServerError", "message": "busy", "status_code": 503}
    batches.finish(
        f"{handle.id}.1", State.DEAD, limit=runtime.send_limit, fields={"last_error": error}
    )
    again = retry_failed(handle.id)
    assert again is not None
    assert (again.kind, again.chunks, again.recipients) == ("sms", 1, 20)
    [(name, args, queue)] = memory_broker.drain()
    assert (name, queue) == ("outbox.send_sms", "sms")
    assert args[1]["destination"] == numbers[100:]
    assert args[1]["content"] == "code 1"
