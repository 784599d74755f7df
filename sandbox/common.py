"""What every endpoint handler shares: its arguments, and paging and 404 helpers.

A handler takes the sandbox, the request's JSON object and the :class:`Call` (who asked,
and when the request was counted) and returns the ``data`` of a 200 answer, or raises
:class:`~outbox.sandbox.validation.ApiError`. Handlers are plain functions (no awaiting)
so the hot path stays short; webhooks go out in the background.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from outbox.sandbox.state import SandboxState
from outbox.sandbox.validation import ApiError, invalid

if TYPE_CHECKING:
    from outbox.sandbox.webhooks import WebhookDispatcher

__all__ = [
    "DEFAULT_PAGE",
    "Call",
    "Handler",
    "Sandbox",
    "decode_token",
    "encode_token",
    "not_found",
    "page_size",
]

DEFAULT_PAGE = 100


@dataclass(slots=True)
class Sandbox:
    """What a handler works on: the state and the webhook dispatcher."""

    state: SandboxState
    webhooks: WebhookDispatcher


@dataclass(frozen=True, slots=True)
class Call:
    """One ``/v3`` request as a handler sees it."""

    request_id: str
    #: Epoch seconds at which the request was counted against the limit (its arrival).
    arrival: float
    #: The client's IP address.
    client: str
    #: The short form of the key it used: ``api-`` and the key's first 12 characters.
    auth: str


Handler = Callable[[Sandbox, dict[str, Any], Call], Any]


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
