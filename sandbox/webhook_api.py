"""The webhook endpoints: ``webhook/add``, ``view``, ``edit`` and ``remove``.

As the OpenAPI 3.0.4 has them: only ``url`` is required; ``events`` and ``sms_events``
name what to receive; ids are integers; at most 10 webhooks an account ("paid plans can
create up to 10"). Event names the service does not know are not refused: the
Smtp2Go.NET library reports from live use that "SMTP2GO silently ignores unrecognized
event names" (``WebhookCreateRequest.cs``), so they are kept and simply never fire.
"""

from __future__ import annotations

from typing import Any

from outbox.sandbox.common import Call, Handler, Sandbox, not_found
from outbox.sandbox.records import Webhook
from outbox.sandbox.state import SandboxState
from outbox.sandbox.validation import URL, invalid, optional_str, string_list

__all__ = ["MAX_WEBHOOKS", "WEBHOOK_API"]

MAX_WEBHOOKS = 10


def _webhook_fields(body: dict[str, Any], *, required: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    url = body.get("url")
    if url is not None or required:
        if not isinstance(url, str) or not URL.match(url):
            raise invalid("url", "url must be an http(s) URL")
        fields["url"] = url
    for name in ("events", "sms_events", "headers", "usernames"):
        values = string_list(body, name)
        if values is not None:
            fields[name] = values
    output_format = body.get("output_format")
    if output_format is not None:
        if output_format not in ("form", "json"):
            raise invalid("output_format", "output_format must be form or json")
        fields["output_format"] = output_format
    auth_type = body.get("auth_header_type")
    if auth_type is not None:
        if auth_type not in ("", "bearer", "basic"):
            raise invalid("auth_header_type", "auth_header_type must be bearer, basic or empty")
        fields["auth_header_type"] = auth_type
    auth_value = optional_str(body, "auth_header_value")
    if auth_value is not None:
        if "\r" in auth_value or "\n" in auth_value:
            raise invalid("auth_header_value", "auth_header_value must be one line")
        fields["auth_header_value"] = auth_value
    return fields


def _webhook(state: SandboxState, body: dict[str, Any]) -> Webhook:
    webhook_id = body.get("id")
    if isinstance(webhook_id, bool) or not isinstance(webhook_id, int):
        raise invalid("id", "id must be the integer id webhook/add answered")
    hook = state.webhooks.get(webhook_id)
    if hook is None:
        raise not_found("id", f"webhook {webhook_id} does not exist")
    return hook


def webhook_add(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    state = sb.state
    fields = _webhook_fields(body, required=True)
    if len(state.webhooks) >= MAX_WEBHOOKS:
        raise invalid("url", f"an account has at most {MAX_WEBHOOKS} webhooks")
    hook = Webhook(
        id=state.next_webhook_id,
        url=fields["url"],
        events=fields.get("events", []),
        sms_events=fields.get("sms_events", []),
        headers=fields.get("headers", []),
        usernames=fields.get("usernames", []),
        output_format=fields.get("output_format", "form"),
        auth_header_type=fields.get("auth_header_type", ""),
        auth_header_value=fields.get("auth_header_value", ""),
    )
    state.next_webhook_id += 1
    state.webhooks[hook.id] = hook
    return hook.as_dict()


def webhook_view(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    if body.get("id") is not None:
        return _webhook(sb.state, body).as_dict()
    return [hook.as_dict() for hook in sb.state.webhooks.values()]


def webhook_edit(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    hook = _webhook(sb.state, body)
    for key, value in _webhook_fields(body, required=False).items():
        setattr(hook, key, value)
    return hook.as_dict()


def webhook_remove(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    hook = _webhook(sb.state, body)
    del sb.state.webhooks[hook.id]
    return hook.as_dict()


WEBHOOK_API: dict[str, Handler] = {
    "webhook/add": webhook_add,
    "webhook/view": webhook_view,
    "webhook/edit": webhook_edit,
    "webhook/remove": webhook_remove,
}
