"""Text as outbox writes and reads it: what Redis hands back, and compact JSON.

A Redis client may answer ``bytes`` or ``str`` (``decode_responses``, fakeredis, a
cluster client), so every read goes through :func:`as_text`. JSON that outbox stores
has no spaces (:func:`compact_json`); a request's body is compact UTF-8 as well
(:func:`wire_json`), the one form both the client sends and the size check counts.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

__all__ = ["as_text", "compact_json", "epoch_seconds", "wire_json"]

_COMPACT = (",", ":")


def as_text(value: Any, errors: str = "strict") -> str:
    """``value`` as ``str``: bytes decoded as UTF-8, anything else through ``str()``."""
    return value.decode(errors=errors) if isinstance(value, bytes) else str(value)


def compact_json(value: Any, *, sort_keys: bool = False) -> str:
    """``value`` as JSON without spaces; what JSON has no type for (a ``datetime``, a
    ``Decimal``) as its ``str()``. ``sort_keys`` makes equal values equal strings."""
    return json.dumps(value, separators=_COMPACT, sort_keys=sort_keys, default=str)


def wire_json(value: Any) -> bytes:
    """A request's body as SMTP2GO receives it: compact, UTF-8, no ``\\u`` escapes."""
    return json.dumps(value, separators=_COMPACT, ensure_ascii=False).encode()


def epoch_seconds(value: Any) -> float | None:
    """A time as the API writes it (epoch seconds, or ISO 8601 with ``Z`` or an offset)
    as epoch seconds; none when it is neither."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None
