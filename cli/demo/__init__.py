"""``outbox demo``: the whole queue in one process against the sandbox, checked."""

from __future__ import annotations

from outbox.cli.demo.run import DemoOptions, DemoReport, run_demo

__all__ = ["DemoOptions", "DemoReport", "run_demo"]
