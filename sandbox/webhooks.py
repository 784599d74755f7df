"""Outgoing webhook delivery: the events a real account would POST after a send.

Deliveries run as background tasks so a send is never answered later because of them.
Each (send, webhook) pair is one task that posts its events in order (``processed``
before ``delivered``), retrying a failing or slow receiver with exponential backoff, like
the real service does over 48 hours (here over seconds). Payloads carry the documented
fields only; the real service does not sign them, so protection is the ``Authorization``
header chosen at ``webhook/add``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from outbox.sandbox.state import EmailRecord, SandboxState, SmsRecord, Webhook

__all__ = ["EMAIL_EVENTS", "SMS_EVENTS", "WebhookDispatcher"]

log = logging.getLogger("outbox.sandbox.webhooks")

EMAIL_EVENTS = frozenset(
    {
        "processed",
        "delivered",
        "open",
        "click",
        "bounce",
        "spam",
        "unsubscribe",
        "resubscribe",
        "reject",
    }
)
SMS_EVENTS = frozenset({"sending", "submitted", "delivered", "failed", "rejected", "opt-out"})
#: The SMS lifecycle the sandbox plays for an accepted message, in order.
_SMS_LIFECYCLE = ("sending", "submitted", "delivered")
#: At most this many deliveries in flight; the rest wait their turn.
_CONCURRENCY = 64
_MAX_BACKOFF = 30.0


def iso(epoch: float) -> str:
    """UTC timestamps as the API writes them: ``2024-01-01T12:00:00Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def authorization(hook: Webhook) -> str | None:
    """The ``Authorization`` header for a webhook, if it chose one.

    For ``basic`` the documented value is ``base64(user:pass)``; a plain ``user:pass``
    (which cannot be base64, having a colon) is encoded here so both spellings work.
    """
    value = hook.auth_header_value
    if not hook.auth_header_type or not value:
        return None
    if hook.auth_header_type == "bearer":
        return f"Bearer {value}"
    if ":" in value:
        value = base64.b64encode(value.encode()).decode()
    return f"Basic {value}"


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookDispatcher:
    """Builds event payloads for accepted sends and posts them in the background."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._semaphore: asyncio.Semaphore | None = None

    @property
    def pending(self) -> int:
        return len(self._tasks)

    # -- scheduling -----------------------------------------------------------------------

    def email_sent(self, record: EmailRecord, delay: float = 0.0) -> None:
        """Queue the events of one accepted email for every webhook that wants them."""
        if not self.state.webhooks:
            return
        for hook in list(self.state.webhooks.values()):
            wanted = set(hook.events)
            if not wanted:
                continue
            events = list(self._email_events(record, hook, wanted))
            if events:
                self._spawn(hook, events, delay)

    def sms_sent(self, record: SmsRecord) -> None:
        """Queue the SMS lifecycle events (``sending``, ``submitted``, ``delivered``)."""
        if not self.state.webhooks:
            return
        for hook in list(self.state.webhooks.values()):
            wanted = [event for event in _SMS_LIFECYCLE if event in hook.sms_events]
            if not wanted:
                continue
            events = [
                self._sms_payload(record, number, message_id, event)
                for number, message_id in zip(record.destination, record.message_ids, strict=True)
                for event in wanted
            ]
            self._spawn(hook, events, 0.0)

    def _email_events(
        self, record: EmailRecord, hook: Webhook, wanted: set[str]
    ) -> Iterable[dict[str, Any]]:
        bounced = set(record.bounced)
        for rcpt in record.recipients:
            if "processed" in wanted:
                yield self._email_payload(record, hook, "processed", rcpt, recipients=True)
            if rcpt in bounced:
                if "bounce" in wanted:
                    yield self._email_payload(record, hook, "bounce", rcpt)
            elif "delivered" in wanted:
                yield self._email_payload(record, hook, "delivered", rcpt)
        if "reject" in wanted:
            for rcpt in record.rejected:
                yield self._email_payload(record, hook, "reject", rcpt)

    def _email_payload(
        self, record: EmailRecord, hook: Webhook, event: str, rcpt: str, *, recipients: bool = False
    ) -> dict[str, Any]:
        sendtime = iso(record.time)
        payload: dict[str, Any] = {
            "event": event,
            "time": iso(time.time()) if event != "processed" else sendtime,
            "sendtime": sendtime,
            "sender": record.from_address,
            "from": record.from_address,
            "from_address": record.from_address,
            "rcpt": rcpt,
            "email_id": record.email_id,
            "subject": record.subject,
            "message-id": record.message_id,
        }
        if recipients:
            payload["recipients"] = record.recipients
        if event == "bounce":
            domain = rcpt.rpartition("@")[2]
            payload["bounce"] = "hard"
            payload["host"] = f"mx.{domain}"
            payload["message"] = f"550 5.1.1 <{rcpt}>: Recipient address rejected"
        elif event == "reject":
            payload["message"] = "recipient is on the suppression list"
        if hook.headers:
            lowered = {k.lower(): v for k, v in record.custom_headers.items()}
            for name in hook.headers:
                if name.lower() in lowered:
                    payload[name] = lowered[name.lower()]
        return payload

    def _sms_payload(
        self, record: SmsRecord, number: str, message_id: str, event: str
    ) -> dict[str, Any]:
        return {
            "event": event,
            "time": iso(time.time()),
            "sendtime": iso(record.time),
            "message_id": message_id,
            "destination": number,
            "sender": record.sender or "shared",
            "status": event,
            "units": record.units,
        }

    def _spawn(self, hook: Webhook, events: list[dict[str, Any]], delay: float) -> None:
        snapshot = Webhook(**hook.as_dict())  # later edits do not change queued deliveries
        task = asyncio.get_running_loop().create_task(self._deliver_all(snapshot, events, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- delivery -------------------------------------------------------------------------

    async def _deliver_all(self, hook: Webhook, events: list[dict[str, Any]], delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(_CONCURRENCY)
        async with self._semaphore:
            for payload in events:
                await self._deliver(hook, payload)

    async def _deliver(self, hook: Webhook, payload: dict[str, Any]) -> None:
        state = self.state
        entry: dict[str, Any] = {
            "webhook_id": hook.id,
            "url": hook.url,
            "event": payload["event"],
            "rcpt": payload.get("rcpt") or payload.get("destination"),
            "email_id": payload.get("email_id"),
            "message_id": payload.get("message_id"),
            "attempts": 0,
            "status": None,
            "ok": False,
            "error": None,
        }
        state.deliveries.append(entry)
        if not state.allow_external_webhooks and not is_loopback(hook.url):
            entry["error"] = "not delivered: the sandbox only calls loopback URLs"
            state.counters.webhooks_skipped += 1
            log.warning("webhook %s to %s skipped (not a loopback URL)", hook.id, hook.url)
            return
        headers = {"User-Agent": "smtp2go-sandbox-webhooks"}
        if hook.output_format == "json":
            headers["Content-Type"] = "application/json"
            content = json.dumps(payload).encode()
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            content = urlencode(payload, doseq=True).encode()
        auth = authorization(hook)
        if auth:
            headers["Authorization"] = auth
        client = self._http()
        attempts = 1 + state.webhook_retries
        for attempt in range(attempts):
            entry["attempts"] = attempt + 1
            try:
                response = await client.post(
                    hook.url, content=content, headers=headers, timeout=state.webhook_timeout
                )
            except httpx.HTTPError as exc:
                entry["status"], entry["error"] = None, f"{type(exc).__name__}: {exc}"
            else:
                entry["status"] = response.status_code
                if response.is_success:
                    entry["ok"], entry["error"] = True, None
                    state.counters.webhooks_delivered += 1
                    return
                entry["error"] = f"HTTP {response.status_code}"
            if attempt + 1 < attempts:
                await asyncio.sleep(min(_MAX_BACKOFF, state.webhook_backoff * 2**attempt))
        state.counters.webhooks_failed += 1
        log.info("webhook %s gave up on %s after %d attempts", hook.id, hook.url, attempts)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env=False: a proxy from the environment must never see loopback traffic.
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        return self._client

    async def cancel_all(self) -> None:
        """Drop queued and running deliveries (a reset must not leak into the next test)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def close(self) -> None:
        await self.cancel_all()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
