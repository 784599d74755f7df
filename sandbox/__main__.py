"""``python -m outbox.sandbox``: the same command as ``outbox sandbox``."""

from __future__ import annotations

from outbox.sandbox.command import sandbox

if __name__ == "__main__":
    sandbox(prog_name="python -m outbox.sandbox")
