"""One attempt at one chunk: the decisions as tables, then the whole attempt on fakeredis
with an API answering through ``httpx.MockTransport``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import httpx
import pytest

from outbox import send_email
from outbox.core.errors import (
    BadRequestError,
    ForbiddenError,
    RateLimitedError,
    ServerError,
    SMTP2GOError,
    TransportError,
    UnauthorizedError,
)
from outbox.core.settings import Settings
from outbox.core.smtp2go.client import SMTP2GOClient
from outbox.core.smtp2go.models import EmailSend, SendResult
from outbox.core.states import Kind, State
from outbox.core.store import keys
from outbox.core.store.batches import Claim, ClaimOutcome
from outbox.core.store.chunks import batch_id_of
from outbox.worker.account import probe_hold
from outbox.worker.delivery import Delivery
from outbox.worker.policy import Action, Reconciliation, Verdict, decide, judge, settle
from outbox.worker.runtime import Runtime, set_runtime

KEY = "api-" + "0" * 32
Handler = Callable[[httpx.Request], httpx.Response]


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "request_id": "r1",
            "data": {"succeeded": 1, "failed": 0, "failures": [], "email_id": "E-1"},
        },
    )


class Api:
    """The API as the tests script it: every request seen, each answered by ``handler``."""

    def __init__(self) -> None:
        self.handler: Handler = _ok
        self.seen: list[tuple[float, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((time.time(), json.loads(request.content)))
        return self.handler(request)


@pytest.fixture
def api() -> Api:
    return Api()


def _runtime(api: Api, **env: str) -> Runtime:
    settings = Settings(
        SMTP2GO_API_KEY=KEY,
        SMTP2GO_BASE_URL="http://127.0.0.1:9/v3",
        OUTBOX_RATE_LIMIT=env.pop("rate", "1000/s"),
        **env,
    )
    client = SMTP2GOClient(settings.base_url, KEY, transport=httpx.MockTransport(api))
    return Runtime.from_settings(settings, redis_client=fakeredis.FakeRedis(), client=client)


@pytest.fixture
def rt(api: Api) -> Iterator[Runtime]:
    runtime = _runtime(api)
    set_runtime(runtime)
    yield runtime
    set_runtime(None)


def _send(rt: Runtime, n: int = 2, **kw: Any) -> tuple[str, dict[str, Any]]:
    """A recorded email to ``n`` recipients: its chunk id and its task payload (as a
    worker gets it; nothing is published: ``send_at`` parks it)."""
    handle = send_email(
        "shop@example.com", [f"u{i}@example.org" for i in range(n)], "Hi", text_body="x",
        send_at=time.time() + 3600, **kw,
    )  # fmt: skip
    chunk_id = f"{handle.id}.0"
    payload = {"sender": "shop@example.com", "subject": "Hi", "text_body": "x"}
    payload["to"] = [f"u{i}@example.org" for i in range(n)]
    return chunk_id, payload


def _run(rt: Runtime, chunk_id: str, payload: dict[str, Any], worker: str = "w1") -> str:
    return Delivery(rt, Kind.EMAIL, chunk_id, worker).run(payload)


# -- the decisions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "wait", "action", "delay"),
    [
        (ClaimOutcome.CLAIMED, 0.3, Action.SEND, 0.3),
        (ClaimOutcome.WAITING, 0.0, Action.WAIT, 0.0),
        (ClaimOutcome.LATER, 90.0, Action.PARK, 90.0),
        (ClaimOutcome.HELD, 0.0, Action.PARK, 30.0),
        (ClaimOutcome.OVER_QUOTA, 86_400.0, Action.THROTTLE, 0.0),
        (ClaimOutcome.FINAL, 0.0, Action.SETTLED, 0.0),
        (ClaimOutcome.BUSY, 12.0, Action.DROP, 0.0),
        (ClaimOutcome.AMBIGUOUS, 0.0, Action.LOOK_UP, 0.0),
        (ClaimOutcome.MISSING, 0.0, Action.MISSING, 0.0),
    ],
)
def test_decide(outcome: ClaimOutcome, wait: float, action: Action, delay: float) -> None:
    decision = decide(Claim("c.0", outcome, wait, 1, State.QUEUED, 0.0))
    assert (decision.action, decision.delay) == (action, delay)


def _judge(rt: Runtime, outcome: SendResult | SMTP2GOError, *, attempt: int = 1) -> Verdict:
    return judge(
        outcome,
        kind=Kind.EMAIL,
        request=REQUEST,
        attempt=attempt,
        now=rt.store.now(),
        policy=rt.policy,
        settings=rt.settings,
    )


@pytest.mark.parametrize(
    ("found", "conclusive", "policy", "action", "state"),
    [
        (True, True, "hold", Action.SENT, State.SENT),
        (False, True, "hold", Action.RESEND, None),
        (False, False, "hold", Action.DEAD, State.DEAD),
        (False, False, "resend", Action.RESEND, None),
    ],
)
def test_settle(
    found: bool, conclusive: bool, policy: str, action: Action, state: State | None
) -> None:
    decision, note = settle(
        Reconciliation(found, conclusive, "how"), attempt=2, ambiguous_policy=policy
    )
    assert (decision.action, decision.state) == (action, state)
    assert note.startswith("ambiguous attempt 2: ")


REQUEST = EmailSend(
    sender="s@example.com", to=["a@example.org", "b@example.org"], text_body="x"
).to_wire()


def _answer(data: dict[str, Any]) -> SendResult:
    return SendResult.from_payload({"request_id": "r", "data": data})


@pytest.mark.parametrize(
    ("outcome", "state", "retried"),
    [
        (
            _answer({"succeeded": 1, "failed": 0, "failures": [], "email_id": "E"}),
            State.SENT,
            False,
        ),
        # one email to two recipients is one email: succeeded 1 is the whole request
        (
            _answer({"succeeded": 1, "failed": 0, "failures": ["x"], "email_id": "E"}),
            State.SENT,
            False,
        ),
        (_answer({"email_id": "E"}), State.SENT, False),  # fastaccept: no counts yet
        (
            _answer(
                {"succeeded": 0, "failed": 1, "failures": ["domain verify fail"], "email_id": ""}
            ),
            State.FAILED,
            False,
        ),
        (BadRequestError("bad", status_code=400), State.FAILED, False),
        (ServerError("busy", status_code=503), State.RETRYING, True),
        (RateLimitedError("slow down", status_code=429), State.RETRYING, True),
        (TransportError("refused", ambiguous=False), State.RETRYING, True),
        (TransportError("read timeout", ambiguous=True), State.SENDING, True),
        (UnauthorizedError("bad key", status_code=401), State.RETRYING, True),
        (ForbiddenError("denied", status_code=400), State.RETRYING, True),
    ],
)
def test_judge(
    rt: Runtime, outcome: SendResult | SMTP2GOError, state: State, retried: bool
) -> None:
    verdict = _judge(rt, outcome, attempt=1)
    assert verdict.state is state
    assert (verdict.park is not None) is retried


def test_a_refused_email_keeps_the_apis_messages(rt: Runtime) -> None:
    answer = _answer({"succeeded": 0, "failed": 1, "failures": ["Verification failed", "x"]})
    verdict = _judge(rt, answer, attempt=1)
    assert verdict.fields["last_error"]["message"] == "Verification failed; x"
    assert verdict.fields["failures"] == ["Verification failed", "x"]
    assert not verdict.fields["last_error"]["retryable"]


def test_a_429_without_a_hint_cools_everyone_down_for_the_configured_time(rt: Runtime) -> None:
    verdict = _judge(rt, RateLimitedError("slow", status_code=429))
    assert verdict.cool_down == 60.0
    assert verdict.park is not None
    assert verdict.park >= 60.0
    hinted = RateLimitedError("slow", status_code=429, retry_after=86400)
    assert _judge(rt, hinted, attempt=1).cool_down == 900.0  # capped


def test_a_rejected_key_holds_the_account_and_spends_no_attempt(rt: Runtime) -> None:
    verdict = _judge(rt, UnauthorizedError("bad key", status_code=401), attempt=3)
    assert verdict.hold is not None
    assert json.loads(verdict.hold)["reason"] == "401 bad key"
    assert verdict.fields["attempts"] == 2


# -- whole attempts ----------------------------------------------------------------------


def test_a_sent_email_counts_its_own_recipients_not_the_answers_emails(
    rt: Runtime, api: Api
) -> None:
    chunk_id, payload = _send(rt, n=3)
    assert _run(rt, chunk_id, payload) == "sent"
    [(_, body)] = api.seen
    assert {"header": "X-Outbox-Id", "value": chunk_id} in body["custom_headers"]
    batch = rt.store.batches.batch(batch_id_of(chunk_id))
    assert (batch["recipients_succeeded"], batch["recipients_failed"]) == ("3", "0")
    chunk = rt.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert (chunk.email_id, chunk.succeeded, chunk.failed) == ("E-1", 1, 0)
    assert _run(rt, chunk_id, payload) == "sent"  # a redelivered copy sends nothing
    assert len(api.seen) == 1


def test_a_200_that_refuses_the_email_ends_failed_and_is_never_sent_again(
    rt: Runtime, api: Api
) -> None:
    api.handler = lambda request: httpx.Response(
        200,
        json={
            "request_id": "r",
            "data": {"succeeded": 0, "failed": 1, "failures": ["nope"], "email_id": ""},
        },
    )
    chunk_id, payload = _send(rt, n=2)
    assert _run(rt, chunk_id, payload) == "failed"
    assert _run(rt, chunk_id, payload) == "failed"
    assert len(api.seen) == 1
    batch = rt.store.batches.batch(batch_id_of(chunk_id))
    assert (batch["recipients_succeeded"], batch["recipients_failed"]) == ("0", "2")
    chunk = rt.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert chunk.last_error is not None
    assert chunk.last_error["message"] == "nope"
    assert rt.store.batches.ledger_counts(batch_id_of(chunk_id)) == {"failed": 2}


def test_a_429_parks_the_chunk_past_the_cool_down_without_a_second_request(api: Api) -> None:
    rt = _runtime(api, OUTBOX_COOLDOWN_SECONDS="90")
    set_runtime(rt)
    try:
        api.handler = lambda request: httpx.Response(429, json={"data": {"error": "slow down"}})
        chunk_id, payload = _send(rt)
        assert _run(rt, chunk_id, payload) == "retrying"
        assert 89 < rt.store.limits.cooling_for() <= 90
        call = json.loads(rt.redis.zrange(keys.parked(), 0, 0)[0])
        assert (call["task"], call["chunk"]) == ("outbox.send_email", chunk_id)
        assert call["due"] - rt.store.now() >= 89
        other_id, other = _send(rt)
        # longer than a sender waits (OUTBOX's line wait, 60 s here): it waits parked
        assert _run(rt, other_id, other) == "parked"
        assert len(api.seen) == 1
    finally:
        set_runtime(None)


def test_a_cool_down_during_the_wait_for_a_slot_moves_the_send(api: Api) -> None:
    """A 429 seen by another worker while this one waits for its slot: it sends at the
    cool-down's end, not into it."""
    rt = _runtime(api, rate="1/s", OUTBOX_COOLDOWN_SECONDS="1")
    set_runtime(rt)
    try:
        first_id, first = _send(rt)
        second_id, second = _send(rt)
        assert _run(rt, first_id, first) == "sent"
        outcome: list[str] = []
        waiter = threading.Thread(target=lambda: outcome.append(_run(rt, second_id, second)))
        waiter.start()  # its slot is a second after the first answer
        time.sleep(0.3)
        cooled = time.time()
        rt.store.limits.cool_down(rt.send_limit, 1.5)
        waiter.join(10)
        assert outcome == ["sent"]
        assert api.seen[1][0] >= cooled + 1.5 - 0.05
    finally:
        set_runtime(None)


@pytest.mark.parametrize("stop", ["pause", "cancel"])
def test_a_send_stopped_while_its_sender_sleeps_to_the_slot_never_goes(api: Api, stop: str) -> None:
    """A transactional sender holds a slot seconds ahead (a slot, not a request): a pause or
    cancel meanwhile calls it off, the slot is free at once, and nothing is sent."""
    from outbox import cancel, pause, resume

    rt = _runtime(api, rate="1/2s")
    set_runtime(rt)
    try:
        first_id, first = _send(rt)
        second_id, second = _send(rt)
        assert _run(rt, first_id, first) == "sent"
        outcome: list[str] = []
        sender = threading.Thread(target=lambda: outcome.append(_run(rt, second_id, second)))
        sender.start()  # its slot is two seconds after the first
        deadline = time.monotonic() + 5
        while rt.store.batches.chunk(second_id).state is not State.SENDING:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        send_id = batch_id_of(second_id)
        (pause if stop == "pause" else cancel)(send_id)
        sender.join(5)
        assert not sender.is_alive()
        assert len(api.seen) == 1  # only the first
        chunk = rt.store.batches.chunk(second_id)
        assert chunk is not None
        if stop == "pause":
            assert outcome == ["paused"]
            assert (chunk.state, chunk.attempts) == (State.PAUSED, 0)
            resume(send_id)
            assert _run(rt, second_id, second) == "sent"  # the republished task goes
            assert len(api.seen) == 2
        else:
            assert outcome == ["canceled"]
            assert (chunk.state, chunk.attempts) == (State.CANCELED, 0)
    finally:
        set_runtime(None)


def test_a_rejected_key_holds_every_send_until_the_probe_passes(rt: Runtime, api: Api) -> None:
    api.handler = lambda request: httpx.Response(
        401,
        json={
            "data": {
                "error": "API key is invalid",
                "error_code": "E_ApiResponseCodes.API_KEY_INVALID",
            }
        },
    )
    chunk_id, payload = _send(rt)
    assert _run(rt, chunk_id, payload) == "retrying"
    chunk = rt.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert (chunk.state, chunk.attempts) == (State.RETRYING, 0)  # the attempt is not counted
    assert rt.store.limits.hold_reason() == "401 API key is invalid"
    other_id, other = _send(rt)
    assert _run(rt, other_id, other) == "parked"
    assert len(api.seen) == 1
    assert probe_hold(rt) is False  # the key is still refused
    api.handler = lambda request: httpx.Response(200, json={"request_id": "r", "data": {}})
    rt.redis.delete(keys.turn("probe-hold"))
    assert probe_hold(rt) is True
    assert rt.store.limits.hold_reason() is None
    api.handler = _ok
    assert _run(rt, other_id, other) == "sent"


def test_a_payload_that_no_longer_validates_is_dead_at_once(rt: Runtime, api: Api) -> None:
    chunk_id, payload = _send(rt)
    assert _run(rt, chunk_id, {**payload, "to": ["not an address"]}) == "dead"
    assert [c for c, _ in rt.store.batches.dead_letters()] == [chunk_id]
    assert api.seen == []
    chunk = rt.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert chunk.attempts == 0  # the claim's attempt is taken back: nothing was asked
