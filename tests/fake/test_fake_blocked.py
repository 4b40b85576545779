"""Blocked users drop out of conversation lists unless asked for (API.md §0.1, §2.1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from django_cometchat.testing import FakeCometChat
from tests.fake.test_fake_server import call, error_of, ids

SYNC = {"includeBlockedUsers": "true", "withBlockedInfo": "true"}


@pytest.fixture
def fake(cometchat_fake_server: FakeCometChat) -> Iterator[FakeCometChat]:
    """alice talks with bob, carol and the "team" group; alice has blocked bob."""
    fake = cometchat_fake_server
    fake.reset()
    for uid in ("alice", "bob", "carol"):
        fake.add_user(uid)
    fake.add_group("team", members=["alice", "bob", "carol"])
    fake.send_message("bob", to_user="alice")
    fake.send_message("carol", to_user="alice")
    fake.send_message("bob", to_group="team")
    fake.block_user("alice", "bob")
    yield fake
    fake.reset()


def listed(fake: FakeCometChat, owner: str | None, **params: Any) -> list[dict[str, Any]]:
    response = call(fake, "/conversations", owner, **params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_blocked_users_drop_out_of_the_owners_list(fake: FakeCometChat) -> None:
    assert ids(call(fake, "/conversations", "alice")) == ["group_team", "alice_user_carol"]
    total = call(fake, "/conversations", "alice").json()["meta"]["pagination"]["total"]
    assert total == 2
    everything = ids(call(fake, "/conversations", "alice", includeBlockedUsers="true"))
    assert everything == ["group_team", "alice_user_carol", "alice_user_bob"]
    assert ids(call(fake, "/conversations", "alice", includeBlockedUsers="false")) == [
        "group_team",
        "alice_user_carol",
    ]
    # One-way: bob, who was blocked, still sees the conversation, and the group stays for both.
    assert "alice_user_bob" in ids(call(fake, "/conversations", "bob"))
    fake.unblock_user("alice", "bob")
    assert ids(call(fake, "/conversations", "alice")) == everything


def test_filters_apply_to_what_is_left(fake: FakeCometChat) -> None:
    assert ids(call(fake, "/conversations", "alice", unread="true")) == [
        "group_team",
        "alice_user_carol",
    ]
    assert ids(call(fake, "/conversations", "alice", conversationType="user", perPage=1)) == [
        "alice_user_carol"
    ]
    with_blocked = call(
        fake, "/conversations", "alice", conversationType="user", includeBlockedUsers="1"
    )
    assert ids(with_blocked) == ["alice_user_carol", "alice_user_bob"]


def test_app_wide_list_hides_per_owner(fake: FakeCometChat) -> None:
    pairs = [
        (c["conversationId"], c["conversationWith"].get("uid", "group")) for c in listed(fake, None)
    ]
    assert ("alice_user_bob", "bob") not in pairs  # alice's row: she blocked bob
    assert ("alice_user_bob", "alice") in pairs  # bob's row of the same conversation
    assert ("alice_user_carol", "carol") in pairs
    everything = [
        (c["conversationId"], c["conversationWith"].get("uid", "group"))
        for c in listed(fake, None, includeBlockedUsers="true")
    ]
    assert set(everything) - set(pairs) == {("alice_user_bob", "bob")}


def test_with_blocked_info_marks_user_peers(fake: FakeCometChat) -> None:
    fake.block_user("carol", "alice")
    rows = {c["conversationId"]: c["conversationWith"] for c in listed(fake, "alice", **SYNC)}
    assert (rows["alice_user_bob"]["blockedByMe"], rows["alice_user_bob"]["hasBlockedMe"]) == (
        True,
        False,
    )
    assert (rows["alice_user_carol"]["blockedByMe"], rows["alice_user_carol"]["hasBlockedMe"]) == (
        False,
        True,
    )
    assert "blockedByMe" not in rows["group_team"]
    assert "hasBlockedMe" not in rows["group_team"]
    seen_by_bob = {c["conversationId"]: c["conversationWith"] for c in listed(fake, "bob", **SYNC)}
    assert seen_by_bob["alice_user_bob"]["hasBlockedMe"] is True
    assert seen_by_bob["alice_user_bob"]["blockedByMe"] is False
    plain = listed(fake, "alice", includeBlockedUsers="true")
    assert all("blockedByMe" not in c["conversationWith"] for c in plain)
    app_wide = listed(fake, None, **SYNC)
    assert {
        c["conversationWith"]["blockedByMe"] for c in app_wide if c["conversationType"] == "user"
    } == {True, False}


def test_single_gets_have_no_blocked_info_even_when_asked(fake: FakeCometChat) -> None:
    # withBlockedInfo belongs to the list endpoint only (API.md §2.1).
    for path in ("/users/bob/conversation", "/conversations/alice_user_bob"):
        one = call(fake, path, "alice", withBlockedInfo="true").json()["data"][0]
        assert one["conversationWith"]["uid"] == "bob"  # blocking does not hide it here
        assert "blockedByMe" not in one["conversationWith"]
    group = call(fake, "/groups/team/conversation", "alice", withBlockedInfo="true")
    assert "blockedByMe" not in group.json()["data"][0]["conversationWith"]


def test_the_syncs_query_sees_every_conversation_over_pages(fake: FakeCometChat) -> None:
    fake.bulk_conversations("alice", 30, prefix="fan")
    for number in range(1, 31, 3):
        fake.block_user("alice", f"fan-{number:02d}")
    seen: list[dict[str, Any]] = []
    for page in (1, 2, 3, 4):
        seen += listed(fake, "alice", perPage=10, page=page, **SYNC)
    assert len(seen) == len({c["conversationId"] for c in seen}) == 33
    blocked = {
        c["conversationWith"]["uid"] for c in seen if c["conversationWith"].get("blockedByMe")
    }
    assert blocked == {"bob"} | {f"fan-{n:02d}" for n in range(1, 31, 3)}
    assert len(listed(fake, "alice", perPage=100)) == 33 - len(blocked)


def test_block_arguments_are_checked(fake: FakeCometChat) -> None:
    with pytest.raises(ValueError, match="themselves"):
        fake.block_user("alice", "ALICE")
    with pytest.raises(KeyError, match="ghost"):
        fake.block_user("alice", "ghost")
    fake.block_user("Alice", "Bob")  # again, and UIDs are case-insensitive: no change
    fake.unblock_user("carol", "bob")  # never blocked: nothing to do
    bad = call(fake, "/conversations", "alice", includeBlockedUsers="maybe")
    assert bad.status_code == 400
    assert error_of(bad)["details"] == {
        "includeBlockedUsers": ["The includeBlockedUsers field must be true or false."]
    }
    fake.reset()
    fake.add_user("alice")
    fake.add_user("bob")
    fake.send_message("bob", to_user="alice")
    assert ids(call(fake, "/conversations", "alice")) == ["alice_user_bob"]  # reset unblocks
