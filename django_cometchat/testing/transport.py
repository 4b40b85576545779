"""The fake's HTTP plumbing: a threaded loopback server that writes whatever the fake answers.

Kept apart from :mod:`.server` (what to answer) because the hardening faults are about the socket:
how fast bytes go out, how many, and how the connection ends.

Stdlib only (``http.server``); no Django.
"""

from __future__ import annotations

import socketserver
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from .server import FakeCometChat


@dataclass
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]]


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never wait for idle keep-alive connections on close

    def __init__(self, address: tuple[str, int], fake: FakeCometChat) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients hanging up mid-answer is normal in fault tests."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer sends Content-Length
    server_version = "FakeCometChat/1.0"
    timeout = 60.0  # idle keep-alive connections are closed after this

    @property
    def fake(self) -> FakeCometChat:
        return cast(LoopbackServer, self.server).fake

    def setup(self) -> None:
        super().setup()
        self.fake._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._connection_closed(self.connection)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """No per-request log lines on stderr."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        received = time.time()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.fake._answer(self.command, self.path, headers, body, at=received)
        if reply is None:  # "drop": hang up without a byte
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)
