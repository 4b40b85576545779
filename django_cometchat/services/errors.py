"""What a failure says: the operator's text (``operator_message``) and the owner's
(``public_message``), as runs and webhook events record them."""

from __future__ import annotations

from ..exceptions import CometChatError
from ..redaction import redact

MAX_ERROR_LENGTH = 2000  # of an operator's error text, on a SyncRun or a WebhookEvent
INTERRUPTED_MESSAGE = "The sync was interrupted. Try again."
FAILED_MESSAGE = "The sync failed. Try again later."
ABANDONED_MESSAGE = "The sync did not finish. Try again."
# The codes of runs that ended without a sync finishing them: marked abandoned past
# SYNC_ABANDONED_AFTER, or stopped by a KeyboardInterrupt (a command's SIGINT or SIGTERM).
ABANDONED_CODE = "ERR_ABANDONED"
INTERRUPTED_CODE = "ERR_INTERRUPTED"


def operator_message(exc: BaseException) -> str:
    """The operator's text for any failure (``CometChatError.describe()``, else its repr)."""
    if isinstance(exc, CometChatError):
        return exc.describe()
    if isinstance(exc, KeyboardInterrupt):  # a command's signal says which
        return str(exc) or "interrupted"
    return redact(str(exc)) or type(exc).__name__


def public_message(exc: BaseException) -> str:
    """The owner's text for any failure: nothing about settings, keys or CometChat's words."""
    if isinstance(exc, CometChatError):
        return exc.public_message
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED_MESSAGE
    return FAILED_MESSAGE
