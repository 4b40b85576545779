"""The fake CometChat server answers in the shapes of CometChat's published examples.

Every response is fetched over real HTTP and compared, key by key and JSON type by JSON type, with
the spec's example bodies (copied into ``tests/fixtures/cometchat/``; ``../shared`` is the
fallback). The examples only show group conversations whose ``lastMessage`` is an *action*
message, so one-to-one conversations are compared with a shape composed from the examples' parts:
the conversation envelope, a user from ``list-users`` and the text message of the
``message_sent`` webhook example.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import pytest
import requests

from django_cometchat.conversation_types import (
    Group,
    User,
    parse_conversation,
    parse_pagination,
    parse_user,
    unwrap_single,
)
from django_cometchat.testing import FakeCometChat
from tests import FIXTURES, ROOT

FIXTURE_DIRS = (FIXTURES, ROOT.parent / "shared" / "cometchat" / "fixtures")

# Fields CometChat documents for these objects that an example happens not to show (API.md §3, §4).
USER_EXTRAS = {"link", "metadata", "lastActiveAt", "updatedAt", "tags", "conversationId"}
ENTITY_PATHS = (
    "$.data[].lastMessage.data.entities.sender.entity",
    "$.data[].lastMessage.data.entities.receiver.entity",
)
# For one-to-one conversations: optional user fields in the peer and in the message entities.
USER_CONVERSATION_EXTRAS = {
    "$.data[].conversationWith": USER_EXTRAS,
    **dict.fromkeys(ENTITY_PATHS, USER_EXTRAS),
}


def load_fixture(name: str) -> Any:
    for directory in FIXTURE_DIRS:
        path = directory / name
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
    raise FileNotFoundError(f"{name} is in none of {[str(d) for d in FIXTURE_DIRS]}")


_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: bool is an int subclass
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    raise TypeError(f"not a JSON value: {value!r}")


def assert_same_shape(
    expected: Any,
    actual: Any,
    path: str = "$",
    *,
    loose: Collection[str] = (),
    extras: Mapping[str, Collection[str]] | None = None,
) -> None:
    """``actual`` has ``expected``'s keys (recursively) with the same JSON types.

    Objects must have exactly the example's keys, plus those listed in ``extras[path]``. Array
    items are all compared with the example's first item. At a path in ``loose`` only the JSON
    type is compared. Paths look like ``$.data[].lastMessage.data``.
    """
    assert json_type(actual) == json_type(expected), (
        f"{path}: expected {json_type(expected)}, got {json_type(actual)} ({actual!r:.80})"
    )
    if path in loose:
        return
    if isinstance(expected, dict):
        missing = set(expected) - set(actual)
        assert not missing, f"{path}: missing keys {sorted(missing)}"
        unexpected = set(actual) - set(expected) - set((extras or {}).get(path, ()))
        assert not unexpected, f"{path}: unexpected keys {sorted(unexpected)}"
        for key, value in expected.items():
            assert_same_shape(value, actual[key], f"{path}.{key}", loose=loose, extras=extras)
    elif isinstance(expected, list) and expected:
        for item in actual:
            assert_same_shape(expected[0], item, f"{path}[]", loose=loose, extras=extras)


def user_conversation_shape(envelope_fixture: str, *, receipts: bool) -> Any:
    """An example envelope whose conversation is one-to-one: a user peer, a text message."""
    body = copy.deepcopy(load_fixture(envelope_fixture))
    conversation = body["data"][0]
    conversation["conversationType"] = "user"
    conversation["conversationWith"] = load_fixture("list-users.200.json")["data"][1]
    message = copy.deepcopy(load_fixture("webhook.message_sent.json")["data"]["message"])
    if receipts:
        message["receipts"] = {"data": [[]]}
    conversation["lastMessage"] = message
    return body


def check_types(conversation: Mapping[str, Any]) -> None:
    """The wire types API.md §3 calls out."""
    assert isinstance(conversation["unreadMessageCount"], str)
    assert conversation["unreadMessageCount"].isdigit()
    assert isinstance(conversation["createdAt"], int)
    assert isinstance(conversation["updatedAt"], int)
    message = conversation["lastMessage"]
    assert isinstance(message["id"], str)
    assert message["id"].isdigit()
    assert isinstance(message["sentAt"], int)
    assert conversation["updatedAt"] == message["sentAt"]
    assert message["conversationId"] == conversation["conversationId"]


@pytest.fixture
def fake(cometchat_fake_server: FakeCometChat) -> Iterator[FakeCometChat]:
    """The fixtures' cast: uid-4 (the owner), uid-6, and the project group."""
    fake = cometchat_fake_server
    fake.reset()
    fake.add_user("cometchat-uid-4", "Susan Marie")
    fake.add_user("cometchat-uid-6", "Barry Allen", link="https://cometchat.com", role="manager")
    fake.add_user("cometchat-uid-3", "George Alan")
    fake.add_group(
        "project-group",
        "Project Group1",
        members=["cometchat-uid-4", "cometchat-uid-3"],
        group_type="private",
        description="project related discussions between members",
    )
    fake.send_message("cometchat-uid-6", to_user="cometchat-uid-4", text="hello Susan")
    fake.send_message("cometchat-uid-3", to_group="project-group", text="standup in 5")
    yield fake
    fake.reset()


def get(
    fake: FakeCometChat, path: str, owner: str | None = "cometchat-uid-4", **params: Any
) -> Any:
    headers = {"apikey": fake.api_key}
    if owner:
        headers["onBehalfOf"] = owner
    response = requests.get(f"{fake.base_url}{path}", headers=headers, params=params, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def test_list_all_conversations_matches_example(fake: FakeCometChat) -> None:
    example = load_fixture("list-all-conversations.200.json")
    body = get(fake, "/conversations")
    assert [c["conversationType"] for c in body["data"]] == ["group", "user"]  # newest first
    group_body = {"data": [body["data"][0]], "meta": body["meta"]}
    assert_same_shape(example, group_body, loose={"$.data[].lastMessage.data"})
    user_body = {"data": [body["data"][1]], "meta": body["meta"]}
    assert_same_shape(
        user_conversation_shape("list-all-conversations.200.json", receipts=True),
        user_body,
        extras=USER_CONVERSATION_EXTRAS,
    )
    for raw in body["data"]:
        check_types(raw)
    assert body["data"][0]["lastMessage"]["receipts"] == {"data": [[]]}

    group = parse_conversation(body["data"][0])
    assert group.conversation_id == "group_project-group"
    assert isinstance(group.conversation_with, Group)
    assert group.conversation_with.scope == "admin"  # uid-4 owns the group
    assert group.conversation_with.members_count == 2
    assert group.unread_message_count == 1
    assert group.last_message is not None
    assert group.last_message.text == "standup in 5"
    user = parse_conversation(body["data"][1])
    assert user.conversation_id == "cometchat-uid-4_user_cometchat-uid-6"
    assert isinstance(user.conversation_with, User)
    assert user.peer_id == "cometchat-uid-6"
    assert user.peer_name == "Barry Allen"
    assert user.unread_message_count == 1
    assert user.updated_at < group.updated_at

    pagination = parse_pagination(body["meta"])
    assert pagination is not None
    assert (pagination.total, pagination.count, pagination.per_page) == (2, 2, 100)
    assert (pagination.current_page, pagination.total_pages, pagination.is_last) == (1, 1, True)


def test_list_as_the_sync_asks_matches_example(fake: FakeCometChat) -> None:
    """includeBlockedUsers + withBlockedInfo: the same shapes, plus two booleans on user peers."""
    fake.block_user("cometchat-uid-4", "cometchat-uid-6")
    body = get(fake, "/conversations", includeBlockedUsers="true", withBlockedInfo="true")
    assert [c["conversationType"] for c in body["data"]] == ["group", "user"]
    example = load_fixture("list-all-conversations.200.json")
    group_body = {"data": [body["data"][0]], "meta": body["meta"]}
    assert_same_shape(example, group_body, loose={"$.data[].lastMessage.data"})
    shape = user_conversation_shape("list-all-conversations.200.json", receipts=True)
    shape["data"][0]["conversationWith"] |= {"blockedByMe": True, "hasBlockedMe": False}
    assert_same_shape(
        shape, {"data": [body["data"][1]], "meta": body["meta"]}, extras=USER_CONVERSATION_EXTRAS
    )
    peer = body["data"][1]["conversationWith"]
    assert (peer["blockedByMe"], peer["hasBlockedMe"]) == (True, False)
    assert parse_conversation(body["data"][1]).peer_id == "cometchat-uid-6"
    hidden = get(fake, "/conversations")
    assert [c["conversationType"] for c in hidden["data"]] == ["group"]


def test_get_user_conversation_matches_example(fake: FakeCometChat) -> None:
    body = get(fake, "/users/cometchat-uid-6/conversation")
    assert_same_shape(
        user_conversation_shape("get-user-conversations.200.json", receipts=False),
        body,
        extras=USER_CONVERSATION_EXTRAS,
    )
    assert len(body["data"]) == 1
    check_types(body["data"][0])
    message = body["data"][0]["lastMessage"]
    assert message["sender"] == "cometchat-uid-6"
    assert message["receiver"] == "cometchat-uid-4"
    assert message["data"]["text"] == "hello Susan"
    receiver = message["data"]["entities"]["receiver"]["entity"]
    assert receiver["conversationId"] == "cometchat-uid-4_user_cometchat-uid-6"
    conversation = parse_conversation(unwrap_single(body["data"], "get-user-conversation"))
    assert conversation.peer_id == "cometchat-uid-6"
    assert conversation.unread_message_count == 1


def test_get_group_conversation_matches_example(fake: FakeCometChat) -> None:
    example = load_fixture("get-group-conversations.200.json")
    body = get(fake, "/groups/project-group/conversation")
    assert_same_shape(example, body, loose={"$.data[].lastMessage.data"})
    check_types(body["data"][0])
    # The text message's entities: a user sender and the group as receiver, shaped like the
    # webhook example's sender and the action example's "for" group entity.
    entities = body["data"][0]["lastMessage"]["data"]["entities"]
    webhook = load_fixture("webhook.message_sent.json")["data"]["message"]["data"]["entities"]
    group_entity = example["data"][0]["lastMessage"]["data"]["entities"]["for"]
    assert_same_shape(webhook["sender"], entities["sender"])
    assert_same_shape(group_entity, entities["receiver"])
    conversation = parse_conversation(unwrap_single(body["data"], "get-group-conversation"))
    assert conversation.peer_id == "project-group"
    assert conversation.unread_message_count == 1


def test_get_conversation_deprecated_matches_example(fake: FakeCometChat) -> None:
    example = load_fixture("get-conversation.200.json")
    body = get(fake, "/conversations/group_project-group")
    assert_same_shape(example, body, loose={"$.data[].lastMessage.data"})
    assert body["data"][0]["lastMessage"]["receipts"] == {"data": [[]]}
    one_to_one = get(fake, "/conversations/cometchat-uid-4_user_cometchat-uid-6")
    assert_same_shape(
        user_conversation_shape("get-conversation.200.json", receipts=True),
        one_to_one,
        extras=USER_CONVERSATION_EXTRAS,
    )
    assert parse_conversation(one_to_one["data"][0]).peer_id == "cometchat-uid-6"


def test_list_users_matches_example(fake: FakeCometChat) -> None:
    example = load_fixture("list-users.200.json")
    # data[1] of the example is a plain user (no link, metadata or block fields).
    plain = {**example, "data": [example["data"][1]]}
    body = get(fake, "/users")
    others = {**body, "data": [u for u in body["data"] if u["uid"] != "cometchat-uid-4"]}
    assert_same_shape(plain, others, extras={"$.data[]": USER_EXTRAS})
    assert [u["uid"] for u in body["data"]] == [
        "cometchat-uid-3",
        "cometchat-uid-4",
        "cometchat-uid-6",
    ]
    by_uid = {u["uid"]: u for u in body["data"]}
    # With onBehalfOf each other user carries the pair's conversationId, as in the example.
    assert by_uid["cometchat-uid-6"]["conversationId"] == "cometchat-uid-4_user_cometchat-uid-6"
    assert "conversationId" not in by_uid["cometchat-uid-4"]
    users = [parse_user(u) for u in body["data"]]
    assert [u.name for u in users] == ["George Alan", "Susan Marie", "Barry Allen"]
    pagination = parse_pagination(body["meta"])
    assert pagination is not None
    assert (pagination.total, pagination.count, pagination.total_pages) == (3, 3, 1)
    anonymous = get(fake, "/users", owner=None)
    assert all("conversationId" not in u for u in anonymous["data"])


def test_get_user_matches_example(fake: FakeCometChat) -> None:
    example = load_fixture("get-user.200.json")
    body = get(fake, "/users/cometchat-uid-6", owner=None)
    assert_same_shape(example, body, extras={"$.data": USER_EXTRAS})
    user = parse_user(body["data"])
    assert (user.uid, user.name, user.role) == ("cometchat-uid-6", "Barry Allen", "manager")
    assert body["data"]["link"] == "https://cometchat.com"
    assert isinstance(user.created_at, int)


def test_shape_comparer_catches_differences() -> None:
    """The comparer itself: wrong types, missing and unexpected keys all fail."""
    assert_same_shape({"a": "1", "b": [{"c": 1}]}, {"a": "2", "b": [{"c": 5}, {"c": 6}]})
    with pytest.raises(AssertionError, match="expected string, got integer"):
        assert_same_shape({"a": "1"}, {"a": 1})
    with pytest.raises(AssertionError, match="missing keys"):
        assert_same_shape({"a": 1, "b": 2}, {"a": 1})
    with pytest.raises(AssertionError, match="unexpected keys"):
        assert_same_shape({"a": 1}, {"a": 1, "z": 2})
    with pytest.raises(AssertionError, match=r"\$\.b\[\]\.c"):
        assert_same_shape({"b": [{"c": 1}]}, {"b": [{"c": 1}, {"c": True}]})
    assert_same_shape({"a": 1}, {"a": 1, "z": 2}, extras={"$": {"z"}})
    assert_same_shape({"a": {"x": 1}}, {"a": {"y": "?"}}, loose={"$.a"})
