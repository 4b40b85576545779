"""The fake's HTTP plumbing: a threaded loopback server that writes whatever the fake answers.

Kept apart from :mod:`.answer` (what to answer) because the hardening faults are about the
socket: how fast bytes go out, how many, and how the connection ends.

Stdlib only (``http.server``); no Django.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Protocol, cast


@dataclass
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]]
    stream: Iterable[bytes] | None = None  # written piece by piece instead of ``body``
    length: int | None = None  # Content-Length of ``stream``; None: chunked transfer encoding
    pause: float = 0.0  # seconds between pieces of ``stream``
    head_chunk: int | None = None  # the status line and headers in pieces this long, paced too


# Ending a connection without an answer: "drop" closes it cleanly (FIN), "reset" aborts it (RST).
Hangup = Literal["drop", "reset"]


class Answerer(Protocol):
    """What the server asks of the fake behind it (:class:`.server.FakeCometChat`): named here so
    that the plumbing does not import the fake that imports it."""

    def _connection_opened(self, sock: socket.socket) -> None: ...

    def _connection_closed(self, sock: socket.socket) -> None: ...

    def _answer(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        *,
        at: float | None = None,
    ) -> Reply | Hangup: ...


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never wait for idle keep-alive connections on close

    def __init__(self, address: tuple[str, int], fake: Answerer) -> None:
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
    protocol_version = "HTTP/1.1"  # keep-alive: answers carry Content-Length (or are chunked)
    server_version = "FakeCometChat/1.0"
    timeout = 60.0  # idle keep-alive connections are closed after this
    # Headers and body go out in separate writes; with Nagle's algorithm on, each answer would
    # wait ~40 ms for the client's delayed ACK. CometChat's own servers answer at once.
    disable_nagle_algorithm = True

    @property
    def fake(self) -> Answerer:
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
        if isinstance(reply, str):
            self._hang_up(reply)
        else:
            self._write(reply)

    def _hang_up(self, how: Hangup) -> None:
        self.close_connection = True
        if how == "reset":
            # Linger 0 makes close() send RST. Close now: socketserver would first shut down the
            # writing side, and the FIN that sends is exactly what "drop" looks like.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _trickle_head(self, size: int, pause: float) -> None:
        """``end_headers()``, but the buffered status line and headers go out ``size`` bytes at
        a time, ``pause`` seconds apart."""
        buffered: list[bytes] = getattr(self, "_headers_buffer", [])  # send_header()'s
        head = b"".join([*buffered, b"\r\n"])
        buffered.clear()
        try:
            for start in range(0, len(head), size):
                if start:
                    time.sleep(pause)
                self.wfile.write(head[start : start + size])
        except OSError:
            self.close_connection = True

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        pieces, length = (
            ((reply.body,), len(reply.body))
            if reply.stream is None
            else (reply.stream, reply.length)
        )
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        if reply.head_chunk is None:
            self.end_headers()
        else:
            self._trickle_head(reply.head_chunk, reply.pause)
        try:
            for index, piece in enumerate(pieces):
                if index and reply.pause:
                    time.sleep(reply.pause)
                if length is not None:
                    self.wfile.write(piece)
                elif piece:  # an empty chunk would end the body
                    self.wfile.write(b"%X\r\n%s\r\n" % (len(piece), piece))
            if length is None:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up mid-body (as it should on an oversize answer)
            self.close_connection = True
