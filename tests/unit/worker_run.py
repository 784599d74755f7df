"""Running a task's body in the test process the way a worker runs it."""

from __future__ import annotations

from typing import Any


def run_task(task: Any, *args: Any, retries: int = 0, hostname: str = "w1") -> Any:
    """Call ``task.run`` under a worker's request (its retry count and host), so that
    ``self.retry`` publishes to the broker instead of raising as a direct call would."""
    task.push_request(id="t1", retries=retries, called_directly=False, hostname=hostname)
    try:
        return task.run(*args)
    finally:
        task.pop_request()
