"""Use case: read a conversation's messages live, on its owner's behalf (API.md §4.3).

Messages are never stored: each page is asked of CometChat when someone reads it (or, with
``MESSAGES_CACHE_SECONDS``, served from Django's cache for those seconds). A read by someone
other than the owner (a ``reader``: staff) is recorded as a ``MessageAccess`` row.
"""

from __future__ import annotations

from typing import Any, Literal

from .client import CometChatClient
from .messages_types import MessageCursor, MessagePage
from .models import Conversation

Direction = Literal["older", "newer"]

__all__ = ["Direction", "read_messages"]


def read_messages(
    conversation: Conversation,
    *,
    page_size: int = 50,
    cursor: MessageCursor | None = None,
    direction: Direction = "older",
    reader: Any | None = None,
    client: CometChatClient | None = None,
) -> MessagePage:
    """One page of ``conversation``'s messages, read live on its owner's behalf (a user peer:
    ``GET /users/{peer}/messages``; a group: ``GET /groups/{guid}/messages``), newest first.

    ``cursor`` is a page's ``next`` (from an earlier call); ``direction`` says which way it
    pages: ``"older"`` (CometChat's ``prepend``) or ``"newer"`` (``append``). With a ``reader``
    (a staff user reading someone else's conversation) one ``MessageAccess`` row is written
    and ``conversation_messages_read`` is sent after it commits.
    """
    raise NotImplementedError
