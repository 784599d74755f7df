"""``python -m outbox.cli``: the ``outbox`` command."""

from __future__ import annotations

from outbox.cli.main import main

main(prog_name="outbox")
