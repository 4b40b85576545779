"""A tiny HTTP forward proxy on loopback that counts what passes through it (for proxy tests).

Plain HTTP only (absolute-URI requests, as a client sends to an HTTP proxy); enough to prove the
client honours HTTP(S)_PROXY, NO_PROXY and the PROXIES setting.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te"}


class ForwardProxy:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []  # (absolute URL, headers)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                proxy.seen.append((self.path, {k.lower(): v for k, v in headers.items()}))
                target = urlsplit(self.path)
                upstream = http.client.HTTPConnection(
                    target.hostname or "", target.port, timeout=10
                )
                path = target.path + (f"?{target.query}" if target.query else "")
                upstream.request("GET", path, headers=headers)
                answer = upstream.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in HOP_BY_HOP | {"content-length", "transfer-encoding"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                upstream.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
