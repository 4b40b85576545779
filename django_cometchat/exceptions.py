"""The django-cometchat error tree, and the text each error shows.

Only ``client`` maps HTTP onto these classes (in one place); views, the admin, commands and tasks
map them back onto their own callers. Subclasses also inherit the stdlib/Django exception a caller
would naturally catch (``ValueError`` for bad input, ``ImproperlyConfigured`` for settings).

Every error carries two texts, as django-anymail's errors do:

* :meth:`CometChatError.describe` (also ``str(exc)``): the whole story for operators, as the
  admin, the commands, the log and ``SyncRun.error_message`` show it: endpoint, status, CometChat's
  code and message, what to change. Always redacted (:mod:`.redaction`).
* :attr:`CometChatError.public_message`: what an end user of the API may read. It names neither
  settings nor primary keys and never relays CometChat's own text where that could reveal more
  than the user may know (whether a group exists, say).

:attr:`CometChatError.scope` says how far a failure reaches, so that batches stop in one place:
``"item"`` is about one owner or conversation (go on with the next), ``"outage"`` means CometChat
is unreachable or refusing for now (later items would likely fail too), ``"global"`` means nothing
can work until someone fixes the configuration or the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from django.core.exceptions import ImproperlyConfigured

from .redaction import redact

Scope = Literal["item", "outage", "global"]


@dataclass(frozen=True)
class RateLimitInfo:
    """The latest ``X-Rate-Limit*`` / ``X-RateLimit-*`` figures CometChat sent back."""

    limit: int | None = None
    remaining: int | None = None
    reset: int | None = None  # Unix epoch seconds at which the budget refills (429s only)


class CometChatError(Exception):
    """Root of every error django-cometchat raises."""

    scope: Scope = "item"
    default_public_message: ClassVar[str] = "The request to CometChat failed. Try again later."
    # A stable code for logs and SyncRun.error_code: CometChat's own for API errors, ours else.
    code: str | None = None

    def describe(self) -> str:
        """The operator's text: what happened and, where it helps, what to do. Redacted."""
        text = str(self.args[0]) if self.args else ""
        return redact(text) or type(self).__name__

    @property
    def public_message(self) -> str:
        """The end user's text: nothing about settings, keys, ids of others or CometChat's words."""
        return self.default_public_message

    def __str__(self) -> str:
        return self.describe()


class CometChatConfigurationError(CometChatError, ImproperlyConfigured):
    """``settings.COMETCHAT`` is missing something or holds a bad value."""

    scope: Scope = "global"
    code = "ERR_NOT_CONFIGURED"
    default_public_message = (
        "The CometChat integration of this site is not configured yet; the site's "
        "administrators have to fix it. Try again later."
    )


TransportReason = Literal[
    "dns", "refused", "tls", "connect_timeout", "read_timeout", "reset", "deadline", "other"
]

_REASON_CODES: dict[str, str] = {
    "dns": "ERR_DNS",
    "refused": "ERR_CONNECTION_REFUSED",
    "tls": "ERR_TLS",
    "connect_timeout": "ERR_CONNECT_TIMEOUT",
    "read_timeout": "ERR_READ_TIMEOUT",
    "reset": "ERR_CONNECTION_RESET",
    "deadline": "ERR_DEADLINE",
    "other": "ERR_TRANSPORT",
}

_REASON_TEXT: dict[str, str] = {
    "dns": "the host name could not be resolved (DNS)",
    "refused": "the connection was refused",
    "tls": "the TLS handshake failed",
    "connect_timeout": "the connection timed out",
    "read_timeout": "no answer came within the read timeout",
    "reset": "the connection was closed or reset before an answer came",
    "deadline": "the deadline passed",
    "other": "the connection failed",
}


class CometChatTransportError(CometChatError):
    """CometChat could not be reached: DNS, connection refused or reset, TLS, timeout.

    ``reason`` says which; ``host`` is where we tried (never the key). The underlying
    ``requests``/``urllib3`` exception is chained as ``__cause__``.
    """

    scope: Scope = "outage"
    default_public_message = "CometChat could not be reached. Try again later."

    def __init__(
        self,
        message: str = "",
        *,
        endpoint: str = "",
        host: str = "",
        reason: TransportReason = "other",
        detail: str = "",
    ) -> None:
        self.endpoint = endpoint
        self.host = host
        self.reason = reason
        self.detail = detail
        self.code = _REASON_CODES[reason]
        super().__init__(message or self._compose())

    def _compose(self) -> str:
        where = f" at {self.host}" if self.host else ""
        if self.reason == "deadline":  # CometChat may have been answering, just too slowly
            text = f"gave up on CometChat{where}: {_REASON_TEXT[self.reason]}"
        else:
            text = f"could not reach CometChat{where}: {_REASON_TEXT[self.reason]}"
        if self.detail:
            text += f" ({self.detail})"
        return f"{self.endpoint}: {text}" if self.endpoint else text

    @property
    def timed_out(self) -> bool:
        return self.reason in ("connect_timeout", "read_timeout", "deadline")


class CometChatTimeout(CometChatTransportError):
    """CometChat did not answer in time (connect or read timeout)."""

    default_public_message = "CometChat did not answer in time. Try again later."


class CometChatDeadlineExceeded(CometChatTimeout):
    """Work ran past its deadline: ``WEB_DEADLINE`` (a person was waiting) or ``SYNC_DEADLINE``
    (a command or a task); ``setting`` names which."""

    def __init__(
        self,
        message: str = "",
        *,
        endpoint: str = "",
        seconds: float | None = None,
        setting: str = "",
    ) -> None:
        self.seconds = seconds
        self.setting = setting
        super().__init__(message, endpoint=endpoint, reason="deadline")

    def _compose(self) -> str:
        where = f" at {self.host}" if self.host else ""
        length = f" ({self.seconds:g} s)" if self.seconds is not None else ""
        text = f"gave up on CometChat{where}: {self.setting or 'the deadline'}{length} passed"
        return f"{self.endpoint}: {text}" if self.endpoint else text


class CometChatAPIError(CometChatError):
    """CometChat answered with an error status and (usually) its error envelope."""

    scope: Scope = "item"
    default_public_message = "CometChat refused the request. Try again later."

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
        dev_message: str = "",
    ) -> None:
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.api_message = redact(message)
        self.dev_message = redact(dev_message)
        self.details = details or {}
        self.rate_limit = rate_limit or RateLimitInfo()
        self.body = redact(body)
        super().__init__(self._compose())

    def _compose(self) -> str:
        # e.g. "ERR_UID_NOT_FOUND (HTTP 404) on GET /users/bob/conversation: The UID bob ..."
        text = self.code or "CometChat error"
        if self.status is not None:
            text += f" (HTTP {self.status})"
        if self.endpoint:
            text += f" on {self.endpoint}"
        if self.api_message:
            text += f": {self.api_message}"
        if self.dev_message and self.dev_message != self.api_message:
            text += f" ({self.dev_message})"
        return text


class CometChatBadRequest(CometChatAPIError, ValueError):
    """400/422 from CometChat, or an argument (such as a UID) we refuse to send."""


class CometChatInvalidId(CometChatBadRequest):
    """An id or argument refused here, before anything was sent (it never reaches CometChat)."""

    def __init__(self, message: str, *, code: str = "ERR_INVALID_ID") -> None:
        super().__init__(message, code=code)

    def _compose(self) -> str:
        return self.api_message

    @property
    def public_message(self) -> str:
        return self.api_message  # about the caller's own input: safe and useful to show


class CometChatInvalidFilter(CometChatInvalidId):
    """A filter value refused here (a conversation type, tags, a search key)."""

    def __init__(self, message: str, *, code: str = "ERR_INVALID_REQUEST") -> None:
        super().__init__(message, code=code)


class CometChatUserError(CometChatBadRequest):
    """The Django user cannot act in CometChat: anonymous, or the resolver gave no valid UID."""

    default_public_message = "Your account is not linked to a CometChat user."

    def __init__(self, message: str, *, code: str = "ERR_NO_UID") -> None:
        super().__init__(message, code=code)

    def _compose(self) -> str:
        return self.api_message


class CometChatNoChatUser(CometChatUserError):
    """``UID_RESOLVER`` returned None: by design this account has no CometChat user (staff,
    service accounts). Batch work (``--all``, ``cometchat_refresh_stale``, webhooks) skips it
    without a run or a request; anything asked on its behalf answers like any other
    ``CometChatUserError``."""


class CometChatOwnerConflict(CometChatUserError):
    """The user's UID is already bound to another Django user (one UID, one account)."""

    default_public_message = (
        "Your account's CometChat user belongs to another account of this site; the site's "
        "administrators have to sort it out."
    )

    def __init__(self, message: str, *, uid: str = "", bound_user_id: Any = None) -> None:
        self.uid = uid
        self.bound_user_id = bound_user_id
        super().__init__(message, code="ERR_UID_TAKEN")


class CometChatAuthError(CometChatAPIError):
    """401, or an ``AUTH_ERR_*`` code: the key is wrong, missing, or lacks ``fullAccess``."""

    scope: Scope = "global"
    default_public_message = (
        "The CometChat integration of this site is misconfigured; the site's administrators "
        "have to fix it. Try again later."
    )


class CometChatForbidden(CometChatAPIError):
    """A 403 that is not about the key: plan restrictions, pinned-conversation rules, …"""

    PLAN_CODES: ClassVar[frozenset[str]] = frozenset(
        {"ERR_PLAN_RESTRICTION", "ERR_SUBSCRIPTION_EXPIRED", "ERR_PLAN_QUOTA_RESTRICTION"}
    )

    def __init__(self, message: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # A plan restriction stops every owner alike; a pinning rule is about one conversation.
        self.scope = "global" if self.code in self.PLAN_CODES else "item"


class CometChatNotFound(CometChatAPIError):
    """404 and ``ERR_*_NOT_FOUND``; also ``ERR_CONVERSATION_NOT_ACCESSIBLE``."""

    # One text whatever CometChat said: whether a user or group exists is not the caller's to know.
    default_public_message = "There is no such conversation in CometChat for your account."


class CometChatUnknownOwner(CometChatNotFound):
    """``ERR_UID_NOT_FOUND`` for the owner itself (the ``onBehalfOf`` UID).

    ``resolved_from`` is filled in by the services when the UID came from a Django user through
    ``UID_RESOLVER``, so the operator learns where the UID came from.
    """

    default_public_message = "Your account has no user in CometChat yet."
    # e.g. "the one COMETCHAT["UID_RESOLVER"] (unset: str(user.pk)) gives Django user 'alice'"
    resolved_from: str = ""

    def __init__(self, message: str = "", *, uid: str = "", **kwargs: Any) -> None:
        self.uid = uid
        super().__init__(message, **kwargs)

    def describe(self) -> str:
        text = f"CometChat has no user with UID {self.uid!r}."
        if self.resolved_from:
            text += (
                f" That UID is {self.resolved_from}. Create that user in CometChat, or set "
                "UID_RESOLVER to map Django users to their CometChat UIDs."
            )
        else:
            text += " Create that user in CometChat, or sync an existing UID."
        return redact(f"{text} [{self._compose()}]")


class CometChatRateLimited(CometChatAPIError):
    """429 ``ERR_TOO_MANY_REQUESTS`` that outlasted the retry budget (or the deadline)."""

    scope: Scope = "outage"
    default_public_message = "CometChat is busy with this site's requests. Try again later."

    def __init__(
        self, message: str = "", *, retry_after: float | None = None, **kwargs: Any
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class CometChatBudgetExhausted(CometChatRateLimited):
    """This site's own rate budget (``REQUESTS_PER_MINUTE``) is spent for the window, or
    CometChat asked every client to pause, and the work cannot wait: nothing was sent."""

    default_public_message = "This site has used its CometChat budget for now. Try again later."


class CometChatServerError(CometChatAPIError):
    """5xx from CometChat that outlasted the retry budget."""

    scope: Scope = "outage"
    default_public_message = "CometChat failed to answer. Try again later."


class CometChatResponseError(CometChatError):
    """A 2xx whose body breaks the contract: HTML, empty, truncated, oversized, a bad value."""

    default_public_message = "CometChat answered with something this site cannot use."
    code = "ERR_BAD_RESPONSE"

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(f"{endpoint}: {message}" if endpoint else message)
        self.endpoint = endpoint
        self.status = status


class CometChatTooManyPages(CometChatResponseError):
    """A list walk reached its page cap (``SYNC_MAX_PAGES``) and CometChat still claimed another
    page: an upstream that never ends, or an owner larger than the cap allows."""

    code = "ERR_TOO_MANY_PAGES"


class CometChatQueueUnavailable(CometChatError):
    """The task queue (Django's ``TASKS`` backend) refused to take a task: its broker is down,
    its table is missing (a forgotten ``migrate``), … Nothing was sent to CometChat; the queued
    run, if any, is finished as failed with this text. The backend's own error is chained as
    ``__cause__``."""

    scope: Scope = "outage"  # every later task would be refused the same way
    code = "ERR_QUEUE_UNAVAILABLE"
    default_public_message = "This site could not queue the work just now. Try again later."

    def __init__(self, task: str, cause: BaseException) -> None:
        self.task = task
        detail = str(cause).strip().rstrip(".")
        reason = f"{type(cause).__name__}: {detail}" if detail else type(cause).__name__
        super().__init__(
            f"The task queue refused {task}: {reason}. Check the task backend in Django's "
            "TASKS setting: is its broker reachable, and have its migrations run?"
        )
