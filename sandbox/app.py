"""The ASGI app: the SMTP2GO ``/v3`` surface plus the ``/_sandbox`` control endpoints."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route

from outbox.sandbox.api import V3
from outbox.sandbox.common import Sandbox
from outbox.sandbox.config import SandboxConfig
from outbox.sandbox.control import control_routes
from outbox.sandbox.state import SandboxState
from outbox.sandbox.webhooks import WebhookDispatcher

__all__ = ["create_app"]


def create_app(config: SandboxConfig) -> Starlette:
    """A fresh sandbox with its own state; ``config`` is what ``reset`` returns to."""
    state = SandboxState(config)
    sb = Sandbox(state, WebhookDispatcher(state))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await sb.webhooks.close()

    app = Starlette(
        routes=[Route("/v3/{path:path}", V3(sb).handle, methods=["POST"]), *control_routes(sb)],
        lifespan=lifespan,
    )
    app.state.sandbox = sb
    return app
