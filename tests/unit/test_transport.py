"""One keep-alive connection per sending thread, against a real loopback HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from outbox.core.errors import TransportError
from outbox.core.smtp2go.client import SMTP2GOClient
from outbox.core.smtp2go.transport import ThreadConnections, ThreadTransport
from support.procs import free_port

KEY = "api-" + "Tr4nsp0rt" + "0" * 23


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    #: The client ports requests came from: one per connection.
    peers: list[int]
    #: Close each connection after answering (as a server whose keep-alive ended).
    close_after: bool = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.peers.append(self.client_address[1])
        body = json.dumps({"request_id": "r", "data": {"ok": True}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.server.close_after:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.peers = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(srv: _Server) -> SMTP2GOClient:
    return SMTP2GOClient(f"http://127.0.0.1:{srv.server_address[1]}/v3", KEY)


def test_each_thread_keeps_one_connection(server: _Server) -> None:
    client = _client(server)
    start = threading.Barrier(4)

    def sender() -> None:
        start.wait()
        for _ in range(5):
            assert client.request("email/send", {"n": 1})["data"] == {"ok": True}

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(server.peers) == 20
    assert len(set(server.peers)) == 4  # one connection per thread, each reused
    client.close()


def test_a_connection_the_server_closed_is_replaced(server: _Server) -> None:
    server.close_after = True
    client = _client(server)
    for _ in range(3):
        assert client.request("email/send")["data"] == {"ok": True}
    assert len(set(server.peers)) == 3
    client.close()


def test_errors_are_still_httpx_errors_mapped_to_ours() -> None:
    client = SMTP2GOClient(f"http://127.0.0.1:{free_port()}/v3", KEY)
    with pytest.raises(TransportError) as failed:
        client.request("email/send")
    assert isinstance(failed.value.__cause__, httpx.ConnectError)
    assert failed.value.ambiguous is False  # nothing reached a server


def test_the_transport_replaces_httpx_s_pool() -> None:
    """The one private attribute relied on (``HTTPTransport._pool``): a new httpx that
    renamed it would send through its own pool again, unnoticed but for this test."""
    transport = ThreadTransport()
    assert isinstance(transport._pool, ThreadConnections)
    transport.close()
