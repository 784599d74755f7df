"""Outgoing webhook delivery: the events a real account would POST after a send.

Deliveries run as background tasks so a send is never answered later because of them.
Each (send, webhook) pair is one task that posts its events in order (``processed``
before ``delivered``), retrying a failing or slow receiver with exponential backoff, like
the real service does over 48 hours (tests compress the schedule with
``webhook_backoff``). A retry posts the very same body (same ``id``). The bodies are
built by :mod:`~outbox.sandbox.webhook_bodies`; the real service does not sign them, so
protection is the ``Authorization`` header chosen at ``webhook/add``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import logging
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from outbox.sandbox.config import WEBHOOK_BACKOFF_CAP
from outbox.sandbox.records import EmailRecord, LaterEvent, SmsRecord, Webhook
from outbox.sandbox.state import SandboxState
from outbox.sandbox.webhook_bodies import (
    SMS_LIFECYCLE,
    EmailEvent,
    email_payload,
    events_at_acceptance,
    later_event,
    sms_payload,
)

__all__ = ["WebhookDispatcher", "authorization", "is_loopback", "retry_delay"]

log = logging.getLogger("outbox.sandbox.webhooks")

#: At most this many deliveries in flight; the rest wait their turn.
_CONCURRENCY = 64


def retry_delay(first: float, attempt: int) -> float:
    """The wait after failed attempt ``attempt`` (0 for the first): doubling from
    ``first`` up to ``WEBHOOK_BACKOFF_CAP`` times it."""
    return first * min(WEBHOOK_BACKOFF_CAP, 1 << min(attempt, 16))


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

    def email_accepted(self, record: EmailRecord, delay: float = 0.0) -> None:
        """Queue the events of one accepted email for every webhook that wants them."""
        if not self.state.webhooks:
            return
        events = events_at_acceptance(self.state, record, record.time + delay)
        self._queue(record, events, delay)

    def email_later(self, record: EmailRecord, later: LaterEvent) -> None:
        """Queue one event that happened after delivery (an open, a click, a complaint)."""
        if self.state.webhooks:
            self._queue(record, [later_event(later)], 0.0)

    def _queue(self, record: EmailRecord, events: list[EmailEvent], delay: float) -> None:
        for hook in list(self.state.webhooks.values()):
            wanted = [e for e in events if e.event in hook.events]
            if wanted:
                payloads = [
                    email_payload(record, event, hook, self.state.event_id()) for event in wanted
                ]
                self._spawn(hook, payloads, delay)

    def sms_sent(self, record: SmsRecord) -> None:
        """Queue the SMS lifecycle events (``sms_sending``, ``sms_submitted``, ...)."""
        if not self.state.webhooks:
            return
        at = time.time()
        for hook in list(self.state.webhooks.values()):
            wanted = [event for event in SMS_LIFECYCLE if event in hook.sms_events]
            if not wanted:
                continue
            events = [
                sms_payload(record, number, message_id, event, self.state.event_id(), at)
                for number, message_id in zip(record.destination, record.message_ids, strict=True)
                for event in wanted
            ]
            self._spawn(hook, events, 0.0)

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
            "id": payload["id"],
            "event": payload["event"],
            "rcpt": payload.get("rcpt") or payload.get("destination_number"),
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
                await asyncio.sleep(retry_delay(state.webhook_backoff, attempt))
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
