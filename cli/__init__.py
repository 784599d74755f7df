"""The ``outbox`` command line and the demo: for operators and developers, never imported
by the producers a web app uses."""

from __future__ import annotations

from outbox.cli.main import main

__all__ = ["main"]
