from __future__ import annotations

import json

import pytest

from django_cometchat.conversation_types import (
    Group,
    PayloadShapeError,
    User,
    parse_conversation,
    parse_pagination,
    parse_user,
    unwrap_single,
)
from tests import FIXTURES


def load(name):
    return json.loads((FIXTURES / name).read_text())


def user_conversation(**overrides):
    payload = {
        "conversationId": "alice_user_bob",
        "conversationType": "user",
        "unreadMessageCount": "2",
        "createdAt": 1630000000,
        "updatedAt": 1630000100,
        "conversationWith": {"uid": "bob", "name": "Bob Stone", "status": "offline"},
        "lastMessage": {
            "id": "7",
            "sender": "bob",
            "data": {"text": "hello"},
            "sentAt": 1630000100,
        },
        "somethingNew": {"kept": True},
    }
    payload.update(overrides)
    return payload


def test_fixture_conversation_parses():
    conversation = parse_conversation(load("list-all-conversations.200.json")["data"][0])
    assert conversation.conversation_id == "group_project-group"
    assert conversation.conversation_type == "group"
    assert conversation.unread_message_count == 0
    assert isinstance(conversation.conversation_with, Group)
    assert conversation.peer_id == "project-group"
    assert conversation.peer_name == "Project Group1"
    assert conversation.last_message is not None
    assert conversation.last_message.id == "50"
    assert conversation.updated_at == 1630481413


@pytest.mark.parametrize(("raw", "expected"), [("2", 2), (2, 2), ("0", 0), (None, 0)])
def test_unread_count_string_or_integer(raw, expected):
    assert (
        parse_conversation(user_conversation(unreadMessageCount=raw)).unread_message_count
        == expected
    )


def test_missing_last_message_and_unknown_fields_kept():
    payload = user_conversation()
    del payload["lastMessage"]
    conversation = parse_conversation(payload)
    assert conversation.last_message is None
    assert conversation.raw["somethingNew"] == {"kept": True}
    assert isinstance(conversation.conversation_with, User)
    assert conversation.peer_id == "bob"


@pytest.mark.parametrize(
    "broken",
    [
        {"conversationType": "channel"},
        {"conversationId": ""},
        {"conversationWith": "bob"},
        {"updatedAt": "yesterday"},
        {"unreadMessageCount": True},
        {"conversationWith": {"name": "no uid"}},
    ],
)
def test_wrong_shapes_raise(broken):
    with pytest.raises(PayloadShapeError):
        parse_conversation(user_conversation(**broken))


def test_single_object_or_list_of_one():
    obj = {"uid": "x"}
    assert unwrap_single([obj], "user") is obj
    assert unwrap_single(obj, "user") is obj
    with pytest.raises(PayloadShapeError):
        unwrap_single([obj, obj], "user")
    with pytest.raises(PayloadShapeError):
        unwrap_single([], "user")


def test_pagination_and_untrusted_total():
    meta = load("list-users.200.json")["meta"]
    pagination = parse_pagination(meta)
    assert pagination is not None
    assert (pagination.total, pagination.count, pagination.is_last) == (0, 5, True)
    assert parse_pagination({}) is None
    later = parse_pagination(
        {"pagination": {"current_page": "1", "total_pages": "3", "count": 1, "per_page": 1}}
    )
    assert later is not None
    assert later.is_last is False


def test_user_fixture():
    user = parse_user(load("get-user.200.json")["data"])
    assert (user.uid, user.name, user.role) == ("cometchat-uid-6", "Barry Allen", "manager")
