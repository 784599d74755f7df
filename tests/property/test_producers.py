"""Bad input, generated: every producer call is either accepted and delivered intact, or
refused with a ``outbox.ValidationError`` naming the field; nothing else.

Random addresses and unicode display names, header injection attempts (CR/LF in the
subject, the names, custom headers, file names), oversized and invalid bodies and
attachments, invalid base64, numbers that are not E.164, huge and nested template data.
For every example:

- a refusal names only fields of the call, and leaves Redis and the broker untouched
  (nothing recorded, nothing half-enqueued);
- an acceptance publishes tasks whose payloads the worker validates as it will at send
  time, carrying no line break into any header; each accepted example is then delivered
  by running its tasks in this process against the real sandbox, and the sandbox's copy
  is compared with what was asked for.

Records live on fakeredis and tasks go through kombu's in-memory broker; the same
property against a real worker process is ``tests/integration/test_faults_input.py``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from outbox import Handle, ValidationError, send_email, send_mime, send_sms, send_template
from outbox import status as record_of
from outbox.core.smtp2go.models import MAX_EMAIL_REQUEST_BYTES, address_key
from outbox.core.states import Kind, State
from outbox.worker.runtime import Runtime
from tests.conftest import Sandbox
from tests.property.conftest import TEMPLATE_ID
from tests.property.strategies import (
    address,
    attachment,
    body,
    custom_headers,
    nested,
    phone,
    sms_text,
    subject,
    template_data,
)

PROPERTY = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

_LINE_BREAKS = ("\r", "\n", "\x00")
EMAIL_FIELDS = frozenset(
    {
        "sender",
        "to",
        "cc",
        "bcc",
        "subject",
        "html_body",
        "text_body",
        "reply_to",
        "custom_headers",
        "attachments",
        "inlines",
        "idempotency_key",
        "send_at",
        "callback",
        "__root__",
    }
)
TEMPLATE_FIELDS = (EMAIL_FIELDS - {"html_body", "text_body", "inlines"}) | {
    "template_id",
    "template_data",
}
SMS_FIELDS = frozenset({"to", "message", "sender", "idempotency_key", "send_at", "callback"})
MIME_FIELDS = frozenset({"mime_email", "idempotency_key", "send_at", "callback"})


# -- the harness -------------------------------------------------------------------------------


@dataclass(repr=False)
class Harness:
    """Calls a producer, then checks the refusal or delivers the acceptance."""

    rt: Runtime
    broker: Any
    sandbox: Sandbox
    seen: int = 0
    accepted: int = 0
    refused: int = 0
    fields_refused: set[str] = field(default_factory=set)

    def call(
        self, allowed: frozenset[str], fn: Callable[..., Handle], **kwargs: Any
    ) -> Handle | None:
        keys_before = self.rt.redis.dbsize()
        refusal: ValidationError | None = None
        try:
            handle = fn(**kwargs)
        except ValidationError as exc:
            refusal = exc
        if refusal is not None:
            assert isinstance(refusal, ValueError)
            assert refusal.errors, "a refusal names at least one field"
            heads = {name.split(".")[0] for name in refusal.errors}
            assert heads <= allowed, refusal.errors
            assert all(isinstance(m, str) and m for m in refusal.errors.values()), refusal.errors
            assert self.broker.drain() == [], "refused, yet something was enqueued"
            assert self.rt.redis.dbsize() == keys_before, "refused, yet something was recorded"
            self.refused += 1
            self.fields_refused |= heads
            _event(f"refused: {', '.join(sorted(heads))}")
            return None
        self.accepted += 1
        _event("accepted")
        return handle

    def deliver(self, kind: Kind, handle: Handle) -> list[dict[str, Any]]:
        """Run every published task here (fan-outs too); the sandbox's copies."""
        import outbox.worker.tasks  # noqa: F401  (registers the tasks, as a worker's start does)
        from outbox.core.wire import check
        from outbox.worker.celery_app import app

        ran = 0
        while published := self.broker.drain():
            for name, args, _queue in published:
                if name != "outbox.fan_out":
                    chunk_id, payload = args[0], args[1]
                    assert chunk_id.startswith(handle.id)
                    check(kind, payload)  # what the worker will accept at send time
                    _no_line_breaks_in_headers(payload)
                    ran += 1
                app.tasks[name].apply(args=args)
        assert ran == handle.chunks
        record = record_of(handle.id)
        assert record.state is State.SENT, [(c.state, c.last_error) for c in record.chunks]
        response = httpx.get(
            f"{self.sandbox.url}/_sandbox/messages", params={"since": self.seen}, timeout=10
        )
        response.raise_for_status()
        data = response.json()
        self.seen = data["next"]
        ids = {c.email_id for c in record.chunks} | {
            m for c in record.chunks for m in c.message_ids.values()
        }
        mine = [
            m
            for m in data["messages"]
            if m.get("email_id") in ids or set(m.get("message_ids") or []) & ids
        ]
        assert len(mine) == handle.chunks, (len(mine), handle.chunks)
        return mine


def _event(name: str) -> None:
    """Counted in ``--hypothesis-show-statistics`` (outside a Hypothesis test: nothing)."""
    if currently_in_test_context():
        event(name)


def _no_line_breaks_in_headers(payload: dict[str, Any]) -> None:
    texts = [payload.get("sender") or "", payload.get("subject") or ""]
    texts += [a for name in ("to", "cc", "bcc") for a in payload.get(name) or []]
    for header in payload.get("custom_headers") or []:
        texts += [header["header"], header["value"]]
    texts += [f["filename"] for f in payload.get("attachments") or []]
    for text in texts:
        assert not any(c in text for c in _LINE_BREAKS), text


@pytest.fixture
def harness(sandbox_runtime: Runtime, memory_broker: Any, sandbox: Sandbox) -> Harness:
    return Harness(sandbox_runtime, memory_broker, sandbox)


def _keys(addresses: list[str]) -> set[str]:
    return {address_key(a) for a in addresses}


# -- email ----------------------------------------------------------------------------------


@settings(PROPERTY, max_examples=200)
@given(
    sender=address,
    to=st.lists(address, min_size=1, max_size=3),
    cc=st.lists(address, max_size=2),
    subject=subject,
    text_body=body,
    html_body=body,
    headers=custom_headers,
    attachments=st.lists(attachment, max_size=2),
    reply_to=st.one_of(st.none(), st.none(), address),
)
def test_send_email_accepts_and_delivers_intact_or_names_the_field(
    harness: Harness,
    sender: str,
    to: list[str],
    cc: list[str],
    subject: str | None,
    text_body: str | None,
    html_body: str | None,
    headers: dict[str, str],
    attachments: list[dict[str, str]],
    reply_to: str | None,
) -> None:
    """Any email, accepted and delivered intact or refused naming the field.

    Fault: Bad input to the producers (this test and its siblings for templates, SMS
        and MIME): random and unicode addresses, CR/LF in the subject, names, headers and
        file names, oversized bodies and attachments, invalid base64, numbers that are not
        E.164, huge or nested template data
    Outcome: refused at once with `outbox.ValidationError` naming each bad field, and
        nothing recorded or enqueued; or accepted, every task payload valid for the worker
        with no line break in a header, and delivered intact (compared in the sandbox)
    """
    handle = harness.call(
        EMAIL_FIELDS,
        send_email,
        sender=sender,
        to=to,
        cc=cc,
        subject=subject,  # type: ignore[arg-type]
        text_body=text_body,
        html_body=html_body,
        custom_headers=headers,
        attachments=attachments,
        reply_to=reply_to,
    )
    if handle is None:
        return
    [message] = harness.deliver(Kind.EMAIL, handle)
    assert message["sender"] == sender.strip()
    assert message["subject"] == (subject or "")  # no subject: an empty one, as sent
    assert message["text_body"] == text_body
    assert message["html_body"] == html_body
    wanted = _keys(to) | _keys(cc)
    assert _keys(message["recipients"]) == wanted
    assert _keys(message["cc"]) == _keys(cc) - _keys(to)
    for name, value in headers.items():
        assert message["custom_headers"][name] == value
    assert message["custom_headers"]["X-Outbox-Id"] == f"{handle.id}.0"
    if reply_to:
        assert message["custom_headers"]["Reply-To"] == reply_to.strip()
    assert message["attachments"] == [a["filename"] for a in attachments]


@settings(PROPERTY, max_examples=25)
@given(n=st.integers(min_value=1, max_value=450), named=st.booleans())
def test_large_recipient_lists_split_and_arrive_once(harness: Harness, n: int, named: bool) -> None:
    to = [f"Ünïcode {i} <r{i}@example.org>" if named else f"r{i}@example.org" for i in range(n)]
    handle = harness.call(
        EMAIL_FIELDS, send_email, sender="s@example.com", to=to + to[:5], subject="s", text_body="t"
    )
    assert handle is not None
    assert handle.chunks == math.ceil(n / 100)
    messages = harness.deliver(Kind.EMAIL, handle)
    delivered = [r for m in messages for r in m["recipients"]]
    assert sorted(delivered) == sorted(address_key(a) for a in to)


def test_oversized_messages_are_refused_naming_the_size(harness: Harness) -> None:
    """Over SMTP2GO's 50 MB request body, each refused under the field that made it so."""
    big = "x" * (MAX_EMAIL_REQUEST_BYTES + 1)
    blob = base64.b64encode(b"\0" * (MAX_EMAIL_REQUEST_BYTES // 4 * 3 + 3)).decode()
    for kwargs in (
        {"html_body": big},
        {"text_body": "t", "attachments": [{"filename": "big.bin", "fileblob": blob}]},
    ):
        handle = harness.call(
            EMAIL_FIELDS,
            send_email,
            sender="s@example.com",
            to=["r@example.com"],
            subject="s",
            **kwargs,
        )
        assert handle is None
    assert harness.fields_refused == {"html_body", "attachments"}


# -- templates ------------------------------------------------------------------------------


@PROPERTY
@given(data=template_data, to=st.lists(address, min_size=1, max_size=2))
@example(data={"nan": float("nan")}, to=["r@example.com"])
def test_send_template_with_any_data(harness: Harness, data: Any, to: list[str]) -> None:
    handle = harness.call(
        TEMPLATE_FIELDS,
        send_template,
        sender="s@example.com",
        to=to,
        template_id=TEMPLATE_ID,
        template_data=data,
    )
    if handle is None:
        return
    [message] = harness.deliver(Kind.TEMPLATE, handle)
    assert message["template_id"] == TEMPLATE_ID
    # An empty mapping is left out of the request (to_wire never sends {}).
    assert (message["template_data"] or {}) == json.loads(json.dumps(data))
    assert _keys(message["recipients"]) == _keys(to)


@pytest.mark.parametrize(
    ("data", "refused"),
    [
        (nested(5000), True),  # deeper than any JSON encoder recurses
        (nested(50), False),
        ({f"k{i}": i for i in range(10_000)}, False),
        ({"big": "x" * (MAX_EMAIL_REQUEST_BYTES + 1)}, True),
    ],
    ids=["nested-5000", "nested-50", "wide-10000", "over-50MB"],
)
def test_send_template_with_huge_or_deep_data(harness: Harness, data: Any, refused: bool) -> None:
    handle = harness.call(
        TEMPLATE_FIELDS,
        send_template,
        sender="s@example.com",
        to=["r@example.com"],
        template_id=TEMPLATE_ID,
        template_data=data,
    )
    assert (handle is None) is refused
    if handle is not None:
        [message] = harness.deliver(Kind.TEMPLATE, handle)
        assert message["template_data"] == data


# -- SMS ------------------------------------------------------------------------------------


@PROPERTY
@given(
    to=st.lists(phone, min_size=0, max_size=4),
    message=sms_text,
    sender=st.one_of(st.none(), st.none(), phone),
)
def test_send_sms_accepts_e164_only(
    harness: Harness, to: list[str], message: str, sender: str | None
) -> None:
    handle = harness.call(SMS_FIELDS, send_sms, to=to, message=message, sender=sender)
    if handle is None:
        return
    [sent] = harness.deliver(Kind.SMS, handle)
    assert sent["destination"] == list(dict.fromkeys(to))
    assert sent["content"] == message


# -- MIME -----------------------------------------------------------------------------------


@PROPERTY
@given(
    raw=st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
        st.builds(
            lambda s, b: f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {s}\r\n\r\n{b}",
            st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=40),
            st.text(max_size=200),
        ),
    )
)
def test_send_mime_accepts_messages_only(harness: Harness, raw: str) -> None:
    handle = harness.call(MIME_FIELDS, send_mime, mime_email=raw)
    if handle is None:
        return
    [message] = harness.deliver(Kind.MIME, handle)
    assert message["endpoint"] == "email/mime"
    assert message["recipients"]
