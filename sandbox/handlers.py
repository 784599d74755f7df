"""The SMTP2GO v3 endpoints that change things: sending, templates, webhooks, suppressions.

Each handler takes the sandbox and the request's JSON object and returns the ``data``
of a 200 answer, or raises :class:`~sandbox.validation.ApiError`. Handlers are plain
functions (no awaiting) so the hot path stays short; webhooks go out in the background.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pystache
from pystache.parser import ParsingError

from outbox.sandbox.state import EmailRecord, SandboxState, SmsRecord, Template, Webhook
from outbox.sandbox.validation import (
    ApiError,
    EmailDraft,
    address,
    invalid,
    optional_str,
    parse_email,
    parse_mime,
    parse_sms,
    string_list,
)
from outbox.sandbox.webhooks import EMAIL_EVENTS, SMS_EVENTS, WebhookDispatcher

__all__ = [
    "HANDLERS",
    "Handler",
    "Sandbox",
    "decode_token",
    "encode_token",
    "not_found",
    "page_size",
]

_HTML = pystache.Renderer(missing_tags="ignore")
_PLAIN = pystache.Renderer(missing_tags="ignore", escape=lambda text: text)
_DOMAIN = re.compile(r"^[^\s@<>(),;:\"\[\]\\.]+(?:\.[^\s@<>(),;:\"\[\]\\.]+)+$")
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)
SUPPRESSION_REASONS = frozenset({"manual", "spam", "unsubscribe", "bounce", "compliance"})
MAX_WEBHOOKS = 10
DEFAULT_PAGE = 100


@dataclass(slots=True)
class Sandbox:
    """What a handler works on: the state and the webhook dispatcher."""

    state: SandboxState
    webhooks: WebhookDispatcher


Handler = Callable[[Sandbox, dict[str, Any], str], Any]


def not_found(name: str, message: str) -> ApiError:
    return ApiError(404, message, "E_ApiResponseCodes.NOT_FOUND", field=name, message=message)


def encode_token(offset: int) -> str:
    """Continue tokens are opaque to clients; inside they are just an offset."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(body: dict[str, Any]) -> int:
    token = body.get("continue_token")
    if token is None or token == "":
        return 0
    try:
        if not isinstance(token, str):
            raise ValueError
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid("continue_token", "continue_token is not one this endpoint issued") from None
    return offset


def page_size(body: dict[str, Any], name: str, *, default: int, maximum: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise invalid(name, f"{name} must be a whole number from 1 to {maximum}")
    return value


# -- sending ------------------------------------------------------------------------------


def accept_email(sb: Sandbox, draft: EmailDraft, endpoint: str, request_id: str) -> EmailRecord:
    """Record one validated email and queue its webhooks; suppressed recipients fail."""
    state = sb.state
    subject, html_body, text_body = draft.subject, draft.html_body, draft.text_body
    if draft.template_id is not None:
        template = state.templates[draft.template_id]
        values = {**template.template_variables, **(draft.template_data or {})}
        subject = _PLAIN.render(template.subject, values)
        html_body = _HTML.render(template.html_body, values)
        text_body = _PLAIN.render(template.text_body, values)
    accepted: list[str] = []
    rejected: list[str] = []
    for rcpt in draft.recipients:
        (rejected if state.suppressed(rcpt) else accepted).append(rcpt)
    bounce_domain = "@" + state.bounce_domain
    bounced = [r for r in accepted if r.lower().endswith(bounce_domain)]
    email_id = state.email_id()
    now = time.time()
    record = EmailRecord(
        index=state.next_index(),
        endpoint=endpoint,
        email_id=email_id,
        request_id=request_id,
        time=now,
        sender=draft.sender,
        from_address=draft.from_address,
        to=draft.to,
        cc=draft.cc,
        bcc=draft.bcc,
        recipients=accepted,
        rejected=rejected,
        bounced=bounced,
        subject=subject,
        html_body=html_body,
        text_body=text_body,
        custom_headers=draft.custom_headers,
        message_id=draft.message_id or f"<{email_id}@smtp2go.sandbox>",
        size=draft.size,
        template_id=draft.template_id,
        template_data=draft.template_data,
        attachments=draft.attachments,
        inlines=draft.inlines,
        fastaccept=draft.fastaccept,
    )
    delay = 0.0
    if draft.schedule is not None:
        record.schedule = draft.schedule.isoformat()
        record.schedule_id = state.uuid()
        delay = max(0.0, draft.schedule.timestamp() - now)
    state.messages.append(record)
    state.emails.append(record)
    if state.suppress_bounces:
        for rcpt in bounced:
            state.suppress(rcpt, "hard bounce", "bounce")
    sb.webhooks.email_sent(record, delay)
    return record


def send_answer(record: EmailRecord) -> dict[str, Any]:
    """``fastaccept`` answers before the counts are known, so only with the id."""
    if record.fastaccept:
        data: dict[str, Any] = {"email_id": record.email_id}
    else:
        data = {
            "succeeded": len(record.recipients),
            "failed": len(record.rejected),
            "failures": list(record.rejected),
            "email_id": record.email_id,
        }
    if record.schedule_id is not None:
        data["schedule_id"] = record.schedule_id
    return data


def email_send(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    state = sb.state
    draft = parse_email(body, templates=state.templates, verified=state.verified_domains)
    return send_answer(accept_email(sb, draft, "email/send", request_id))


def email_mime(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    draft = parse_mime(body, verified=sb.state.verified_domains)
    return send_answer(accept_email(sb, draft, "email/mime", request_id))


def email_batch(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    """All items are validated before any is accepted; the answer lists ids in order."""
    state = sb.state
    emails = body.get("emails")
    if not isinstance(emails, list) or not emails:
        raise invalid("emails", "emails must be a non-empty array of email objects")
    drafts: list[EmailDraft] = []
    for i, item in enumerate(emails):
        if not isinstance(item, dict):
            raise invalid(f"emails[{i}]", f"emails[{i}] must be an object")
        try:
            drafts.append(
                parse_email(item, templates=state.templates, verified=state.verified_domains)
            )
        except ApiError as exc:
            exc.field = f"emails[{i}].{exc.field}"
            raise
    answer = []
    for draft in drafts:
        record = accept_email(sb, draft, "email/batch", request_id)
        item_answer: dict[str, Any] = {"email_id": record.email_id}
        if record.schedule_id is not None:
            item_answer["schedule_id"] = record.schedule_id
        answer.append(item_answer)
    return answer


def sms_send(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    state = sb.state
    draft = parse_sms(body)
    record = SmsRecord(
        index=state.next_index(),
        request_id=request_id,
        time=time.time(),
        sender=draft.sender,
        destination=draft.destination,
        content=draft.content,
        units=draft.units,
        message_ids=[state.uuid() for _ in draft.destination],
    )
    state.messages.append(record)
    state.sms.append(record)
    sb.webhooks.sms_sent(record)
    count = len(record.destination)
    return {
        "statuses": {"queued": count},
        "total_sent": count,
        "messages": [
            {"destination": number, "message_id": message_id, "status": "queued"}
            for number, message_id in zip(record.destination, record.message_ids, strict=True)
        ],
    }


# -- templates ----------------------------------------------------------------------------


def _template_text(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = optional_str(body, name)
    if value is None:
        if required:
            raise invalid(name, f"{name} is required")
        return None
    try:
        pystache.parse(value)
    except ParsingError as exc:
        raise invalid(name, f"{name} is not a valid template: {exc}") from None
    return value


def _template_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not 5 <= len(value) <= 24 or not value.strip():
        raise invalid(name, f"{name} must be 5 to 24 characters")
    return value


def _template_fields(body: dict[str, Any], *, required: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    name = body.get("template_name")
    if name is not None or required:
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise invalid("template_name", "template_name must be 1 to 64 characters")
        fields["name"] = name
    for key in ("subject", "html_body", "text_body"):
        value = _template_text(body, key, required=required)
        if value is not None:
            fields[key] = value
    variables = body.get("template_variables")
    if variables is not None:
        if not isinstance(variables, dict):
            raise invalid("template_variables", "template_variables must be an object")
        fields["template_variables"] = variables
    tags = string_list(body, "tags")
    if tags is not None:
        fields["tags"] = tags
    return fields


def _template_answer(template: Template) -> dict[str, Any]:
    return {
        "template_name": template.name,
        "id": template.id,
        "subject": template.subject,
        "html_body": template.html_body,
        "text_body": template.text_body,
        "template_variables": template.template_variables,
        "tags": template.tags,
        "last_updated": template.last_updated,
    }


def _template(state: SandboxState, body: dict[str, Any]) -> Template:
    template_id = body.get("id")
    if not isinstance(template_id, str) or not template_id:
        raise invalid("id", "id is required")
    template = state.templates.get(template_id)
    if template is None:
        raise not_found("id", f"template {template_id!r} does not exist")
    return template


def _now_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


def template_add(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    state = sb.state
    template_id = _template_id(body.get("id"), "id")
    fields = _template_fields(body, required=True)
    if template_id in state.templates:
        raise invalid("id", f"a template with id {template_id!r} already exists")
    template = Template(
        id=template_id,
        name=fields["name"],
        subject=fields["subject"],
        html_body=fields["html_body"],
        text_body=fields["text_body"],
        template_variables=fields.get("template_variables", {}),
        tags=fields.get("tags", []),
        last_updated=_now_text(),
    )
    state.templates[template_id] = template
    return _template_answer(template)


def template_edit(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    state = sb.state
    template = _template(state, body)
    new_id = None if body.get("new_id") is None else _template_id(body["new_id"], "new_id")
    fields = _template_fields(body, required=False)
    if new_id is not None and new_id != template.id:
        if new_id in state.templates:
            raise invalid("new_id", f"a template with id {new_id!r} already exists")
        del state.templates[template.id]
        template.id = new_id
        state.templates[new_id] = template
    for key, value in fields.items():
        setattr(template, key, value)
    template.last_updated = _now_text()
    return _template_answer(template)


def template_delete(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    template = _template(sb.state, body)
    del sb.state.templates[template.id]
    return f"Successfully deleted template '{template.id}'"


def template_view(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    template = _template(sb.state, body)
    return {
        "name": template.name,
        "id": template.id,
        "subject": template.subject,
        "tags": template.tags,
        "html_body": template.html_body,
        "text_body": template.text_body,
        "template_variables": template.template_variables,
        "last_updated": template.last_updated,
    }


def template_search(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    terms = string_list(body, "search_terms") or []
    tags = set(string_list(body, "tags") or [])
    fuzzy = bool(body.get("fuzzy_search", False))
    direction = body.get("sort_direction", "asc")
    if direction not in ("asc", "desc"):
        raise invalid("sort_direction", "sort_direction must be asc or desc")
    size = page_size(body, "page_size", default=DEFAULT_PAGE, maximum=1000)
    offset = decode_token(body)

    def matches(template: Template) -> bool:
        if tags and not tags.intersection(template.tags):
            return False
        if not terms:
            return True
        fields = [template.name, template.id, template.subject, *template.tags]
        if fuzzy:
            return any(t.lower() in f.lower() for t in terms for f in fields)
        return any(t in fields for t in terms)

    found = sorted(
        (t for t in sb.state.templates.values() if matches(t)),
        key=lambda t: (t.name.lower(), t.id),
        reverse=direction == "desc",
    )
    page = found[offset : offset + size]
    more = offset + size < len(found)
    return {
        "templates": [
            {
                "name": t.name,
                "id": t.id,
                "subject": t.subject,
                "tags": t.tags,
                "last_updated": t.last_updated,
            }
            for t in page
        ],
        "total_count": len(found),
        "continue_token": encode_token(offset + size) if more else None,
    }


# -- webhooks -----------------------------------------------------------------------------


def _webhook_fields(body: dict[str, Any], *, required: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    url = body.get("url")
    if url is not None or required:
        if not isinstance(url, str) or not _URL.match(url):
            raise invalid("url", "url must be an http(s) URL")
        fields["url"] = url
    for name, allowed in (("events", EMAIL_EVENTS), ("sms_events", SMS_EVENTS)):
        values = string_list(body, name)
        if values is not None:
            unknown = sorted(set(values) - allowed)
            if unknown:
                raise invalid(name, f"unknown {name}: {', '.join(unknown)}")
            fields[name] = values
    for name in ("headers", "usernames"):
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


def webhook_add(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    state = sb.state
    fields = _webhook_fields(body, required=True)
    if not fields.get("events") and not fields.get("sms_events"):
        raise invalid("events", "choose at least one of events or sms_events")
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


def webhook_view(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    if body.get("id") is not None:
        return _webhook(sb.state, body).as_dict()
    return [hook.as_dict() for hook in sb.state.webhooks.values()]


def webhook_edit(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    hook = _webhook(sb.state, body)
    for key, value in _webhook_fields(body, required=False).items():
        setattr(hook, key, value)
    return hook.as_dict()


def webhook_remove(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    hook = _webhook(sb.state, body)
    del sb.state.webhooks[hook.id]
    return hook.as_dict()


# -- suppressions -------------------------------------------------------------------------


def _suppression_target(body: dict[str, Any]) -> str:
    value = body.get("email_address")
    if not isinstance(value, str) or not value.strip():
        raise invalid("email_address", "email_address is required (an address or a domain)")
    value = value.strip()
    if "@" in value:
        return address(value, "email_address")
    if not _DOMAIN.match(value):
        raise invalid("email_address", f"{value!r} is neither an email address nor a domain")
    return value


def suppression_add(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    target = _suppression_target(body)
    description = optional_str(body, "block_description", max_len=255) or ""
    sb.state.suppress(target, description, "manual")
    return {"added": True, "block_description": description, "email_address": target}


def suppression_view(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    exact = optional_str(body, "email_address")
    reasons = set(string_list(body, "reasons") or [])
    reasons.update(string_list(body, "suppression_types") or [])
    for single in ("reason", "suppression_type"):
        value = optional_str(body, single)
        if value:
            reasons.add(value)
    recipients = [r.lower() for r in string_list(body, "recipients") or []]
    recipient = optional_str(body, "recipient")
    if recipient:
        recipients.append(recipient.lower())
    wildcard = (optional_str(body, "wildcard") or "").lower()
    sort = body.get("sort", "asc")
    if sort not in ("asc", "desc"):
        raise invalid("sort", "sort must be asc or desc")
    size = page_size(body, "limit", default=DEFAULT_PAGE, maximum=1000)
    offset = decode_token(body)

    def matches(entry: dict[str, Any]) -> bool:
        target = entry["email_address"].lower()
        if exact is not None and target != exact.strip().lower():
            return False
        if reasons and entry["reason"] not in reasons:
            return False
        if recipients and not any(r in target for r in recipients):
            return False
        return not wildcard or wildcard in target

    found = sorted(
        (e for entries in sb.state.suppressions.values() for e in entries.values() if matches(e)),
        key=lambda e: e["added"],
        reverse=sort == "desc",
    )
    page = found[offset : offset + size]
    more = offset + size < len(found)
    return {
        "results": [{k: v for k, v in e.items() if k != "added"} for e in page],
        "total_results": len(found),
        "continue_token": encode_token(offset + size) if more else None,
    }


def suppression_remove(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    target = _suppression_target(body)
    reasons = string_list(body, "reasons")
    if not reasons:
        raise invalid("reasons", "reasons is required: the block types to remove")
    unknown = sorted(set(reasons) - SUPPRESSION_REASONS)
    if unknown:
        raise invalid("reasons", f"unknown reasons: {', '.join(unknown)}")
    entries = sb.state.suppressions.get(target.lower(), {})
    answer = []
    for reason in reasons:
        removed = entries.pop(reason, None) is not None
        answer.append({"email_address": target, "reason": reason, "removed": removed})
    if not entries:
        sb.state.suppressions.pop(target.lower(), None)
    return {"suppressions": answer}


HANDLERS: dict[str, Handler] = {
    "email/send": email_send,
    "email/mime": email_mime,
    "email/batch": email_batch,
    "sms/send": sms_send,
    "template/add": template_add,
    "template/edit": template_edit,
    "template/delete": template_delete,
    "template/view": template_view,
    "template/search": template_search,
    "webhook/add": webhook_add,
    "webhook/view": webhook_view,
    "webhook/edit": webhook_edit,
    "webhook/remove": webhook_remove,
    "suppression/add": suppression_add,
    "suppression/view": suppression_view,
    "suppression/remove": suppression_remove,
}
