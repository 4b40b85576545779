"""HTTP failures onto the error tree of ``exceptions.py``, in one place.

:func:`raise_for_error` maps an error status and CometChat's ``{"error": {...}}`` envelope
(API.md §0) onto an exception; :func:`transport_error` names a failure that never got an
answer (DNS, refused, TLS, timeout, reset). Upstream text is redacted and bounded before it
reaches a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import requests
import urllib3

from ..exceptions import (
    CometChatAPIError,
    CometChatAuthError,
    CometChatBadRequest,
    CometChatForbidden,
    CometChatNotFound,
    CometChatRateLimited,
    CometChatServerError,
    CometChatTimeout,
    CometChatTransportError,
    CometChatUnknownOwner,
    TransportReason,
)
from ..ratelimit import parse_rate_limit, seconds_to_wait
from ..redaction import redact
from .responses import decode_json

__all__ = ["raise_for_error", "transport_error"]

NOT_FOUND_CODES = frozenset({"ERR_CONVERSATION_NOT_ACCESSIBLE", "ERR_API_NOT_FOUND"})
MAX_ERROR_TEXT = 500  # characters of CometChat's error message kept on an exception
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def raise_for_error(
    endpoint: str,
    response: requests.Response,
    content: bytes,
    path: str,
    on_behalf_of: str | None,
) -> None:
    """Map an error status and CometChat's ``{"error": {...}}`` envelope onto the tree."""
    status = response.status_code
    envelope = _error_envelope(content)
    code = _error_code(envelope.get("code"))
    message = _clean(envelope.get("message")) or _clean(response.reason)
    kwargs: dict[str, Any] = {
        "endpoint": endpoint,
        "status": status,
        "code": code,
        "details": _clean_details(envelope.get("details")),
        "rate_limit": parse_rate_limit(response.headers),
        "body": _clean(content[:10_000].decode("utf-8", "replace"), limit=2000),
        "dev_message": _clean(envelope.get("devMessage")),
    }
    if status == 429 or code == "ERR_TOO_MANY_REQUESTS":
        raise CometChatRateLimited(message, retry_after=seconds_to_wait(response.headers), **kwargs)
    if status == 401 or (code or "").startswith("AUTH_ERR"):
        raise CometChatAuthError(message, **kwargs)
    if code == "ERR_UID_NOT_FOUND" and _about_owner(path, message, on_behalf_of):
        raise CometChatUnknownOwner(message, uid=on_behalf_of or "", **kwargs)
    # ERR_CONVERSATION_NOT_ACCESSIBLE is a 4xx of unspecified status: branch on the code.
    if status == 404 or (code and (code.endswith("_NOT_FOUND") or code in NOT_FOUND_CODES)):
        raise CometChatNotFound(message, **kwargs)
    if status == 403:  # not AUTH_ERR_*: a plan restriction, a pinning rule, …
        raise CometChatForbidden(message, **kwargs)
    if status in (400, 422):
        raise CometChatBadRequest(message, **kwargs)
    if status >= 500:
        raise CometChatServerError(message, **kwargs)
    raise CometChatAPIError(message, **kwargs)


def transport_error(
    endpoint: str, host: str, exc: requests.exceptions.RequestException
) -> CometChatTransportError:
    """The error for a request that got no answer (a timeout is a ``CometChatTimeout``)."""
    reason, detail = _transport_reason(exc)
    timed_out = reason in ("connect_timeout", "read_timeout")
    cls = CometChatTimeout if timed_out else CometChatTransportError
    return cls(endpoint=endpoint, host=host, reason=reason, detail=detail)


# Most telling first: a DNS failure also surfaces as a failed connection, and so on.
_TRANSPORT_REASONS: tuple[tuple[TransportReason, Callable[[BaseException], bool]], ...] = (
    ("dns", lambda e: isinstance(e, urllib3.exceptions.NameResolutionError)),
    ("refused", lambda e: isinstance(e, ConnectionRefusedError)),
    ("tls", lambda e: isinstance(e, requests.exceptions.SSLError | urllib3.exceptions.SSLError)),
    (
        "connect_timeout",
        # NewConnectionError subclasses ConnectTimeoutError for history's sake only.
        lambda e: (
            isinstance(
                e, requests.exceptions.ConnectTimeout | urllib3.exceptions.ConnectTimeoutError
            )
            and not isinstance(e, urllib3.exceptions.NewConnectionError)
        ),
    ),
    (
        "read_timeout",
        lambda e: isinstance(
            e, requests.exceptions.ReadTimeout | urllib3.exceptions.ReadTimeoutError
        ),
    ),
    ("reset", lambda e: isinstance(e, ConnectionResetError | urllib3.exceptions.ProtocolError)),
)


def _transport_reason(exc: requests.exceptions.RequestException) -> tuple[TransportReason, str]:
    """Which transport failure this was (DNS, refused, TLS, timeout, reset) and a short detail.

    requests wraps urllib3's errors (often in a MaxRetryError after the retries), so the chain of
    causes is searched for the most telling one.
    """
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending and len(chain) < 20:
        item = pending.pop()
        if item is None or item in chain:
            continue
        chain.append(item)
        related = [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
        pending.extend(other for other in related if isinstance(other, BaseException))
    for reason, matches in _TRANSPORT_REASONS:
        for item in chain:
            if matches(item):
                return reason, _short(item) if reason == "tls" else ""
    return "other", type(exc).__name__


def _short(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r"\[SSL: [A-Z_]+\][^(')]*", text)
    return (match.group(0) if match else text)[:120].strip()


def _about_owner(path: str, message: str, owner: str | None) -> bool:
    """Whether an ``ERR_UID_NOT_FOUND`` is about the ``onBehalfOf`` owner rather than a peer."""
    if not owner:
        return False
    if path == "/conversations":  # no other UID is involved in listing the owner's conversations
        return True
    return re.search(rf"\bUID {re.escape(owner)}\b", message, re.IGNORECASE) is not None


def _error_envelope(content: bytes) -> Mapping[str, Any]:
    try:
        error = decode_json(content).get("error")
    except (ValueError, AttributeError, RecursionError):
        return {}
    return error if isinstance(error, Mapping) else {}


def _clean(value: Any, *, limit: int = MAX_ERROR_TEXT) -> str:
    """Upstream text fit for a message: a string, printable, redacted, bounded (redacted
    before it is cut, or a key straddling the cut would survive in halves)."""
    if not isinstance(value, str):
        return ""
    text = value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
    return redact(text)[:limit]


def _clean_details(value: Any) -> dict[str, Any]:
    """CometChat's ``details`` ({field: [messages]}), as JSON with every text redacted."""
    if not isinstance(value, dict):
        return {}
    try:
        # A round trip through text we wrote ourselves (not a response body): redacted as
        # JSON text (a "[redacted]" never breaks it, a cut could); NULs dropped.
        text = json.dumps(value, ensure_ascii=False)
        if len(text) > 10_000:
            return {}
        cleaned = json.loads(redact(text).replace("\\u0000", ""))
    except (TypeError, ValueError, RecursionError):
        return {}
    return cleaned if isinstance(cleaned, dict) else {}


def _error_code(value: Any) -> str | None:
    """CometChat's error code, if it looks like one: it is stored, logged and compared."""
    if isinstance(value, str) and _ERROR_CODE.fullmatch(value):
        return value
    return None
