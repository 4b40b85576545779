"""Every socket read of an answer waits at most what is left of the deadline.

urllib3 gives a connection its read timeout once per request, and a timeout bounds one socket
read, not an answer: a server that sends a byte just inside it, again and again, never trips it,
whether in the status line, the headers, the body, a chunk's size line or an error body a retry
drains. Here each socket read gets its own timeout: the read timeout, clipped to what is left of
the current deadline (:mod:`.deadline`), and no read starts once that has passed (it fails as a
socket timeout does, so urllib3 and the client report it as usual and the client names the
deadline). Outside a deadline nothing changes. A read blocked when the process is interrupted
(:func:`.deadline.interrupt`, a command's SIGTERM) is woken: its socket is shut down.

Installed per client by :class:`ClippedReadsAdapter`: its pool managers (the direct one and any
proxy's) make connections whose responses read their socket through :class:`_ClippedReads`.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import threading
import weakref
from functools import cache
from typing import Any, cast

from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connectionpool import HTTPConnectionPool

from . import deadline

# Sockets blocked in a read right now: an interrupted process (deadline.interrupt) wakes them.
_reading: weakref.WeakSet[socket.socket] = weakref.WeakSet()
_reading_lock = threading.Lock()


def _wake_reads() -> None:
    with _reading_lock:
        blocked = list(_reading)
    for sock in blocked:
        with contextlib.suppress(OSError):  # closed meanwhile
            sock.shutdown(socket.SHUT_RDWR)  # the read returns at once: the answer ends


deadline.on_interrupt(_wake_reads)


class _ClippedReads(io.RawIOBase):
    """A response's socket file whose every read is clipped to the deadline."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket) -> None:
        self._raw = raw
        self._sock = sock
        self._timeout = sock.gettimeout()  # the read timeout urllib3 set for this answer

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        with _reading_lock:  # before the check: an interruption from now on wakes this read
            _reading.add(self._sock)
        try:
            left = deadline.remaining()
            if left is not None:
                if left <= 0:
                    raise TimeoutError("the deadline passed")
                clipped = left if self._timeout is None else deadline.clip(self._timeout)
                self._sock.settimeout(clipped)
            return self._raw.readinto(buffer)
        finally:
            with _reading_lock:
                _reading.discard(self._sock)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()  # the socket file: gives the socket back to its connection
        super().close()


class _ClippedResponse(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        # Nothing is buffered yet: swap the socket file's buffer for one over clipped reads.
        self.fp = io.BufferedReader(_ClippedReads(self.fp.detach(), sock))


@cache
def _clipped_pool(pool: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    """``pool`` whose connections answer with :class:`_ClippedResponse` (a SOCKS pool too)."""
    connection = pool.ConnectionCls
    if getattr(connection, "response_class", None) is _ClippedResponse:
        return pool
    clipped = type(connection.__name__, (connection,), {"response_class": _ClippedResponse})
    return cast(type[HTTPConnectionPool], type(pool.__name__, (pool,), {"ConnectionCls": clipped}))


def _install(manager: PoolManager) -> PoolManager:
    manager.pool_classes_by_scheme = {
        scheme: _clipped_pool(pool) for scheme, pool in manager.pool_classes_by_scheme.items()
    }
    return manager


class ClippedReadsAdapter(HTTPAdapter):
    """requests' adapter, with every socket read of an answer clipped to the deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _install(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _install(super().proxy_manager_for(proxy, **proxy_kwargs))
