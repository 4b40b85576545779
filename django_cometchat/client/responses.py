"""Reading an answer: its body in bounded chunks, decompressed, decoded and checked.

The body is read in chunks up to ``MAX_RESPONSE_BYTES`` *after* decompression (gzip or deflate
when the server compresses) and never past the deadline. Every response body the client decodes
goes through :func:`decode_json`, the one place that names the JSON decoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import requests
import urllib3

from .. import deadline
from ..conversation_types import PayloadShapeError
from ..exceptions import CometChatResponseError, CometChatTimeout
from .session import ACCEPT_ENCODING

__all__ = ["Answer", "decode_json", "decode_success", "parse_payload", "read_body"]

T = TypeVar("T")

CHUNK_SIZE = 64 * 1024  # bytes per read, after decompression
DECODABLE_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate", "identity"})


class Answer(NamedTuple):
    """A 2xx answer: the envelope's ``data``, the whole decoded body, and when the attempt
    that was answered left."""

    data: Any
    body: Mapping[str, Any]
    sent_at: datetime


def decode_json(body: bytes) -> Any:
    """JSON text to Python values; NaN and Infinity are refused (they are not JSON).

    Raises ``ValueError`` for anything that is not JSON and ``RecursionError`` for nesting
    deeper than the decoder follows.
    """
    return json.loads(body, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_body(endpoint: str, host: str, response: requests.Response, limit: int) -> bytes:
    """The body, decompressed and read in chunks: never more than ``limit`` bytes *after*
    decompression, never past the deadline (a socket that trickles a byte at a time never
    trips a read timeout: each socket read is clipped to the deadline, see
    :mod:`..socket_reads`, however many one chunk takes).

    urllib3 (2.6+) decodes gzip and deflate with a bounded output per read, so a small
    compressed body that expands without end costs at most one chunk over the cap.
    """
    status = response.status_code
    encodings = _content_encodings(response.headers)
    unknown = [name for name in encodings if name not in DECODABLE_ENCODINGS]
    if unknown:
        if status >= 300:  # the status says what went wrong; the body cannot be read
            return b""
        raise CometChatResponseError(
            f"the body is encoded with {', '.join(unknown)!r}, which the client cannot "
            f"decode (it asks for {ACCEPT_ENCODING})",
            endpoint=endpoint,
            status=status,
        )
    compressed = any(name != "identity" for name in encodings)
    declared = response.headers.get("Content-Length", "")
    # Content-Length counts the bytes on the wire: a cap on them only holds uncompressed.
    if not compressed and declared.isdigit() and int(declared) > limit:
        raise _too_large(endpoint, status, int(declared), limit, compressed=False)
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := response.raw.read1(CHUNK_SIZE, decode_content=True):
            size += len(chunk)
            if size > limit:
                raise _too_large(endpoint, status, size, limit, compressed=compressed)
            chunks.append(chunk)
            deadline.check(endpoint)
    except urllib3.exceptions.ReadTimeoutError as exc:
        deadline.check(endpoint)
        raise CometChatTimeout(
            endpoint=endpoint, host=host, reason="read_timeout", detail="in the body"
        ) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise CometChatResponseError(
            f"the {', '.join(encodings)} body could not be decompressed",
            endpoint=endpoint,
            status=status,
        ) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise CometChatResponseError(
            f"the response body was cut off ({type(exc).__name__})",
            endpoint=endpoint,
            status=status,
        ) from exc
    return b"".join(chunks)


def decode_success(
    endpoint: str, response: requests.Response, content: bytes
) -> tuple[Any, Mapping[str, Any]]:
    """A 2xx must be a JSON object with ``data``; anything else is a contract breach."""
    status = response.status_code
    if not content:
        raise CometChatResponseError("empty response body", endpoint=endpoint, status=status)
    content_type = response.headers.get("Content-Type", "")
    try:
        body = decode_json(content)
    except RecursionError:
        raise CometChatResponseError(
            "the JSON is nested too deeply", endpoint=endpoint, status=status
        ) from None
    except ValueError as exc:
        kind = "an HTML page" if "html" in content_type else "invalid or truncated JSON"
        raise CometChatResponseError(
            f"expected JSON, got {kind} ({len(content)} bytes, {content_type[:60]!r})",
            endpoint=endpoint,
            status=status,
        ) from exc
    if not isinstance(body, dict) or "data" not in body:
        raise CometChatResponseError(
            'expected a JSON object with a "data" key', endpoint=endpoint, status=status
        )
    return body["data"], body


def parse_payload(endpoint: str, parser: Callable[[Any], T], data: Any) -> T:
    """``parser(data)``, its shape error turned into a response error naming the endpoint."""
    try:
        return parser(data)
    except PayloadShapeError as exc:
        raise CometChatResponseError(exc.describe(), endpoint=endpoint) from exc


def _too_large(
    endpoint: str, status: int, size: int, limit: int, *, compressed: bool
) -> CometChatResponseError:
    what = "decompressed response body" if compressed else "response body"
    return CometChatResponseError(
        f"the {what} is larger than {limit} bytes (at least {size}); raise "
        'COMETCHAT["MAX_RESPONSE_BYTES"] if CometChat really sends that much',
        endpoint=endpoint,
        status=status,
    )


def _content_encodings(headers: Mapping[str, str]) -> list[str]:
    """The codings named by ``Content-Encoding``, in the order they were applied."""
    value = headers.get("Content-Encoding", "")
    return [name.strip().lower() for name in value.split(",") if name.strip()]
