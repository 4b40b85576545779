"""Frozen dataclasses for a conversation's messages (API.md §4.3), and the functions that parse
them: the boundary where a hostile message stops before it is shown to staff or cached.

A message is held to the rules conversations are (``types``): ids as the ids we send, Unix-second
timestamps a datetime holds, a payload every database stores (``check_storable``); besides, the
text is at most 65,536 characters (API.md §6), attachment URLs are absolute http(s) URLs of at
most 3,000 characters and names are short, single-line text. A deleted message (``deletedAt``)
never carries text or attachments here, whatever the payload says.

A page (``parse_message_page``) comes in either published shape: ``meta = {current: {limit,
count}, next: {affix, sentAt, id}}`` (API.md §4.3), or ``meta.pagination`` with a ``cursor`` in
``meta`` or at the top level (API.md §4.1, §8.5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from .conversation_types import (
    MAX_INTEGER,
    MAX_TIMESTAMP,
    PayloadShapeError,
    _as_int,
    _as_object,
    _identifier,
    _timestamp,
    check_storable,
    parse_pagination,
)

Affix = Literal["append", "prepend"]
AFFIXES: tuple[Affix, ...] = ("append", "prepend")
ReceiverType = Literal["user", "group"]
CATEGORIES = ("message", "custom", "action", "call", "interactive")  # API.md §4.3
MAX_TEXT = 65_536  # API.md §6: "message: ≤ 65,536 characters"
MAX_URL = 3_000  # API.md §6's URL limit (avatar / link); attachments' is not published
MAX_NAME = 255
MAX_ATTACHMENTS = 100
_MESSAGE_ID = re.compile(r"[0-9]{1,19}")
_WORD = re.compile(r"[A-Za-z0-9_.:-]{1,100}")  # a type, an action, an extension
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Attachment:
    url: str
    name: str | None = None
    extension: str | None = None
    mime_type: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Message:
    """One message as CometChat sent it, checked. ``text`` is None for a deleted message, an
    action message and a message without text; ``data`` is ``data`` as sent."""

    id: str
    conversation_id: str
    sender: str
    receiver: str
    receiver_type: ReceiverType
    category: str
    type: str
    sent_at: int
    updated_at: int | None = None
    text: str | None = None
    attachments: tuple[Attachment, ...] = ()
    action: str | None = None
    edited_at: int | None = None
    edited_by: str | None = None
    deleted_at: int | None = None
    deleted_by: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def is_edited(self) -> bool:
        return self.edited_at is not None


@dataclass(frozen=True)
class MessageCursor:
    """Where the following page starts: send ``id`` (and ``affix``) back as query parameters."""

    affix: Affix
    id: str | None
    sent_at: int | None


@dataclass(frozen=True)
class MessagePage:
    messages: tuple[Message, ...]
    next: MessageCursor | None
    limit: int | None  # meta.current.limit or meta.pagination.per_page
    has_more: bool | None  # what meta.pagination says; None when the shape does not say

    @property
    def is_last(self) -> bool:
        """No cursor, an empty or short page, or a pagination that says so. CometChat's
        ``meta.next`` may be there on the last page too: only a short page ends that shape."""
        if not self.messages or self.next is None:
            return True
        if self.has_more is not None:
            return not self.has_more
        return self.limit is not None and len(self.messages) < self.limit


def _message_id(value: Any, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(_as_int(value, what, high=MAX_INTEGER))
    if not isinstance(value, str) or not _MESSAGE_ID.fullmatch(value):
        raise PayloadShapeError(f"{what} must be a message id (decimal digits)")
    return value


def _word(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        raise PayloadShapeError(f"{what} must be 1-100 letters, digits or '_.:-'")
    return value


def _optional_uid(value: Any, what: str) -> str | None:
    return None if value is None else _identifier(value, what, "UID")


def _name(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME or _CONTROL.search(value):
        raise PayloadShapeError(f"{what} must be one line of at most {MAX_NAME} characters")
    return value


def _url(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_URL or _CONTROL.search(value):
        raise PayloadShapeError(f"{what} must be a URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise PayloadShapeError(f"{what} is not a URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise PayloadShapeError(f"{what} must be an absolute http or https URL")
    return value


def parse_attachment(data: Any, what: str = "attachment") -> Attachment:
    obj = _as_object(data, what)
    extension = obj.get("extension")
    size = obj.get("size")
    return Attachment(
        url=_url(obj.get("url"), f"{what}.url"),
        name=_name(obj.get("name"), f"{what}.name"),
        extension=None if extension is None else _word(extension, f"{what}.extension"),
        mime_type=_name(obj.get("mimeType"), f"{what}.mimeType"),
        size=None if size is None else _as_int(size, f"{what}.size", high=MAX_INTEGER),
    )


def _attachments(body: Mapping[str, Any]) -> tuple[Attachment, ...]:
    items = body.get("attachments")
    if items is None:
        return ()
    if not isinstance(items, list) or len(items) > MAX_ATTACHMENTS:
        raise PayloadShapeError(f"message.data.attachments must be a list of ≤ {MAX_ATTACHMENTS}")
    return tuple(
        parse_attachment(item, f"message.data.attachments[{i}]") for i, item in enumerate(items)
    )


def _text(body: Mapping[str, Any]) -> str | None:
    text = body.get("text")
    if text is None:
        return None
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise PayloadShapeError(f"message.data.text must be text of at most {MAX_TEXT} characters")
    return text


def parse_message(data: Any) -> Message:
    """A message of a message list (API.md §4.3), checked all the way down."""
    obj = _as_object(data, "message")
    check_storable(obj, "message")
    body = _as_object(obj.get("data", {}), "message.data")
    receiver_type = obj.get("receiverType")
    if receiver_type not in ("user", "group"):
        raise PayloadShapeError("message.receiverType must be 'user' or 'group'")
    category = obj.get("category")
    if category not in CATEGORIES:
        raise PayloadShapeError(f"message.category must be one of {', '.join(CATEGORIES)}")
    deleted_at = _timestamp(obj.get("deletedAt"), "message.deletedAt", required=False)
    action = body.get("action") if category == "action" else None
    deleted = deleted_at is not None
    text, attachments = _text(body), _attachments(body)  # checked even when not kept
    return Message(
        id=_message_id(obj.get("id"), "message.id"),
        conversation_id=_identifier(
            obj.get("conversationId"), "message.conversationId", "conversation id"
        ),
        sender=_identifier(obj.get("sender"), "message.sender", "UID"),
        receiver=_identifier(obj.get("receiver"), "message.receiver", "UID"),
        receiver_type=receiver_type,
        category=category,
        type=_word(obj.get("type"), "message.type"),
        sent_at=_as_int(obj.get("sentAt"), "message.sentAt", high=MAX_TIMESTAMP),
        updated_at=_timestamp(obj.get("updatedAt"), "message.updatedAt", required=False),
        text=None if deleted or category == "action" else text,
        attachments=() if deleted else attachments,
        action=None if action is None else _word(action, "message.data.action"),
        edited_at=_timestamp(obj.get("editedAt"), "message.editedAt", required=False),
        edited_by=_optional_uid(obj.get("editedBy"), "message.editedBy"),
        deleted_at=deleted_at,
        deleted_by=_optional_uid(obj.get("deletedBy"), "message.deletedBy"),
        data=body,
        raw=obj,
    )


def parse_cursor(data: Any, what: str) -> MessageCursor:
    obj = _as_object(data, what)
    affix = obj.get("affix")
    if affix not in AFFIXES:
        raise PayloadShapeError(f"{what}.affix must be 'append' or 'prepend'")
    raw_id = obj.get("id")
    return MessageCursor(
        affix=affix,
        id=None if raw_id is None else _message_id(raw_id, f"{what}.id"),
        sent_at=_timestamp(obj.get("sentAt"), f"{what}.sentAt", required=False),
    )


def parse_message_page(body: Any) -> MessagePage:
    """A message list answer in either published meta shape; ids must not repeat in a page."""
    obj = _as_object(body, "message list")
    rows = obj.get("data")
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
        raise PayloadShapeError("message list: data must be a list")
    messages = tuple(parse_message(row) for row in rows)
    if len({message.id for message in messages}) != len(messages):
        raise PayloadShapeError("message list: a message id appears twice in one page")
    meta = obj.get("meta")
    meta = {} if meta is None else _as_object(meta, "message list meta")
    cursor: MessageCursor | None = None
    limit: int | None = None
    has_more: bool | None = None
    if meta.get("next") is not None:
        cursor = parse_cursor(meta["next"], "meta.next")
    current = meta.get("current")
    if current is not None:
        current = _as_object(current, "meta.current")
        if current.get("limit") is not None:
            limit = _as_int(current.get("limit"), "meta.current.limit", low=1)
    pagination = parse_pagination(meta)
    if pagination is not None:
        limit = limit or pagination.per_page or None
        if pagination.is_complete:
            has_more = not pagination.is_last
    if cursor is None:
        for where, value in (("meta.cursor", meta.get("cursor")), ("cursor", obj.get("cursor"))):
            if value is not None:
                cursor = parse_cursor(value, where)
                break
    return MessagePage(messages=messages, next=cursor, limit=limit, has_more=has_more)
