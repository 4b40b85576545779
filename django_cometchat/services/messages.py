"""Use case: read a conversation's messages live, on its owner's behalf (API.md §4.3).

Messages are never stored: each page is asked of CometChat when someone reads it (or, with
``MESSAGES_CACHE_SECONDS``, served from Django's default cache for those seconds). A read by
someone other than the owner (a ``reader``: staff) is recorded as a ``MessageAccess`` row.

Our cursors name the page's edge message and read the messages past it (exclusive). CometChat's
own ``id`` cursor is inclusive in the fake, and API.md does not say which it is: each request
asks for the page plus the edge message plus one more, drops the edge and whatever lies on the
wrong side of it, and keeps the extra one only to know whether another page follows. So paging
is exact (no repeat, no gap, no empty last page) under either reading, in one request a page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from ..client import CometChatClient
from ..client.core import MAX_MESSAGE_LIMIT
from ..conf import get_settings
from ..exceptions import CometChatInvalidFilter, CometChatResponseError
from ..ids import resolve_conversation_id
from ..messages_types import Affix, Message, MessageCursor, MessagePage, ReceiverType
from ..models import Conversation, MessageAccess
from ..signals import conversation_messages_read
from .clients import on_demand

Direction = Literal["older", "newer"]
DIRECTIONS: tuple[Direction, ...] = ("older", "newer")
AFFIX_OF: dict[Direction, Affix] = {"older": "prepend", "newer": "append"}
# The page, its edge message (an inclusive cursor answers it again) and one to tell more.
MAX_PAGE_SIZE = MAX_MESSAGE_LIMIT - 2
CACHE_VERSION = 1  # of what a cached page holds: bump when MessagePage changes shape

__all__ = [
    "DIRECTIONS",
    "MAX_PAGE_SIZE",
    "Direction",
    "PageCursors",
    "page_cursors",
    "read_messages",
]


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

    One request, as on-demand work (``WEB_DEADLINE``, the on-demand share of the rate budget).
    Without ``cursor`` the page starts at the newest message (``"older"``) or the oldest
    (``"newer"``); with one (a page's ``next``, or a ``page_cursors`` edge) it holds the
    messages past the cursor's message in ``direction``. The page's ``next`` names its last
    message in ``direction`` and is None when nothing follows; ``has_more`` says the same.

    With a ``reader`` (staff reading someone else's conversation) one ``MessageAccess`` row is
    written and ``conversation_messages_read`` is sent after it commits. The owner reading
    their own messages passes no reader. Raises ``CometChatInvalidFilter`` for a bad
    ``page_size`` or ``direction`` (nothing sent), and the client's errors.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise CometChatInvalidFilter(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    if direction not in DIRECTIONS:
        raise CometChatInvalidFilter(f"direction must be 'older' or 'newer', not {direction!r}")
    edge = None if cursor is None else cursor.id
    seconds = get_settings().messages_cache_seconds
    key = _cache_key(conversation, page_size, edge, direction)
    page: MessagePage | None = cache.get(key) if seconds else None
    if page is None:
        page = _fetch(conversation, page_size, edge, direction, client)
        if seconds:
            cache.set(key, page, seconds)
    if reader is not None:
        _record_access(conversation, page, edge, direction, reader)
    return page


@dataclass(frozen=True)
class PageCursors:
    """Where the pages beside one page start: None where there is nothing to read."""

    older: MessageCursor | None
    newer: MessageCursor | None


def page_cursors(
    page: MessagePage, *, cursor: MessageCursor | None, direction: Direction
) -> PageCursors:
    """The cursors of the older and the newer page next to ``page`` (which ``read_messages``
    read with ``cursor`` and ``direction``). The side the page came from has messages exactly
    when a cursor led to it; the side it went towards, when ``has_more`` says so."""
    if not page.messages:
        return PageCursors(None, None)
    newest, oldest = page.messages[0], page.messages[-1]
    ahead = page.next if not page.is_last else None
    if direction == "older":
        behind = _cursor(newest, "newer") if cursor is not None else None
        return PageCursors(older=ahead, newer=behind)
    behind = _cursor(oldest, "older") if cursor is not None else None
    return PageCursors(older=behind, newer=ahead)


def _fetch(
    conversation: Conversation,
    page_size: int,
    edge: str | None,
    direction: Direction,
    client: CometChatClient | None,
) -> MessagePage:
    receiver_type, receiver = _receiver(conversation)
    with on_demand(client) as active:
        fetched = active.get_message_page(
            receiver_type=receiver_type,
            receiver=receiver,
            on_behalf_of=conversation.owner_uid,
            limit=page_size + (2 if edge is not None else 1),
            affix=AFFIX_OF[direction],
            message_id=edge,
        )
    messages = _past_edge(fetched.value.messages, edge, direction, conversation)
    more = len(messages) > page_size
    kept = messages[:page_size]  # in the direction of travel: nearest the edge first
    following = _cursor(kept[-1], direction) if more else None
    newest_first = tuple(sorted(kept, key=_number, reverse=True))
    return MessagePage(messages=newest_first, next=following, limit=page_size, has_more=more)


def _past_edge(
    messages: Sequence[Message], edge: str | None, direction: Direction, conversation: Conversation
) -> list[Message]:
    """The answer's messages past ``edge`` in ``direction``, nearest first; every one must be
    of ``conversation`` (an answer about another conversation is not shown as this one)."""
    for message in messages:
        if message.conversation_id != conversation.conversation_id:
            raise CometChatResponseError(
                "a message list answered messages of another conversation",
                endpoint=f"GET /{conversation.conversation_type}s/…/messages",
            )
    older = direction == "older"
    ordered = sorted(messages, key=_number, reverse=older)
    if edge is None:
        return ordered
    limit = int(edge)
    return [m for m in ordered if (_number(m) < limit if older else _number(m) > limit)]


def _number(message: Message) -> int:
    return int(message.id)


def _cursor(message: Message, direction: Direction) -> MessageCursor:
    return MessageCursor(affix=AFFIX_OF[direction], id=message.id, sent_at=message.sent_at)


def _receiver(conversation: Conversation) -> tuple[ReceiverType, str]:
    """The peer the message list is asked of: the stored peer, else what the id names."""
    if conversation.conversation_type == "group":
        if conversation.peer_guid:
            return "group", conversation.peer_guid
    elif conversation.peer_uid:
        return "user", conversation.peer_uid
    target = resolve_conversation_id(conversation.conversation_id, owner_uid=conversation.owner_uid)
    if target.kind == "deprecated":
        raise CometChatInvalidFilter(
            "this conversation's id names no user or group to read messages of",
            code="ERR_INVALID_ID",
        )
    return target.kind, target.identifier


def _cache_key(
    conversation: Conversation, page_size: int, edge: str | None, direction: Direction
) -> str:
    """Owner, conversation, cursor and size, hashed (a UID never shows in the cache's keys)."""
    parts = (conversation.owner_uid, conversation.conversation_id, direction, edge or "", page_size)
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return f"django_cometchat:messages:{CACHE_VERSION}:{digest}"


def _record_access(
    conversation: Conversation,
    page: MessagePage,
    edge: str | None,
    direction: Direction,
    reader: Any,
) -> None:
    access = MessageAccess.objects.create(
        staff_user=reader if getattr(reader, "pk", None) is not None else None,
        staff_username=reader.get_username(),
        owner_uid=conversation.owner_uid,
        conversation_id=conversation.conversation_id,
        accessed_at=timezone.now(),
        message_count=len(page.messages),
        cursor=edge or "",
        direction=direction,
    )
    transaction.on_commit(
        lambda: conversation_messages_read.send(sender=MessageAccess, access=access)
    )
