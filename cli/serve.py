"""``outbox webhooks``: the webhook receiver the command line starts (``outbox sandbox``
is the sandbox's own command, :mod:`outbox.sandbox.command`)."""

from __future__ import annotations

import click

from outbox.cli.output import EXIT_FAILED, EXIT_USAGE, fail

__all__ = ["webhooks"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8026, show_default=True)
@click.option(
    "--insecure", is_flag=True, help="Run without OUTBOX_WEBHOOK_SECRET (accepts anyone's events)."
)
def webhooks(host: str, port: int, insecure: bool) -> None:
    """Serve the webhook receiver: POST /webhooks/smtp2go, GET /healthz."""
    from outbox.core.settings import get_settings

    secret = get_settings().webhook_secret
    value = secret.get_secret_value() if secret is not None else None
    if not value and not insecure:
        fail("OUTBOX_WEBHOOK_SECRET is not set; set it, or pass --insecure", EXIT_USAGE)
    try:
        from outbox.worker.webhooks.app import run
    except ImportError as exc:
        fail(
            f"the webhook receiver needs what smtp2go-outbox[webhooks] installs ({exc.name} is "
            "missing): pip install 'smtp2go-outbox[webhooks]'",
            EXIT_FAILED,
        )
    run(host, port, secret=value, insecure=insecure)
