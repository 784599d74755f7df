"""Running the sandbox: blocking in the foreground, or on a thread inside another process."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import uvicorn

from outbox.sandbox.app import create_app
from outbox.sandbox.config import SandboxConfig

__all__ = ["RunningSandbox", "run", "serve_app", "serve_in_thread"]

#: Answers held back by ``hang_next`` must not keep a stopping server alive for long.
_GRACEFUL_SHUTDOWN = 2


def run(config: SandboxConfig, host: str, port: int, *, log_level: str = "warning") -> None:
    """Serve until interrupted (uvloop and httptools when installed; no access log)."""
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
        server_header=False,
    )


@dataclass
class RunningSandbox:
    """A sandbox served from a background thread; stop it with :meth:`stop` or ``with``."""

    host: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What a client takes as ``SMTP2GO_BASE_URL``."""
        return f"{self.url}/v3"

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(
    config: SandboxConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    startup_timeout: float = 10.0,
) -> RunningSandbox:
    """Start a sandbox on a daemon thread and return once it accepts connections.

    Port 0 picks a free port; the socket is bound here, before the thread starts, so the
    reported port is the real one and no other process can take it in between. The host
    process's logging configuration is left alone.
    """
    return serve_app(
        create_app(config), host, port, log_level=log_level, startup_timeout=startup_timeout
    )


def serve_app(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    startup_timeout: float = 10.0,
) -> RunningSandbox:
    """Serve any ASGI app as :func:`serve_in_thread` serves the sandbox (the test stack's
    webhook receiver runs this way)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    actual_port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=actual_port,
            log_level=log_level,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
            server_header=False,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"asgi:{actual_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the sandbox on {host}:{actual_port} did not start")
        time.sleep(0.01)
    return RunningSandbox(host=host, port=actual_port, server=server, thread=thread)
