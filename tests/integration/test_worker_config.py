"""A worker that could not send refuses to start, saying why."""

from __future__ import annotations

import os
import subprocess

import pytest

from support.procs import PYTHON, ROOT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SMTP2GO_API_KEY is not set"),
        (
            {
                "SMTP2GO_API_KEY": "api-" + "a" * 32,
                "SMTP2GO_BASE_URL": "http://api.example.invalid/v3",
            },
            "plain http to a non-loopback host",
        ),
    ],
)
def test_worker_without_a_usable_api_refuses_to_start(
    env: dict[str, str], message: str, redis_db: tuple[str, str]
) -> None:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SMTP2GO_")}
    full.update(env)
    done = subprocess.run(
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "outbox.worker",
            "worker",
            "-l",
            "warning",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode != 0
    assert message in done.stdout + done.stderr
