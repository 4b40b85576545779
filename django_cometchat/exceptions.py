"""The django-cometchat error tree.

Only ``client`` maps HTTP onto these classes (in one place); views and commands map them back onto
their own callers. Subclasses also inherit the stdlib/Django exception a caller would naturally
catch (``ValueError`` for bad input, ``ImproperlyConfigured`` for settings). No message ever holds
the API key: exceptions are built from the endpoint, status and CometChat's error envelope only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class RateLimitInfo:
    """The latest ``X-Rate-Limit*`` / ``X-RateLimit-*`` figures CometChat sent back."""

    limit: int | None = None
    remaining: int | None = None
    reset: int | None = None  # Unix epoch seconds at which the budget refills


class CometChatError(Exception):
    """Root of every error django-cometchat raises."""


class CometChatConfigurationError(CometChatError, ImproperlyConfigured):
    """``settings.COMETCHAT`` is missing something or holds a bad value."""


class CometChatTransportError(CometChatError):
    """CometChat could not be reached: DNS, connection refused or reset, timeout.

    The underlying ``requests``/``urllib3`` exception is chained as ``__cause__``.
    """

    def __init__(self, message: str, *, endpoint: str = "", timed_out: bool = False) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.timed_out = timed_out


class CometChatAPIError(CometChatError):
    """CometChat answered with an error status and (usually) its error envelope."""

    def __init__(
        self,
        message: str = "",
        *,
        endpoint: str = "",
        status: int | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        rate_limit: RateLimitInfo | None = None,
        body: str = "",
    ) -> None:
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.api_message = message
        self.details = details or {}
        self.rate_limit = rate_limit or RateLimitInfo()
        self.body = body
        super().__init__(self._describe())

    def _describe(self) -> str:
        # e.g. "GET /users/bob/conversation -> HTTP 404 ERR_UID_NOT_FOUND: The UID bob ..."
        text = self.endpoint or "CometChat"
        if self.status is not None:
            text += f" -> HTTP {self.status}"
        if self.code:
            text += f" {self.code}"
        if self.api_message:
            text += f": {self.api_message}"
        return text


class CometChatBadRequest(CometChatAPIError, ValueError):
    """400/422 from CometChat, or an argument (such as a UID) we refuse to send."""


class CometChatAuthError(CometChatAPIError):
    """401/403: the key is wrong, missing, or lacks ``fullAccess`` (``AUTH_ERR_*``)."""


class CometChatNotFound(CometChatAPIError):
    """404 and ``ERR_*_NOT_FOUND``; also ``ERR_CONVERSATION_NOT_ACCESSIBLE``."""


class CometChatRateLimited(CometChatAPIError):
    """429 ``ERR_TOO_MANY_REQUESTS`` that outlasted the retry budget."""

    def __init__(
        self, message: str = "", *, retry_after: float | None = None, **kwargs: Any
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class CometChatServerError(CometChatAPIError):
    """5xx from CometChat that outlasted the retry budget."""


class CometChatResponseError(CometChatError):
    """A 2xx whose body breaks the contract: HTML, empty, truncated JSON or the wrong shape."""

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(f"{endpoint}: {message}" if endpoint else message)
        self.endpoint = endpoint
        self.status = status
