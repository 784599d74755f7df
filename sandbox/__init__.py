"""A local SMTP2GO v3 emulator: a real HTTP server for the demo, tests and benchmarks.

It answers the API's own shapes and status codes, records every accepted send for
inspection, enforces a shared rate limit, injects failures on demand and really calls
registered webhooks. Start it with ``python -m outbox.sandbox`` or embed it::

    from outbox.sandbox import SandboxConfig, serve_in_thread

    with serve_in_thread(SandboxConfig(rate=None, latency_ms=0)) as sandbox:
        ...  # point a client at sandbox.base_url
"""

from __future__ import annotations

from outbox.sandbox.app import create_app
from outbox.sandbox.config import SandboxConfig, parse_rate
from outbox.sandbox.server import RunningSandbox, run, serve_in_thread

__all__ = ["RunningSandbox", "SandboxConfig", "create_app", "parse_rate", "run", "serve_in_thread"]
