"""What the API key may call, learned once and shared by the fleet.

A key SMTP2GO creates with the default permissions may call ``/email/send`` only (OpenAPI
``api_keys/add``: ``endpoints`` default ``[/email/send]``; developer changelog
2025-04-03). Anything else answers ``ENDPOINT_PERMISSION_DENIED``, and the service counts
error answers towards the same IP timeout as too many requests (rate-limiting page): a
beat job calling a refused endpoint every few minutes could stop sending for a minute
at a time. So a worker reads what its key may call when it starts
(``api_keys/permissions``), logs once which features are off and which permission
turns each on, and otherwise learns from the first refusal. A refused endpoint is not
called again for :data:`RECHECK` seconds, by any worker.
"""

from __future__ import annotations

import logging
from typing import Any

from outbox.core.errors import ForbiddenError, SMTP2GOError
from outbox.core.smtp2go.endpoints import API_KEYS_PERMISSIONS
from outbox.worker.runtime import Runtime

__all__ = ["FEATURES", "RECHECK", "allowed", "learn", "refused"]

logger = logging.getLogger(__name__)

#: How long a refusal stands before the endpoint is tried again.
RECHECK = 3600.0

#: The endpoints outbox calls besides sending, and what each one gives.
FEATURES: dict[str, str] = {
    "stats/email_cycle": "the monthly quota (outbox quota; emails wait throttled, not "
    "refused, when the allowance runs out)",
    "activity/search": "looking up a send whose answer was lost (without it such a "
    "chunk ends dead for an operator, never sent twice)",
    "suppression/view": "keeping the suppression list in step with SMTP2GO's",
    "stats/email_summary": "the statistics snapshot",
}


def allowed(rt: Runtime, path: str) -> bool:
    """Whether ``path`` may be called now: not refused to this key within the hour."""
    return not rt.store.account.denied(path, rt.store.now())


def refused(rt: Runtime, path: str, err: SMTP2GOError | None = None) -> bool:
    """Record that the key may not call ``path`` when ``err`` says so (or when no error
    is given); true when it was a permission refusal. The first worker to learn it logs
    which feature is off."""
    if err is not None and not isinstance(err, ForbiddenError):
        return False
    rt.store.account.deny(path, rt.store.now() + RECHECK)
    if rt.store.account.take_turn(f"denied:{path}", RECHECK):
        logger.warning(
            "the API key may not call %s: %s is off (add %s to the key's permissions in "
            "SMTP2GO; checked again in %.0f min)",
            path,
            FEATURES.get(path, "this call"),
            f"/{path}",
            RECHECK / 60,
        )
    return True


def learn(rt: Runtime) -> list[str] | None:
    """Read the key's permissions (a read that sends nothing); the features' endpoints
    it may not call, or ``None`` when that cannot be known now."""
    try:
        answer: Any = rt.client.call(API_KEYS_PERMISSIONS)
    except ForbiddenError:
        logger.info(
            "the API key may not read its own permissions: outbox learns them from the "
            "first refusal of each call"
        )
        return None
    except SMTP2GOError as err:
        logger.info("could not read the API key's permissions (%s)", err)
        return None
    data = answer.data if isinstance(answer.data, dict) else {}
    endpoints = data.get("endpoints")
    if not isinstance(endpoints, list):
        return None
    may = {str(e).strip("/") for e in endpoints}
    off = [path for path in FEATURES if path not in may]
    rt.store.account.allow([path for path in FEATURES if path in may])
    for path in off:
        rt.store.account.deny(path, rt.store.now() + RECHECK)
    if off:
        lines = "; ".join(f"{FEATURES[p]} (needs /{p})" for p in off)
        logger.warning("the API key may call only %s. Off: %s", ", ".join(sorted(may)), lines)
    else:
        logger.info("the API key may call every endpoint outbox uses")
    return off
