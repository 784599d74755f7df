"""The real stack in one process, for an app's integration tests: ``outbox_stack``.

Where ``outbox_fake`` stops before the record is written, this runs everything a send
goes through in production, as ``outbox demo`` does: the SMTP2GO sandbox on a loopback
port, the records and the real Lua scripts on fakeredis, kombu's in-memory broker, a
Celery worker (threads) with the real tasks, and the webhook receiver's real ASGI app on a
loopback port.
A test sends through its own code, runs the queue until it is idle, reports delivery
events as SMTP2GO would post them, and reads the records and the ledger::

    def test_the_receipt_is_delivered(client, outbox_stack):
        client.post("/orders/7/pay")
        outbox_stack.drain()
        (sent,) = outbox_stack.sent()
        assert sent["subject"] == "Your receipt"
        outbox_stack.bounce(sent["email_id"])
        send_id = outbox_stack.send_of(sent["email_id"])
        assert outbox_stack.fates(send_id) == {"ann@example.org": "hard-bounced"}

Needs the ``testing`` extra (``pip install 'smtp2go-outbox[testing]'``).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from outbox.core.store import keys
from outbox.core.store.chunks import batch_id_of
from outbox.core.text import as_text
from outbox.core.views import Record, load_record
from outbox.handle import Handle
from outbox.worker.runtime import Runtime

__all__ = ["OutboxStack"]

#: How often :meth:`OutboxStack.drain` looks at the queue.
_POLL = 0.02


@dataclass
class OutboxStack:
    """A running stack; :meth:`start` and :meth:`stop` bracket it (the fixture does)."""

    #: Worker threads (the demo's default is 50; a test needs few).
    concurrency: int = 8
    #: Settings as ``OUTBOX_*`` variables would give them (``{"OUTBOX_RETENTION": "60"}``).
    settings: dict[str, str] = field(default_factory=dict)
    #: The sandbox's settings (``outbox sandbox``'s knobs: ``{"fastaccept": True}``).
    sandbox: dict[str, Any] = field(default_factory=dict)
    #: Register the receiver as the account's webhook, so the sandbox posts every event
    #: as the service would (``processed``, ``delivered``, ``reject``, bounces); without
    #: it a test reports deliveries itself (:meth:`deliver`, :meth:`bounce`).
    webhooks: bool = False
    _stack: Any = None
    _receiver: Any = None
    _served: Any = None
    _secret: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> OutboxStack:
        try:
            import httpx

            from outbox.cli.demo.stack import DemoStack
            from outbox.sandbox import SandboxConfig
            from outbox.sandbox.server import serve_app
            from outbox.worker.webhooks.app import create_app
        except ImportError as exc:
            raise RuntimeError(
                f"outbox_stack needs the testing extra: pip install 'smtp2go-outbox[testing]' "
                f"({exc})"
            ) from None
        # A 5xx or 429 costs a retry's back-off here, so the sandbox answers at once, and
        # a failed webhook call is tried again within a second, not a minute.
        config = SandboxConfig(rate=None, latency_ms=0.0, webhook_backoff=0.2)
        # A test's faults aim at its own requests: no reads of the account at start.
        settings = {"OUTBOX_ACCOUNT_READS_AT_START": "0", **self.settings}
        self._stack = DemoStack(config, settings, concurrency=self.concurrency)
        self._stack.start()
        self._served = serve_app(create_app(secret=self._secret, metrics=False))
        self._receiver = httpx.Client(
            base_url=self._served.url,
            headers={"Authorization": f"Bearer {self._secret}"},
            timeout=10.0,
        )
        if self.sandbox:
            with self._stack.control() as control:
                control.post("/_sandbox/config", json=self.sandbox).raise_for_status()
        if self.webhooks:
            from outbox.core.smtp2go.endpoints import WEBHOOK_ADD
            from outbox.core.smtp2go.management import WebhookAdd
            from outbox.worker.webhooks.app import PATH

            hook = WebhookAdd(
                url=f"{self._served.url}{PATH}",
                events=["processed", "delivered", "bounce", "reject", "spam", "unsubscribe"],
                output_format="json",
                auth_header_type="bearer",
                auth_header_value=self._secret,
            )
            self.runtime.client.call(WEBHOOK_ADD, hook)
        return self

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.close()
            self._served.stop(timeout=5.0)
            self._receiver = self._served = None
        if self._stack is not None:
            self._stack.stop()
            self._stack = None

    @property
    def runtime(self) -> Runtime:
        """The worker's and the producers' runtime (records, settings, the client)."""
        if self._stack is None or self._stack.runtime is None:
            raise RuntimeError("the stack is not running")
        rt: Runtime = self._stack.runtime
        return rt

    # -- running the queue ----------------------------------------------------------

    def drain(self, timeout: float = 30.0) -> None:
        """Run the queue until nothing is left that would run within ``timeout`` seconds:
        every chunk final, or waiting for a time after that (a ``send_at``, a hold).

        Retries' back-offs and the bulk lane's pacing are waited out; raises
        ``TimeoutError`` naming what is still going on.
        """
        rt = self.runtime
        deadline = time.monotonic() + timeout
        quiet = 0
        while True:
            if rt.redis.zcard(keys.active()) == 0 and not self.webhooks:
                return
            quiet = quiet + 1 if self._idle(time.time() + (deadline - time.monotonic())) else 0
            if quiet >= 3:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the queue did not settle in {timeout:g}s: {self._busy()}")
            time.sleep(_POLL)

    def _idle(self, horizon: float) -> bool:
        """Nothing on the broker, nothing running, nothing parked before ``horizon``."""
        from celery.worker import state

        rt = self.runtime
        if state.active_requests or self._queued():
            return False
        if self.webhooks and self._webhooks_pending():
            return False
        if rt.redis.zcount(keys.parked(), "-inf", horizon):
            return False
        return not rt.redis.zcard(keys.throttled())

    def _webhooks_pending(self) -> int:
        return int(self.stats()["webhooks_pending"])

    def _queued(self) -> int:
        from outbox.cli.demo.stack import QUEUES
        from outbox.worker.celery_app import app

        with app.connection_for_read() as conn:
            channel = conn.default_channel
            return sum(int(channel.queue_declare(queue=q, passive=True)[1]) for q in QUEUES)

    def _busy(self) -> str:
        from celery.worker import state

        rt = self.runtime
        return (
            f"{rt.redis.zcard(keys.active())} chunks not final, {self._queued()} tasks "
            f"queued, {len(state.active_requests)} running, "
            f"{rt.redis.zcard(keys.parked())} parked"
        )

    # -- what happened ----------------------------------------------------------------

    def sent(self) -> list[dict[str, Any]]:
        """Every email and SMS the sandbox accepted, oldest first (its ``/_sandbox/messages``:
        ``email_id``, ``to``, ``subject``, ``text_body``, ``custom_headers``, ...)."""
        with self._stack.control() as control:
            answer = control.get("/_sandbox/messages")
            answer.raise_for_status()
            messages: list[dict[str, Any]] = answer.json()["messages"]
            return messages

    def stats(self) -> dict[str, Any]:
        """The sandbox's counters (its ``/_sandbox/stats``: ``requests``, ``accepted``,
        ``rate_limited``, ``webhooks_pending``, per endpoint, ...)."""
        with self._stack.control() as control:
            answer = control.get("/_sandbox/stats")
            answer.raise_for_status()
            counters: dict[str, Any] = answer.json()
            return counters

    def record(self, send: Handle | str) -> Record:
        """The send's record, as ``outbox status`` reads it."""
        send_id = send.id if isinstance(send, Handle) else send
        found = load_record(self.runtime.store, send_id)
        if found is None:
            raise KeyError(f"no send {send_id!r}")
        return found

    def send_of(self, email_id: str) -> str:
        """The id of the send an accepted email belongs to (``sent()`` gives email ids)."""
        chunk = self.runtime.redis.get(keys.email_index(email_id))
        if chunk is None:
            raise KeyError(f"no chunk recorded email_id {email_id!r}")
        text = as_text(chunk)
        return batch_id_of(text)

    def fates(self, send: Handle | str) -> dict[str, str]:
        """Each recipient of a send and where the ledger has it (``sent``, ``delivered``,
        ``bounced``, ``failed``, ...)."""
        send_id = send.id if isinstance(send, Handle) else send
        return {e.recipient: e.state for e in self.runtime.store.batches.ledger(send_id)}

    # -- delivery reports ---------------------------------------------------------------

    def deliver(self, email_id: str, rcpt: str | None = None) -> int:
        """Report ``delivered`` for the email's recipients (or one), as SMTP2GO's webhook
        would post it to the receiver; returns when the events are recorded."""
        from outbox.sandbox import webhook_bodies as sandbox_events

        record, rcpts = self._email(email_id, rcpt)
        state = self._sandbox().state
        return self._post(record, [sandbox_events.delivered(state, record, r) for r in rcpts])

    def bounce(self, email_id: str, rcpt: str | None = None, *, kind: str = "hard") -> int:
        """Report a ``hard`` or ``soft`` bounce; a hard one also suppresses the address on
        the sandbox's account, as the service does."""
        from outbox.sandbox.control import happened
        from outbox.sandbox.records import LaterEvent
        from outbox.sandbox.webhook_bodies import later_event

        if kind not in ("hard", "soft"):
            raise ValueError("kind must be 'hard' or 'soft'")
        record, rcpts = self._email(email_id, rcpt)
        reports = []
        for address in rcpts:
            later = LaterEvent("bounce", address, time.time(), kind)
            happened(self._sandbox(), record, later)
            reports.append(later_event(later))
        return self._post(record, reports)

    def _sandbox(self) -> Any:
        return self._stack.sandbox.server.config.app.state.sandbox

    def _email(self, email_id: str, rcpt: str | None) -> tuple[Any, list[str]]:
        state = self._sandbox().state
        record = next((r for r in state.emails if r.email_id == email_id), None)
        if record is None:
            raise KeyError(f"the sandbox accepted no email with email_id {email_id!r}")
        if rcpt is None:
            return record, list(record.recipients)
        if rcpt.lower() not in {r.lower() for r in record.recipients}:
            raise ValueError(f"{rcpt!r} is not a recipient of {email_id}")
        return record, [rcpt]

    def _post(self, record: Any, reports: list[Any]) -> int:
        from outbox.sandbox.records import Webhook
        from outbox.sandbox.webhook_bodies import email_payload
        from outbox.worker.webhooks.app import PATH

        hook = Webhook(0, "", [], [], [], [], "json", "bearer", self._secret)
        for report in reports:
            body = email_payload(record, report, hook, uuid.uuid4().hex)
            answer = self._receiver.post(PATH, json=body)
            answer.raise_for_status()
        self.drain()
        return len(reports)


def running(**options: Any) -> Iterator[OutboxStack]:
    """A started stack, stopped after (what the fixture yields)."""
    stack = OutboxStack(**options).start()
    try:
        yield stack
    finally:
        stack.stop()
