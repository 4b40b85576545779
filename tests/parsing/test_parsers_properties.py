"""Property tests (Hypothesis) of every parser of upstream data.

The property, for each parser: any JSON value (``None``, booleans, integers huge or small,
floats with NaN and infinities, text with NUL and lone surrogates, lists, objects, nested past
the depth limit) either parses into valid typed values or raises ``CometChatResponseError``
(``PayloadShapeError`` is one), never another exception and never an out-of-range value.

Valid: UIDs and GUIDs match ``^[a-z0-9_-]{1,100}$``, conversation ids ``^[a-z0-9_-]{1,206}$``,
counts lie in ``0..2**31-1``, timestamps in ``0..253402300799``, and an accepted conversation
payload is JSON every supported database stores (one property lets the test database itself
judge). Header parsers: any header values give a number of seconds in ``[0, 3600]`` (or None),
never an exception. The example counts are the constants below; nothing is printed (run with
``--hypothesis-show-statistics`` to see how many examples each property accepted).

The bugs these properties found (a "--5" count, header values with U+001C..U+001F, an unclean
error code or reason phrase, a huge integer message id) are fixed and kept as examples at the end.
"""

from __future__ import annotations

import copy
import email.utils
import itertools
import json
import math
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from django_cometchat import storage
from django_cometchat.client import CometChatClient, Page
from django_cometchat.client.errors import _error_envelope, raise_for_error
from django_cometchat.client.responses import decode_success
from django_cometchat.conf import DEFAULTS, build_settings
from django_cometchat.conversation_types import (
    MAX_COUNT,
    MAX_DEPTH,
    MAX_INTEGER,
    MAX_TIMESTAMP,
    Conversation,
    Group,
    Message,
    Pagination,
    PayloadShapeError,
    User,
    check_storable,
    conversation_id_of,
    parse_conversation,
    parse_group,
    parse_message,
    parse_pagination,
    parse_user,
    unwrap_single,
    updated_at_of,
)
from django_cometchat.exceptions import (
    CometChatAPIError,
    CometChatAuthError,
    CometChatBadRequest,
    CometChatError,
    CometChatForbidden,
    CometChatNotFound,
    CometChatRateLimited,
    CometChatResponseError,
    CometChatServerError,
    RateLimitInfo,
)
from django_cometchat.models import Conversation as StoredConversation
from django_cometchat.ratelimit import (
    LIMIT_HEADERS,
    MAX_WAIT,
    REMAINING_HEADERS,
    RESET_HEADERS,
    parse_rate_limit,
    seconds_to_wait,
)
from django_cometchat.services import operator_message
from django_cometchat.testing.faults import Fault
from tests import FIXTURES

# -- how many examples each property runs (quoted in reports; the file runs in well under a minute)

EXAMPLES = 200  # each property of a pure parser or header parser (15 properties)
HOSTILE_EXAMPLES = 400  # conversations from the fixtures, fields made hostile or pushed to the edge
# Each example sends one to three requests to the fake server, ~45 ms each: its handler writes
# headers and body separately without TCP_NODELAY, so every answer waits for a delayed ACK.
FAKE_EXAMPLES = 50  # each property that sends the body through the fake server (2 properties)
DB_EXAMPLES = 80  # the property whose judge is the test database

PURE = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a shared 2-core machine: no flaky timing failures
    database=None,  # no .hypothesis/ directory in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

UID_RE = re.compile(r"^[a-z0-9_-]{1,100}\Z")
CONVERSATION_ID_RE = re.compile(r"^[a-z0-9_-]{1,206}\Z")

# -- strategies: any JSON value, hostile but plausible ----------------------------------------

FIELD_NAMES = [
    "conversationId",
    "conversationType",
    "unreadMessageCount",
    "createdAt",
    "updatedAt",
    "conversationWith",
    "lastMessage",
    "tags",
    "uid",
    "guid",
    "name",
    "membersCount",
    "sentAt",
    "id",
    "data",
    "text",
    "meta",
    "pagination",
    "total",
    "count",
    "per_page",
    "current_page",
    "total_pages",
    "error",
    "code",
    "message",
    "details",
    "devMessage",
]
SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "x\udc00y",
    "İ",  # lowercases to two characters
    "K",  # KELVIN SIGN, lowercases to ASCII "k"
    "ß",
    "٣",  # ARABIC-INDIC DIGIT THREE: a digit to str.isdigit(), not ASCII
    "²",
    "\u2028",
    "\ufeff",
    "\U0001f600",
    "user",
    "group",
    "channel",
    "ERR_UID_NOT_FOUND",
    "AUTH_ERR_APIKEY_NOT_FOUND",
    "ERR_TOO_MANY_REQUESTS",
]
BOUNDARY_INTS = [
    -1,
    0,
    1,
    MAX_COUNT,
    MAX_COUNT + 1,
    MAX_TIMESTAMP,
    MAX_TIMESTAMP + 1,
    MAX_INTEGER,
    MAX_INTEGER + 1,
    -MAX_INTEGER - 1,
    -MAX_INTEGER - 2,
    10**20,
    10**30,
]
# More digits than int <-> str converts (sys.get_int_max_str_digits), built lazily: not even
# repr() works on them, so they must not sit in a strategy's repr.
huge_integers = st.sampled_from([1, -1]).map(lambda sign: sign * 10**5000)

characters = st.characters() | st.integers(0xD800, 0xDFFF).map(chr) | st.just("\x00")
texts = st.one_of(
    st.text(characters, max_size=24),
    st.sampled_from(SPECIAL_TEXT),
    st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True),
)
integers = st.one_of(st.integers(), st.sampled_from(BOUNDARY_INTS), huge_integers)
# CometChat sends numbers as digit strings too (and hostile ones: "--5" once crashed a parser).
numeric_strings = st.one_of(
    st.from_regex(r"[ \t\n\u00a0]{0,2}-?[0-9]{0,24}[ \t\n\u00a0]{0,2}", fullmatch=True),
    (st.integers() | st.sampled_from(BOUNDARY_INTS)).map(str),
    st.sampled_from(["1e3", "0x10", "1_000", "+5", "5.0", "٣", "²", "-", "nan", "Infinity"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    integers,
    st.floats(),  # NaN and both infinities included
    texts,
    numeric_strings,
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), texts)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=20,
)


def nest(depth: int, leaf: Any = 1) -> Any:
    """``depth`` containers deep, alternating lists and objects."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"x": value}
    return value


# Built lazily: repr() of a 3000-deep value overflows the stack, and strategies show their values.
deep_values = st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2).map(nest) | st.just(3000).map(nest)
any_json = json_values | deep_values


def ids(max_size: int) -> st.SearchStrategy[str]:
    """Ids that pass, nearly pass, or break the id rules."""
    return st.one_of(
        st.from_regex(rf"[A-Za-z0-9_-]{{1,{max_size + 2}}}", fullmatch=True),
        st.integers(max_size - 1, max_size + 1).map(lambda n: "a" * n),
        st.sampled_from(["", "a/b", "a b", "a.b", "../x", "a%2Fb", "K", "İd", "a\x00", "\ud800"]),
        texts,
    )


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _fixture_conversations() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name in (
        "list-all-conversations.200.json",
        "get-user-conversations.200.json",
        "get-group-conversations.200.json",
        "get-conversation.200.json",
    ):
        data = _load(name)["data"]
        found.extend(data if isinstance(data, list) else [data])
    # The fixtures hold group conversations only: make one-to-one ones from the fixture users.
    group = found[0]
    for user in _load("list-users.200.json")["data"]:
        conversation = copy.deepcopy(group)
        conversation.update(
            conversationId=user.get("conversationId") or f"cometchat-uid-1_user_{user['uid']}",
            conversationType="user",
            conversationWith=copy.deepcopy(user),
        )
        conversation["lastMessage"]["receiverType"] = "user"
        found.append(conversation)
    assert all(parse_conversation(c) for c in found)  # every base is a valid conversation
    return found


BASES = _fixture_conversations()

# Where a field sits, and what is put there instead of its value.
FIELD_VALUES: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("conversationId",): ids(206),
    ("conversationType",): st.sampled_from(["user", "group", "User", "", "channel"]),
    ("unreadMessageCount",): integers | numeric_strings,
    ("createdAt",): integers | numeric_strings,
    ("updatedAt",): integers | numeric_strings,
    ("tags",): st.lists(texts | integers, max_size=3),
    ("conversationWith",): json_values,
    ("conversationWith", "uid"): ids(100),
    ("conversationWith", "guid"): ids(100),
    ("conversationWith", "name"): texts,
    ("conversationWith", "createdAt"): integers | numeric_strings,
    ("conversationWith", "updatedAt"): integers | numeric_strings,
    ("conversationWith", "membersCount"): integers | numeric_strings,
    ("lastMessage",): json_values,
    ("lastMessage", "id"): json_values,
    ("lastMessage", "sentAt"): integers | numeric_strings,
    ("lastMessage", "updatedAt"): integers | numeric_strings,
    ("lastMessage", "data"): json_values,
    ("lastMessage", "data", "text"): texts,
    ("somethingNew",): any_json,  # unknown fields are kept and stored: anything may be there
}
MISSING = object()


@st.composite
def hostile_conversations(draw: st.DrawFn) -> dict[str, Any]:
    """A fixture conversation with one to four fields replaced (or removed)."""
    conversation: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(BASES)))
    paths = draw(st.lists(st.sampled_from(list(FIELD_VALUES)), min_size=1, max_size=4))
    for path in paths:
        set_path(conversation, path, draw(st.just(MISSING) | FIELD_VALUES[path] | scalars))
    return conversation


def set_path(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Put ``value`` at ``path`` (``MISSING`` removes the key); nothing when a parent on the
    way is not an object (an earlier replacement took it)."""
    parent: Any = document
    for key in path[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(parent, dict):
        return
    if value is MISSING:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value


# What the contract allows, at its edges: every such conversation must be accepted and stored.
storable_text = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=24),
    st.sampled_from(["", "İ", "K", "\u2028", "\ufeff", "\U0001f600", "\x01\x1f\x7f", "\\u0000"]),
    st.sampled_from(["'; DROP TABLE x; --", "a" * 300]),
)
storable_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.sampled_from([-(2**63), 2**63 - 1, 0.0, -0.0, 5e-324, 1.7976931348623157e308]),
        st.floats(allow_nan=False, allow_infinity=False),
        storable_text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(storable_text, children, max_size=4)
    ),
    max_leaves=20,
)
counts = st.integers(0, MAX_COUNT) | st.sampled_from([0, MAX_COUNT])
seconds = st.integers(0, MAX_TIMESTAMP) | st.sampled_from([0, MAX_TIMESTAMP])


def digits_or_int(numbers: st.SearchStrategy[int]) -> st.SearchStrategy[int | str]:
    return numbers | numbers.map(str) | numbers.map(lambda n: f" {n}\n")


def valid_id(longest: int) -> st.SearchStrategy[str]:
    return st.from_regex(rf"[A-Za-z0-9_-]{{1,{longest}}}", fullmatch=True) | st.just("A" * longest)


@st.composite
def valid_conversations(draw: st.DrawFn) -> dict[str, Any]:
    """A fixture conversation whose fields are changed within what the contract allows."""
    conversation: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(BASES)))
    peer = conversation["conversationWith"]
    peer["uid" if conversation["conversationType"] == "user" else "guid"] = draw(valid_id(100))
    peer["name"] = draw(storable_text)
    peer["createdAt"] = draw(st.none() | digits_or_int(seconds))
    if "membersCount" in peer:
        peer["membersCount"] = draw(st.none() | digits_or_int(counts))
    conversation["conversationId"] = draw(valid_id(206))
    conversation["unreadMessageCount"] = draw(st.none() | digits_or_int(counts))
    conversation["createdAt"] = draw(st.none() | digits_or_int(seconds))
    conversation["updatedAt"] = draw(digits_or_int(seconds))
    conversation["tags"] = draw(st.lists(storable_text, max_size=3))
    message = conversation["lastMessage"]
    message["sentAt"] = draw(st.none() | digits_or_int(seconds))
    message["data"]["text"] = draw(storable_text)
    if draw(st.booleans()):
        conversation.pop("lastMessage")  # deleted, or a new group
    # Unknown fields are stored as sent: any JSON, up to the deepest allowed nesting.
    conversation["somethingNew"] = draw(storable_json | st.just(MAX_DEPTH - 1).map(nest))
    return conversation


# -- what "valid" means -----------------------------------------------------------------------


def assert_count(value: Any, *, nullable: bool = False) -> None:
    if nullable and value is None:
        return
    assert type(value) is int
    assert 0 <= value <= MAX_COUNT


def assert_timestamp(value: Any, *, nullable: bool = True) -> None:
    if nullable and value is None:
        return
    assert type(value) is int
    assert 0 <= value <= MAX_TIMESTAMP


def assert_optional_str(*values: Any) -> None:
    assert all(value is None or isinstance(value, str) for value in values)


def assert_user(user: User) -> None:
    assert isinstance(user, User)
    assert UID_RE.match(user.uid), user.uid
    assert isinstance(user.name, str)
    assert_optional_str(user.avatar, user.status, user.role)
    assert_timestamp(user.created_at)
    assert_timestamp(user.updated_at)


def assert_group(group: Group) -> None:
    assert isinstance(group, Group)
    assert UID_RE.match(group.guid), group.guid
    assert isinstance(group.name, str)
    assert_optional_str(group.type, group.scope)
    assert_count(group.members_count, nullable=True)
    assert_timestamp(group.created_at)
    assert_timestamp(group.updated_at)


def assert_message(message: Message) -> None:
    assert isinstance(message, Message)
    assert isinstance(message.id, str)
    assert_optional_str(
        message.conversation_id,
        message.sender,
        message.receiver,
        message.receiver_type,
        message.category,
        message.type,
        message.text,
    )
    assert_timestamp(message.sent_at)
    assert_timestamp(message.updated_at)


def assert_storable_text(text: str) -> None:
    assert "\x00" not in text
    text.encode("utf-8")  # no lone surrogate


def assert_conversation(conversation: Conversation, data: Any) -> None:
    assert isinstance(conversation, Conversation)
    assert CONVERSATION_ID_RE.match(conversation.conversation_id), conversation.conversation_id
    assert conversation.conversation_type in ("user", "group")
    peer = conversation.conversation_with
    if conversation.conversation_type == "user":
        assert isinstance(peer, User)
        assert_user(peer)
    else:
        assert isinstance(peer, Group)
        assert_group(peer)
    assert_count(conversation.unread_message_count)
    assert_timestamp(conversation.created_at)
    assert_timestamp(conversation.updated_at, nullable=False)
    if conversation.last_message is not None:
        assert_message(conversation.last_message)
    assert all(isinstance(tag, str) for tag in conversation.tags)
    assert conversation.raw is data  # unknown fields are never dropped
    # The payload is JSON every supported database stores.
    check_storable(conversation.raw)
    assert storable_by_spec(conversation.raw)
    json.dumps(conversation.raw, allow_nan=False, ensure_ascii=False).encode("utf-8")
    assert_storable_text(conversation.peer_name)
    # And it maps onto the columns.
    row = storage.row_from(conversation)
    assert len(row.conversation_id) <= 210
    assert len(row.peer_uid) <= 100
    assert len(row.peer_guid) <= 100
    assert len(row.peer_name) <= 255
    assert row.updated_at.year <= 9999
    assert row.updated_at.tzinfo is not None


def parsed(parser: Callable[[Any], Any], data: Any) -> Any:
    """``parser(data)``; None when it raised ``CometChatResponseError``, the allowed refusal."""
    try:
        return parser(data)
    except CometChatResponseError:
        return None


# -- types.py ------------------------------------------------------------------------------


@PURE
@given(any_json)
@example({"conversationId": "a", "conversationType": "user", "updatedAt": 1})
@example(BASES[0])
def test_parse_conversation_any_json(data):
    conversation = parsed(parse_conversation, data)
    event("accepted" if conversation is not None else "refused")
    if conversation is not None:
        assert_conversation(conversation, data)


@settings(PURE, max_examples=HOSTILE_EXAMPLES)
@given(hostile_conversations())
def test_parse_conversation_hostile_fixture_conversations(data):
    conversation = parsed(parse_conversation, data)
    event("accepted" if conversation is not None else "refused")
    if conversation is not None:
        assert_conversation(conversation, data)


@settings(PURE, max_examples=HOSTILE_EXAMPLES)
@given(valid_conversations())
def test_parse_conversation_accepts_every_valid_conversation(data):
    """No over-refusal: a conversation inside the contract is never refused."""
    assert_conversation(parse_conversation(data), data)


@PURE
@given(any_json | hostile_conversations().map(lambda c: c.get("conversationWith")))
def test_parse_user(data):
    user = parsed(parse_user, data)
    if user is not None:
        assert_user(user)
        assert user.raw is data


@PURE
@given(any_json | hostile_conversations().map(lambda c: c.get("conversationWith")))
def test_parse_group(data):
    group = parsed(parse_group, data)
    if group is not None:
        assert_group(group)
        assert group.raw is data


@PURE
@given(any_json | hostile_conversations().map(lambda c: c.get("lastMessage")))
def test_parse_message(data):
    message = parsed(parse_message, data)
    if message is not None:
        assert_message(message)
        assert message.raw is data


pagination_values = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        ("total", "count", "per_page", "current_page", "total_pages"),
        integers | numeric_strings | scalars,
    ),
)


@PURE
@given(any_json | st.fixed_dictionaries({"pagination": pagination_values | json_values}))
@example(_load("list-users.200.json")["meta"])
def test_parse_pagination(meta):
    pagination = parsed(parse_pagination, meta)
    if pagination is None:
        return
    assert isinstance(pagination, Pagination)
    assert_count(pagination.total, nullable=True)
    assert_count(pagination.count)
    assert_count(pagination.per_page)
    assert_count(pagination.current_page, nullable=True)
    assert_count(pagination.total_pages, nullable=True)
    if pagination.is_complete:
        assert pagination.is_last in (True, False)


@PURE
@given(any_json | st.lists(hostile_conversations(), max_size=3))
def test_unwrap_single(data):
    try:
        single = unwrap_single(data, "conversation")
    except CometChatResponseError:
        assert isinstance(data, list)
        assert len(data) != 1
        return
    assert single is (data[0] if isinstance(data, list) else data)


@PURE
@given(any_json | hostile_conversations())
def test_conversation_id_of(data):
    conversation_id = parsed(conversation_id_of, data)
    if conversation_id is not None:
        assert CONVERSATION_ID_RE.match(conversation_id), conversation_id


@PURE
@given(integers | numeric_strings | any_json)
@example(MAX_TIMESTAMP)
@example(str(MAX_TIMESTAMP + 1))
def test_updated_at_of_never_raises(value):
    seconds = updated_at_of(value)  # documented: "0 when unusable", never an error
    assert_timestamp(seconds, nullable=False)


def storable_by_spec(value: Any) -> bool:
    """An independent statement of what check_storable promises, to compare it with."""

    def ok(item: Any, depth: int) -> bool:
        if isinstance(item, dict | list):
            children = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
            return depth < MAX_DEPTH and all(
                (not isinstance(key, str) or ok(key, depth)) and ok(child, depth + 1)
                for key, child in children
            )
        if isinstance(item, str):
            return "\x00" not in item and not any(0xD800 <= ord(c) <= 0xDFFF for c in item)
        if isinstance(item, bool) or item is None:
            return True
        if isinstance(item, int | float):
            return -(2**63) <= item <= 2**63 - 1 if isinstance(item, int) else math.isfinite(item)
        return False

    return ok(value, 0)


@PURE
@given(any_json)
def test_check_storable_is_exactly_its_spec(value):
    try:
        check_storable(value)
    except PayloadShapeError:
        assert not storable_by_spec(value)
        return
    assert storable_by_spec(value)
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")


# -- the database is the judge --------------------------------------------------------------

_owners = itertools.count()


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON: numbers by value (the database may print 1e+16 as 10000000000000000)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return Decimal(repr(a)) == Decimal(repr(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_json, a, b))
    return bool(a == b) and type(a) is type(b)


def with_extra(conversation: dict[str, Any], extra: Any) -> dict[str, Any]:
    return {**conversation, "somethingNew": extra}


@pytest.mark.django_db
@settings(PURE, max_examples=DB_EXAMPLES)
@given(
    st.lists(
        valid_conversations() | st.builds(with_extra, hostile_conversations(), any_json),
        min_size=1,
        max_size=3,
    )
)
def test_accepted_conversations_are_stored_by_the_database(payloads):
    """Every payload parse_conversation accepts is written by store_page and reads back equal."""
    accepted = [c for c in (parsed(parse_conversation, p) for p in payloads) if c is not None]
    event(f"accepted {len(accepted)} of {len(payloads)}")
    if not accepted:
        return
    owner_uid = f"prop-{next(_owners)}"
    rows = [storage.row_from(c) for c in accepted]
    outcome = storage.store_page(
        owner_id=None,
        owner_uid=owner_uid,
        rows=rows,
        fetched_at=datetime.now(timezone.utc),
    )
    newest = {row.conversation_id: row for row in storage.newest_per_id(rows)}
    assert len(outcome.created) == len(newest)
    stored = {c.conversation_id: c for c in StoredConversation.objects.owned_by(owner_uid)}
    assert stored.keys() == newest.keys()
    for conversation_id, row in newest.items():
        got = stored[conversation_id]
        assert got.conversation_type == row.conversation_type
        assert got.unread_message_count == row.unread_message_count
        assert got.updated_at == row.updated_at
        assert got.created_at == row.created_at
        assert (got.peer_uid, got.peer_guid, got.peer_name) == (
            row.peer_uid,
            row.peer_guid,
            row.peer_name,
        )
        assert same_json(got.payload, row.payload)
        assert got.snapshots.count() == 1


# -- ratelimit.py: header parsers ------------------------------------------------------------

HEADER_NAMES = ["Retry-After", *LIMIT_HEADERS, *REMAINING_HEADERS, *RESET_HEADERS]
header_names = st.sampled_from(HEADER_NAMES).flatmap(
    lambda name: st.sampled_from([name, name.lower(), name.upper()])
)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
http_dates = st.datetimes(timezones=st.just(timezone.utc)).map(
    lambda moment: email.utils.format_datetime(moment, usegmt=True)
)
odd_dates = st.builds(
    "{} {} {} {}:{}:{} {}".format,
    st.integers(-5, 99),
    st.sampled_from([*MONTHS, "Foo"]),
    st.integers(-(10**12), 10**12),
    st.integers(-1, 99),
    st.integers(-1, 99),
    st.integers(-1, 99),
    st.sampled_from(["GMT", "+0000", "-9999", "+99999999", "EST", "", "Z", "-0000", "+1"]),
)
header_values = st.one_of(
    st.from_regex(r"\s{0,2}[0-9]{1,25}\s{0,2}", fullmatch=True),
    st.from_regex(r"[0-9]{1,14}(\.[0-9]{1,11})?", fullmatch=True),
    st.floats().map(repr),
    (st.integers() | st.sampled_from(BOUNDARY_INTS)).map(str),
    http_dates,
    odd_dates,
    st.sampled_from(["\u0663\u0660", "\u0661.\u0665", "0x10", "-1", "1e9", "nan", "inf", ""]),
    st.just("\x1c5\x1f"),  # int() refuses what the regex \s once let through
    texts,
)
headers = st.dictionaries(header_names | texts, header_values, max_size=4).map(CaseInsensitiveDict)
nows = st.none() | st.floats(0, 2**40) | st.just(1.7e9)


@PURE
@given(headers)
def test_parse_rate_limit(values):
    info = parse_rate_limit(values)
    assert isinstance(info, RateLimitInfo)
    for figure in (info.limit, info.remaining, info.reset):
        assert figure is None or (type(figure) is int and 0 <= figure < 10**20)


@PURE
@given(headers, nows, st.booleans())
@example(CaseInsensitiveDict({"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}), 0.0, True)
@example(CaseInsensitiveDict({"Retry-After": "Mon, 01 Jan 0001 00:00:00 GMT"}), None, True)
@example(CaseInsensitiveDict({"Retry-After": "1 Jan 99999999999 0:0:0 -0000"}), None, True)
@example(CaseInsensitiveDict({"X-Rate-Limit-Reset": "9" * 20}), None, True)
def test_seconds_to_wait(values, now, use_reset):
    seconds = seconds_to_wait(values, now=now, use_reset=use_reset)
    assert seconds is None or (isinstance(seconds, float) and 0.0 <= seconds <= MAX_WAIT)


# -- client: body decoding and error mapping -----------------------------------------------


@pytest.fixture(scope="module")
def client():
    with CometChatClient(settings=_settings("http://127.0.0.1:9/v3", "unused-key")) as instance:
        yield instance


def _settings(base_url: str, api_key: str):
    return build_settings(
        {**DEFAULTS, "APP_ID": "testapp", "BASE_URL": base_url, "API_KEY": api_key}
        # No shared rate budget: its pause after a generated 429 would stall later examples.
        | {"MAX_RETRIES": 0, "RATE_LIMIT_MIN_REMAINING": 0, "REQUESTS_PER_MINUTE": None}
    )


def response(status: int, content_type: str, reason: str = "", extra: Any = None):
    made = requests.Response()
    made.status_code = status
    made.reason = reason
    made.headers = CaseInsensitiveDict({"Content-Type": content_type, **(extra or {})})
    return made


def encoded(value: Any, how: str) -> bytes:
    """``value`` as a body: JSON in UTF-8 (or UTF-16), ASCII-escaped or not."""
    try:
        text = json.dumps(value, ensure_ascii=how == "ascii")
    except ValueError:  # an integer too long for str(): no JSON text can carry it
        return b"1" * 5000
    except RecursionError:  # nested deeper than the encoder goes
        return b"[" * 3000 + b"]" * 3000
    return text.encode("utf-16" if how == "utf-16" else "utf-8", "surrogatepass")


bodies = st.one_of(
    st.binary(max_size=64),
    st.builds(encoded, any_json, st.sampled_from(["ascii", "utf-8", "utf-16"])),
    st.builds(
        encoded,
        st.fixed_dictionaries({"data": any_json}, optional={"meta": json_values}),
        st.sampled_from(["ascii", "utf-8"]),
    ),
    st.sampled_from(
        [
            b"",
            b"{",
            b'{"data": NaN}',
            b'{"data": -Infinity}',
            b'{"data": 1e400}',
            b'{"data": ' + b"1" * 5000 + b"}",
            b"[" * 100_000,
            b"\xef\xbb\xbf{}",
            b"<!DOCTYPE html><html></html>",
        ]
    ),
)
content_types = st.sampled_from(["application/json", "text/html; charset=utf-8", "", "x/\x00"])


@PURE
@given(bodies, st.integers(200, 299), content_types)
def test_decode_success(content, status, content_type):
    made = response(status, content_type)
    try:
        data, body = decode_success("GET /x", made, content)
    except CometChatResponseError as exc:
        refusal: CometChatResponseError | None = exc
    else:
        refusal = None
        assert isinstance(body, dict)
        assert body["data"] is data
    if refusal is not None:
        assert refusal.status == status


@PURE
@given(storable_json | st.just(MAX_DEPTH).map(nest), st.sampled_from(["ascii", "utf-8"]))
def test_decode_success_accepts_every_storable_envelope(value, how):
    """No valid body is refused: ``{"data": v}`` decodes to ``v``, whatever JSON ``v`` is."""
    data, body = decode_success(
        "GET /x", response(200, "application/json"), encoded({"data": value}, how)
    )
    assert same_json(data, value)
    assert same_json(body, {"data": value})


error_envelopes = st.builds(
    lambda error, how: encoded({"error": error}, how),
    st.fixed_dictionaries(
        {},
        optional={
            "code": texts | json_values,
            "message": texts | json_values,
            "devMessage": texts | json_values,
            "details": json_values,
        },
    ),
    st.sampled_from(["ascii", "utf-8"]),
)
statuses = st.integers(300, 599) | st.sampled_from([400, 401, 403, 404, 422, 429, 500, 503])
latin1 = st.text(st.characters(max_codepoint=255), max_size=20)  # what http.client decodes


def expected_class(status: int, code: str | None) -> type[CometChatAPIError]:
    """The mapping raise_for_error documents, restated (owner lookups aside): first match."""
    code = code or ""
    not_found = code.endswith("_NOT_FOUND") or code in {
        "ERR_CONVERSATION_NOT_ACCESSIBLE",
        "ERR_API_NOT_FOUND",
    }
    rules: list[tuple[bool, type[CometChatAPIError]]] = [
        (status == 429 or code == "ERR_TOO_MANY_REQUESTS", CometChatRateLimited),
        (status == 401 or code.startswith("AUTH_ERR"), CometChatAuthError),
        (status == 404 or not_found, CometChatNotFound),
        (status == 403, CometChatForbidden),
        (status in (400, 422), CometChatBadRequest),
        (status >= 500, CometChatServerError),
    ]
    return next((cls for matches, cls in rules if matches), CometChatAPIError)


ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def clean_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


answers = st.fixed_dictionaries(
    {
        "status": statuses,
        "reason": latin1 | st.sampled_from(["", "Bad \x00 Request"]),
        "headers": headers,
    }
)


@PURE
@given(bodies | error_envelopes, answers, st.sampled_from([None, "alice"]))
def test_raise_for_error(client, content, answer, owner):
    status, reason = answer["status"], answer["reason"]
    made = response(status, "application/json", reason, dict(answer["headers"]))
    try:
        raise_for_error("GET /x", made, content, "/conversations", owner)
    except CometChatAPIError as raised:
        exc = raised
    else:
        raise AssertionError("raise_for_error returned")
    envelope = _error_envelope(content)
    raw_code = envelope.get("code")
    # Only a code that looks like one is kept: it is stored, logged and compared.
    code = raw_code if isinstance(raw_code, str) and ERROR_CODE.fullmatch(raw_code) else None
    assert isinstance(exc, expected_class(status, code))
    assert exc.status == status
    assert exc.code == code
    assert isinstance(exc.details, dict)
    for figure in (exc.rate_limit.limit, exc.rate_limit.remaining, exc.rate_limit.reset):
        assert figure is None or 0 <= figure < 10**20
    if isinstance(exc, CometChatRateLimited):
        assert exc.retry_after is None or 0.0 <= exc.retry_after <= MAX_WAIT
    # CometChat's texts are cleaned: storable, bounded.
    assert clean_text(exc.dev_message)
    assert len(exc.dev_message) <= 500
    assert clean_text(exc.body)
    assert len(exc.body) <= 2000
    assert clean_text(exc.api_message)
    assert clean_text(operator_message(exc))
    assert exc.code is None or clean_text(exc.code)


@PURE
@given(bodies | error_envelopes)
def test_error_envelope(content):
    envelope = _error_envelope(content)
    assert isinstance(envelope, dict)


# -- the same, through the fake server over loopback ------------------------------------------


@pytest.fixture(scope="module")
def fake_client(cometchat_fake_server):
    fake = cometchat_fake_server
    fake.reset()
    with CometChatClient(settings=_settings(fake.base_url, fake.api_key)) as instance:
        yield fake, instance
    fake.reset()


def _call(instance: CometChatClient, which: str) -> Iterator[Any]:
    if which == "list":
        pages = instance.iter_conversation_pages(on_behalf_of="alice", per_page=2)
        for page in itertools.islice(pages, 3):  # a body may claim endless pages
            assert isinstance(page, Page)
            yield from page.items
    elif which == "raw-list":
        pages = instance.iter_raw_conversation_pages(on_behalf_of="alice", per_page=2)
        for page in itertools.islice(pages, 3):
            for row in page.items:
                assert CONVERSATION_ID_RE.match(row["conversationId"].lower())
            yield from ()
    elif which == "users":
        yield from itertools.islice(instance.list_users(per_page=2), 6)
    elif which == "user":
        yield instance.get_user_conversation("bob", on_behalf_of="alice")
    elif which == "group":
        yield instance.get_group_conversation("book-club", on_behalf_of="alice")
    else:
        yield instance.get_user("bob")


def _check_result(item: Any) -> None:
    if isinstance(item, Conversation):
        assert_conversation(item, item.raw)
    else:
        assert_user(item)


FAKE = settings(PURE, max_examples=FAKE_EXAMPLES)
CALLS = st.sampled_from(["list", "raw-list", "users", "user", "group", "get-user"])
hostile_bodies = st.one_of(
    bodies,
    st.builds(
        lambda rows, meta: encoded({"data": rows, "meta": meta}, "utf-8"),
        st.lists(hostile_conversations(), max_size=3),
        st.fixed_dictionaries({"pagination": pagination_values}),
    ),
    st.builds(lambda row: encoded({"data": [row]}, "ascii"), hostile_conversations()),
    st.builds(lambda row: encoded({"data": row}, "ascii"), hostile_conversations()),
)


@FAKE
@given(hostile_bodies, CALLS)
def test_client_success_bodies_through_the_fake(fake_client, content, which):
    """Any 200 body: valid values, or CometChatResponseError (a list's later page may also be
    the fake's own answer: CometChat errors about the unknown owner are fine there)."""
    fake, instance = fake_client
    fake.clear_faults()
    fake.inject(Fault("wrong_shape", body=content, times=3))
    refusal: CometChatError | None = None
    try:
        for item in _call(instance, which):
            _check_result(item)
    except CometChatError as exc:
        refusal = exc
    finally:
        fake.clear_faults()
    assert refusal is None or isinstance(refusal, CometChatResponseError | CometChatNotFound)


@FAKE
@given(
    bodies | error_envelopes,
    st.integers(300, 599).filter(lambda s: s != 304) | st.sampled_from([400, 401, 429, 503]),
    st.dictionaries(header_names, header_values.filter(lambda v: v.isascii()), max_size=3),
    CALLS,
)
def test_client_error_statuses_through_the_fake(fake_client, content, status, extra, which):
    fake, instance = fake_client
    fake.clear_faults()
    cleaned = {name: value.strip() for name, value in extra.items() if value.strip().isprintable()}
    fake.inject(Fault("status", status=status, body=content, headers=cleaned, times=3))
    try:
        list(_call(instance, which))
    except CometChatAPIError as exc:
        refusal = exc
    else:
        raise AssertionError(f"HTTP {status} did not raise")
    finally:
        fake.clear_faults()
    assert refusal.status == status
    assert isinstance(refusal.rate_limit, RateLimitInfo)


# -- bugs these properties found, fixed: kept as examples -------------------------------------


@pytest.mark.parametrize(
    ("parser", "data"),
    [
        (parse_conversation, {**BASES[0], "unreadMessageCount": "--5"}),
        (parse_conversation, {**BASES[0], "updatedAt": "--1630481413"}),
        (parse_user, {"uid": "bob", "createdAt": "--1"}),
        (parse_group, {"guid": "g", "membersCount": "--3"}),
        (parse_message, {"id": "1", "sentAt": "---1"}),
        (parse_pagination, {"pagination": {"count": "--1"}}),
    ],
    ids=["unread", "updatedAt", "user", "group", "message", "pagination"],
)
def test_regression_several_minus_signs(parser, data):
    with pytest.raises(PayloadShapeError):
        parser(data)


def test_regression_several_minus_signs_updated_at_of():
    assert updated_at_of("--5") == 0


def test_regression_several_minus_signs_escapes_the_client(fake_client):
    fake, instance = fake_client
    row = {**BASES[0], "unreadMessageCount": "--5"}
    fake.inject(Fault("wrong_shape", body={"data": [row]}))
    try:
        with pytest.raises(CometChatResponseError):
            instance.get_group_conversation("project-group", on_behalf_of="alice")
    finally:
        fake.clear_faults()


def test_regression_parse_message_huge_integer_id():
    with pytest.raises(PayloadShapeError):
        parse_message({"id": 10**5000})


@pytest.mark.parametrize("code", ["ERR_\x00", "ERR_\ud800", "AUTH_ERR_\x00"])
def test_regression_error_code_is_not_cleaned(client, code):
    content = json.dumps({"error": {"code": code, "message": "m"}}).encode()
    with pytest.raises(CometChatAPIError) as caught:
        raise_for_error("GET /x", response(400, "application/json"), content, "/x", None)
    assert clean_text(caught.value.code or "")
    assert clean_text(operator_message(caught.value))


@pytest.mark.parametrize(
    "values",
    [
        {"X-Rate-Limit": "5\x1f"},
        {"X-Rate-Limit-Remaining": "\x1c5"},
        {"X-Rate-Limit-Reset": "1700000000\x1e"},
        {"Retry-After": "\x1d1"},
    ],
    ids=["limit", "remaining", "reset", "retry-after"],
)
def test_regression_header_with_a_separator_character(values):
    headers = CaseInsensitiveDict(values)
    info = parse_rate_limit(headers)
    assert info.limit is None or info.limit >= 0
    seconds = seconds_to_wait(headers, now=1_700_000_000.0)
    assert seconds is None or 0.0 <= seconds <= MAX_WAIT


def test_regression_header_with_a_separator_character_escapes_the_client(fake_client):
    fake, instance = fake_client
    fake.inject(
        Fault("wrong_shape", body={"data": {"uid": "bob"}}, headers={"X-Rate-Limit": "5\x1f"})
    )
    try:
        assert instance.get_user("bob").uid == "bob"
    finally:
        fake.clear_faults()


def test_regression_reason_phrase_is_not_cleaned(client):
    made = response(400, "text/plain", reason="Bad\x00Request")
    with pytest.raises(CometChatBadRequest) as caught:
        raise_for_error("GET /x", made, b"", "/x", None)
    assert clean_text(caught.value.api_message)
    assert clean_text(operator_message(caught.value))


@pytest.mark.django_db
@pytest.mark.parametrize("code", ["ERR_\ud800", "ERR_\x00"], ids=["surrogate", "nul"])
def test_regression_unclean_error_code_breaks_the_sync_run(cometchat_fake, settings, alice, code):
    from django.db import connection

    from django_cometchat.models import SyncRun
    from django_cometchat.services import sync_conversations

    if "\x00" in code and connection.vendor != "postgresql":
        pytest.skip("SQLite stores a NUL")
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "UID_RESOLVER": "tests.resolvers.uid_from_username",
        "MAX_RETRIES": 0,
    }
    cometchat_fake.add_user("alice")
    body = json.dumps({"error": {"code": code, "message": "m"}}).encode()  # ASCII escapes
    cometchat_fake.inject(Fault("status", status=400, body=body))
    with pytest.raises(CometChatBadRequest):
        sync_conversations(alice)
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.FAILED
