"""CometChat's error envelope, as the fake answers it.

The live API's bodies (API.md §0.3, community SDK fixtures) carry ``devMessage`` and
``"source": "chat-api"`` besides the ``code`` and ``message`` of the spec's examples, and
``details.{field}: [...]`` on validation errors; clients must cope with all of it.

Stdlib only; no Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ERROR_SOURCE = "chat-api"

# Default CometChat error codes for a "status" fault without an explicit body.
_DEFAULT_CODES: Mapping[int, str] = {
    400: "ERR_BAD_REQUEST",
    401: "AUTH_ERR_APIKEY_NOT_FOUND",
    403: "AUTH_ERR_NO_ACCESS",
    404: "ERR_API_NOT_FOUND",
    422: "ERR_BAD_REQUEST",
    429: "ERR_TOO_MANY_REQUESTS",
}
_DEFAULT_MESSAGES: Mapping[str, str] = {
    "ERR_BAD_REQUEST": "Failed to validate the data sent with the request.",
    "AUTH_ERR_APIKEY_NOT_FOUND": "The apiKey provided does not exist for the app.",
    "AUTH_ERR_NO_ACCESS": "The apiKey provided does not have access to this API.",
    "ERR_API_NOT_FOUND": "The API endpoint is invalid. Please verify the API call.",
    "ERR_TOO_MANY_REQUESTS": "Too many requests. Please try again later.",
    "ERR_MISSION_FAILED": "Something went wrong. Please try again later.",
    "ERR_BAD_ERROR_RESPONSE": "Something went wrong.",
}


def default_error_code(status: int) -> str:
    if status in _DEFAULT_CODES:
        return _DEFAULT_CODES[status]
    return "ERR_MISSION_FAILED" if status >= 500 else "ERR_BAD_ERROR_RESPONSE"


def error_envelope(
    code: str,
    message: str | None = None,
    details: Mapping[str, list[str]] | None = None,
    *,
    dev_message: str | None = None,
) -> dict[str, Any]:
    """``{"error": {"code", "message", "devMessage", "source"[, "details"]}}``.

    ``devMessage`` repeats ``message`` unless given. Never pass the API key in either text.
    """
    text = message or _DEFAULT_MESSAGES.get(code, code)
    error: dict[str, Any] = {
        "code": code,
        "message": text,
        "devMessage": dev_message or text,
        "source": ERROR_SOURCE,
    }
    if details:
        error["details"] = {key: list(value) for key, value in details.items()}
    return {"error": error}
