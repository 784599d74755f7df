"""The monthly quota: emails that would overdraw it wait ``throttled``, a read with room
lets them go (fakeredis, the API through ``httpx.MockTransport``).

SMTP2GO counts "each recipient ... as one email from your plan's monthly quota"
(support.smtp2go.com, getting started) and reports the cycle through
``stats/email_cycle`` (``cycle_used``, ``cycle_remaining``, ``cycle_max``,
``cycle_end``; OpenAPI v3.0.4).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import fakeredis
import httpx
import pytest

from outbox import send_email, send_sms, status
from outbox.core.settings import Settings
from outbox.core.smtp2go.client import SMTP2GOClient
from outbox.core.states import Kind, State
from outbox.core.store import keys
from outbox.core.store.chunks import batch_id_of
from outbox.core.store.parked import Call
from outbox.core.windows import parse_windows
from outbox.worker.beat import _cycle_end, sweep_stuck, sync_quota
from outbox.worker.delivery import Delivery
from outbox.worker.runtime import Runtime, set_runtime

KEY = "api-" + "Qu0ta" * 6 + "00"


class Api:
    """Answers sends, and ``stats/email_cycle`` with ``cycle`` (the test sets it)."""

    def __init__(self) -> None:
        self.sends = 0
        self.cycle: dict[str, Any] = {}
        self.reads = 0
        #: Answer this status to the next send, then answer as usual.
        self.fail_next: int | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("stats/email_cycle"):
            self.reads += 1
            return httpx.Response(200, json={"request_id": "r", "data": self.cycle})
        self.sends += 1
        if self.fail_next is not None:
            status, self.fail_next = self.fail_next, None
            error = {"error": "unavailable", "error_code": "E_ApiResponseCodes.UNAVAILABLE"}
            return httpx.Response(status, json={"request_id": "r", "data": error})
        body = json.loads(request.content)
        if "destination" in body:
            data: dict[str, Any] = {"messages": [], "succeeded": len(body["destination"])}
        else:
            data = {"succeeded": 1, "failed": 0, "failures": [], "email_id": f"E-{self.sends}"}
        return httpx.Response(200, json={"request_id": "r", "data": data})


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def rt(api: Api) -> Iterator[Runtime]:
    settings = Settings(
        SMTP2GO_API_KEY=KEY,
        SMTP2GO_BASE_URL="http://127.0.0.1:9/v3",
        OUTBOX_RATE_LIMIT="1000/s",
    )
    client = SMTP2GOClient(settings.base_url, KEY, transport=httpx.MockTransport(api))
    runtime = Runtime.from_settings(settings, redis_client=fakeredis.FakeRedis(), client=client)
    set_runtime(runtime)
    yield runtime
    set_runtime(None)


def _emails(n: int, recipients: int = 100) -> list[tuple[str, dict[str, Any]]]:
    """``n`` recorded emails of ``recipients`` each, not published (``send_at`` parks
    them): their chunk ids and task payloads."""
    out = []
    for i in range(n):
        to = [f"r{i}-{j}@example.org" for j in range(recipients)]
        handle = send_email("shop@example.com", to, "Hi", text_body="x", send_at=time.time() + 3600)
        payload = {"sender": "shop@example.com", "subject": "Hi", "text_body": "x", "to": to}
        out.append((f"{handle.id}.0", payload))
    return out


def _deliver(rt: Runtime, chunk_id: str, payload: dict[str, Any], kind: Kind = Kind.EMAIL) -> str:
    return Delivery(rt, kind, chunk_id, "w1").run(payload)


def _cycle(remaining: int, maximum: int = 10_000, ends_in: float = 86_400) -> dict[str, Any]:
    ends = time.gmtime(time.time() + ends_in)
    return {
        "cycle_start": "2026-11-01 00:00:00+00:00",
        "cycle_end": time.strftime("%Y-%m-%d %H:%M:%S+00:00", ends),
        "cycle_used": maximum - remaining,
        "cycle_remaining": remaining,
        "cycle_max": maximum,
    }


def test_an_email_that_would_overdraw_the_quota_waits_throttled(rt: Runtime, api: Api) -> None:
    rt.store.account.set_quota_left(150, until=rt.store.now() + 3600)
    (first, p1), (second, p2), (third, p3) = _emails(3)
    assert _deliver(rt, first, p1) == State.SENT.value
    assert _deliver(rt, second, p2) == State.THROTTLED.value
    assert _deliver(rt, third, p3) == State.THROTTLED.value
    assert api.sends == 1
    assert rt.store.account.quota_left() == 50  # each recipient is one email of the quota
    assert rt.store.account.throttled() == [second, third]
    record = status(batch_id_of(second))
    assert record.state is State.THROTTLED
    chunk = record.chunks[0]
    assert chunk.attempts == 0  # waiting costs no attempt
    assert "monthly quota: 50 left, 100 needed" in chunk.history[-1]["note"]
    # Asked again while nothing changed: still throttled, logged once.
    assert _deliver(rt, second, p2) == State.THROTTLED.value
    assert sum(h["state"] == "throttled" for h in status(second[:32]).chunks[0].history) == 1


@pytest.mark.parametrize(("status", "state"), [(503, State.RETRYING), (400, State.FAILED)])
def test_an_attempt_that_sent_nothing_gives_its_emails_back_to_the_quota(
    rt: Runtime, api: Api, status: int, state: State
) -> None:
    rt.store.account.set_quota_left(150, until=rt.store.now() + 3600)
    [(chunk_id, payload)] = _emails(1)
    api.fail_next = status
    _deliver(rt, chunk_id, payload)
    assert rt.redis.hget(keys.chunk(chunk_id), "state") == state.value.encode()
    assert rt.store.account.quota_left() == 150


def test_sms_are_not_counted_against_the_email_quota(rt: Runtime, api: Api) -> None:
    rt.store.account.set_quota_left(0, until=rt.store.now() + 3600)
    handle = send_sms(["+61400000001"], "code 1", send_at=time.time() + 3600)
    payload = {"destination": ["+61400000001"], "content": "code 1"}
    assert _deliver(rt, f"{handle.id}.0", payload, Kind.SMS) == State.SENT.value


def test_a_read_with_room_lets_the_throttled_go_longest_waiting_first(
    rt: Runtime, api: Api, memory_broker: Any
) -> None:
    rt.store.account.set_quota_left(0, until=rt.store.now() + 3600)
    emails = _emails(3)
    for chunk_id, payload in emails:
        assert _deliver(rt, chunk_id, payload) == State.THROTTLED.value
    memory_broker.drain()

    api.cycle = _cycle(remaining=250)  # the operator raised the allowance
    seen = sync_quota()
    assert seen is not None
    assert seen["released"] == 2  # 2 x 100 fit in 250; the third would overdraw it
    published = [args[0] for _name, args, _queue in memory_broker.drain()]
    assert published == [emails[0][0], emails[1][0]]
    assert rt.store.account.quota_left() == 250
    for chunk_id, payload in emails[:2]:
        assert _deliver(rt, chunk_id, payload) == State.SENT.value
    assert rt.store.account.throttled() == [emails[2][0]]
    assert rt.store.account.quota_left() == 50
    recorded = {**api.cycle, "read_at": seen["read_at"], "plan": "free", "left": 250}
    assert rt.store.account.quota() == recorded


def test_a_free_plan_holds_emails_once_the_allowance_is_used(rt: Runtime, api: Api) -> None:
    api.cycle = _cycle(remaining=0, maximum=1000)
    seen = sync_quota()
    assert seen is not None
    assert seen["left"] == 0
    [(chunk_id, payload)] = _emails(1)
    assert _deliver(rt, chunk_id, payload) == State.THROTTLED.value
    assert api.sends == 0


@pytest.mark.parametrize(
    ("used", "left"),
    [(1000, 2000), (2900, 100), (3000, 0), (3100, 0)],  # the allowance is 1,000
)
def test_a_paid_plan_sends_on_into_overage_up_to_three_times_the_allowance(
    rt: Runtime, api: Api, used: int, left: int
) -> None:
    """Past 100 % a paid plan pays overage and is refused only at 300 % (SMTP2GO support,
    "Quota Usage Notifications"); the API's own ``cycle_remaining`` is 0 there."""
    rt.settings = rt.settings.model_copy(update={"quota_plan": "paid"})
    api.cycle = {**_cycle(remaining=0, maximum=1000), "cycle_used": used}
    seen = sync_quota()
    assert seen is not None
    assert seen["plan"] == "paid"
    assert rt.store.account.quota_left() == left
    [(chunk_id, payload)] = _emails(1)
    expected = State.SENT if left >= 100 else State.THROTTLED
    assert _deliver(rt, chunk_id, payload) == expected.value


def test_the_quota_left_expires_when_the_cycle_ends(rt: Runtime, api: Api) -> None:
    api.cycle = _cycle(remaining=10, ends_in=600)
    sync_quota()
    ttl = rt.redis.pttl(keys.quota_left()) / 1000
    assert 590 <= ttl <= 601


@pytest.mark.parametrize(
    "cycle",
    [
        {**_cycle(remaining=0), "cycle_max": 0},  # no allowance reported
        _cycle(remaining=0, ends_in=-60),  # a cycle already over
    ],
)
def test_a_read_that_sets_no_quota_lets_everything_go(
    rt: Runtime, api: Api, memory_broker: Any, cycle: dict[str, Any]
) -> None:
    rt.store.account.set_quota_left(0, until=rt.store.now() + 3600)
    emails = _emails(2)
    for chunk_id, payload in emails:
        _deliver(rt, chunk_id, payload)
    memory_broker.drain()
    api.cycle = cycle
    assert sync_quota()["released"] == 2  # type: ignore[index]
    assert rt.store.account.quota_left() is None
    assert _deliver(rt, *emails[0]) == State.SENT.value


def test_the_stuck_sweep_leaves_throttled_chunks_to_the_quota_read(
    rt: Runtime, api: Api, memory_broker: Any
) -> None:
    rt.store.account.set_quota_left(0, until=rt.store.now() + 3600)
    [(chunk_id, payload)] = _emails(1)
    assert _deliver(rt, chunk_id, payload) == State.THROTTLED.value
    memory_broker.drain()
    rt.redis.zadd(keys.active(), {chunk_id: 0})  # it has not moved for ages
    rt.redis.hdel(keys.chunk(chunk_id), "due_at")  # nor waits for a send_at
    assert sweep_stuck() == 0
    assert memory_broker.drain() == []


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2022-11-30 00:00:00+00:00", 1669766400.0),  # the API's examples
        ("2016-08-04 01:49:15.863998", 1470275355.863998),  # the schema's: no offset, UTC
        ("soon", None),
    ],
)
def test_cycle_end_is_read_as_the_api_writes_it(text: str, epoch: float | None) -> None:
    assert _cycle_end(text) == epoch


def test_the_quota_read_takes_a_slot_of_the_shared_limit_or_waits_parked(
    rt: Runtime, api: Api
) -> None:
    """The service counts every request: a read while the workers send at the limit would
    be the one over it. With no slot soon, the job parks itself and spends no attempt."""
    api.cycle = _cycle(remaining=500)
    full = replace(rt.send_limit, windows=parse_windows("1/m"))
    rt.send_limit = full
    assert rt.store.limits.acquire(full, "a-send", max_wait=1.0)[0]  # the window's one slot
    assert sync_quota() is None
    assert api.reads == 0
    [(member, due)] = rt.redis.zrange(keys.parked(), 0, -1, withscores=True)
    assert Call.from_member(member).args == (1,)  # the same attempt, later
    assert due > rt.store.now()  # the send is in flight: ask again after a moment
    rt.redis.delete(keys.parked())
    rt.store.limits.release(full, "a-send", went_out=True)  # answered: counted 60 s more
    assert sync_quota() is None
    assert api.reads == 0
    [(_, due)] = rt.redis.zrange(keys.parked(), 0, -1, withscores=True)
    assert due > rt.store.now() + 55


def test_a_bulk_chunk_the_quota_no_longer_covers_when_its_turn_comes_waits_throttled(
    rt: Runtime,
) -> None:
    """Chunks waiting in a lane passed the quota when they were claimed; the ones granted
    before them take from it meanwhile, so each is checked again when it is granted."""
    from outbox.core.store.batches import ClaimOutcome
    from outbox.core.store.limits import Limit

    limit = Limit(
        "send", parse_windows("1/0.05s"), lease=30.0, ttl=3600, line_lease=60.0, lookahead=1.0
    )
    rt.store.account.set_quota_left(250, until=time.time() + 3600)
    first = send_email("s@example.com", ["a@example.org"], "x", text_body="y", lane="bulk")
    campaign = send_email(
        "s@example.com", [f"r{i}@example.org" for i in range(300)], "x", text_body="y",
        lane="bulk",
    )  # fmt: skip
    batches = rt.store.batches
    ids = [f"{campaign.id}.{i}" for i in range(3)]

    def claim(chunk_id: str) -> ClaimOutcome:
        return batches.claim(chunk_id, limit=limit, worker="w", token=chunk_id, max_wait=60).outcome

    def states() -> list[str]:
        return [c.state.value for c in (batches.chunk(i) for i in ids) if c is not None]

    assert claim(f"{first.id}.0") is ClaimOutcome.CLAIMED
    for chunk_id in ids:  # 249 left covers each of them alone: all three wait in the lane
        assert claim(chunk_id) is ClaimOutcome.QUEUED
    member = f"{first.id}.0#1"
    for _ in range(4):  # each answer frees the slot for the next in the lane
        batches.finish(member.split("#")[0], State.SENT, limit=limit, member=member)
        time.sleep(0.06)  # the window's period: its slot is free again
        rt.store.limits.serve(limit)
        granted = [i for i, s in zip(ids, states(), strict=True) if s == "sending"]
        if not granted:
            break
        assert claim(granted[0]) is ClaimOutcome.CLAIMED
        member = f"{granted[0]}#1"
    assert sorted(states()) == ["sent", "sent", "throttled"]  # 249 - 200 = 49 < 100
    assert rt.store.account.quota_left() == 49
