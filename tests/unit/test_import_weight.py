"""What a web app loads with ``import outbox``: the producer side, and nothing of the
command line, the demo, the sandbox or their libraries; no library patched on import
(the worker patches what it must when it starts)."""

from __future__ import annotations

import json
import subprocess
import sys

#: Modules a producer must never load (the CLI, demo and sandbox, and what only they use).
#: Not rich: ``import httpx`` loads it for httpx's own command line whenever it is installed.
NEVER = ("outbox.cli", "outbox.sandbox", "fakeredis", "lupa", "starlette", "uvicorn", "pystache")

PROBE = """
import json, sys
import httpx._models as models
from kombu.transport import redis as kombu_redis
before = (kombu_redis.Channel._connparams, set(models.SENSITIVE_HEADERS))
import outbox
from outbox import send_email, send_mime, send_sms, send_template, status, retry_failed
from outbox import OutboxError, ValidationError, EnqueueError
after = (kombu_redis.Channel._connparams, set(models.SENSITIVE_HEADERS))
print(json.dumps({"modules": sorted(sys.modules), "patched": before != after}))
"""


def test_importing_outbox_loads_only_the_producer_side_and_patches_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout)
    loaded = [m for m in seen["modules"] if m.split(".")[0] in NEVER or m.startswith(NEVER)]
    assert loaded == []
    assert seen["patched"] is False
