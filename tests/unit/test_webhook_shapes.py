"""Webhook bodies in the real service's shapes, through the receiver (Starlette
TestClient) and ``record`` (fakeredis): what each one puts on its chunk and in the
batch's ledger, and that a repeat of an ``id`` changes nothing.

Which bodies were captured from the real service and which are made up is said in
:mod:`tests.unit.webhook_bodies`.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from outbox.core.queues import Queue
from outbox.core.states import Kind, State
from outbox.core.store import keys
from outbox.core.store.chunks import ChunkSpec, chunk_id_for
from outbox.core.views import load_record
from outbox.worker.runtime import Runtime
from outbox.worker.webhooks.app import create_app
from outbox.worker.webhooks.parse import normalise, payloads_from_pairs
from outbox.worker.webhooks.tasks import Outcome, record, rematch_parked
from tests.unit.webhook_bodies import (
    CAPTURED_DELIVERED,
    CAPTURED_PROCESSED,
    DOTNET_HARD_BOUNCE_JSON,
    DOTNET_RECIPIENTS,
    DOTNET_SOFT_BOUNCE,
    EMAIL_ID,
    JSON_DELIVERED,
    JSON_HARD_BOUNCE,
    JSON_PROCESSED,
    RCPT,
    sms_body,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's test client warns on import
    from starlette.testclient import TestClient

SECRET = "shapes-webhook-secret"
PATH = "/webhooks/smtp2go"
BEARER = {"Authorization": f"Bearer {SECRET}"}
PROCESSED_ID = "e57b42854a69ee377c4221c22e08e5e7"
DELIVERED_ID = "6dfa7d3b4514c1f5f0e916bc0cc0395c"


class Hook:
    """The receiver, wired to ``record`` on fakeredis as a worker would be (the event
    crosses the broker as JSON)."""

    def __init__(self, client: TestClient, runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime
        self.outcomes: list[Outcome] = []
        self.published: list[dict[str, Any]] = []

    def enqueue(self, event: dict[str, Any]) -> None:
        self.published.append(event)
        self.outcomes.append(record(self.runtime, json.loads(json.dumps(event))))

    def form(self, pairs: Sequence[tuple[str, str]] | dict[str, Any]) -> httpx.Response:
        headers = {**BEARER, "Content-Type": "application/x-www-form-urlencoded"}
        response = self.client.post(PATH, content=urlencode(pairs, doseq=True), headers=headers)
        assert response.status_code == 200, response.text
        return response

    def json(self, body: Any) -> httpx.Response:
        response = self.client.post(PATH, json=body, headers=BEARER)
        assert response.status_code == 200, response.text
        return response


@pytest.fixture
def hook(runtime: Runtime) -> Iterator[Hook]:
    holder: list[Hook] = []
    app = create_app(secret=SECRET, enqueue=lambda event: holder[0].enqueue(event))
    with TestClient(app) as client:
        holder.append(Hook(client, runtime))
        yield holder[0]


def email_sent(rt: Runtime, email_id: str, recipients: list[str]) -> str:
    """A one-chunk email the API accepted as ``email_id``."""
    batch_id = uuid.uuid4().hex
    chunk_id = chunk_id_for(batch_id, 0)
    spec = ChunkSpec(chunk_id, 0, recipients)
    rt.store.batches.create(batch_id, kind=Kind.EMAIL, chunks=[spec], payload={}, queue=Queue.EMAIL)
    rt.store.batches.finish(
        chunk_id, State.SENT, limit=rt.send_limit, email_id=email_id, ledger_note=email_id
    )
    return batch_id


def sms_created(rt: Runtime, numbers: list[str]) -> str:
    batch_id = uuid.uuid4().hex
    spec = ChunkSpec(chunk_id_for(batch_id, 0), 0, numbers, {"destination": numbers})
    rt.store.batches.create(batch_id, kind=Kind.SMS, chunks=[spec], payload={}, queue=Queue.SMS)
    return batch_id


def sms_answered(rt: Runtime, batch_id: str, message_ids: dict[str, str]) -> None:
    """The worker records the ``sms/send`` answer: one message id per number."""
    fields = {"request_id": "r-1", "message_ids": message_ids, "failures": []}
    rt.store.batches.finish(
        chunk_id_for(batch_id, 0), State.SENT, limit=rt.send_limit, fields=fields
    )


def ledger(rt: Runtime, batch_id: str) -> dict[str, tuple[str, str | None]]:
    return {e.recipient: (e.state, e.reason) for e in rt.store.batches.ledger(batch_id)}


def chunk_events(rt: Runtime, batch_id: str) -> dict[str, dict[str, Any]]:
    raw = rt.redis.hgetall(keys.chunk_events(chunk_id_for(batch_id, 0)))
    return {k.decode(): json.loads(v) for k, v in raw.items()}


# -- the captured bodies ----------------------------------------------------------------------


def test_captured_processed_is_one_event_listing_its_recipients(hook: Hook) -> None:
    hook.form(CAPTURED_PROCESSED)
    [event] = hook.published
    assert {k: event[k] for k in ("event", "channel", "event_id", "email_id", "rcpt")} == {
        "event": "processed",
        "channel": "email",
        "event_id": PROCESSED_ID,
        "email_id": EMAIL_ID,
        "rcpt": None,
    }
    assert event["recipients"] == [RCPT]
    assert (event["time"], event["sendtime"]) == (
        "2026-03-24T08:23:14Z",
        "2026-03-24T08:23:14.828376+00:00",
    )
    assert (event["sender"], event["subject"]) == (
        "testing@dev.mjosdrone.no",
        "Webhook Delivery Test - b83d60289ef94e028a45a905198ad9b7",
    )
    assert event["raw"]["srchost"] == "146.70.170.19"
    assert event["raw"]["Message-Id"] == event["raw"]["message-id"]
    # ``auth`` names the API key that sent the email: never kept.
    assert "auth" not in event["raw"]
    assert "api-597435AE4E55" not in json.dumps(event)


def test_captured_delivered_is_per_recipient_with_the_servers_answer(hook: Hook) -> None:
    hook.form(CAPTURED_DELIVERED)
    [event] = hook.published
    assert (event["event"], event["event_id"], event["rcpt"], event["recipients"]) == (
        "delivered",
        DELIVERED_ID,
        RCPT,
        [],
    )
    assert event["host"] == "mail.protonmail.ch [185.205.70.128]"
    assert event["message"] == "250 2.0.0 Ok: 2780 bytes queued as 4fg32Y2xRcz3T"
    assert event["context"] == "Unavailable"
    assert event["sendtime"] == "2026-03-24T08:23:19.052765+00:00"


@pytest.mark.parametrize(
    "pairs", [CAPTURED_PROCESSED, CAPTURED_DELIVERED], ids=["processed", "delivered"]
)
def test_the_captured_fields_as_json_normalise_as_the_form_does(
    hook: Hook, pairs: list[tuple[str, str]]
) -> None:
    hook.form(pairs)
    hook.json(dict(pairs))
    from_form, from_json = (
        {k: v for k, v in e.items() if k not in {"received_at", "raw"}} for e in hook.published
    )
    assert from_json == from_form
    # ``raw`` is what was posted: a form's ``recipients`` is always a list.
    raw_form, raw_json = (e["raw"] for e in hook.published)
    assert raw_form.pop("recipients", [RCPT]) == [raw_json.pop("recipients", RCPT)]
    assert raw_form == raw_json


def test_captured_bodies_put_the_recipient_in_its_place(hook: Hook, runtime: Runtime) -> None:
    batch_id = email_sent(runtime, EMAIL_ID, [RCPT])
    assert ledger(runtime, batch_id) == {RCPT: ("sent", EMAIL_ID)}
    hook.form(CAPTURED_PROCESSED)
    assert ledger(runtime, batch_id) == {RCPT: ("processed", EMAIL_ID)}
    hook.form(CAPTURED_DELIVERED)
    assert hook.outcomes == [Outcome.RECORDED, Outcome.RECORDED]
    assert ledger(runtime, batch_id) == {RCPT: ("delivered", EMAIL_ID)}
    assert runtime.store.batches.ledger_counts(batch_id) == {"delivered": 1}
    events = chunk_events(runtime, batch_id)
    assert set(events) == {f"id:{PROCESSED_ID}", f"id:{DELIVERED_ID}"}
    record_ = load_record(runtime.store, batch_id)
    assert record_ is not None
    assert [e["event"] for e in record_.events] == ["processed", "delivered"]


def test_a_processed_arriving_after_delivered_moves_nobody_back(
    hook: Hook, runtime: Runtime
) -> None:
    batch_id = email_sent(runtime, EMAIL_ID, [RCPT])
    hook.form(CAPTURED_DELIVERED)
    hook.form(CAPTURED_PROCESSED)
    assert hook.outcomes == [Outcome.RECORDED, Outcome.RECORDED]
    assert ledger(runtime, batch_id)[RCPT][0] == "delivered"
    assert runtime.store.batches.ledger_counts(batch_id) == {"delivered": 1}


def test_a_repeated_id_changes_nothing_not_even_the_ledger(hook: Hook, runtime: Runtime) -> None:
    batch_id = email_sent(runtime, EMAIL_ID, [RCPT])
    hook.form(CAPTURED_DELIVERED)
    before = (chunk_events(runtime, batch_id), ledger(runtime, batch_id))
    hook.form(CAPTURED_DELIVERED)  # the provider's retry
    hook.json(dict(CAPTURED_DELIVERED))  # the same notification, as JSON
    # Same id, other content: still the one notification already kept. A bounce would
    # otherwise move the recipient (hard-bounced outranks delivered).
    bounce = dict(CAPTURED_DELIVERED, event="bounce", bounce="soft", message="452 full")
    hook.form(bounce)
    assert hook.outcomes == [Outcome.RECORDED] + [Outcome.DUPLICATE] * 3
    assert (chunk_events(runtime, batch_id), ledger(runtime, batch_id)) == before
    assert runtime.store.batches.ledger_counts(batch_id) == {"delivered": 1}


def test_two_notifications_alike_but_for_their_ids_are_both_kept(
    hook: Hook, runtime: Runtime
) -> None:
    """Two opens in the same second: the digest cannot tell them apart, the ids do."""
    batch_id = email_sent(runtime, EMAIL_ID, [RCPT])
    first = dict(CAPTURED_DELIVERED, event="open", id="a" * 32)
    hook.form(first)
    hook.form(dict(first, id="b" * 32))
    assert hook.outcomes == [Outcome.RECORDED, Outcome.RECORDED]
    assert len(chunk_events(runtime, batch_id)) == 2


def test_without_an_id_the_digest_still_collapses_repeats(hook: Hook, runtime: Runtime) -> None:
    batch_id = email_sent(runtime, EMAIL_ID, [RCPT])
    no_id = [(k, v) for k, v in CAPTURED_DELIVERED if k != "id"]
    hook.form(no_id)
    hook.json(dict(no_id))
    assert hook.outcomes == [Outcome.RECORDED, Outcome.DUPLICATE]
    assert len(chunk_events(runtime, batch_id)) == 1


# -- recipients lists and bounces --------------------------------------------------------------


def test_repeated_and_delimited_recipients_all_move(hook: Hook, runtime: Runtime) -> None:
    """The .NET fixture: a repeated field, ``;`` and ``,`` inside values (synthetic)."""
    everyone = [f"{n}@example.com" for n in ("one", "two", "three", "four", "five")]
    batch_id = email_sent(runtime, "E-5", [*everyone, "six@example.com"])
    hook.form([*DOTNET_RECIPIENTS, ("email_id", "E-5"), ("id", "c" * 32)])
    assert hook.published[0]["recipients"] == everyone
    assert runtime.store.batches.ledger_counts(batch_id) == {"processed": 5, "sent": 1}
    assert ledger(runtime, batch_id)["six@example.com"][0] == "sent"


@pytest.mark.parametrize(
    "value",
    [
        "ann@example.org bob@example.org",
        "ann@example.org, bob@example.org",
        "Ann <ann@example.org>;bob@example.org",
    ],
)
def test_one_delimited_recipients_value_is_split(value: str) -> None:
    [payload] = [payloads_from_pairs([("event", "processed"), ("recipients", value)])]
    addresses = normalise(payload, received_at=0.0)["recipients"]
    assert [a.rsplit("<", 1)[-1].rstrip(">") for a in addresses] == [
        "ann@example.org",
        "bob@example.org",
    ]
    as_json = normalise({"event": "processed", "recipients": value}, received_at=0.0)
    assert as_json["recipients"] == addresses


def test_soft_bounce_keeps_the_servers_words(hook: Hook, runtime: Runtime) -> None:
    """The .NET soft-bounce fixture (synthetic)."""
    batch_id = email_sent(runtime, "provider-bounce-123", ["recipient@example.com"])
    hook.form(DOTNET_SOFT_BOUNCE)
    assert ledger(runtime, batch_id) == {
        "recipient@example.com": ("soft-bounced", "DATA: 452 Mailbox full")
    }
    assert runtime.redis.scard(keys.suppressed()) == 0


def test_hard_bounce_after_delivered_wins_and_suppresses(hook: Hook, runtime: Runtime) -> None:
    """A server may take the email and bounce it later: a hard bounce outranks delivered."""
    batch_id = email_sent(runtime, EMAIL_ID, [RCPT])
    hook.form(CAPTURED_DELIVERED)
    bounce = dict(
        CAPTURED_DELIVERED,
        event="bounce",
        bounce="hard",
        id="d" * 32,
        context=f"RCPT TO:<{RCPT}>",
        message="550 5.1.1 User unknown",
    )
    hook.form(bounce)
    hook.form(dict(CAPTURED_DELIVERED, id="e" * 32))  # a late delivered changes nothing
    assert ledger(runtime, batch_id) == {RCPT: ("hard-bounced", "550 5.1.1 User unknown")}
    assert runtime.store.batches.ledger_counts(batch_id) == {"hard-bounced": 1}
    assert runtime.redis.sismember(keys.suppressed(), RCPT)


def test_dotnet_hard_bounce_json_is_kept_but_names_nobody(hook: Hook, runtime: Runtime) -> None:
    """Its recipient is under ``email``, a key SMTP2GO is not documented or seen to send:
    the event is kept on its message, and no recipient is guessed from it."""
    batch_id = email_sent(runtime, "bounce-456", ["invalid@nonexistent.com"])
    hook.client.post(
        PATH,
        content=DOTNET_HARD_BOUNCE_JSON,
        headers={**BEARER, "Content-Type": "application/json"},
    )
    [event] = hook.published
    assert (event["event"], event["bounce"], event["rcpt"]) == ("bounce", "hard", None)
    assert event["host"] == "gmail-smtp-in.l.google.com [209.85.233.26]"
    assert hook.outcomes == [Outcome.RECORDED]
    assert ledger(runtime, batch_id)["invalid@nonexistent.com"][0] == "sent"
    assert runtime.redis.scard(keys.suppressed()) == 0


def post_json(hook: Hook, body: str) -> None:
    response = hook.client.post(
        PATH, content=body, headers={**BEARER, "Content-Type": "application/json"}
    )
    assert response.status_code == 200


def test_captured_json_bodies_move_each_recipient(hook: Hook, runtime: Runtime) -> None:
    """The JSON callbacks of Smtp2Go.NET commit d04cacf, "captured from live webhook
    callbacks" (ids and addresses anonymised): ``processed`` lists ``recipients``, a
    ``delivered`` names its ``rcpt``; neither has an event ``id``."""
    batch_id = email_sent(runtime, "1vomg2-abc123", ["user@example.com", "user2@example.com"])
    post_json(hook, JSON_PROCESSED)
    post_json(hook, JSON_DELIVERED)
    processed, delivered = hook.published
    assert processed["recipients"] == ["user@example.com", "user2@example.com"]
    assert (delivered["event"], delivered["rcpt"]) == ("delivered", "user@example.com")
    assert delivered["host"] == "mail.protonmail.ch [176.119.200.128]"
    assert hook.outcomes == [Outcome.RECORDED, Outcome.RECORDED]
    fates = {address: fate for address, (fate, _) in ledger(runtime, batch_id).items()}
    assert fates == {"user@example.com": "delivered", "user2@example.com": "processed"}
    post_json(hook, JSON_DELIVERED)  # a retry of the same body (no id: its digest) is one
    assert len(chunk_events(runtime, batch_id)) == 2


def test_d04cacf_hard_bounce_json_names_its_recipient_and_suppresses(
    hook: Hook, runtime: Runtime
) -> None:
    """The bounce that replaced ``DOTNET_HARD_BOUNCE_JSON``: keys as captured (``rcpt``,
    ``time``), values made up (ambiguous whether captured)."""
    batch_id = email_sent(runtime, "bounce-456", ["invalid@nonexistent.com"])
    post_json(hook, JSON_HARD_BOUNCE)
    [event] = hook.published
    assert (event["event"], event["bounce"], event["rcpt"]) == (
        "bounce",
        "hard",
        "invalid@nonexistent.com",
    )
    [(fate, _reason)] = ledger(runtime, batch_id).values()
    assert fate == "hard-bounced"
    assert runtime.redis.sismember(keys.suppressed(), "invalid@nonexistent.com")


# -- SMS --------------------------------------------------------------------------------------


def test_sms_answer_indexes_each_message_id(runtime: Runtime) -> None:
    batch_id = sms_created(runtime, ["+61400000001", "+61400000002"])
    sms_answered(runtime, batch_id, {"+61400000001": "m-1", "+61400000002": "m-2"})
    for message_id in ("m-1", "m-2"):
        assert runtime.store.batches.chunk_for_sms(message_id) == chunk_id_for(batch_id, 0)
        assert runtime.redis.ttl(keys.sms_index(message_id)) > 0


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_sms_events_follow_each_number_to_its_fate(
    hook: Hook, runtime: Runtime, as_json: bool
) -> None:
    numbers = ["+61400000001", "+61400000002", "+61400000003"]
    batch_id = sms_created(runtime, numbers)
    sms_answered(runtime, batch_id, {n: f"m-{n[-1]}" for n in numbers})
    post = hook.json if as_json else hook.form
    for n, event in enumerate(("sms_sending", "sms_submitted", "sms_delivered")):
        post(sms_body(event, "m-1", "+61400000001", event_id=f"ev-{n}"))
    # The destination as the network spells it, without the plus.
    post(sms_body("sms_failed", "m-2", "61400000002", event_id="ev-8", status_code="DROPPED"))
    post(sms_body("sms_rejected", "m-3", "+61400000003", event_id="ev-9"))
    post(sms_body("sms_rejected", "m-3", "+61400000003", event_id="ev-9"))  # a retry
    assert hook.outcomes == [Outcome.RECORDED] * 5 + [Outcome.DUPLICATE]
    first = hook.published[0]
    assert (first["channel"], first["event"], first["provider_event"]) == (
        "sms",
        "sending",
        "sms_sending",
    )
    assert (first["message_id"], first["rcpt"], first["email_id"]) == ("m-1", "+61400000001", None)
    assert (first["time"], first["sendtime"]) == ("2026-03-24T08:23:16Z", "2026-03-24T08:23:14Z")
    assert ledger(runtime, batch_id) == {
        "+61400000001": ("delivered", None),
        "+61400000002": ("failed", "DROPPED"),
        "+61400000003": ("rejected", "rejected"),
    }
    assert runtime.store.batches.ledger_counts(batch_id) == {
        "delivered": 1,
        "failed": 1,
        "rejected": 1,
    }
    record_ = load_record(runtime.store, batch_id)
    assert record_ is not None
    assert len(record_.events) == 5


def test_sms_event_ahead_of_the_answer_waits_then_is_rematched(runtime: Runtime) -> None:
    batch_id = sms_created(runtime, ["+61400000001"])
    early = normalise(
        sms_body("sms_sending", "m-1", "+61400000001", event_id="ev-1"), received_at=1
    )
    assert record(runtime, early, last_try=False) is Outcome.NOT_YET
    assert record(runtime, early) is Outcome.UNMATCHED
    sms_answered(runtime, batch_id, {"+61400000001": "m-1"})
    assert rematch_parked(runtime) == 1
    assert runtime.redis.llen(keys.webhook_unmatched()) == 0
    assert ledger(runtime, batch_id)["+61400000001"][0] == "processed"
