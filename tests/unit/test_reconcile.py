"""Reconciliation of ambiguous attempts through ``activity/search`` (fakeredis, a mock API).

A scan reads the events from shortly before the attempt's claim, not a whole hour back,
so a busy account's recent sends are within the pages it reads; and a scan cut off at
``MAX_PAGES`` never concludes that a send was not accepted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from outbox.core.queues import Queue
from outbox.core.settings import Settings
from outbox.core.smtp2go.client import SMTP2GOClient
from outbox.core.states import Kind
from outbox.core.store import keys
from outbox.core.store.chunks import ChunkSpec, chunk_id_for
from outbox.worker.reconcile import (
    CLAIM_MARGIN,
    MAX_PAGES,
    OUTBOX_ID_HEADER,
    PAGE_SIZE,
    PAGE_SLOT_WAIT,
    SCAN_WAIT,
    SETTLE_SECONDS,
    ThrottledLookup,
    reconcile,
)
from outbox.worker.runtime import Runtime

KEY = "api-" + "R3c0nc1l3" + "0" * 23


def _event(chunk_id: str | None, n: int) -> dict[str, Any]:
    headers = {OUTBOX_ID_HEADER: chunk_id} if chunk_id else {}
    return {"event": "processed", "email_id": f"E-{n}", "custom_headers": headers}


def _runtime(fake_redis: Any, handler: Callable[[httpx.Request], httpx.Response]) -> Runtime:
    client = SMTP2GOClient("https://api.example/v3", KEY, transport=httpx.MockTransport(handler))
    settings = Settings(SMTP2GO_API_KEY=KEY, SMTP2GO_BASE_URL="https://api.example/v3")
    return Runtime.from_settings(settings, redis_client=fake_redis, client=client)


def _ambiguous_chunk(rt: Runtime, batch_id: str, claimed_ago: float) -> str:
    chunk_id = chunk_id_for(batch_id, 0)
    spec = ChunkSpec(id=chunk_id, index=0, recipients=["a@example.com"])
    rt.store.batches.create(batch_id, kind=Kind.EMAIL, chunks=[spec], payload={}, queue=Queue.EMAIL)
    claimed = rt.store.now() - claimed_ago
    # a claim whose worker died (the state a claim leaves, written as the script writes it)
    rt.redis.hset(
        keys.chunk(chunk_id),
        mapping={
            "state": "sending",
            "claimed_at": f"{claimed:.6f}",
            "lease_until": f"{claimed + 5:.6f}",
        },
    )
    return chunk_id


def _pages(
    events: list[dict[str, Any]], seen: list[dict[str, Any]]
) -> Callable[..., httpx.Response]:
    """The API: ``events`` oldest first, pages of the ``limit`` asked for; every request
    body kept."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        offset = int(body.get("continue_token") or 0)
        size = int(body["limit"])
        page = events[offset : offset + size]
        more = offset + size < len(events)
        data = {
            "events": page,
            "total_events": len(events),
            "continue_token": str(offset + size) if more else None,
        }
        return httpx.Response(200, json={"request_id": "r", "data": data})

    return handler


def test_the_scan_reads_from_just_before_the_claim(fake_redis: Any) -> None:
    seen: list[dict[str, Any]] = []
    rt = _runtime(fake_redis, _pages([_event("0" * 32 + ".0", 1)], seen))
    chunk_id = _ambiguous_chunk(rt, "0" * 32, claimed_ago=30)
    outcome = reconcile(rt, Kind.EMAIL, chunk_id, None)
    assert outcome.found
    assert outcome.email_id == "E-1"
    [query] = seen
    start = datetime.fromisoformat(query["start_date"]).timestamp()
    chunk = rt.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert chunk.claimed_at is not None
    claimed = chunk.claimed_at
    assert start == pytest.approx(claimed - CLAIM_MARGIN.total_seconds(), abs=1)


def test_a_send_past_the_page_cap_is_not_called_unsent(fake_redis: Any) -> None:
    """More events since the claim than a scan may read: found if read, else inconclusive."""
    others = [_event(None, n) for n in range(MAX_PAGES * PAGE_SIZE + 10)]
    seen: list[dict[str, Any]] = []
    rt = _runtime(fake_redis, _pages([*others, _event("1" * 32 + ".0", 99_999)], seen))
    chunk_id = _ambiguous_chunk(rt, "1" * 32, claimed_ago=30)
    outcome = reconcile(rt, Kind.EMAIL, chunk_id, None)
    assert not outcome.found
    assert not outcome.conclusive  # so the "hold" policy holds it, and the note says why
    assert "events since the claim" in outcome.how
    assert len(seen) == MAX_PAGES


def test_a_send_on_a_later_page_is_found(fake_redis: Any) -> None:
    others = [_event(None, n) for n in range(2500)]
    seen: list[dict[str, Any]] = []
    rt = _runtime(fake_redis, _pages([*others, _event("2" * 32 + ".0", 7)], seen))
    chunk_id = _ambiguous_chunk(rt, "2" * 32, claimed_ago=30)
    assert reconcile(rt, Kind.EMAIL, chunk_id, None).email_id == "E-7"
    assert len(seen) == 26  # 2,501 events in pages of 100
    assert {body["limit"] for body in seen} == {PAGE_SIZE}


def test_one_scan_settles_the_chunks_of_one_crash(fake_redis: Any) -> None:
    seen: list[dict[str, Any]] = []
    rt = _runtime(fake_redis, _pages([_event("3" * 32 + ".0", 3)], seen))
    first = _ambiguous_chunk(rt, "3" * 32, claimed_ago=30)
    second = _ambiguous_chunk(rt, "4" * 32, claimed_ago=31)  # in flight at the same crash
    assert reconcile(rt, Kind.EMAIL, first, None).found
    outcome = reconcile(rt, Kind.EMAIL, second, None)
    assert (outcome.found, outcome.conclusive) == (False, True)  # not accepted: resend is safe
    assert len(seen) == 1


def test_an_attempt_not_settled_yet_waits_instead_of_scanning(fake_redis: Any) -> None:
    """Its event may not be listed yet: a scan now could call an accepted send unsent."""
    seen: list[dict[str, Any]] = []
    rt = _runtime(fake_redis, _pages([], seen))
    chunk_id = _ambiguous_chunk(rt, "6" * 32, claimed_ago=5)  # its lease ended just now
    with pytest.raises(ThrottledLookup) as waited:
        reconcile(rt, Kind.EMAIL, chunk_id, None)
    assert 0 < waited.value.wait <= SETTLE_SECONDS
    assert seen == []


def test_one_worker_scans_and_the_others_wait_for_its_answer(fake_redis: Any) -> None:
    """The in-flight chunks of a crash come back together; one scan answers them all,
    where each scanning for itself spent the minute's ``activity/search`` allowance."""
    seen: list[dict[str, Any]] = []
    rt = _runtime(fake_redis, _pages([_event("7" * 32 + ".0", 7)], seen))
    chunk_id = _ambiguous_chunk(rt, "7" * 32, claimed_ago=30)
    scanning = rt.store.scans.exclusive(60)  # another worker's scan under way
    assert scanning is not None
    with pytest.raises(ThrottledLookup) as waited:
        reconcile(rt, Kind.EMAIL, chunk_id, None)
    assert waited.value.wait == SCAN_WAIT
    assert seen == []
    scanning.release()
    assert reconcile(rt, Kind.EMAIL, chunk_id, None).email_id == "E-7"
    assert len(seen) == 1


def test_a_look_up_waits_out_the_fleets_cool_down(fake_redis: Any) -> None:
    """A 429 times the whole IP out: ``activity/search`` too, so no scan goes meanwhile."""
    seen: list[dict[str, Any]] = []
    rt = _runtime(fake_redis, _pages([], seen))
    chunk_id = _ambiguous_chunk(rt, "8" * 32, claimed_ago=30)
    rt.store.limits.cool_down(rt.send_limit, 45)
    with pytest.raises(ThrottledLookup) as waited:
        reconcile(rt, Kind.EMAIL, chunk_id, None)
    assert 44 <= waited.value.wait <= 45
    assert seen == []


class _ScanLandsAfterFirstRead:
    """A Redis client on which another worker's finished scan (finds and marks, one
    transaction) lands right after this worker's first read of the found map."""

    def __init__(self, inner: Any, land: Callable[[], None]) -> None:
        self._inner, self._land, self._landed = inner, land, False

    def hget(self, *args: Any) -> Any:
        value = self._inner.hget(*args)
        self._maybe_land()
        return value

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = self._inner.pipeline(*args, **kwargs)
        execute = pipe.execute

        def execute_then_land(*a: Any, **k: Any) -> Any:
            result = execute(*a, **k)
            self._maybe_land()
            return result

        pipe.execute = execute_then_land
        return pipe

    def _maybe_land(self) -> None:
        if not self._landed:
            self._landed = True
            self._land()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_scan_landing_between_reads_is_never_taken_for_a_miss(fake_redis: Any) -> None:
    """Three sends of one crash come back together; another worker's scan, which found
    this chunk, completes between this worker's reads. Read apart, the found map looked
    empty and the scan marks finished: the chunk was called unsent and sent twice."""
    seen: list[dict[str, Any]] = []
    rt = _runtime(fake_redis, _pages([], seen))  # this worker's own scan would find nothing
    chunk_id = _ambiguous_chunk(rt, "5" * 32, claimed_ago=30)
    now = rt.store.now()

    def other_workers_scan() -> None:
        pipe = fake_redis.pipeline(transaction=True)
        pipe.hset(keys.reconcile_found(), chunk_id, "E-5")
        pipe.set(keys.reconcile_scanned("at"), f"{now:.6f}")
        pipe.set(keys.reconcile_scanned("from"), f"{now - 120:.6f}")
        pipe.execute()

    rt.store.scans.redis = _ScanLandsAfterFirstRead(fake_redis, other_workers_scan)
    outcome = reconcile(rt, Kind.EMAIL, chunk_id, None)
    assert (outcome.found, outcome.email_id) == (True, "E-5")


def test_a_whole_scan_fits_in_one_minutes_allowance_of_the_default_limit(
    fake_redis: Any,
) -> None:
    """What ``MAX_PAGES`` and ``PAGE_SLOT_WAIT`` rely on: the ``activity`` limit is not
    paced, so a scan's pages each find a slot at once, and the next minute's first slot
    is a minute off, not a second."""
    rt = Runtime.from_settings(Settings(), redis_client=fake_redis)
    limits, limit = rt.store.limits, rt.activity_limit

    def page(i: int, max_wait: float = 0.0) -> tuple[bool, float]:
        got = limits.acquire(limit, f"scan:{i}", max_wait=max_wait)
        if got[0]:
            limits.release(limit, f"scan:{i}", went_out=True)  # answered at once
        return got

    assert [page(i) for i in range(MAX_PAGES)] == [(True, 0.0)] * MAX_PAGES
    assert [page(i) for i in range(MAX_PAGES, 60)] == [(True, 0.0)] * (60 - MAX_PAGES)
    more, wait = page(60, PAGE_SLOT_WAIT)
    assert not more
    assert wait > 55
