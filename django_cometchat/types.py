"""Frozen dataclasses for CometChat payloads, and the functions that parse them.

Stdlib only. The parsers accept every form the sources disagree on (API.md §8): unread counts as
strings or integers, single GETs that answer an object or a list of one, an absent ``lastMessage``,
numbers sent as strings. Unknown fields are never dropped: each object keeps its ``raw`` payload.
A payload of the wrong shape raises :class:`PayloadShapeError`; the client turns it into
``CometChatResponseError`` naming the endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ConversationType = Literal["user", "group"]
CONVERSATION_TYPES: tuple[ConversationType, ...] = ("user", "group")


class PayloadShapeError(ValueError):
    """A CometChat body does not have the shape the contract promises."""


def _as_int(value: Any, what: str, *, default: int | None = None) -> int:
    """Coerce CometChat's integer-or-digit-string numbers (``"0"``, ``"100"``, ``12``)."""
    if value is None:
        if default is None:
            raise PayloadShapeError(f"{what} is missing")
        return default
    if isinstance(value, bool):  # bool is an int subclass; True is never a count
        raise PayloadShapeError(f"{what} must be an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise PayloadShapeError(f"{what} must be an integer, got {type(value).__name__}")


def _optional_int(value: Any, what: str) -> int | None:
    return None if value is None else _as_int(value, what)


def _as_str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise PayloadShapeError(f"{what} must be a non-empty string")
    return value


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _as_object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadShapeError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class User:
    uid: str
    name: str
    avatar: str | None = None
    status: str | None = None
    role: str | None = None
    created_at: int | None = None
    updated_at: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Group:
    guid: str
    name: str
    type: str | None = None
    scope: str | None = None
    members_count: int | None = None
    created_at: int | None = None
    updated_at: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Message:
    id: str
    conversation_id: str | None
    sender: str | None
    receiver: str | None
    receiver_type: str | None
    category: str | None
    type: str | None
    sent_at: int | None
    updated_at: int | None
    text: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    conversation_type: ConversationType
    unread_message_count: int
    created_at: int | None
    updated_at: int
    conversation_with: User | Group
    last_message: Message | None
    tags: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def peer_id(self) -> str:
        """The other party: a UID for one-to-one conversations, a GUID for groups."""
        peer = self.conversation_with
        return peer.uid if isinstance(peer, User) else peer.guid

    @property
    def peer_name(self) -> str:
        return self.conversation_with.name


@dataclass(frozen=True)
class Pagination:
    total: int | None
    count: int
    per_page: int
    current_page: int
    total_pages: int

    @property
    def is_last(self) -> bool:
        return self.current_page >= self.total_pages


def parse_user(data: Any) -> User:
    obj = _as_object(data, "user")
    return User(
        uid=_as_str(obj.get("uid"), "user.uid"),
        name=_optional_str(obj.get("name")) or "",
        avatar=_optional_str(obj.get("avatar")),
        status=_optional_str(obj.get("status")),
        role=_optional_str(obj.get("role")),
        created_at=_optional_int(obj.get("createdAt"), "user.createdAt"),
        updated_at=_optional_int(obj.get("updatedAt"), "user.updatedAt"),
        raw=obj,
    )


def parse_group(data: Any) -> Group:
    obj = _as_object(data, "group")
    return Group(
        guid=_as_str(obj.get("guid"), "group.guid"),
        name=_optional_str(obj.get("name")) or "",
        type=_optional_str(obj.get("type")),
        scope=_optional_str(obj.get("scope")),
        members_count=_optional_int(obj.get("membersCount"), "group.membersCount"),
        created_at=_optional_int(obj.get("createdAt"), "group.createdAt"),
        updated_at=_optional_int(obj.get("updatedAt"), "group.updatedAt"),
        raw=obj,
    )


def parse_message(data: Any) -> Message:
    obj = _as_object(data, "message")
    body = obj.get("data")
    text = body.get("text") if isinstance(body, Mapping) else None
    return Message(
        id=str(obj.get("id", "")),  # a string on the wire ("50"), an integer in request bodies
        conversation_id=_optional_str(obj.get("conversationId")),
        sender=_optional_str(obj.get("sender")),
        receiver=_optional_str(obj.get("receiver")),
        receiver_type=_optional_str(obj.get("receiverType")),
        category=_optional_str(obj.get("category")),
        type=_optional_str(obj.get("type")),
        sent_at=_optional_int(obj.get("sentAt"), "message.sentAt"),
        updated_at=_optional_int(obj.get("updatedAt"), "message.updatedAt"),
        text=text if isinstance(text, str) else None,
        raw=obj,
    )


def parse_conversation(data: Any) -> Conversation:
    obj = _as_object(data, "conversation")
    conversation_type = obj.get("conversationType")
    if conversation_type not in CONVERSATION_TYPES:
        raise PayloadShapeError(
            f"conversation.conversationType must be 'user' or 'group', got {conversation_type!r}"
        )
    peer_raw = obj.get("conversationWith")
    peer: User | Group = (
        parse_user(peer_raw) if conversation_type == "user" else parse_group(peer_raw)
    )
    last_raw = obj.get("lastMessage")
    tags = obj.get("tags")
    return Conversation(
        conversation_id=_as_str(obj.get("conversationId"), "conversation.conversationId"),
        conversation_type=conversation_type,
        # The spec types it as a string ("0"), the docs as an integer: accept both.
        unread_message_count=_as_int(
            obj.get("unreadMessageCount"), "conversation.unreadMessageCount", default=0
        ),
        created_at=_optional_int(obj.get("createdAt"), "conversation.createdAt"),
        updated_at=_as_int(obj.get("updatedAt"), "conversation.updatedAt"),
        conversation_with=peer,
        # Absent when the last message was deleted or a new group has none yet.
        last_message=parse_message(last_raw) if last_raw else None,
        tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
        raw=obj,
    )


def parse_pagination(meta: Any) -> Pagination | None:
    """``meta.pagination`` of a list response, or None when the body carries none."""
    if not isinstance(meta, Mapping) or not isinstance(meta.get("pagination"), Mapping):
        return None
    p = meta["pagination"]
    return Pagination(
        # CometChat's own example shows total: 0 beside count: 5, so total is advisory only.
        total=_optional_int(p.get("total"), "pagination.total"),
        count=_as_int(p.get("count"), "pagination.count", default=0),
        per_page=_as_int(p.get("per_page"), "pagination.per_page", default=0),
        current_page=_as_int(p.get("current_page"), "pagination.current_page", default=1),
        total_pages=_as_int(p.get("total_pages"), "pagination.total_pages", default=1),
    )


def updated_at_of(value: Any) -> int:
    """CometChat's ``updatedAt`` (integer or digit string) as an int; 0 when unusable."""
    try:
        return _as_int(value, "updatedAt")
    except PayloadShapeError:
        return 0


def unwrap_single(data: Any, what: str) -> Any:
    """Single GETs declare an object but the examples answer a list of one: accept both."""
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        if len(data) != 1:
            raise PayloadShapeError(f"{what}: expected one object, got a list of {len(data)}")
        return data[0]
    return data
