"""The sending endpoints: ``email/send``, ``email/mime``, ``email/batch`` and ``sms/send``.

What an answer means, as the real service has it (OpenAPI 3.0.4, ``/email/send``):

* ``succeeded`` and ``failed`` count **emails**: "An email with multiple recipients is
  classed as 1 email". A call sends one email, so one of them is 1 and the other 0.
* ``failures`` is "An array containing any error messages encountered during sending":
  message strings, never addresses.
* A send that fails is still answered **200**, with ``succeeded: 0, failed: 1``, the
  message in ``failures`` and ``email_id: ""`` (captured live for an unverified sender,
  onetimesecret/onetimesecret#4190). With ``fastaccept: true`` the answer is only
  ``{email_id}`` and the failure happens afterwards: every recipient is rejected.
* A suppressed recipient is "rejected" (a ``reject`` webhook event, a ``rejected``
  activity event); what the answer says is not documented. Here the email is accepted
  (``succeeded: 1``, an ``email_id``) and the suppressed recipients are not delivered,
  even when all of them are suppressed: rejection is an event, not an API error.
"""

from __future__ import annotations

import time
from typing import Any

import pystache

from outbox.sandbox.common import Call, Handler, Sandbox
from outbox.sandbox.config import PLAN_CEILING
from outbox.sandbox.email_rules import EmailDraft, parse_email
from outbox.sandbox.mime_rules import parse_mime
from outbox.sandbox.records import EmailRecord, SmsRecord
from outbox.sandbox.sms_rules import parse_sms
from outbox.sandbox.validation import ApiError, invalid

__all__ = [
    "OVER_PLAN",
    "SENDING",
    "SOFT_FAILED",
    "SOFT_FAILURE",
    "SUPPRESSED",
    "UNVERIFIED",
    "accept_email",
    "unverified_failure",
]

_HTML = pystache.Renderer(missing_tags="ignore")
_PLAIN = pystache.Renderer(missing_tags="ignore", escape=lambda text: text)

#: What ``soft_fail_next`` answers in ``failures`` (the shape of the captured failure; this
#: wording is the sandbox's own).
SOFT_FAILURE = (
    "An error occurred during the SMTP request: 451 4.3.0 Temporary local problem - "
    "please try again later"
)
#: ``reject_reason`` of a suppressed recipient.
SUPPRESSED = "suppressed"
#: ``reject_reason`` of an email whose sender is not verified.
UNVERIFIED = "unverified sender"
#: ``reject_reason`` of an email that ``soft_fail_next`` failed after a ``fastaccept``.
SOFT_FAILED = "soft failure"
#: What a send past the plan's share of the allowance is answered in ``failures``. The
#: service "rejected" such sends "and [they] are not held in the mail queue" (SMTP2GO
#: support, "Quota Usage Notifications"); the answer's shape is assumed to be that of the
#: captured failure, and this wording is the sandbox's own.
OVER_PLAN = "Your monthly email allowance has been reached for this plan"
#: ``reject_reason`` of an email refused past the plan's ceiling after a ``fastaccept``.
OVER_PLAN_REASON = "monthly allowance reached"
#: ``reject_reason`` of every recipient of an email sent with a key in ``sandbox`` status:
#: the Webhooks page lists "a sandboxed key" among the causes of a ``reject``.
SANDBOX_KEY = "sandbox key"
#: What a send with a ``blocked`` key is answered in ``failures``: the status is
#: documented (OpenAPI ``api_keys/add``), the answer is not; the captured failure's shape
#: and the sandbox's own wording are assumed.
BLOCKED_KEY = "This API key is blocked from sending"


def _month(at: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(at))


def _over_plan(sb: Sandbox, draft: EmailDraft, call: Call) -> bool:
    """Sending this email would take the month past what the plan allows."""
    state = sb.state
    if not state.cycle_max:  # no allowance reported: nothing to hold to
        return False
    counted = sum(not state.suppressed(rcpt) for rcpt in draft.recipients)
    sent = state.cycle_sent.get(_month(call.arrival), 0)
    return sent + counted > state.cycle_max * PLAN_CEILING[state.plan] // 100


def unverified_failure(from_address: str) -> str:
    """The failure message captured live for an unverified sender (issue #4190)."""
    return (
        f"An error occurred during the SMTP request: Verification failed for <{from_address}>"
        f"\nUnrouteable address\ndomain verify fail <{from_address}>"
    )


def _verified(sb: Sandbox, from_address: str) -> bool:
    domains = sb.state.verified_domains
    return domains is None or from_address.rpartition("@")[2].lower() in domains


def _soft_fail(sb: Sandbox) -> bool:
    """Spend one ``soft_fail_next`` on this send, if one is armed."""
    faults = sb.state.faults
    if faults.soft_fail_next <= 0:
        return False
    faults.soft_fail_next -= 1
    return True


def _failed_answer(sb: Sandbox, endpoint: str, message: str) -> dict[str, Any]:
    counters = sb.state.counters
    counters.soft_failed += 1
    counters.by_endpoint[endpoint].soft_failed += 1
    return {"succeeded": 0, "failed": 1, "failures": [message], "email_id": ""}


def accept_email(
    sb: Sandbox, draft: EmailDraft, endpoint: str, call: Call, *, reject_all: str = ""
) -> EmailRecord:
    """Record one email and queue its webhooks.

    Suppressed recipients are rejected one by one; ``reject_all`` rejects every recipient
    for that reason (an email that fails after a ``fastaccept`` answer).
    """
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
        (rejected if reject_all or state.suppressed(rcpt) else accepted).append(rcpt)
    bounce_domain = "@" + state.bounce_domain
    bounced = [r for r in accepted if r.lower().endswith(bounce_domain)]
    email_id = state.email_id()
    record = EmailRecord(
        index=state.next_index(),
        endpoint=endpoint,
        email_id=email_id,
        request_id=call.request_id,
        time=call.arrival,
        sender=draft.sender,
        from_address=draft.from_address,
        from_name=draft.from_name,
        to=draft.to,
        cc=draft.cc,
        bcc=draft.bcc,
        recipients=accepted,
        rejected=rejected,
        reject_reason=reject_all or (SUPPRESSED if rejected else ""),
        bounced=bounced,
        subject=subject,
        html_body=html_body,
        text_body=text_body,
        custom_headers=draft.custom_headers,
        # The real service's form, from one captured event: "<E" + email_id + "@...>".
        message_id=draft.message_id or f"<E{email_id}@message-id.smtpcorp.com>",
        size=draft.size,
        auth=call.auth,
        client_ip=call.client,
        template_id=draft.template_id,
        template_data=draft.template_data,
        attachments=draft.attachments,
        attachment_mimetypes=draft.attachment_mimetypes,
        inlines=draft.inlines,
        inline_mimetypes=draft.inline_mimetypes,
        fastaccept=draft.fastaccept,
    )
    delay = 0.0
    if draft.schedule is not None:
        record.schedule = draft.schedule.isoformat()
        record.schedule_id = state.uuid()
        delay = max(0.0, draft.schedule.timestamp() - time.time())
    state.messages.append(record)
    state.emails.append(record)
    month = _month(call.arrival)
    state.cycle_sent[month] = state.cycle_sent.get(month, 0) + len(accepted)
    if state.suppress_bounces:
        for rcpt in bounced:
            state.suppress(rcpt, "hard bounce", "bounce")
    sb.webhooks.email_accepted(record, delay)
    return record


def _send(sb: Sandbox, draft: EmailDraft, endpoint: str, call: Call) -> dict[str, Any]:
    """One email: refused in the answer, or accepted (and perhaps rejected afterwards)."""
    failure = reason = ""
    if _soft_fail(sb):
        failure, reason = SOFT_FAILURE, SOFT_FAILED
    elif not _verified(sb, draft.from_address):
        failure, reason = unverified_failure(draft.from_address), UNVERIFIED
    elif _over_plan(sb, draft, call):
        failure, reason = OVER_PLAN, OVER_PLAN_REASON
    elif sb.state.key_status == "blocked":
        failure, reason = BLOCKED_KEY, BLOCKED_KEY
    elif sb.state.key_status == "sandbox":
        reason = SANDBOX_KEY  # accepted, then every recipient rejected
    if sb.state.fastaccept:
        draft.fastaccept = True  # the service's coming default, asked for or not
    if failure and not draft.fastaccept:
        return _failed_answer(sb, endpoint, failure)
    record = accept_email(sb, draft, endpoint, call, reject_all=reason)
    if record.fastaccept:
        # "the email will be accepted immediately and sent in a background process":
        # the counts are not known yet, so they are not in the answer.
        data: dict[str, Any] = {"email_id": record.email_id}
    else:
        data = {"succeeded": 1, "failed": 0, "failures": [], "email_id": record.email_id}
    if record.schedule_id is not None:
        data["schedule_id"] = record.schedule_id
    return data


def email_send(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    draft = parse_email(body, templates=sb.state.templates)
    return _send(sb, draft, "email/send", call)


def email_mime(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    return _send(sb, parse_mime(body), "email/mime", call)


def email_batch(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    """All items are validated before any is accepted; the answer lists ids in order.

    A scheduled item answers only ``{schedule_id}``, an immediate one only ``{email_id}``
    (the OpenAPI's example). Per-item failures are not documented: an item from an
    unverified sender is accepted and then rejected, as under ``fastaccept``.
    """
    state = sb.state
    emails = body.get("emails")
    if not isinstance(emails, list) or not emails:
        raise invalid("emails", "emails must be a non-empty array of email objects")
    drafts: list[EmailDraft] = []
    for i, item in enumerate(emails):
        if not isinstance(item, dict):
            raise invalid(f"emails[{i}]", f"emails[{i}] must be an object")
        try:
            drafts.append(parse_email(item, templates=state.templates, require_subject=True))
        except ApiError as exc:
            exc.field = f"emails[{i}].{exc.field}"
            raise
    answer = []
    for draft in drafts:
        reason = "" if _verified(sb, draft.from_address) else UNVERIFIED
        if not reason and _over_plan(sb, draft, call):
            reason = OVER_PLAN_REASON
        if not reason and sb.state.key_status != "allowed":
            reason = SANDBOX_KEY if sb.state.key_status == "sandbox" else BLOCKED_KEY
        record = accept_email(sb, draft, "email/batch", call, reject_all=reason)
        if record.schedule_id is not None:
            answer.append({"schedule_id": record.schedule_id})
        else:
            answer.append({"email_id": record.email_id})
    return answer


def sms_send(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    """``{statuses, total_sent, messages}``, one message per destination.

    Under ``soft_fail_next`` the closest documented shape of a failure: every message
    ``failed`` (a status of the OpenAPI's enum), ``total_sent: 0``, nothing recorded.
    """
    state = sb.state
    draft = parse_sms(body)
    if _soft_fail(sb):
        state.counters.soft_failed += 1
        state.counters.by_endpoint["sms/send"].soft_failed += 1
        count = len(draft.destination)
        return {
            "statuses": {"queued": 0, "failed": count},
            "total_sent": 0,
            "messages": [
                {"destination": number, "message_id": state.uuid(), "status": "failed"}
                for number in draft.destination
            ],
        }
    record = SmsRecord(
        index=state.next_index(),
        request_id=call.request_id,
        time=call.arrival,
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


SENDING: dict[str, Handler] = {
    "email/send": email_send,
    "email/mime": email_mime,
    "email/batch": email_batch,
    "sms/send": sms_send,
}
