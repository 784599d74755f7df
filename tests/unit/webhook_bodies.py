"""SMTP2GO webhook bodies for the receiver's tests: which were captured, which are not.

CAPTURED (from the real service, copied verbatim): ``CAPTURED_DELIVERED`` and
``CAPTURED_PROCESSED``, the two form callbacks recorded on 2026-03-24 and published in
Alos-no/Smtp2Go.NET ``tests/Smtp2Go.NET.UnitTests/Models/WebhookPayloadFormParsingTests.cs``
(commit 5133d6a5c7e881c31348324922faa3a6361f84a4; "This payload was captured from a
real SMTP2GO delivered callback on 2026-03-24."). The file keeps them as field -> values
maps; the pairs below are those fields and values in the file's order. The wire order
and percent-encoding were not recorded, so the tests encode the pairs themselves.

SYNTHETIC (written by people, never seen on the wire):

* ``DOTNET_SOFT_BOUNCE`` and ``DOTNET_RECIPIENTS`` — the same .NET file's
  ``ParseFormValues_BouncePayload_ParsesCorrectly`` and
  ``ParseFormValues_RecipientsRepeatedAndDelimited_NormalizesRecipients``, verbatim;
* ``DOTNET_HARD_BOUNCE_JSON`` — ``WebhookPayloadDeserializationTests.cs`` as first
  published (commit 0aaac17141ca257714da4b3c6f4a2a8338943eea), verbatim; it uses
  ``timestamp`` and ``email``, keys that neither the webhooks page nor the live captures
  have, and the project replaced it (below) because "smtp2go dev docs have errors";
* ``sms_body`` — the SMS fields of https://developers.smtp2go.com/docs/webhooks-overview
  ("Webhook Parameters - SMS") with made-up values: no SMS callback was ever published.

JSON (``output_format: json``), CAPTURED but anonymised: ``JSON_PROCESSED`` and
``JSON_DELIVERED`` from the same ``WebhookPayloadDeserializationTests.cs`` as commit
d04cacf67c7d8b118d644633c2cd2cd72c5b7193 ("Fixed payload - smtp2go dev docs have
errors", 2026-02-07) rewrote it: "JSON fixtures in these tests use the actual SMTP2GO
webhook format, captured from live webhook callbacks (not documentation — the docs are
inaccurate)": ``rcpt`` not ``email``, ``recipients`` not ``recipients_list``, ``time``
(ISO 8601) not ``timestamp``, ``srchost`` not ``hostname``. The ids and addresses were
replaced (``1vomg2-abc123``, ``user@example.com``) and only some fields kept, so the
shape is captured and the values are not. ``JSON_HARD_BOUNCE`` is that commit's bounce:
its keys follow the captures, its values (``bounce-456``) are made up and it has no
``srchost`` or ``sendtime``: AMBIGUOUS, whether captured or edited by hand.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CAPTURED_DELIVERED",
    "CAPTURED_PROCESSED",
    "DOTNET_HARD_BOUNCE_JSON",
    "DOTNET_RECIPIENTS",
    "DOTNET_SOFT_BOUNCE",
    "EMAIL_ID",
    "JSON_DELIVERED",
    "JSON_HARD_BOUNCE",
    "JSON_PROCESSED",
    "RCPT",
    "sms_body",
]

#: The captured email's ``email_id`` and its one recipient.
EMAIL_ID = "1w4x2g-FnQW0hPru7M-NRRC"
RCPT = "alexis.pujo@pm.me"

CAPTURED_DELIVERED: list[tuple[str, str]] = [
    ("Message-Id", "<E1w4x2g-FnQW0hPru7M-NRRC@message-id.smtpcorp.com>"),
    ("Subject", "Webhook Delivery Test - b83d60289ef94e028a45a905198ad9b7"),
    ("auth", "api-597435AE4E55"),
    ("email_id", "1w4x2g-FnQW0hPru7M-NRRC"),
    ("event", "delivered"),
    ("from", "testing@dev.mjosdrone.no"),
    ("from_address", "testing@dev.mjosdrone.no"),
    ("from_name", ""),
    ("host", "mail.protonmail.ch [185.205.70.128]"),
    ("id", "6dfa7d3b4514c1f5f0e916bc0cc0395c"),
    ("context", "Unavailable"),
    ("message", "250 2.0.0 Ok: 2780 bytes queued as 4fg32Y2xRcz3T"),
    ("message-id", "<E1w4x2g-FnQW0hPru7M-NRRC@message-id.smtpcorp.com>"),
    ("rcpt", "alexis.pujo@pm.me"),
    ("sender", "testing@dev.mjosdrone.no"),
    ("sendtime", "2026-03-24T08:23:19.052765+00:00"),
    ("subject", "Webhook Delivery Test - b83d60289ef94e028a45a905198ad9b7"),
    ("time", "2026-03-24T08:23:19Z"),
]

CAPTURED_PROCESSED: list[tuple[str, str]] = [
    ("Message-Id", "<E1w4x2g-FnQW0hPru7M-NRRC@message-id.smtpcorp.com>"),
    ("Subject", "Webhook Delivery Test - b83d60289ef94e028a45a905198ad9b7"),
    ("auth", "api-597435AE4E55"),
    ("email_id", "1w4x2g-FnQW0hPru7M-NRRC"),
    ("event", "processed"),
    ("from", "testing@dev.mjosdrone.no"),
    ("from_address", "testing@dev.mjosdrone.no"),
    ("from_name", ""),
    ("id", "e57b42854a69ee377c4221c22e08e5e7"),
    ("message-id", "<E1w4x2g-FnQW0hPru7M-NRRC@message-id.smtpcorp.com>"),
    ("recipients", "alexis.pujo@pm.me"),
    ("sender", "testing@dev.mjosdrone.no"),
    ("sendtime", "2026-03-24T08:23:14.828376+00:00"),
    ("srchost", "146.70.170.19"),
    ("subject", "Webhook Delivery Test - b83d60289ef94e028a45a905198ad9b7"),
    ("time", "2026-03-24T08:23:14Z"),
]

DOTNET_SOFT_BOUNCE: list[tuple[str, str]] = [
    ("event", "bounce"),
    ("email_id", "provider-bounce-123"),
    ("rcpt", "recipient@example.com"),
    ("bounce", "soft"),
    ("context", "DATA: 452 Mailbox full"),
]

DOTNET_RECIPIENTS: list[tuple[str, str]] = [
    ("event", "processed"),
    ("recipients", "one@example.com"),
    ("recipients", "two@example.com; three@example.com"),
    ("recipients", "four@example.com,five@example.com"),
]

DOTNET_HARD_BOUNCE_JSON = """
      {
        "email_id": "bounce-456",
        "event": "bounce",
        "timestamp": 1700000100,
        "email": "invalid@nonexistent.com",
        "from": "noreply@alos.app",
        "bounce": "hard",
        "context": "RCPT TO:<invalid@nonexistent.com>",
        "host": "gmail-smtp-in.l.google.com [209.85.233.26]"
      }
"""


JSON_PROCESSED = """
      {
        "srchost": "146.70.170.30",
        "email_id": "1vomg2-abc123",
        "event": "processed",
        "time": "2026-02-07T18:05:02Z",
        "sender": "noreply@example.com",
        "recipients": ["user@example.com", "user2@example.com"],
        "sendtime": "2026-02-07T18:05:02.199324+00:00"
      }
"""

JSON_DELIVERED = """
      {
        "srchost": "146.70.170.30",
        "email_id": "1vomg2-abc123",
        "event": "delivered",
        "time": "2026-02-07T18:05:06Z",
        "rcpt": "user@example.com",
        "sender": "noreply@alos.app",
        "host": "mail.protonmail.ch [176.119.200.128]",
        "context": "Unavailable",
        "message": "250 2.0.0 Ok: 2788 bytes queued as 4f7f4b3tWbzKy",
        "sendtime": "2026-02-07T18:05:06.215451+00:00"
      }
"""

JSON_HARD_BOUNCE = """
      {
        "email_id": "bounce-456",
        "event": "bounce",
        "time": "2026-02-07T18:15:00Z",
        "rcpt": "invalid@nonexistent.com",
        "sender": "noreply@alos.app",
        "bounce": "hard",
        "context": "RCPT TO:<invalid@nonexistent.com>",
        "host": "gmail-smtp-in.l.google.com [209.85.233.26]"
      }
"""


def sms_body(
    event: str, message_id: str, number: str, *, event_id: str, status_code: str | None = None
) -> dict[str, Any]:
    """An SMS callback with every documented field (values made up)."""
    return {
        "event": event,
        "id": event_id,
        "message_id": message_id,
        "destination_number": number,
        "source_number": "shared",
        "message_content": "Your parcel is on its way",
        "sender_email": "",
        "email_subject": "",
        "status_code": status_code or event.removeprefix("sms_"),
        "region": "AU",
        "retry_count": 0,
        "submitted_timestamp": "2026-03-24T08:23:14Z",
        "received_timestamp": "2026-03-24T08:23:16Z",
    }
