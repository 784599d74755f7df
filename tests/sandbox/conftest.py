"""Helpers for the sandbox tests: an API client, error checks and a webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import Sandbox

NON_VALIDATING = "E_ApiResponseCodes.NON_VALIDATING_IN_PAYLOAD"


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A plain httpx client on ``/v3`` with the key in the ``X-Smtp2go-Api-Key`` header."""
    headers = {"X-Smtp2go-Api-Key": sandbox.api_key}
    with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=10) as client:
        yield client


def ok(response: httpx.Response) -> Any:
    """The ``data`` of a 200 answer in the API's success shape."""
    assert response.status_code == 200, response.text
    payload = response.json()
    assert isinstance(payload["request_id"], str)
    assert payload["request_id"]
    return payload["data"]


def field_error(response: httpx.Response, status: int = 400) -> str:
    """The field a validation error names (one ``{fieldname, message}`` object)."""
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["request_id"]
    data = payload["data"]
    assert data["error"]
    if status == 400:
        assert data["error_code"] == NON_VALIDATING
    errors = data["field_validation_errors"]
    assert set(errors) == {"fieldname", "message"}
    assert errors["message"]
    return str(errors["fieldname"])


def email(**overrides: Any) -> dict[str, Any]:
    """A valid ``email/send`` body; keyword arguments replace or (as None) drop fields."""
    body: dict[str, Any] = {
        "sender": "Shop <shop@example.com>",
        "to": ["Ann <ann@example.org>"],
        "subject": "Your order",
        "text_body": "Thanks for your order.",
        "html_body": "<p>Thanks for your order.</p>",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@dataclass
class Received:
    """One request the webhook receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook endpoint on loopback that records requests and can be told to misbehave."""

    url: str
    requests: list[Received] = field(default_factory=list)
    #: Answer this many requests with 500 first.
    fail_next: int = 0
    #: Hold this many requests for ``delay`` seconds first (past the sandbox's timeout).
    slow_next: int = 0
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    box = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/smtp2go")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with box.lock:
                box.requests.append(Received(self.path, dict(self.headers.items()), body))
                slow = box.slow_next > 0
                box.slow_next -= int(slow)
                fail = not slow and box.fail_next > 0
                box.fail_next -= int(fail)
            if slow:
                time.sleep(box.delay)
            self.send_response(500 if fail else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
