"""The edge of the package: every public call raises only ``OutboxError``s.

Redis unreachable inside ``status()``, ``retry_failed()``, ``cancel()``, ``erase()`` is
``outbox.Unavailable`` (an ``OutboxError`` and a ``ConnectionError``), never redis-py's
own exception, so ``except OutboxError`` in an app's view catches everything outbox
raises.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis

from outbox.core.errors import Unavailable

__all__ = ["public_call"]

P = ParamSpec("P")
T = TypeVar("T")


def public_call(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn``, with redis-py's errors raised as :class:`~outbox.core.errors.Unavailable`."""

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise Unavailable(f"outbox's Redis could not be reached: {exc}") from exc

    return call
