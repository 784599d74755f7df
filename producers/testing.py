"""Testing your app: the ``outbox_fake`` and ``outbox_stack`` pytest fixtures.

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

Under Django's test runner (or pytest-django) ``EMAIL_BACKEND`` is swapped for locmem,
so outbox's checks would never run in an app's tests: where the project's backend is
outbox's, every test's mail goes through outbox's backend into ``outbox_fake`` instead
(and ``django.core.mail.outbox`` still fills), so the tests see what production refuses.

``outbox_stack`` is the real thing in this process (the sandbox, fakeredis with the real
Lua, an in-memory broker, a worker and the webhook receiver): see :mod:`outbox.stack`.
Leave the plugin out of a run with ``-p no:outbox``.
"""

from __future__ import annotations

import functools
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from outbox.core.errors import IdempotencyConflict
from outbox.core.settings import Settings
from outbox.core.states import Kind
from outbox.handle import Handle
from outbox.options import Options

if TYPE_CHECKING:
    from outbox.stack import OutboxStack

__all__ = ["FakeMessage", "FakeOutbox", "outbox_fake", "outbox_stack"]

#: The backend a Django project configures to send with outbox.
_OUTBOX_BACKEND = "outbox.django.EmailBackend"


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
        from outbox.core.kinds import lane_for
        from outbox.enqueue import fingerprint

        lane = options.lane or lane_for(kind, len(chunks), self.settings.bulk_threshold)
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


@pytest.fixture
def outbox_stack() -> Iterator[OutboxStack]:
    """Sends in the test go through the real worker to the sandbox; ``drain()`` runs the
    queue until it is idle (needs the ``testing`` extra)."""
    from outbox.stack import running

    yield from running()


def _django_backend_under_test() -> str | None:
    """The ``EMAIL_BACKEND`` the project had before Django's test set-up replaced it with
    locmem (``None`` outside a Django test environment)."""
    if "django" not in sys.modules:
        return None
    from django.conf import settings

    if not settings.configured:
        return None
    from django.test.utils import _TestState

    saved = getattr(_TestState, "saved_data", None)
    backend = getattr(saved, "email_backend", None)
    return backend if isinstance(backend, str) else None


@functools.cache
def _django_backend_class() -> type:
    from django.core import mail

    from outbox.django import EmailBackend

    class Backend(EmailBackend):
        """outbox's backend, then Django's ``mail.outbox`` for what it queued."""

        def send_messages(self, email_messages: Sequence[Any]) -> int:
            queued = super().send_messages(email_messages)
            outbox = getattr(mail, "outbox", None)
            if outbox is not None:
                outbox.extend(m for m in email_messages if getattr(m, "outbox_handle", None))
            return queued

    return Backend


def __getattr__(name: str) -> Any:
    # ``EMAIL_BACKEND = "outbox.testing.DjangoBackend"`` is imported by Django only.
    if name == "DjangoBackend":
        return _django_backend_class()
    raise AttributeError(name)


@pytest.fixture(autouse=True)
def _outbox_django_mail(request: pytest.FixtureRequest) -> Iterator[None]:
    """In a Django test environment whose project sends with outbox, send through outbox's
    backend into ``outbox_fake`` rather than through locmem alone."""
    if _django_backend_under_test() != _OUTBOX_BACKEND:
        yield
        return
    from django.test import override_settings

    request.getfixturevalue("outbox_fake")
    with override_settings(EMAIL_BACKEND="outbox.testing.DjangoBackend"):
        yield
