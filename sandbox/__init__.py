"""A local SMTP2GO v3 emulator: a real HTTP server for the demo, tests and benchmarks.

It answers, limits and reports as the real service does wherever an outcome depends on
it (see ``docs/smtp2go-fidelity.md``), records every accepted send for inspection,
injects failures on demand and really calls registered webhooks. Start it with
``python -m outbox.sandbox`` (or ``outbox sandbox``; ``docs/sandbox.md``) or embed it::

    from outbox.sandbox import SandboxConfig, serve_in_thread

    with serve_in_thread(SandboxConfig(rate=None, latency_ms=0)) as sandbox:
        ...  # point a client at sandbox.base_url

The server parts are imported on first use, so the command line's ``--help`` stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from outbox.sandbox.config import SandboxConfig, parse_rate

if TYPE_CHECKING:
    from outbox.sandbox.app import create_app
    from outbox.sandbox.server import RunningSandbox, run, serve_in_thread

__all__ = ["RunningSandbox", "SandboxConfig", "create_app", "parse_rate", "run", "serve_in_thread"]

_LAZY = {
    "create_app": "outbox.sandbox.app",
    "RunningSandbox": "outbox.sandbox.server",
    "run": "outbox.sandbox.server",
    "serve_in_thread": "outbox.sandbox.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'outbox.sandbox' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
