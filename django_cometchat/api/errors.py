"""One error shape for every API failure, and the mapping of the error tree onto HTTP.

Every error body is ``{"error": {"code", "message", "status"[, "retry_after"][, "details"]}}``.
The status and code of a CometChat error come from ``ERROR_STATUSES``, a table keyed by exception
class and resolved along the MRO (the most specific class wins); the message is the error's
``public_message``, written for end users: it names no setting, no primary key and none of
CometChat's own words. The whole story goes to the log (and, for syncs, to the ``SyncRun``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from django.db import OperationalError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..exceptions import (
    CometChatAPIError,
    CometChatAuthError,
    CometChatBadRequest,
    CometChatConfigurationError,
    CometChatError,
    CometChatForbidden,
    CometChatInvalidFilter,
    CometChatInvalidId,
    CometChatNotFound,
    CometChatOwnerConflict,
    CometChatQueueUnavailable,
    CometChatRateLimited,
    CometChatResponseError,
    CometChatServerError,
    CometChatTimeout,
    CometChatTransportError,
    CometChatUnknownOwner,
    CometChatUserError,
)
from ..ratelimit import whole_seconds
from ..redaction import redact

logger = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 60  # seconds, when a 429 named no wait
DATABASE_BUSY_RETRY_AFTER = 2  # seconds, when the database stayed locked past its timeout

# exception class -> (HTTP status, error code). Looked up along the MRO, most specific first.
ERROR_STATUSES: dict[type[CometChatError], tuple[int, str]] = {
    CometChatError: (502, "ERR_COMETCHAT"),
    CometChatConfigurationError: (503, "ERR_NOT_CONFIGURED"),
    CometChatTransportError: (503, "ERR_UPSTREAM_UNREACHABLE"),
    CometChatTimeout: (504, "ERR_UPSTREAM_TIMEOUT"),
    CometChatResponseError: (502, "ERR_BAD_UPSTREAM_RESPONSE"),
    CometChatAPIError: (502, "ERR_UPSTREAM_REJECTED"),
    CometChatBadRequest: (502, "ERR_UPSTREAM_REJECTED"),  # CometChat refused what we sent
    CometChatInvalidId: (400, "ERR_INVALID_ID"),  # refused here, before sending
    CometChatInvalidFilter: (400, "ERR_INVALID_REQUEST"),
    CometChatUserError: (400, "ERR_NO_UID"),
    CometChatOwnerConflict: (409, "ERR_UID_TAKEN"),
    CometChatAuthError: (502, "ERR_UPSTREAM_AUTH"),
    CometChatForbidden: (502, "ERR_UPSTREAM_FORBIDDEN"),
    CometChatNotFound: (404, "ERR_NOT_FOUND"),
    CometChatUnknownOwner: (404, "ERR_UID_NOT_FOUND"),
    CometChatRateLimited: (503, "ERR_TOO_MANY_REQUESTS"),
    CometChatServerError: (502, "ERR_UPSTREAM_SERVER_ERROR"),
    CometChatQueueUnavailable: (503, "ERR_QUEUE_UNAVAILABLE"),
}


@dataclass(frozen=True)
class APIError:
    """What one failure looks like over HTTP."""

    status: int
    code: str
    message: str
    retry_after: int | None = None
    details: Any = None

    def response(self) -> Response:
        body: dict[str, Any] = {
            "code": self.code,
            "message": redact(self.message),
            "status": self.status,
        }
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        if self.details is not None:
            body["details"] = self.details
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        return Response({"error": body}, status=self.status, headers=headers)


def status_and_code(exc: CometChatError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUSES:
            return ERROR_STATUSES[cls]
    raise AssertionError("CometChatError is in the table")  # pragma: no cover


def api_error(exc: CometChatError) -> APIError:
    """Map one CometChat error onto the status, code and public message the API answers."""
    status, code = status_and_code(exc)
    retry_after = None
    if isinstance(exc, CometChatRateLimited):
        retry_after = whole_seconds(exc.retry_after, default=DEFAULT_RETRY_AFTER)
    return APIError(status, code, exc.public_message, retry_after=retry_after)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The handler of this app's views: CometChat errors and DRF's own, in one shape.

    Deliberately not ``REST_FRAMEWORK["EXCEPTION_HANDLER"]``: the documented shape holds whatever
    the host configured. Anything else returns None, so Django answers 500 and logs it.
    """
    if isinstance(exc, CometChatError):
        error = api_error(exc)
        # No set_rollback(): what the service stored before failing (earlier pages, the failed
        # SyncRun) is meant to survive, even under ATOMIC_REQUESTS.
        level = logging.WARNING if error.status >= 500 else logging.INFO
        logger.log(level, "CometChat API call failed (%s): %s", error.code, exc.describe())
        return error.response()
    if isinstance(exc, OperationalError) and _database_busy(exc):
        logger.warning("Database busy while serving the CometChat API: %s", exc)
        return APIError(
            503,
            "ERR_DATABASE_BUSY",
            "The site's database is busy. Try again in a moment.",
            retry_after=DATABASE_BUSY_RETRY_AFTER,
        ).response()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    return _reshape(exc, response)


def _database_busy(exc: OperationalError) -> bool:
    """SQLite's "database is locked" (or "busy") after its busy timeout ran out."""
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


def _reshape(exc: Exception, response: Response) -> Response:
    """DRF's answer (status, headers kept) with its body in the documented shape."""
    data = response.data
    retry_after = None
    if isinstance(exc, exceptions.ValidationError):
        code, message, details = "ERR_INVALID_REQUEST", "Invalid parameters; see details.", data
    else:
        detail = data.get("detail", "") if isinstance(data, dict) else data
        raw_code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        code, message, details = f"ERR_{str(raw_code).upper()}", str(detail), None
        wait = getattr(exc, "wait", None)  # Throttled's; missing from the stubs
        if isinstance(exc, exceptions.Throttled) and wait is not None:
            retry_after = math.ceil(wait)
    error = APIError(response.status_code, code, message, retry_after=retry_after, details=details)
    reshaped = error.response()
    for name, value in response.items():  # WWW-Authenticate, Retry-After, Allow
        if name.lower() != "content-type":
            reshaped[name] = value
    return reshaped
