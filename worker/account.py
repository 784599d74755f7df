"""The account's state as the fleet shares it: a hold on sending after the API refused the
key, and the probe that lifts it.

A 401, or a 403 / ``ENDPOINT_PERMISSION_DENIED`` on a send, says nothing about the
message: the key is wrong or lacks a permission. Failing the message would fail every
message; instead the whole fleet holds its sends (``Batches.finish`` with ``hold``),
messages stay ``retrying`` with the reason, and one worker at a time probes the key with a
read that any key may make and that sends nothing (``api_keys/permissions``: a key
SMTP2GO creates with the default permissions may call ``/email/send`` only, so a probe of
``stats/email_cycle`` would never pass) every ``OUTBOX_HOLD_PROBE_INTERVAL`` seconds. When the
probe passes the hold is lifted and the parked sends come back on their own. While held,
one worker logs the reason at ERROR once a minute.
"""

from __future__ import annotations

import logging

from outbox.core.errors import AccountError, SMTP2GOError
from outbox.core.smtp2go.endpoints import API_KEYS_PERMISSIONS
from outbox.worker.policy import HOLD_RECHECK
from outbox.worker.runtime import Runtime

__all__ = ["probe_hold"]

logger = logging.getLogger(__name__)

#: How often a held fleet says so in the log.
LOG_EVERY = 60.0


def probe_hold(rt: Runtime) -> bool | None:
    """While sending is held, check the key (one worker per interval): true when the hold
    was lifted, false when the key is still refused, ``None`` when there was nothing to
    do (no hold, or another worker's turn)."""
    reason = rt.store.limits.hold_reason()
    if reason is None:
        return None
    account = rt.store.account
    if account.take_turn("log-hold", LOG_EVERY):
        logger.error(
            "sending is HELD for the whole account: %s. Messages wait (retrying); fix "
            "SMTP2GO_API_KEY (or the key's permissions) and sending resumes by itself",
            reason,
        )
    if not account.take_turn("probe-hold", rt.settings.hold_probe_interval):
        return None
    try:
        rt.client.call(API_KEYS_PERMISSIONS)
    except AccountError as err:
        logger.info("hold probe: the key is still refused (%s)", err)
        return False
    except SMTP2GOError as err:
        logger.info("hold probe could not tell (%s); trying again later", err)
        return False
    if rt.store.limits.release_hold(rt.send_limit):
        # The held sends are parked to look again at the hold: they go as each comes due.
        logger.warning(
            "the API accepts the key again: sending resumes as the held chunks come due "
            "(within %g s)",
            HOLD_RECHECK,
        )
    return True
