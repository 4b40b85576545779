"""One error shape for every API failure, and the mapping of the CometChat error tree onto HTTP.

Every error body is ``{"error": {"code", "message", "status"[, "retry_after"][, "details"]}}``.
Upstream failures keep CometChat's error code where it sent one; the API key is never included:
messages come from CometChat's error envelope or are written here, and are scrubbed regardless.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..conf import get_settings
from ..exceptions import (
    CometChatAPIError,
    CometChatAuthError,
    CometChatBadRequest,
    CometChatConfigurationError,
    CometChatError,
    CometChatNotFound,
    CometChatRateLimited,
    CometChatResponseError,
    CometChatServerError,
    CometChatTransportError,
)
from ..services import CometChatUserError

logger = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 60  # seconds, when CometChat's 429 named no wait
MISCONFIGURED = (
    "The CometChat integration of this site is misconfigured; the site's administrators "
    "have to fix it. Try again later."
)


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
            "message": _scrub(self.message),
            "status": self.status,
        }
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        if self.details is not None:
            body["details"] = self.details
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        return Response({"error": body}, status=self.status, headers=headers)


def describe(exc: CometChatError) -> APIError:  # noqa: PLR0911 - one branch per class
    """Map one CometChat error onto the status and code the API answers with."""
    if isinstance(exc, CometChatUserError):
        return APIError(400, "ERR_NO_UID", exc.api_message or "This account has no CometChat user.")
    if isinstance(exc, CometChatRateLimited):
        wait = _seconds(exc.retry_after)
        return APIError(
            503,
            exc.code or "ERR_TOO_MANY_REQUESTS",
            f"CometChat is rate-limiting this site; try again in {wait} seconds.",
            retry_after=wait,
        )
    if isinstance(exc, CometChatAuthError):
        # Our server's key was refused: not the caller's fault, and nothing about the key is shown.
        return APIError(502, exc.code or "AUTH_ERR", MISCONFIGURED)
    if isinstance(exc, CometChatNotFound):
        return APIError(404, exc.code or "ERR_NOT_FOUND", exc.api_message or "Not found.")
    if isinstance(exc, CometChatBadRequest) and exc.status is None:
        # Refused locally (an invalid id) before anything was sent.
        return APIError(400, exc.code or "ERR_BAD_REQUEST", exc.api_message or "Bad request.")
    if isinstance(exc, CometChatServerError):
        return APIError(
            502, exc.code or "ERR_UPSTREAM_SERVER_ERROR", f"CometChat failed: {_said(exc)}"
        )
    if isinstance(exc, CometChatAPIError):  # an upstream 4xx our own request caused
        return APIError(
            502, exc.code or "ERR_UPSTREAM_REJECTED", f"CometChat refused the request: {_said(exc)}"
        )
    if isinstance(exc, CometChatTransportError):
        if exc.timed_out:
            return APIError(504, "ERR_UPSTREAM_TIMEOUT", "CometChat did not answer in time.")
        return APIError(503, "ERR_UPSTREAM_UNREACHABLE", "CometChat could not be reached.")
    if isinstance(exc, CometChatResponseError):
        return APIError(
            502, "ERR_BAD_UPSTREAM_RESPONSE", "CometChat answered with a malformed response."
        )
    if isinstance(exc, CometChatConfigurationError):
        return APIError(503, "ERR_NOT_CONFIGURED", MISCONFIGURED)
    return APIError(502, "ERR_COMETCHAT", "The request to CometChat failed.")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The handler of this app's views: CometChat errors and DRF's own, in one shape.

    Deliberately not ``REST_FRAMEWORK["EXCEPTION_HANDLER"]``: the documented shape holds whatever
    the host configured. Anything else returns None, so Django answers 500 and logs it.
    """
    if isinstance(exc, CometChatError):
        error = describe(exc)
        # No set_rollback(): what the service stored before failing (earlier pages, the failed
        # SyncRun) is meant to survive, even under ATOMIC_REQUESTS.
        level = logging.WARNING if error.status >= 500 else logging.INFO
        logger.log(level, "CometChat API call failed (%s): %s", error.code, _scrub(str(exc)))
        return error.response()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    return _reshape(exc, response)


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


def _seconds(retry_after: float | None) -> int:
    if retry_after is None or retry_after <= 0:
        return DEFAULT_RETRY_AFTER
    return max(1, math.ceil(retry_after))


def _said(exc: CometChatAPIError) -> str:
    return exc.api_message or f"HTTP {exc.status}"


def _scrub(text: str) -> str:
    """Belt and braces: the key never leaves, even if some message carried it."""
    try:
        key = get_settings().api_key
    except CometChatError:
        return text
    return text.replace(key, "[redacted]") if key else text
