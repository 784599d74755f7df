"""The SMTP2GO paths the sandbox answers, and how a key's permissions name them: read by
the start-up configuration, the run-time knobs and the state alike."""

from __future__ import annotations

__all__ = ["ALWAYS_ALLOWED", "ENDPOINTS", "SEND_ENDPOINTS", "endpoint_names"]

#: Every SMTP2GO path the sandbox answers (after ``/v3/``).
ENDPOINTS = (
    "email/send",
    "email/mime",
    "email/batch",
    "template/add",
    "template/edit",
    "template/delete",
    "template/search",
    "template/view",
    "webhook/add",
    "webhook/view",
    "webhook/edit",
    "webhook/remove",
    "stats/email_summary",
    "stats/email_bounces",
    "stats/email_cycle",
    "stats/email_history",
    "stats/email_spam",
    "stats/email_unsubs",
    "activity/search",
    "suppression/add",
    "suppression/view",
    "suppression/remove",
    "sms/send",
    "sms/view-received",
    "sms/view-sent",
    "sms/summary",
    "api_keys/permissions",
)

#: What a key may call whatever its permissions: asking what they are.
ALWAYS_ALLOWED = frozenset({"api_keys/permissions"})


def endpoint_names(values: object) -> frozenset[str] | None:
    """Endpoints as a key's permissions name them (``/email/send`` or ``email/send``);
    ``None`` stays every endpoint. Raises ``ValueError`` naming an unknown one."""
    if values is None:
        return None
    items = values.split(",") if isinstance(values, str) else values
    if not isinstance(items, list | tuple):
        raise ValueError("must be null, a list of endpoints or a comma-separated string")
    names = set()
    for item in items:
        name = str(item).strip().strip("/")
        if name.startswith("v3/"):
            name = name[3:]
        if not name:
            continue
        if name not in ENDPOINTS:
            raise ValueError(f"not an endpoint: {item!r}")
        names.add(name)
    return frozenset(names)


#: Endpoints that send something: the ones ``hang_next`` holds back.
SEND_ENDPOINTS = frozenset({"email/send", "email/mime", "email/batch", "sms/send"})
