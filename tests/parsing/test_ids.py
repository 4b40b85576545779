from __future__ import annotations

import pytest

from django_cometchat.exceptions import CometChatBadRequest
from django_cometchat.ids import (
    ConversationTarget,
    path_segment,
    resolve_conversation_id,
    validate_id,
)


@pytest.mark.parametrize("good", ["alice", "cometchat-uid-1", "a_b-c", "A" * 100, "Bob"])
def test_valid_ids_are_lowercased(good):
    assert validate_id(good) == good.lower()


@pytest.mark.parametrize(
    "bad",
    ["", "a b", "../admin", "a/b", "x?y=1", "é", "a\nb", "a" * 101, "bob\r\nX-Evil: 1", None, 5],
)
def test_invalid_ids_raise_bad_request(bad):
    with pytest.raises(CometChatBadRequest) as info:
        validate_id(bad)
    assert isinstance(info.value, ValueError)
    assert info.value.code == "ERR_INVALID_ID"


def test_path_segment_is_encoded_and_validated():
    assert path_segment("Cometchat-UID-1") == "cometchat-uid-1"
    with pytest.raises(CometChatBadRequest):
        path_segment("a%2Fb")


@pytest.mark.parametrize(
    ("conversation_id", "owner", "expected"),
    [
        ("group_project-group", "alice", ConversationTarget("group", "project-group")),
        ("alice_user_bob", "alice", ConversationTarget("user", "bob")),
        ("alice_user_bob", "bob", ConversationTarget("user", "alice")),
        # UIDs with underscores, and with "_user_" inside them.
        ("a_user_b_user_c", "a_user_b", ConversationTarget("user", "c")),
        ("a_user_b_user_c", "a", ConversationTarget("user", "b_user_c")),
        (
            "super_hero_1_user_super_hero_2",
            "super_hero_2",
            ConversationTarget("user", "super_hero_1"),
        ),
        # A UID that starts with "group_" is still a user conversation for its owner.
        ("group_a_user_zed", "zed", ConversationTarget("user", "group_a")),
        ("group_a_user_zed", "group_a", ConversationTarget("user", "zed")),
        ("group_a_user_zed", "other", ConversationTarget("group", "a_user_zed")),
        # Case-insensitive like CometChat.
        ("Alice_user_Bob", "ALICE", ConversationTarget("user", "bob")),
        # Unresolvable for this owner: the deprecated endpoint.
        ("carol_user_dave", "alice", ConversationTarget("deprecated", "carol_user_dave")),
        ("supergroup", "alice", ConversationTarget("deprecated", "supergroup")),
    ],
)
def test_resolve_conversation_id(conversation_id, owner, expected):
    assert resolve_conversation_id(conversation_id, owner_uid=owner) == expected


def test_resolve_rejects_hostile_ids():
    with pytest.raises(CometChatBadRequest):
        resolve_conversation_id("../../users", owner_uid="alice")
    with pytest.raises(CometChatBadRequest):
        resolve_conversation_id("alice_user_bob", owner_uid="alice bob")
