"""What the fake answers to one request. No sockets here (see :mod:`.transport`).

Every request passes through, in order:

1. **faults** (see :mod:`.faults`): the first pending fault matching the path is consumed; its
   ``delay`` is slept; "drop" closes the connection without an answer (FIN), "reset" aborts it
   (RST); "status", "html", "empty", "wrong_shape", "oversize" and "gzip_bomb" answer at once
   (no authentication, no routing); "truncate", "trickle" and "transform" cut, slow down or rewrite
   the normal answer; "hold" and "after" build the normal answer at once, then hold it until the
   test releases it, or run the test's action, before it is sent.
2. **authentication**: the ``apikey`` header (401 ``AUTH_ERR_EMPTY_APIKEY`` /
   ``AUTH_ERR_APIKEY_NOT_FOUND``). Refused requests do not count against the rate limit.
3. **rate limit** (see :mod:`.ratelimit`): 429 ``ERR_TOO_MANY_REQUESTS`` with ``Retry-After``
   and the reset time beyond the budget of the current window. Every answer carries the limit
   and the remaining count.
4. **routing** (see :mod:`.api`).

Then **compression**: a JSON answer goes out gzip-compressed (``Content-Encoding: gzip``,
``Vary: Accept-Encoding``) when the request's ``Accept-Encoding`` admits gzip, as a real server
does; ``FakeOptions.compression`` picks deflate or turns it off. Which faults are compressed is
listed in :mod:`.faults`.

Stdlib only; no Django.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from .api import RawJSON, authenticate, handle, is_list_endpoint
from .errors import error_envelope
from .faults import (
    HTML_PAGE,
    TRICKLE_CHUNK,
    Fault,
    FaultQueue,
    api_path,
    gzip_bomb,
    oversize_body,
    pieces,
    transformed_body,
)
from .options import FakeOptions
from .ratelimit import RateDecision, RateLimiter, header_names
from .render import ConversationRenderer
from .state import State
from .transport import Hangup, Reply

JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Request:
    method: str
    raw_path: str  # as sent, percent-encoded, without the query
    query: dict[str, str]
    headers: dict[str, str]  # lowercased names
    at: float  # time.time() when received
    options: FakeOptions
    api_key: str = field(repr=False)  # the key to accept; never echoed


def _encode(body: Any) -> tuple[bytes, str]:
    """Bytes and a default Content-Type for a fault body."""
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return _dumps(body), JSON_TYPE


def _dumps(payload: Any) -> bytes:
    if isinstance(payload, RawJSON):
        return payload.text.encode()
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _merge(
    headers: list[tuple[str, str]], extra: Mapping[str, str] | None
) -> list[tuple[str, str]]:
    """``headers`` with ``extra`` replacing same-named entries (names case-insensitive)."""
    if not extra:
        return headers
    names = {name.lower() for name in extra}
    return [(n, v) for n, v in headers if n.lower() not in names] + list(extra.items())


def accepts(accept_encoding: str, coding: str) -> bool:
    """Whether an ``Accept-Encoding`` value admits ``coding`` (RFC 9110 §12.5.3: ``q=0``
    refuses a coding, ``*`` stands for any coding not named). Without the header nothing is
    compressed, as common servers (nginx, Apache) do."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        if not name:
            continue
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[name.lower()] = weight
    names = ("gzip", "x-gzip") if coding == "gzip" else (coding,)
    for name in names:
        if name in weights:
            return weights[name] > 0
    return weights.get("*", 0.0) > 0


def compressed(reply: Reply, request: Request) -> Reply:
    """``reply`` compressed as the options and the request's ``Accept-Encoding`` allow; as it is
    when it is streamed, empty, already encoded or not accepted."""
    coding = request.options.compression
    if (
        coding == "off"
        or reply.stream is not None
        or not reply.body
        or any(name.lower() == "content-encoding" for name, _ in reply.headers)
        or not accepts(request.headers.get("accept-encoding", ""), coding)
    ):
        return reply
    body = (
        gzip.compress(reply.body, compresslevel=6, mtime=0)
        if coding == "gzip"
        else zlib.compress(reply.body, 6)
    )
    headers = [*reply.headers, ("Content-Encoding", coding), ("Vary", "Accept-Encoding")]
    return Reply(reply.status, body, headers)


class Responder:
    """Turns a :class:`Request` into a :class:`Reply`, or a hang-up."""

    def __init__(self, state: State, limiter: RateLimiter, faults: FaultQueue) -> None:
        self.state = state
        self.limiter = limiter
        self.faults = faults
        self.renderer = ConversationRenderer(state)
        self._held: dict[int, Fault] = {}  # "hold" faults with an answer waiting, by id()
        self._holding_lock = threading.Lock()

    def release_held(self) -> None:
        """Send every answer a "hold" fault is keeping (``reset()``: no test waits for it)."""
        with self._holding_lock:
            waiting = list(self._held.values())
        for fault in waiting:
            fault.release.set()

    def respond(self, request: Request) -> Reply | Hangup:
        path = api_path(unquote(request.raw_path))
        fault = self.faults.take(request.method, path, request.query)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
        if fault is None or fault.kind == "delay":
            return compressed(self._normal(request), request)
        if fault.kind in ("hold", "after"):
            return self._timed(fault, request)
        reply = self._faulty(fault, request)
        if isinstance(reply, str) or fault.kind not in ("status", "wrong_shape", "transform"):
            return reply  # hang-ups, and the faults about the bytes on the wire
        if fault.kind != "transform" and isinstance(fault.body, bytes):
            return reply  # bytes a test chose go out exactly as given
        return compressed(reply, request)

    def _timed(self, fault: Fault, request: Request) -> Reply:
        """The normal answer, built now, sent once the test releases it ("hold") or once the
        test's action ran ("after")."""
        reply = compressed(self._normal(request), request)
        if fault.kind == "hold":
            with self._holding_lock:
                self._held[id(fault)] = fault
            try:
                fault.held.set()
                fault.release.wait(fault.hold_timeout)
            finally:
                with self._holding_lock:
                    self._held.pop(id(fault), None)
            return reply
        assert fault.action is not None  # checked when the fault was made
        try:
            fault.action()
        except Exception as error:  # a broken test helper must show, not end as a hang-up
            text = f"the after fault's action failed: {error!r}".encode()
            return Reply(500, text, [("Content-Type", "text/plain; charset=utf-8")])
        return reply

    def _rate_headers(self, request: Request, decision: RateDecision) -> list[tuple[str, str]]:
        options = request.options
        return decision.headers(options.header_style, always_reset=options.reset_header == "always")

    def _normal(self, request: Request) -> Reply:
        error = authenticate(request.headers, request.api_key)
        if error is not None:  # refused requests do not use the budget
            decision = self.limiter.hit(consume=False, now=request.at)
            status, payload = error.status, error.response().payload
        else:
            decision = self.limiter.hit(now=request.at)
            if not decision.allowed:
                status = 429
                payload = error_envelope(
                    "ERR_TOO_MANY_REQUESTS",
                    f"Too many requests. Please retry after {decision.retry_after} seconds.",
                )
            else:
                response = handle(
                    self.state,
                    request.options,
                    method=request.method,
                    raw_path=request.raw_path,
                    query=request.query,
                    headers=request.headers,
                    renderer=self.renderer,
                )
                status, payload = response.status, response.payload
        reply_headers = [("Content-Type", JSON_TYPE), *self._rate_headers(request, decision)]
        return Reply(status, _dumps(payload), reply_headers)

    def _faulty(self, fault: Fault, request: Request) -> Reply | Hangup:
        kind = fault.kind
        if kind in ("drop", "reset"):
            return kind
        if kind in ("truncate", "trickle", "transform"):
            return self._reshaped(fault, request)
        # A canned answer instead of routing, but the request still counts against the budget;
        # only the ordinary limit and remaining headers are added, as to an answer that was not
        # refused (a 429 fault gets Retry-After or a reset only through ``fault.headers``).
        decision = replace(self.limiter.hit(now=request.at), allowed=True)
        rate = self._rate_headers(request, decision)
        if kind == "oversize":
            headers = _merge([("Content-Type", JSON_TYPE), *rate], fault.headers)
            stream = oversize_body(fault.size, fault.chunk_size)
            return Reply(200, b"", headers, stream, None if fault.chunked else fault.size)
        if kind == "gzip_bomb":  # sent whatever the request accepts: a hostile server would
            stream, length = gzip_bomb(fault.size)
            headers = _merge(
                [("Content-Type", JSON_TYPE), ("Content-Encoding", "gzip"), *rate], fault.headers
            )
            return Reply(200, b"", headers, stream, None if fault.chunked else length)
        if kind == "status":
            body, content_type = _encode(fault.error_body())
            status = fault.status
        elif kind == "html":
            body, _ = _encode(HTML_PAGE if fault.body is None else fault.body)
            content_type, status = "text/html; charset=utf-8", 200
        elif kind == "empty":
            body, content_type, status = b"", JSON_TYPE, 200
        else:  # wrong_shape
            default = (
                {"data": {"unexpected": True}}
                if is_list_endpoint(request.method, request.raw_path)
                else {"data": "nope"}
            )
            body, content_type = _encode(default if fault.body is None else fault.body)
            status = 200
        return Reply(status, body, _merge([("Content-Type", content_type), *rate], fault.headers))

    def _reshaped(self, fault: Fault, request: Request) -> Reply:
        """The normal answer, then cut ("truncate"), slowed ("trickle") or rewritten
        ("transform")."""
        full = self._normal(request)
        if fault.kind == "trickle":  # same status, headers and bytes; only slower
            sent = compressed(full, request) if fault.compress else full
            stream = pieces(sent.body, fault.chunk_size)
            headers = _merge(sent.headers, fault.headers)
            return Reply(
                sent.status,
                b"",
                headers,
                stream,
                len(sent.body),
                fault.pause,
                head_chunk=(fault.chunk_size or TRICKLE_CHUNK) if fault.head else None,
            )
        # A 200 made from whatever the normal answer was, so never with a refusal's Retry-After
        # or reset (unless every answer carries the reset).
        refusal = {"retry-after"}
        if request.options.reset_header != "always":
            refusal |= {reset.lower() for *_, reset in header_names(request.options.header_style)}
        headers = _merge(
            [(n, v) for n, v in full.headers if n.lower() not in refusal], fault.headers
        )
        if fault.kind == "truncate":
            return Reply(200, full.body[: len(full.body) // 2], headers)
        assert fault.transform is not None  # checked when the fault was made
        try:
            body = transformed_body(fault.transform(json.loads(full.body)))
        except Exception as error:  # a broken test helper must show, not end as a hang-up
            text = f"the transform fault's callable failed: {error!r}".encode()
            return Reply(500, text, [("Content-Type", "text/plain; charset=utf-8")])
        return Reply(200, body, headers)
