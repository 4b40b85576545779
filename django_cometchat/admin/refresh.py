"""What the admin's actions do: refresh rows and sync owners through ``services``, in bounds.

A thin adapter: every fetch goes through ``services`` (``request_refresh``/``request_sync``, the
seams for on-demand refreshes, whenever the row's Django user still maps to the row's UID; else
``fetch_conversation``/``sync_conversations`` by UID with the web retry budget). Failures become
text that names the CometChat error code and status, never the API key.

An error that is about one row (not found, not accessible, an invalid id) is reported and the
batch goes on; an error that every later row would hit too (CometChat unreachable, a bad key,
rate limited, a 5xx, a broken setting) stops the batch so a person is not kept waiting for a
hundred identical failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..conf import get_settings
from ..exceptions import (
    CometChatAPIError,
    CometChatBadRequest,
    CometChatError,
    CometChatNotFound,
    CometChatResponseError,
    CometChatTransportError,
)
from ..models import Conversation, SyncRun
from ..services import request_refresh, request_sync, web_client

# Errors about one conversation or one owner; anything else stops the batch.
ITEM_ERRORS: tuple[type[CometChatError], ...] = (CometChatNotFound, CometChatBadRequest)


@dataclass
class BatchOutcome:
    """What a batch did: ``done`` lines, ``failed`` (item, reason), and items never tried."""

    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    not_attempted: int = 0


def _redact(text: str) -> str:
    """Belt and braces: no CometChat error message reaches a page with the API key in it."""
    try:
        key = get_settings().api_key
    except CometChatError:
        return text
    if key and len(key) >= 4:
        text = text.replace(key, "[redacted]")
    return text


def describe_error(exc: CometChatError) -> str:
    """``ERR_UID_NOT_FOUND (HTTP 404): The UID bob does not exist.`` and the like."""
    if isinstance(exc, CometChatAPIError):
        text = exc.code or "CometChat error"
        if exc.status is not None:
            text += f" (HTTP {exc.status})"
        if exc.api_message:
            text += f": {exc.api_message}"
    elif isinstance(exc, CometChatTransportError):
        reason = "timed out" if exc.timed_out else "could not be reached"
        text = f"CometChat {reason}" + (f" ({exc.endpoint})" if exc.endpoint else "")
    elif isinstance(exc, CometChatResponseError):
        text = f"unexpected response from CometChat: {exc}"
    else:
        text = str(exc) or type(exc).__name__
    return _redact(text)


def refresh_conversations(rows: Sequence[Conversation]) -> BatchOutcome:
    """Fetch each row live from CometChat, on behalf of its owner, and store it."""
    outcome = BatchOutcome()
    # By the row's own owner UID (and owner FK), so the selected row is the one refreshed even
    # if UID_RESOLVER now maps its user elsewhere; one connection for the whole batch.
    with web_client() as client:
        for index, row in enumerate(rows):
            label = f"{row.conversation_id} (owner {row.owner_uid})"
            try:
                request_refresh(row.owner, row.conversation_id, uid=row.owner_uid, client=client)
            except ITEM_ERRORS as exc:
                outcome.failed.append((label, describe_error(exc)))
            except CometChatError as exc:
                outcome.failed.append((label, describe_error(exc)))
                outcome.not_attempted = len(rows) - index - 1
                break
            else:
                outcome.done.append(label)
    return outcome


def sync_owners(owners: Sequence[tuple[str, Any]]) -> BatchOutcome:
    """One complete sync per ``(owner_uid, user or None)``; each is a SyncRun, trigger admin."""
    outcome = BatchOutcome()
    with web_client() as client:
        for index, (owner_uid, user) in enumerate(owners):
            try:
                run = request_sync(
                    user, uid=owner_uid, trigger=SyncRun.Trigger.ADMIN, client=client
                )
            except ITEM_ERRORS as exc:
                outcome.failed.append((owner_uid, describe_error(exc)))
            except CometChatError as exc:
                outcome.failed.append((owner_uid, describe_error(exc)))
                outcome.not_attempted = len(owners) - index - 1
                break
            else:
                outcome.done.append(
                    f"{owner_uid} ({run.created_count} new, {run.updated_count} updated, "
                    f"{run.unchanged_count} unchanged, {run.missing_count} missing)"
                )
    return outcome
