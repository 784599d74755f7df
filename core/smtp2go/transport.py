"""One keep-alive connection per thread, instead of one pool shared by all of them.

A worker runs many sending threads against one origin. httpcore's ``ConnectionPool``
serves them by scanning every connection under one lock on each request and on each
response's close (``_assign_requests_to_connections``, with a readability check of every
idle socket): with 100 threads that scan was ~40 % of a worker's CPU per send
(``BENCHMARKS.md``). A thread sends one request at a time, so a connection of its own
needs no pool at all.

:class:`ThreadTransport` is an ``httpx.HTTPTransport`` (so httpx still maps every
httpcore error to its own, and the client above it is unchanged) whose connection source
hands each thread its own ``httpcore.HTTPConnection``: reused while it is idle and
alive, replaced when the server closed it or it sat idle past ``keepalive_expiry``.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

import httpcore
import httpx
from httpx._transports.default import map_httpcore_exceptions

__all__ = ["ThreadConnections", "ThreadTransport"]

#: An idle connection older than this is not reused (servers close idle ones).
KEEPALIVE_EXPIRY = 5.0


class ThreadConnections:
    """httpcore's request interface: each thread's own connection, per origin."""

    def __init__(self, *, ssl_context: Any, keepalive_expiry: float = KEEPALIVE_EXPIRY) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[httpcore.HTTPConnection] = set()

    def _connection(self, origin: httpcore.Origin) -> httpcore.HTTPConnection:
        conn: httpcore.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            usable = conn.can_handle_request(origin) and conn.is_available()
            if usable and not conn.has_expired():
                return conn
            self._forget(conn)
        conn = httpcore.HTTPConnection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
        )
        with self._lock:
            self._open.add(conn)
        self._local.conn = conn
        return conn

    def _forget(self, conn: httpcore.HTTPConnection) -> None:
        with self._lock:
            self._open.discard(conn)
        conn.close()

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        conn = self._connection(request.url.origin)
        try:
            return conn.handle_request(request)
        except BaseException:
            self._local.conn = None
            self._forget(conn)
            raise

    def close(self) -> None:
        with self._lock:
            connections, self._open = list(self._open), set()
        for conn in connections:
            conn.close()

    def __enter__(self) -> ThreadConnections:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.close()


class ThreadTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` with :class:`ThreadConnections` in place of its pool, and
    a :meth:`post` that skips httpx's models (the two private names of httpx it relies
    on, ``_pool`` and ``map_httpcore_exceptions``, are pinned by
    ``tests/unit/test_transport.py``)."""

    def __init__(self, *, keepalive_expiry: float = KEEPALIVE_EXPIRY) -> None:
        super().__init__()
        self._pool.close()
        self._pool = ThreadConnections(  # type: ignore[assignment]
            ssl_context=httpx.create_ssl_context(), keepalive_expiry=keepalive_expiry
        )

    def post(
        self, url: httpx.URL, headers: list[tuple[bytes, bytes]], content: bytes, extensions: Any
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One POST without httpx's request and response objects: ``(status, headers,
        body)``, httpcore's errors mapped to httpx's as :meth:`handle_request` maps them."""
        request = httpcore.Request(
            b"POST",
            httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=[
                (b"Host", url.netloc),
                *headers,
                (b"Content-Length", str(len(content)).encode("ascii")),
            ],
            content=content,
            extensions=extensions,
        )
        with map_httpcore_exceptions():
            response = self._pool.handle_request(request)
            try:
                body = response.read()
            finally:
                response.close()
        return response.status, response.headers, body
