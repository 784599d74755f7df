"""The one way a request that is not a send reaches SMTP2GO: beat's jobs, the
``outbox suppressions`` command and ``erase`` make their requests through
:func:`api_call`, in a slot of the shared limit, never to an endpoint the key was refused
within the hour (an error answer counts towards the IP's timeout), taking a 429's
cool-down for the fleet. Here too the suppression list's reads and lifts they share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from outbox.core.errors import ForbiddenError, RateLimitedError
from outbox.core.smtp2go.answers import APIResult, ResultModel
from outbox.core.smtp2go.checks import address_key
from outbox.core.smtp2go.endpoints import SUPPRESSION_REMOVE, SUPPRESSION_VIEW, Endpoint
from outbox.core.smtp2go.models import SuppressionRemove, SuppressionView, WireModel
from outbox.worker import permissions
from outbox.worker.runtime import Runtime

__all__ = [
    "SLOT_WAIT",
    "Denied",
    "NoSlot",
    "api_call",
    "held_for",
    "lift_at_smtp2go",
    "read_suppressions",
    "row_reason",
]

#: Longest a request waits for a slot of the rate limit before it gives up (a job then
#: parks itself instead).
SLOT_WAIT = 5.0

A = TypeVar("A", bound=ResultModel)


class NoSlot(Exception):
    """The rate limit has no slot soon enough: ask again in ``wait`` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"no slot for {wait:.1f}s")
        self.wait = wait


class Denied(Exception):
    """The key may not call ``path``: SMTP2GO said so now (``cause``), or within the hour
    (``until``: when outbox asks again)."""

    def __init__(
        self, path: str, *, cause: ForbiddenError | None = None, until: float | None = None
    ) -> None:
        super().__init__(path)
        self.path = path
        self.cause = cause
        self.until = until


def api_call(
    rt: Runtime,
    endpoint: Endpoint[A],
    body: WireModel | None = None,
    *,
    purpose: str = "job",
    max_wait: float = SLOT_WAIT,
    recheck: bool = False,
) -> A:
    """One API request that is not a send (a job's, a command's), in a slot of the
    shared limit like any send; never a call the key was refused within the hour (an
    error answer counts towards the IP's timeout as too many requests do), unless
    ``recheck`` (an operator who has just changed the key's permissions: an answer then
    turns the feature back on for the fleet). A 429 cools the fleet down as a send's
    does, and is raised."""
    path = endpoint.path
    if not recheck and not permissions.allowed(rt, path):
        raise Denied(path, until=rt.store.account.denials(rt.store.now()).get(path))
    with rt.store.limits.slot(
        rt.send_limit, purpose, max_wait=max_wait, sleep=rt.sleep, refused=NoSlot
    ):
        try:
            answer = rt.client.call(endpoint, body)
        except ForbiddenError as err:
            permissions.refused(rt, path, err)
            raise Denied(path, cause=err) from err
        except RateLimitedError as err:
            hint = rt.policy.hint(err.retry_after, rt.settings.cooldown_seconds)
            rt.metrics.cooled(rt.store.limits.cool_down(rt.send_limit, hint))
            raise
    if recheck:
        rt.store.account.allow([path])
    return answer


def read_suppressions(
    fetch: Callable[[SuppressionView], APIResult], query: SuppressionView, max_pages: int = 50
) -> tuple[list[dict[str, Any]], bool]:
    """Every row ``suppression/view`` answers for ``query``, following its
    ``continue_token`` for at most ``max_pages`` requests (each one ``fetch``), and
    whether that was the whole list. The rows are under ``results`` (``suppressions`` in
    older answers); those without an address are left out. Shared by the sync and
    ``outbox suppressions``."""
    token: str | None = None
    found: list[dict[str, Any]] = []
    for _ in range(max_pages):
        answer = fetch(query.model_copy(update={"continue_token": token}))
        rows = answer.data.get("suppressions") or answer.data.get("results") or []
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("email_address"):
                found.append(row)
        token = answer.data.get("continue_token") or None
        if not token:
            return found, True
    return found, False


def row_reason(row: dict[str, Any]) -> str:
    """Why a ``suppression/view`` row holds its address (``manual``, ``bounce``, ...)."""
    return str(row.get("reason") or row.get("suppression_type") or "")


def held_for(
    rt: Runtime,
    address: str,
    call: Callable[[Runtime, Endpoint[APIResult], WireModel], APIResult] = api_call,
) -> list[str]:
    """The reasons SMTP2GO's suppression list holds an address (or domain) for, none
    when it is not there; each request is ``call``'s (raising what :func:`api_call`
    raises)."""
    rows, _ = read_suppressions(
        lambda query: call(rt, SUPPRESSION_VIEW, query), SuppressionView(email_address=address)
    )
    key = address_key(address)
    return sorted(
        {row_reason(r) for r in rows if address_key(str(r["email_address"])) == key} - {""}
    )


def lift_at_smtp2go(
    rt: Runtime,
    address: str,
    reasons: list[str],
    call: Callable[[Runtime, Endpoint[APIResult], WireModel], APIResult] = api_call,
) -> None:
    """Remove an address from the account's suppression list: SMTP2GO lifts a block by
    its ``reasons`` (:func:`held_for`); none, nothing is asked."""
    if reasons:
        call(rt, SUPPRESSION_REMOVE, SuppressionRemove(email_address=address, reasons=reasons))
