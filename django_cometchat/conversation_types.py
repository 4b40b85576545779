"""Frozen dataclasses for CometChat payloads, and the functions that parse them.

The parsers accept every form the sources disagree on (API.md §8): unread counts as strings or
integers, single GETs that answer an object or a list of one, an absent ``lastMessage``, numbers
sent as strings. Unknown fields are never dropped: each object keeps its ``raw`` payload.

This is also the boundary where hostile or broken upstream values stop. Every value that goes into
a typed column, or into a URL later, is checked with the same rules as the ids we send (``ids``)
and the columns' limits, and a stored payload must be JSON every supported database accepts (no
NUL, no lone surrogate, no NaN, bounded depth and integers). Anything else raises
:class:`PayloadShapeError`, a :class:`~django_cometchat.exceptions.CometChatResponseError`: nothing
malformed is ever stored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from datetime import timezone as dt_timezone
from typing import Any, Literal

import orjson
from django.utils.dateparse import parse_datetime

from .exceptions import CometChatInvalidId, CometChatResponseError
from .ids import IdKind, validate_id

ConversationType = Literal["user", "group"]
CONVERSATION_TYPES: tuple[ConversationType, ...] = ("user", "group")

MAX_COUNT = 2**31 - 1  # PositiveIntegerField's ceiling on every backend
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a datetime can hold
MAX_DEPTH = 32  # nesting of a stored payload; CometChat's own objects go about 6 deep
MAX_INTEGER = 2**63 - 1  # JSON integers stored in a payload stay within 64 bits
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,20}")


class PayloadShapeError(CometChatResponseError, ValueError):
    """A CometChat body does not have the shape, or holds a value, the contract does not allow."""


def _as_int(
    value: Any, what: str, *, default: int | None = None, low: int = 0, high: int = MAX_COUNT
) -> int:
    """Coerce CometChat's integer-or-digit-string numbers (``"0"``, ``"100"``, ``12``), in range."""
    if type(value) is int and low <= value <= high:  # the usual case, without the checks below
        return value
    if value is None:
        if default is None:
            raise PayloadShapeError(f"{what} is missing")
        return default
    if isinstance(value, bool):  # bool is an int subclass; True is never a count
        raise PayloadShapeError(f"{what} must be an integer, got a boolean")
    if isinstance(value, str):
        # ASCII digits only (str.isdigit() accepts "²"), one optional sign, and short enough to
        # convert cheaply.
        text = value.strip()
        if not _INTEGER_TEXT.fullmatch(text):
            raise PayloadShapeError(f"{what} must be an integer, got a non-numeric string")
        value = int(text)
    if not isinstance(value, int):
        raise PayloadShapeError(f"{what} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        shown = value if abs(value) < 10**30 else "a larger number"  # str() of huge ints raises
        raise PayloadShapeError(f"{what} must be between {low} and {high}, got {shown}")
    return value


def _optional_int(value: Any, what: str, *, high: int = MAX_COUNT) -> int | None:
    return None if value is None else _as_int(value, what, high=high)


def _timestamp(value: Any, what: str, *, required: bool) -> int | None:
    """Unix seconds a datetime column can hold (CometChat sends 10-digit seconds)."""
    if value is None and not required:
        return None
    return _as_int(value, what, high=MAX_TIMESTAMP)


def _identifier(value: Any, what: str, kind: IdKind) -> str:
    """An id CometChat sent, held to the rules of the ids we send (it may end up in a URL)."""
    if not isinstance(value, str) or not value:
        raise PayloadShapeError(f"{what} must be a non-empty string")
    try:
        return validate_id(value, kind)
    except CometChatInvalidId as exc:
        raise PayloadShapeError(f"{what}: {exc.api_message}") from None


def database_datetime(value: str | datetime, zone: tzinfo | None) -> datetime | None:
    """``value`` as a datetime a database column can hold and compare, or None.

    The one rule for positions taken from a URL (a cursor's, the admin's date hierarchy's), so
    a tampered one is refused in Python instead of failing in SQL. ``zone`` is the time zone the
    database connection works in (``connection.timezone``: UTC unless ``DATABASES`` sets a
    ``TIME_ZONE``), None for one that stores naive datetimes (``USE_TZ = False``).

    A text is read as Django reads a datetime (ISO 8601, "T" or a space). An aware value comes
    back in ``zone`` if it exists there and in UTC, within years 1 to 9999:
    ``9999-12-31T23:59:59-23:00`` is in year 10000 in UTC (SQLite's adapter overflows), and an
    offset past 15:59 (``+16:00``) is one PostgreSQL refuses, which converting removes. A naive
    value is refused where the database compares aware ones, and an aware one where it stores
    naive ones: neither is what this app writes there.
    """
    if isinstance(value, str):
        try:
            moment = parse_datetime(value)
        except ValueError:  # well formed but impossible: month 13, an offset of a day or more
            return None
        if moment is None:
            return None
    else:
        moment = value
    aware = moment.utcoffset() is not None
    if zone is None:
        return None if aware else moment
    if not aware:
        return None
    try:
        moment.astimezone(dt_timezone.utc)
        return moment.astimezone(zone)
    except (OverflowError, ValueError):  # past year 1 or 9999 once converted
        return None


def check_storable(value: Any, what: str = "payload") -> None:
    """Raise PayloadShapeError unless ``value`` is JSON that every supported database stores.

    PostgreSQL's jsonb refuses NUL characters and lone surrogates cannot be encoded at all;
    ``NaN``/``Infinity`` are not JSON; very deep nesting exhausts recursion when it is encoded
    again; a huge integer overflows other parsers.

    Fast path: one pass of orjson's encoder proves most of it: only JSON types (with the
    pass-through options it refuses datetimes, dataclasses and subclasses), UTF-8 encodable (no
    lone surrogate), integers within 53 bits (``OPT_STRICT_INTEGER``). Its bytes bound the rest:
    no ``null`` value (NaN and Infinity are written as ``null``: without one there is neither),
    no ``\\u0000`` escape, fewer brackets than ``MAX_DEPTH``. Anything it cannot clear, an error
    or only a suspicion (a ``null``, a large integer, many brackets), goes to the exact walk,
    which names the fault. ``value`` is decoded JSON: an ``Enum`` or a ``UUID``, which orjson
    renders, is outside its domain.
    """
    if _clearly_storable(value):
        return
    _walk_storable(value, what)


_FAST_CHECK = (
    orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _clearly_storable(value: Any) -> bool:
    try:
        data = orjson.dumps(value, option=_FAST_CHECK)
    except TypeError:  # orjson.JSONEncodeError: not JSON, a surrogate, a big integer, too deep
        return False
    if b"\\u0000" in data or data.count(b"{") + data.count(b"[") >= MAX_DEPTH:
        return False
    if _holds_null(data):
        # A null may stand for NaN or Infinity: the standard library's C encoder refuses those
        # (most payloads hold a real null, and the exact walk would cost them far more).
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return False
    return True


def _holds_null(data: bytes) -> bool:
    """A ``null`` value (not the word inside a string): where NaN or Infinity would be."""
    return data == b"null" or b":null" in data or b",null" in data or b"[null" in data


def _walk_storable(value: Any, what: str) -> None:
    """The exact check, iterative, so depth itself cannot crash it."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        # Exact types first (what JSON decodes to): a page of messages holds thousands of
        # values, and isinstance() against the Mapping ABC costs more than the check itself.
        kind = type(item)
        if kind is str:
            if "\x00" in item or not item.isascii():
                _check_text(item, what)
        elif kind is dict or kind is list or isinstance(item, Mapping | list | tuple):
            if depth >= MAX_DEPTH:
                raise PayloadShapeError(f"{what} is nested more than {MAX_DEPTH} levels deep")
            mapping = kind is dict or isinstance(item, Mapping)
            for key, child in item.items() if mapping else enumerate(item):
                if isinstance(key, str) and ("\x00" in key or not key.isascii()):
                    _check_text(key, what)
                stack.append((child, depth + 1))
        else:
            _check_scalar(item, what)


def _check_scalar(item: Any, what: str) -> None:
    if isinstance(item, str):
        _check_text(item, what)
    elif isinstance(item, bool) or item is None:
        return
    elif isinstance(item, int):
        if not -MAX_INTEGER - 1 <= item <= MAX_INTEGER:
            raise PayloadShapeError(f"{what} holds an integer outside 64 bits")
    elif isinstance(item, float):
        if not math.isfinite(item):
            raise PayloadShapeError(f"{what} holds a non-finite number")
    else:
        raise PayloadShapeError(f"{what} holds a {type(item).__name__}, which is not JSON")


def _check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise PayloadShapeError(f"{what} holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadShapeError(f"{what} holds a lone surrogate, which is not text") from None


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _as_object(value: Any, what: str) -> Mapping[str, Any]:
    if type(value) is dict:  # what a JSON decoder makes; isinstance() with an ABC costs more
        return value
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
    """``meta.pagination``. ``current_page``/``total_pages`` are None when CometChat left them
    out; ``total_pages`` may only mean "is there another page" (API.md §0.5)."""

    total: int | None
    count: int
    per_page: int
    current_page: int | None
    total_pages: int | None

    @property
    def is_complete(self) -> bool:
        return self.current_page is not None and self.total_pages is not None

    @property
    def is_last(self) -> bool:
        if self.current_page is None or self.total_pages is None:
            raise PayloadShapeError("meta.pagination lacks current_page or total_pages")
        return self.current_page >= self.total_pages


def parse_user(data: Any) -> User:
    obj = _as_object(data, "user")
    return User(
        uid=_identifier(obj.get("uid"), "user.uid", "UID"),
        name=_optional_str(obj.get("name")) or "",
        avatar=_optional_str(obj.get("avatar")),
        status=_optional_str(obj.get("status")),
        role=_optional_str(obj.get("role")),
        created_at=_timestamp(obj.get("createdAt"), "user.createdAt", required=False),
        updated_at=_timestamp(obj.get("updatedAt"), "user.updatedAt", required=False),
        raw=obj,
    )


def parse_group(data: Any) -> Group:
    obj = _as_object(data, "group")
    return Group(
        guid=_identifier(obj.get("guid"), "group.guid", "GUID"),
        name=_optional_str(obj.get("name")) or "",
        type=_optional_str(obj.get("type")),
        scope=_optional_str(obj.get("scope")),
        members_count=_optional_int(obj.get("membersCount"), "group.membersCount"),
        created_at=_timestamp(obj.get("createdAt"), "group.createdAt", required=False),
        updated_at=_timestamp(obj.get("updatedAt"), "group.updatedAt", required=False),
        raw=obj,
    )


def parse_message(data: Any) -> Message:
    obj = _as_object(data, "message")
    body = obj.get("data")
    text = body.get("text") if isinstance(body, Mapping) else None
    return Message(
        id=_message_id(obj.get("id")),
        conversation_id=_optional_str(obj.get("conversationId")),
        sender=_optional_str(obj.get("sender")),
        receiver=_optional_str(obj.get("receiver")),
        receiver_type=_optional_str(obj.get("receiverType")),
        category=_optional_str(obj.get("category")),
        type=_optional_str(obj.get("type")),
        sent_at=_timestamp(obj.get("sentAt"), "message.sentAt", required=False),
        updated_at=_timestamp(obj.get("updatedAt"), "message.updatedAt", required=False),
        text=text if isinstance(text, str) else None,
        raw=obj,
    )


def _message_id(value: Any) -> str:
    """A string on the wire ("50"), an integer in request bodies: either, as text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return str(_as_int(value, "message.id", high=MAX_INTEGER))


def parse_conversation(data: Any) -> Conversation:
    """A conversation object, checked all the way down: it is about to be stored."""
    obj = _as_object(data, "conversation")
    check_storable(obj, "conversation")
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
        conversation_id=_identifier(
            obj.get("conversationId"), "conversation.conversationId", "conversation id"
        ),
        conversation_type=conversation_type,
        # The spec types it as a string ("0"), the docs as an integer: accept both.
        unread_message_count=_as_int(
            obj.get("unreadMessageCount"), "conversation.unreadMessageCount", default=0
        ),
        created_at=_timestamp(obj.get("createdAt"), "conversation.createdAt", required=False),
        updated_at=_as_int(obj.get("updatedAt"), "conversation.updatedAt", high=MAX_TIMESTAMP),
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
        current_page=_optional_int(p.get("current_page"), "pagination.current_page"),
        total_pages=_optional_int(p.get("total_pages"), "pagination.total_pages"),
    )


def updated_at_of(value: Any) -> int:
    """CometChat's ``updatedAt`` (integer or digit string) as an int; 0 when unusable."""
    try:
        return _as_int(value, "updatedAt", high=MAX_TIMESTAMP)
    except PayloadShapeError:
        return 0


def conversation_id_of(data: Any) -> str:
    """The id of a raw conversation row, checked; the rest of the row is checked when parsed."""
    obj = _as_object(data, "conversation")
    return _identifier(obj.get("conversationId"), "conversation.conversationId", "conversation id")


def unwrap_single(data: Any, what: str) -> Any:
    """Single GETs declare an object but the examples answer a list of one: accept both."""
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        if len(data) != 1:
            raise PayloadShapeError(f"{what}: expected one object, got a list of {len(data)}")
        return data[0]
    return data
