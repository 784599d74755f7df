"""The Celery application: ``celery -A outbox.worker worker|beat|flower``."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import import_modules

__all__ = ["app"]

app = Celery("outbox")
# The package's own settings module, never a ``celeryconfig`` found on the path.
app.config_from_object("outbox.worker.celeryconfig")
# Registers the tasks and the start-up hooks on the app; imported here so ``-A
# outbox.worker`` is all a worker needs, and only by a worker (not by producers).
app.conf.imports = (
    "outbox.worker.startup",
    "outbox.worker.tasks",
    "outbox.worker.beat",
    "outbox.worker.relay",
    "outbox.worker.webhooks.tasks",
)


@import_modules.connect(sender=app)  # type: ignore[untyped-decorator]
def _flower_safely(sender: Any = None, **_: Any) -> None:
    """``celery -A outbox.worker flower`` binds to 127.0.0.1 unless told an address, and
    refuses to start without authentication: its pages show recipients and subjects.

    Flower fires this signal after reading its options (command line, ``FLOWER_*``
    environment, ``flowerconfig.py``) and before it binds; workers and beat fire it too,
    and are left alone.
    """
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.info_name != "flower":
        return
    from tornado.options import options

    if not options.address:
        options.address = "127.0.0.1"
    if not (options.basic_auth or options.auth):
        raise SystemExit(
            "outbox: refusing to start Flower without authentication: set FLOWER_BASIC_AUTH="
            "user:password (or pass --basic-auth); its pages show recipients and subjects"
        )
