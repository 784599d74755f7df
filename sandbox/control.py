"""The ``/_sandbox`` control endpoints: what a test, the demo or a benchmark asks the
sandbox, never part of the SMTP2GO API.

* ``GET /_sandbox/messages[?since=N]`` — every accepted send, oldest first.
* ``GET /_sandbox/stats`` — counters, timeouts, webhook deliveries.
* ``POST /_sandbox/reset`` — forget everything, back to the start configuration.
* ``GET|POST /_sandbox/config`` — read or change the settings (:mod:`~outbox.sandbox.knobs`).
* ``GET /_sandbox/webhooks`` — every webhook call made, with its attempts.
* ``POST /_sandbox/sms/inbound`` — an SMS "received", for ``sms/view-received``.
* ``POST /_sandbox/events`` — a recipient opens, clicks, complains, unsubscribes or
  bounces later: recorded for the reports and posted to the webhooks.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from outbox.sandbox.api import json_response
from outbox.sandbox.common import Sandbox
from outbox.sandbox.knobs import ConfigError, apply_config, config_view
from outbox.sandbox.records import EmailRecord, LaterEvent

__all__ = ["LATER_EVENTS", "control_routes", "happened", "stats"]

#: What ``POST /_sandbox/events`` can make happen (webhook names).
LATER_EVENTS = frozenset({"open", "click", "bounce", "spam", "unsubscribe", "resubscribe"})
#: Events after which the real service suppresses the address "indefinitely".
_SUPPRESSING = {"spam": "spam", "unsubscribe": "unsubscribe"}


def stats(sb: Sandbox) -> dict[str, Any]:
    state = sb.state
    counters = state.counters
    now = time.monotonic()
    current = [t.as_dict(now) for t in state.timeouts.current(now)]
    return {
        "requests": counters.requests,
        "accepted": counters.accepted,
        "rate_limited": counters.rate_limited,
        "injected_failures": counters.injected_failures,
        "soft_failed": counters.soft_failed,
        "hung": counters.hung,
        "invalid": counters.invalid,
        "unauthorized": counters.unauthorized,
        "not_found": counters.not_found,
        "messages": len(state.messages),
        "timeouts": state.timeouts.started,
        "timeout_until": max((t["until"] for t in current), default=None),
        "timed_out": current,
        "by_endpoint": {path: c.as_dict() for path, c in counters.by_endpoint.items()},
        "webhooks_delivered": counters.webhooks_delivered,
        "webhooks_failed": counters.webhooks_failed,
        "webhooks_skipped": counters.webhooks_skipped,
        "webhooks_pending": sb.webhooks.pending,
    }


async def _json_object(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _later(sb: Sandbox, body: dict[str, Any]) -> tuple[EmailRecord, LaterEvent] | str:
    """The record and event ``POST /_sandbox/events`` asks for, or what is wrong."""
    event, email_id = body.get("event"), body.get("email_id")
    if event not in LATER_EVENTS:
        return f"event must be one of {', '.join(sorted(LATER_EVENTS))}"
    record = next((r for r in sb.state.emails if r.email_id == email_id), None)
    if record is None:
        return f"no accepted email has email_id {email_id!r}"
    rcpt = body.get("rcpt", record.recipients[0] if record.recipients else None)
    if not isinstance(rcpt, str) or rcpt.lower() not in {r.lower() for r in record.recipients}:
        return "rcpt must be one of the email's delivered recipients"
    bounce = body.get("bounce", "hard") if event == "bounce" else None
    if bounce not in (None, "hard", "soft"):
        return "bounce must be hard or soft"
    return record, LaterEvent(event, rcpt, time.time(), bounce)


def happened(sb: Sandbox, record: EmailRecord, later: LaterEvent) -> None:
    """What the service does when a recipient acts after delivery: the event joins the
    email's activity, and a complaint, an unsubscribe or a hard bounce suppresses the
    address (a resubscribe lifts an unsubscribe)."""
    state = sb.state
    record.events.append(later)
    if later.event in _SUPPRESSING:
        state.suppress(later.rcpt, later.event, _SUPPRESSING[later.event])
    elif later.event == "resubscribe":
        state.unsuppress(later.rcpt, "unsubscribe")
    elif later.event == "bounce" and later.bounce == "hard" and state.suppress_bounces:
        state.suppress(later.rcpt, "hard bounce", "bounce")


def control_routes(sb: Sandbox) -> list[Route]:
    state = sb.state

    async def messages(request: Request) -> Response:
        since = request.query_params.get("since", "0")
        if not since.isdigit():
            return json_response({"error": "since must be a message index"}, 400)
        start = int(since)
        records = state.messages[start:]
        return json_response(
            {"messages": [r.as_dict() for r in records], "next": start + len(records)}
        )

    async def stats_view(request: Request) -> Response:
        return json_response(stats(sb))

    async def reset(request: Request) -> Response:
        await sb.webhooks.cancel_all()
        state.reset()
        return json_response({"reset": True, "config": config_view(state)})

    async def configure(request: Request) -> Response:
        if request.method == "GET":
            return json_response(config_view(state))
        body = await _json_object(request)
        if body is None:
            return json_response({"error": "expected a JSON object"}, 400)
        try:
            apply_config(state, body)
        except ConfigError as exc:
            return json_response({"error": str(exc), "field": exc.field}, 400)
        return json_response(config_view(state))

    async def webhook_log(request: Request) -> Response:
        counters = state.counters
        return json_response(
            {
                "deliveries": list(state.deliveries),
                "delivered": counters.webhooks_delivered,
                "failed": counters.webhooks_failed,
                "skipped": counters.webhooks_skipped,
                "pending": sb.webhooks.pending,
            }
        )

    async def sms_inbound(request: Request) -> Response:
        body = await _json_object(request)
        fields = ("source_address", "destination_address", "content")
        if body is None or not all(isinstance(body.get(f), str) for f in fields):
            return json_response({"error": f"expected a JSON object with {', '.join(fields)}"}, 400)
        now = time.time()
        message = {f: body[f] for f in fields}
        message.update(
            {
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
                "message_id": state.uuid(),
                "username": "api",
                "time": now,
            }
        )
        state.sms_received.append(message)
        return json_response({k: v for k, v in message.items() if k != "time"})

    async def later_event(request: Request) -> Response:
        body = await _json_object(request)
        found = _later(sb, body) if body is not None else "expected a JSON object"
        if isinstance(found, str):
            return json_response({"error": found}, 400)
        record, later = found
        happened(sb, record, later)
        sb.webhooks.email_later(record, later)
        return json_response({"event": later.event, "rcpt": later.rcpt, "time": later.time})

    return [
        Route("/_sandbox/messages", messages, methods=["GET"]),
        Route("/_sandbox/stats", stats_view, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/config", configure, methods=["GET", "POST"]),
        Route("/_sandbox/webhooks", webhook_log, methods=["GET"]),
        Route("/_sandbox/sms/inbound", sms_inbound, methods=["POST"]),
        Route("/_sandbox/events", later_event, methods=["POST"]),
    ]
