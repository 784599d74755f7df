"""Testing an app that sends: the ``outbox_fake`` pytest fixture.

Installed with outbox and registered through the ``pytest11`` entry point, so an app's
tests only ask for the fixture::

    def test_signup_sends_a_welcome(client, outbox_fake):
        client.post("/signup", data={"email": "ann@example.org"})
        (sent,) = outbox_fake.messages
        assert sent.to == ["ann@example.org"]
        assert sent.subject == "Welcome"

Inside the test every ``send_*`` validates exactly as in production (the same code, up to
the point where the send would be recorded) and records what it would send instead: no
Redis, broker or network. An idempotency key behaves as it does for real: the same
message returns the first handle with ``duplicate=True``, another raises
``IdempotencyConflict``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from outbox.errors import IdempotencyConflict
from outbox.handle import Handle
from outbox.options import Options
from outbox.worker.settings import Settings
from outbox.worker.states import Kind

__all__ = ["FakeMessage", "FakeOutbox", "outbox_fake"]


@dataclass(frozen=True)
class FakeMessage:
    """One send as the app made it: its fields are also readable as ``message["to"]``."""

    id: str
    kind: str
    sender: str | None
    to: list[str]
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    subject: str | None = None
    text_body: str | None = None
    html_body: str | None = None
    template_id: str | None = None
    template_data: dict[str, Any] = field(default_factory=dict)
    #: ``{"header": ..., "value": ...}`` as the API takes them.
    headers: list[dict[str, str]] = field(default_factory=list)
    #: The attachments' file names.
    attachments: list[str] = field(default_factory=list)
    lane: str = "transactional"
    tenant: str | None = None
    idempotency_key: str | None = None
    send_at: float | None = None
    #: The whole payload as it would go to SMTP2GO (recipients of every chunk merged).
    payload: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


class FakeOutbox:
    """What ``outbox_fake`` gives a test: the sends so far, and a way to forget them."""

    def __init__(self) -> None:
        self.messages: list[FakeMessage] = []
        self._keys: dict[str, tuple[str, Handle]] = {}
        self.settings = Settings()

    def clear(self) -> None:
        self.messages.clear()
        self._keys.clear()

    # -- what the producers call in place of recording and publishing -----------------

    def enqueue(
        self,
        kind: Kind,
        base: Mapping[str, Any],
        chunks: Sequence[tuple[list[str], dict[str, Any]]],
        options: Options,
        *,
        refused: Sequence[tuple[str, str]] = (),
    ) -> Handle:
        from outbox.enqueue import fingerprint

        bulk = kind is not Kind.SMS and len(chunks) > self.settings.bulk_threshold
        lane = options.lane or ("bulk" if bulk else "transactional")
        key = options.idempotency_key
        printed = fingerprint(kind, base, chunks, options, lane) if key else ""
        if key is not None and key in self._keys:
            first_print, first = self._keys[key]
            if first_print != printed:
                raise IdempotencyConflict(key, first.id)
            return Handle(first.id, first.kind, first.chunks, first.recipients, duplicate=True)
        handle = Handle(
            id=uuid.uuid4().hex,
            kind=kind.value,
            chunks=len(chunks),
            recipients=sum(len(r) for r, _ in chunks),
            rejected=tuple(a for a, _ in refused),
        )
        if key is not None:
            self._keys[key] = (printed, handle)
        self.messages.append(_message(handle, kind, base, chunks, options, lane))
        return handle


def _message(
    handle: Handle,
    kind: Kind,
    base: Mapping[str, Any],
    chunks: Sequence[tuple[list[str], dict[str, Any]]],
    options: Options,
    lane: str,
) -> FakeMessage:
    lists: dict[str, list[str]] = {"to": [], "cc": [], "bcc": []}
    for recipients, overrides in chunks:
        if kind is Kind.SMS:
            lists["to"] += list(overrides.get("destination") or recipients)
        elif kind is Kind.MIME:
            lists["to"] += recipients
        else:
            for name in lists:
                lists[name] += list(overrides.get(name) or [])
    payload = {**base, **{k: v for k, v in lists.items() if v}}
    return FakeMessage(
        id=handle.id,
        kind=kind.value,
        sender=base.get("sender"),
        to=lists["to"],
        cc=lists["cc"],
        bcc=lists["bcc"],
        subject=base.get("subject"),
        text_body=base.get("content") if kind is Kind.SMS else base.get("text_body"),
        html_body=base.get("html_body"),
        template_id=base.get("template_id"),
        template_data=dict(base.get("template_data") or {}),
        headers=list(base.get("custom_headers") or []),
        attachments=[str(a.get("filename")) for a in base.get("attachments") or []],
        lane=lane,
        tenant=options.tenant,
        idempotency_key=options.idempotency_key,
        send_at=options.send_at,
        payload=payload,
    )


class _Suppressions:
    """Nobody is suppressed in a test (the real check reads Redis)."""

    def matching(self, addresses: Any) -> set[str]:
        return set()


class _Store:
    suppressions = _Suppressions()


class _Runtime:
    """What the producers read from a runtime before recording: settings, suppressions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = _Store()


@pytest.fixture
def outbox_fake(monkeypatch: pytest.MonkeyPatch) -> FakeOutbox:
    """Every ``send_*`` in the test validates as in production and is recorded in
    ``outbox_fake.messages`` instead of being sent."""
    import outbox.send as send

    fake = FakeOutbox()
    monkeypatch.setattr(send, "enqueue", fake.enqueue)
    monkeypatch.setattr(send, "get_runtime", lambda: _Runtime(fake.settings))
    return fake
