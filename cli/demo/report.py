"""The demo's summary, worked out from what the records and the sandbox say.

The recipient counts come from the chunks' states and the sandbox's rejections, not from
the API's ``succeeded``/``failed``: those count emails (one per chunk), not recipients.
The verdict comes from the sandbox, the independent oracle: its ``/_sandbox/messages``
must show every deliverable recipient exactly once, the suppressed reader rejected, and
nothing for the invalid sends; the records must show nothing dead; and when the quota
phase ran, part of its campaign must have waited for the quota and been let go.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from outbox.cli.demo.counters import SEND_ENDPOINTS, sandbox_stats, send_counters
from outbox.cli.demo.mix import GROUPS, Plan
from outbox.cli.demo.options import DemoOptions, demo_settings, per_second
from outbox.cli.demo.stack import DemoStack, redacted_url
from outbox.core.states import State
from outbox.core.views import Record, load_record
from outbox.worker.runtime import Runtime

if TYPE_CHECKING:
    from outbox.cli.demo.quota import QuotaPhase
    from outbox.cli.demo.watch import Watch

__all__ = ["DemoReport", "build_report"]


@dataclass
class DemoReport:
    """Everything the summary shows; ``as_json`` is what ``--json`` prints."""

    mode: str
    broker: str
    records: str
    recipients: int
    enqueued: int
    sent: int
    failed: int
    dead: int
    rejected_at_producer: int
    #: Recipients of the sends the plan made invalid on purpose.
    invalid_planned: int
    sends: int
    chunks: int
    chunks_retried: int
    attempts: int
    rate_limited: int
    injected_5xx: int
    api_requests: int
    sandbox_rate: float | None
    limit_rate: float
    achieved_rate: float
    accepted_rate: float
    #: The most sends the sandbox accepted within any one second: what a strict window at
    #: the service counts, and what the limiter promises to keep at or under the limit.
    busiest_second: int
    setup_seconds: float
    send_seconds: float
    wall_seconds: float
    timed_out: bool
    delivered: int
    deliverable: int
    duplicates: list[str]
    missing: list[str]
    unexpected: list[str]
    suppressed_ok: bool
    groups: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    #: The reminder canceled before its time: its id, state and whether it reached the API.
    canceled: dict[str, Any] = field(default_factory=dict)
    #: The quota phase (``None``: not run).
    quota: QuotaPhase | None = None
    #: With ``--redis``: keys the demo wrote that would have outlived the hour it keeps
    #: its records for, removed at the end (``None``: no Redis was used).
    redis_keys_removed: int | None = None

    @property
    def checks(self) -> dict[str, bool]:
        return {
            "all_final": not self.timed_out,
            "delivered_exactly_once": not (self.duplicates or self.missing or self.unexpected)
            and self.delivered == self.deliverable,
            "suppressed_recipient_rejected": self.suppressed_ok,
            "invalid_rejected_at_producer": self.rejected_at_producer == self.invalid_planned
            and self.enqueued == self.recipients - self.invalid_planned,
            "nothing_dead": self.dead == 0,
            "canceled_send_never_sent": self.canceled.get("state") == State.CANCELED.value
            and not self.canceled.get("reached_api"),
            **({"quota_waited_then_sent": self.quota.ok} if self.quota is not None else {}),
        }

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": self.checks,
            "mode": self.mode,
            "broker": self.broker,
            "records": self.records,
            "recipients": {
                "total": self.recipients,
                "enqueued": self.enqueued,
                "sent": self.sent,
                "failed": self.failed,
                "dead": self.dead,
                "rejected_at_producer": self.rejected_at_producer,
            },
            "delivery": {
                "deliverable": self.deliverable,
                "delivered": self.delivered,
                "duplicates": self.duplicates,
                "missing": self.missing,
                "unexpected": self.unexpected,
            },
            "sends": self.sends,
            "chunks": {
                "total": self.chunks,
                "retried": self.chunks_retried,
                "attempts": self.attempts,
            },
            "sandbox": {
                "api_requests": self.api_requests,
                "rate_limited_429": self.rate_limited,
                "injected_5xx": self.injected_5xx,
            },
            "rate": {
                "sandbox_per_second": self.sandbox_rate,
                "limit_per_second": self.limit_rate,
                "achieved_per_second": round(self.achieved_rate, 2),
                "accepted_per_second": round(self.accepted_rate, 2),
                "busiest_second": self.busiest_second,
            },
            "seconds": {
                "setup": round(self.setup_seconds, 2),
                "sending": round(self.send_seconds, 2),
                "wall": round(self.wall_seconds, 2),
            },
            "groups": self.groups,
            "faults": self.faults,
            "canceled": self.canceled,
            "quota": self.quota.as_json() if self.quota is not None else None,
            "redis_keys_removed": self.redis_keys_removed,
        }


def _busiest(times: list[float], period: float) -> int:
    """The most of ``times`` that fall within any one ``period`` (a sliding window)."""
    ordered = sorted(times)
    most = start = 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= period:
            start += 1
        most = max(most, end - start + 1)
    return most


def _outcome(record: Record, rejected: set[str]) -> tuple[int, int]:
    """``(sent, failed)`` recipients of a record: a ``sent`` chunk's recipients were
    accepted, less those the API rejected afterwards (suppressed); a ``failed`` chunk's
    failed. Dead chunks are counted apart."""
    sent = failed = 0
    for chunk in record.chunks:
        if chunk.state is State.SENT:
            refused = sum(1 for r in chunk.recipients if r.lower() in rejected)
            sent += len(chunk.recipients) - refused
            failed += refused
        elif chunk.state is State.FAILED:
            failed += len(chunk.recipients)
    return sent, failed


def _group_row(group: str) -> dict[str, Any]:
    return {
        "group": group,
        "sends": 0,
        "chunks": 0,
        "recipients": 0,
        "sent": 0,
        "failed": 0,
        "retried_chunks": 0,
    }


def build_report(
    *,
    rt: Runtime,
    control: Any,
    stack: DemoStack,
    options: DemoOptions,
    plan: Plan,
    watch: Watch,
    quota: QuotaPhase | None,
    setup_seconds: float,
    started: float,
    canceled_id: str = "",
) -> DemoReport:
    """The summary, from each send's whole record and what the sandbox saw."""
    batches, invalid = list(watch.batches), list(watch.invalid)
    loaded = (load_record(rt.store, b.handle.id) for b in batches)
    records = [r for r in loaded if r is not None]
    stats = sandbox_stats(control)
    response = control.get("/_sandbox/messages")
    response.raise_for_status()
    messages: list[dict[str, Any]] = list(response.json()["messages"])
    delivered: collections.Counter[str] = collections.Counter()
    refused: set[str] = set()
    times: list[float] = []
    for message in messages:
        if message.get("endpoint") not in SEND_ENDPOINTS:
            continue
        times.append(float(message.get("time", 0.0)))
        if message.get("endpoint") == "sms/send":
            delivered.update(str(d) for d in message.get("destination") or [])
        else:
            delivered.update(str(r).lower() for r in message.get("recipients") or [])
            refused.update(str(r).lower() for r in message.get("rejected") or [])
    deliverable = [r.lower() if "@" in r else r for r in plan.deliverable]
    expected = set(deliverable)
    by_id = {r.id: r for r in records}
    dead = sum(len(c.recipients) for r in records for c in r.chunks if c.state is State.DEAD)
    outcomes = {r.id: _outcome(r, refused) for r in records}
    sent = sum(s for s, _ in outcomes.values())
    failed = sum(f for _, f in outcomes.values())
    suppressed = plan.suppressed.lower()
    suppressed_ok = suppressed in refused and suppressed not in delivered
    suppressed_ok = suppressed_ok and any(
        c.state is State.SENT and suppressed in (x.lower() for x in c.recipients)
        for r in records
        for c in r.chunks
    )
    requests, limited, injected = send_counters(stats)
    window = (max(times) - min(times)) if len(times) > 1 else 0.0
    groups: dict[str, dict[str, Any]] = {}
    for batch in batches:
        record = by_id.get(batch.handle.id)
        row = groups.setdefault(batch.planned.group, _group_row(batch.planned.group))
        row["sends"] += 1
        row["recipients"] += batch.handle.recipients
        if record is not None:
            row["chunks"] += record.chunks_total
            row["sent"] += outcomes[record.id][0]
            row["failed"] += outcomes[record.id][1]
            row["retried_chunks"] += sum(1 for c in record.chunks if c.attempts > 1)
    for planned, _exc in invalid:
        row = groups.setdefault(planned.group, _group_row(planned.group))
        row["sends"] += 1
        row["recipients"] += len(planned.recipients)
    return DemoReport(
        mode=stack.mode,
        broker=redacted_url(stack.broker_url),
        records=redacted_url(stack.records_url),
        recipients=plan.recipients,
        enqueued=sum(b.handle.recipients for b in batches),
        sent=sent,
        failed=failed,
        dead=dead,
        rejected_at_producer=sum(len(p.recipients) for p, _ in invalid),
        invalid_planned=plan.invalid_recipients,
        sends=len(plan.sends),
        chunks=sum(r.chunks_total for r in records),
        chunks_retried=sum(1 for r in records for c in r.chunks if c.attempts > 1),
        attempts=sum(r.attempts for r in records),
        rate_limited=limited,
        injected_5xx=injected,
        api_requests=requests,
        sandbox_rate=per_second(options.rate),
        limit_rate=per_second(demo_settings(options)["OUTBOX_RATE_LIMIT"]) or 0.0,
        achieved_rate=requests / window if window else 0.0,
        accepted_rate=(len(times) - 1) / window if window else 0.0,
        busiest_second=_busiest(times, 1.0),
        setup_seconds=setup_seconds,
        send_seconds=watch.elapsed(),
        wall_seconds=time.monotonic() - started,
        timed_out=watch.timed_out,
        delivered=sum(delivered[r] for r in expected),
        deliverable=len(deliverable),
        duplicates=sorted(a for a, n in delivered.items() if n > 1)[:20],
        missing=sorted(expected - set(delivered))[:20],
        unexpected=sorted(set(delivered) - expected)[:20],
        suppressed_ok=suppressed_ok,
        groups=[groups[g] for g in GROUPS if g in groups],
        faults=list(watch.fired),
        canceled=_canceled(rt, canceled_id, delivered),
        quota=quota,
    )


def _canceled(rt: Runtime, send_id: str, delivered: collections.Counter[str]) -> dict[str, Any]:
    record = load_record(rt.store, send_id) if send_id else None
    if record is None:
        return {}
    return {
        "id": send_id,
        "state": record.state.value,
        "chunks_canceled": record.counts.get(State.CANCELED.value, 0),
        "reached_api": any(delivered[r.lower()] for c in record.chunks for r in c.recipients),
    }
