"""Injected failures for the fake CometChat server.

A :class:`Fault` describes one way an answer goes wrong (an error status, a slow answer, a dropped
or reset connection, a broken, hostile, endless, slow or explosively compressed body).
:class:`FaultQueue` holds them in insertion order; each request takes the first fault whose
``path`` matches, and a fault is consumed after ``times`` matching requests.

Path matching: ``path`` is compared with the request path *after* the ``/v3`` prefix, without the
query string and percent-decoded (so ``/users/bob/conversation``, ``/conversations``). A ``str``
matches as a plain substring (a leading ``/v3`` in it is ignored, so ``"/v3/conversations"`` and
``"/conversations"`` mean the same); a compiled ``re.Pattern`` matches with ``search``. ``None``
matches every request. ``method`` optionally restricts a fault to one HTTP method, and ``query``
to requests whose query string has all the given parameters with those values (for example
``query={"page": "2"}``).

Compression: the fake gzips JSON answers when the client accepts it (``FakeOptions.compression``).
Faults that are about the content are compressed like any answer: "status", "wrong_shape" and
"transform" (for the first two, unless the body was given as ``bytes``, which go out exactly as
given; for all, unless ``headers`` set a ``Content-Encoding``). Faults that are about the bytes
on the wire never are: "truncate" cuts the JSON itself, "trickle" paces the uncompressed bytes
(so its timing is what its ``chunk_size`` and ``pause`` say; with ``compress=True`` it paces the
compressed bytes instead, as a slow upstream that compresses would send them, and with
``head=True`` the status line and headers go out at the same pace too), "oversize" is ``size``
bytes on the wire, "html" is a page from something in front of CometChat, and "empty" is zero
bytes.
"gzip_bomb" is always gzip, whatever the request accepted.

Timing: "hold" and "after" answer normally (compressed like any answer) but control *when*. The
answer is built when the request arrives (it shows CometChat's data as of then); "hold" then
keeps it until the test sets ``release`` (``held`` is set once it is built and waiting; after
``hold_timeout`` seconds it goes out anyway, so a broken test fails instead of hanging), and
"after" runs ``action()`` before sending it (a change of data between two page requests: the
client cannot send its next request before it has this answer).

Stdlib only; no Django.
"""

from __future__ import annotations

import json
import re
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal, get_args

from .errors import default_error_code, error_envelope

FaultKind = Literal[
    "status",
    "delay",
    "drop",
    "truncate",
    "html",
    "empty",
    "wrong_shape",
    "trickle",
    "oversize",
    "reset",
    "transform",
    "gzip_bomb",
    "hold",
    "after",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

TRICKLE_CHUNK = 16  # bytes per write of a "trickle" body unless chunk_size says otherwise
OVERSIZE_CHUNK = 64 * 1024
# An "oversize" body is valid JSON of exactly ``size`` bytes: these around a run of "x".
_OVERSIZE_HEAD = b'{"data":[],"padding":"'
_OVERSIZE_TAIL = b'"}'
OVERSIZE_MINIMUM = len(_OVERSIZE_HEAD) + len(_OVERSIZE_TAIL)
BOMB_BLOCK = 64 * 1024  # "gzip_bomb": plain bytes per repeated deflate block
# A gzip member header (RFC 1952): magic, deflate, no flags, no mtime, no extra flags, unknown OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

API_PREFIX = "/v3"

HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Service temporarily unavailable</title></head>"
    "<body><h1>We'll be right back</h1><p>The service is under maintenance.</p></body></html>\n"
)


def api_path(raw_path: str) -> str:
    """The part of a (decoded, query-free) path after ``/v3``: ``/v3/users/x`` -> ``/users/x``."""
    if raw_path == API_PREFIX or raw_path.startswith(API_PREFIX + "/"):
        return raw_path[len(API_PREFIX) :] or "/"
    return raw_path


@dataclass
class Fault:
    """One injected failure. See the module docstring for how ``path`` matches and which kinds
    are compressed."""

    kind: FaultKind
    _: KW_ONLY
    times: int = 1
    path: str | re.Pattern[str] | None = None
    status: int = 500
    body: Any = None
    headers: Mapping[str, str] | None = None
    delay: float = 0.0
    method: str | None = None
    query: Mapping[str, str] | None = None
    # "trickle" and "oversize": bytes per write (defaults TRICKLE_CHUNK, OVERSIZE_CHUNK)
    chunk_size: int | None = None
    pause: float = 0.05  # "trickle": seconds between writes
    compress: bool = False  # "trickle": compressed as any answer, then paced
    head: bool = False  # "trickle": the status line and headers paced too
    # "oversize": body length in bytes; "gzip_bomb": the length it decompresses to (about a
    # thousandth of that goes over the wire)
    size: int = 300_000_000
    # "oversize", "gzip_bomb": Transfer-Encoding: chunked instead of Content-Length
    chunked: bool = False
    transform: Callable[[Any], Any] | None = None  # "transform": decoded answer -> new body
    action: Callable[[], Any] | None = None  # "after": run once the answer is built
    # "hold": the test sets ``release`` to send the answer; the fake sets ``held`` once built
    release: threading.Event = field(default_factory=threading.Event, repr=False)
    held: threading.Event = field(default_factory=threading.Event, repr=False)
    hold_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; use one of {', '.join(FAULT_KINDS)}"
            )
        if self.times < 1:
            raise ValueError("times must be at least 1")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        if self.kind == "delay" and self.delay == 0:
            raise ValueError("a 'delay' fault needs delay > 0 seconds")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if self.pause < 0:
            raise ValueError("pause must not be negative")
        if self.kind in ("oversize", "gzip_bomb") and self.size < OVERSIZE_MINIMUM:
            raise ValueError(f"an {self.kind!r} body is at least {OVERSIZE_MINIMUM} bytes")
        if self.kind == "transform" and not callable(self.transform):
            raise ValueError("a 'transform' fault needs transform=<callable>")
        if self.kind == "after" and not callable(self.action):
            raise ValueError("an 'after' fault needs action=<callable>")
        if self.hold_timeout <= 0:
            raise ValueError("hold_timeout must be positive")
        if isinstance(self.path, str):
            self.path = api_path(self.path)

    def matches(self, method: str, path: str, query: Mapping[str, str] | None = None) -> bool:
        """Whether this fault applies to ``method`` + ``path`` (after ``/v3``, decoded) + query."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.query and any((query or {}).get(k) != str(v) for k, v in self.query.items()):
            return False
        if self.path is None:
            return True
        if isinstance(self.path, str):
            return self.path in path
        return self.path.search(path) is not None

    def error_body(self) -> Any:
        """The body a "status" fault answers with."""
        if self.body is not None:
            return self.body
        return error_envelope(default_error_code(self.status))


# -- bodies ------------------------------------------------------------------------------------


def pieces(body: bytes, chunk_size: int | None) -> Iterator[bytes]:
    """``body`` in writes of ``chunk_size`` bytes, for "trickle"."""
    step = chunk_size or TRICKLE_CHUNK
    for start in range(0, len(body), step):
        yield body[start : start + step]


def oversize_body(size: int, chunk_size: int | None) -> Iterator[bytes]:
    """Exactly ``size`` bytes of valid JSON, made as it is sent: never held in memory."""
    step = chunk_size or OVERSIZE_CHUNK
    yield _OVERSIZE_HEAD
    filler = b"x" * step
    left = size - OVERSIZE_MINIMUM
    while left > 0:
        yield filler if left >= step else filler[:left]
        left -= step
    yield _OVERSIZE_TAIL


def gzip_bomb(size: int) -> tuple[Iterator[bytes], int]:
    """A valid gzip body that decompresses to the ``oversize`` JSON of exactly ``size`` bytes,
    and its length on the wire (about ``size / 1000``).

    Made as it is sent: one 64 KiB run of "x" is compressed once and its deflate block repeated
    (a full flush drops the history, so each copy decodes the same on its own). The CRC in the
    trailer is only computed if a client reads that far.
    """
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = _GZIP_HEADER + deflate.compress(_OVERSIZE_HEAD) + deflate.flush(zlib.Z_FULL_FLUSH)
    filler = b"x" * BOMB_BLOCK
    block = deflate.compress(filler) + deflate.flush(zlib.Z_FULL_FLUSH)
    repeats, rest = divmod(size - OVERSIZE_MINIMUM, BOMB_BLOCK)
    tail = deflate.compress(filler[:rest] + _OVERSIZE_TAIL) + deflate.flush(zlib.Z_FINISH)
    per_write = max(1, OVERSIZE_CHUNK // len(block))  # write ~64 KiB at a time

    def body() -> Iterator[bytes]:
        yield head
        for start in range(0, repeats, per_write):
            yield block * min(per_write, repeats - start)
        crc = zlib.crc32(_OVERSIZE_HEAD)
        for _ in range(repeats):
            crc = zlib.crc32(filler, crc)
        crc = zlib.crc32(filler[:rest] + _OVERSIZE_TAIL, crc)
        yield tail + struct.pack("<II", crc, size & 0xFFFFFFFF)

    return body(), len(head) + repeats * len(block) + len(tail) + 8


def transformed_body(result: Any) -> bytes:
    """What a "transform" callable returned, as a body: bytes and str as they are (str in UTF-8,
    lone surrogates kept), anything else as JSON."""
    if isinstance(result, bytes):
        return result
    if isinstance(result, str):
        return result.encode("utf-8", "surrogatepass")
    try:
        return json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # lone surrogates: \u escapes keep the JSON valid
        return json.dumps(result, separators=(",", ":")).encode()


@dataclass
class _Entry:
    fault: Fault
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = self.fault.times


class FaultQueue:
    """Thread-safe ordered list of pending faults; first match wins and is used up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._entries.append(_Entry(fault))
        return fault

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def pending(self) -> list[tuple[Fault, int]]:
        """(fault, uses left) for every fault not yet consumed, in order."""
        with self._lock:
            return [(entry.fault, entry.remaining) for entry in self._entries]

    def take(self, method: str, path: str, query: Mapping[str, str] | None = None) -> Fault | None:
        """The first fault matching the request, with one use consumed; None when none match."""
        with self._lock:
            for index, entry in enumerate(self._entries):
                if entry.fault.matches(method, path, query):
                    entry.remaining -= 1
                    if entry.remaining <= 0:
                        del self._entries[index]
                    return entry.fault
        return None
