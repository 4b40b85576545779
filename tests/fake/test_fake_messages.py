"""The fake's message lists over real HTTP: GET /users/{uid}/messages and
GET /groups/{guid}/messages with onBehalfOf (API.md §4.3), and its options through configure().

Paging follows §4.3's cursor: ``limit`` (default 10, at most 1000), ``affix`` (``prepend`` =
older, ``append`` = newer) and a message ``id``; ``meta = {current: {limit, count}, next:
{affix, sentAt, id}}``. The message objects are compared with the published ones: the action
message that is ``lastMessage`` in ``get-user-conversations.200.json`` and the text message of
``webhook.message_sent.json``. Where API.md is silent (the default affix, whether ``id`` is
inclusive, the order inside a page, what a limit over 1000 does, the attachment item fields),
the fake's choices are the ones documented in ``django_cometchat/testing/messages.py``.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
import requests

from django_cometchat.messages_types import MessagePage, parse_message_page
from django_cometchat.testing import FakeCometChat
from django_cometchat.testing.options import FakeOptions
from tests import FIXTURES
from tests.message_history import seed_message_history

TOTAL = 250


def get(fake: FakeCometChat, path: str, owner: str | None, **query: Any) -> requests.Response:
    headers = {"apikey": fake.api_key}
    if owner is not None:
        headers["onBehalfOf"] = owner
    return requests.get(f"{fake.base_url}{path}", headers=headers, params=query, timeout=10)


def page_of(fake: FakeCometChat, path: str, owner: str, **query: Any) -> MessagePage:
    response = get(fake, path, owner, **query)
    assert response.status_code == 200, response.text
    return parse_message_page(response.json())


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def chat(cometchat_fake: FakeCometChat) -> FakeCometChat:
    """alice and bob with 250 messages, interleaved with messages of other conversations (so
    message ids have gaps), and the group "crew" (alice, bob) with 250 of its own."""
    fake = cometchat_fake
    seed_message_history(fake, TOTAL)
    fake.add_user("mallory")
    return fake


def history_ids(fake: FakeCometChat, conversation_id: str) -> list[str]:
    return [str(m.id) for m in fake.state.history[conversation_id]]


ENDPOINTS = [("/users/bob/messages", "alice_user_bob"), ("/groups/crew/messages", "group_crew")]


@pytest.mark.parametrize(("path", "conversation_id"), ENDPOINTS)
@pytest.mark.parametrize("limit", [1, 40, 250, 1000])
def test_prepend_walks_every_message_once_newest_page_first(
    chat: FakeCometChat, path: str, conversation_id: str, limit: int
) -> None:
    seen: list[str] = []
    page = page_of(chat, path, "alice", limit=limit)
    requests_made = 1
    while True:
        ids = [m.id for m in page.messages]
        assert ids == sorted(ids, key=int)  # oldest first inside a page
        assert len(ids) <= limit
        seen = ids + seen
        if page.is_last:
            break
        assert page.next is not None
        assert page.next.affix == "prepend"
        page = page_of(chat, path, "alice", limit=limit, affix="prepend", id=page.next.id)
        requests_made += 1
    expected = history_ids(chat, conversation_id)
    assert len(expected) == TOTAL
    assert seen == expected  # each message exactly once, in order
    assert requests_made == TOTAL // limit + 1  # a short (maybe empty) page ends the walk


@pytest.mark.parametrize(("path", "conversation_id"), ENDPOINTS)
def test_append_walks_from_the_oldest(chat: FakeCometChat, path: str, conversation_id: str) -> None:
    seen: list[str] = []
    page = page_of(chat, path, "alice", limit=33, affix="append")
    while True:
        seen += [m.id for m in page.messages]
        if page.is_last:
            break
        assert page.next is not None
        page = page_of(chat, path, "alice", limit=33, affix="append", id=page.next.id)
    assert seen == history_ids(chat, conversation_id)


@pytest.mark.parametrize(("path", "conversation_id"), ENDPOINTS)
def test_the_cursor_shape_when_configured(
    chat: FakeCometChat, path: str, conversation_id: str
) -> None:
    chat.configure(messages_meta="cursor")
    body = get(chat, path, "alice", limit=100).json()
    assert set(body["meta"]) == {"pagination", "cursor"}
    assert body["meta"]["pagination"] == {
        "total": TOTAL,
        "count": 100,
        "per_page": 100,
        "current_page": 1,
        "total_pages": 3,
    }
    seen: list[str] = []
    page = parse_message_page(body)
    while True:
        seen = [m.id for m in page.messages] + seen
        if page.is_last:
            break
        assert page.next is not None
        page = page_of(chat, path, "alice", limit=100, id=page.next.id)
    assert seen == history_ids(chat, conversation_id)
    assert page.has_more is False  # the last page says so; it is not a short-page guess


def test_published_meta_shape_and_next_cursor(chat: FakeCometChat) -> None:
    ids = history_ids(chat, "alice_user_bob")
    body = get(chat, "/users/bob/messages", "alice").json()
    assert [m["id"] for m in body["data"]] == ids[-10:]  # limit defaults to 10
    assert body["meta"] == {
        "current": {"limit": 10, "count": 10},
        "next": {
            "affix": "prepend",
            "sentAt": body["data"][0]["sentAt"],
            "id": str(int(ids[-10]) - 1),
        },
    }
    # id is inclusive: the message it names comes back
    again = get(chat, "/users/bob/messages", "alice", id=ids[5], limit=2).json()
    assert [m["id"] for m in again["data"]] == ids[4:6]
    newer = get(chat, "/users/bob/messages", "alice", id=ids[5], limit=2, affix="append").json()
    assert [m["id"] for m in newer["data"]] == ids[5:7]
    assert newer["meta"]["next"]["id"] == str(int(ids[6]) + 1)
    # an empty page carries no next
    empty = get(chat, "/users/bob/messages", "alice", id="0").json()
    assert empty == {"data": [], "meta": {"current": {"limit": 10, "count": 0}}}


def test_sent_at_cursor_is_exclusive(chat: FakeCometChat) -> None:
    history = chat.state.history["alice_user_bob"]
    middle = history[100]
    older = get(chat, "/users/bob/messages", "alice", sentAt=middle.sent_at, limit=3).json()
    assert [m["id"] for m in older["data"]] == [str(m.id) for m in history[97:100]]
    newer = get(
        chat, "/users/bob/messages", "alice", sentAt=middle.sent_at, limit=3, affix="append"
    ).json()
    assert [m["id"] for m in newer["data"]] == [str(m.id) for m in history[101:104]]


def test_limit_bounds(chat: FakeCometChat) -> None:
    chat.add_messages("bob", 1000, to_user="alice")
    full = get(chat, "/users/bob/messages", "alice", limit=1000).json()
    assert full["meta"]["current"] == {"limit": 1000, "count": 1000}
    over = get(chat, "/users/bob/messages", "alice", limit=1001)
    assert over.status_code == 400
    assert over.json()["error"]["code"] == "ERR_BAD_REQUEST"
    assert "limit" in over.json()["error"]["details"]
    for bad in ("0", "-1", "ten", "1.5"):
        refused = get(chat, "/users/bob/messages", "alice", limit=bad)
        assert refused.status_code == 400, bad
    chat.configure(messages_limit_above_max="clamp")
    clamped = get(chat, "/users/bob/messages", "alice", limit=5000).json()
    assert clamped["meta"]["current"] == {"limit": 1000, "count": 1000}


@pytest.mark.parametrize(
    "query", [{"affix": "sideways"}, {"id": "abc"}, {"id": "-3"}, {"sentAt": "yesterday"}]
)
def test_malformed_cursors_are_refused(chat: FakeCometChat, query: dict[str, str]) -> None:
    response = get(chat, "/users/bob/messages", "alice", **query)
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == set(query)


# -- message shapes ------------------------------------------------------------------------------


def test_text_and_action_messages_have_the_published_keys(cometchat_fake: FakeCometChat) -> None:
    fake = cometchat_fake
    for uid in ("cometchat-uid-3", "cometchat-uid-4"):
        fake.add_user(uid)
    fake.add_group("project-group", members=["cometchat-uid-4", "cometchat-uid-3"])
    fake.send_message("cometchat-uid-4", to_user="cometchat-uid-3", text="hi")
    fake.add_message(
        "cometchat-uid-4",
        to_group="project-group",
        category="action",
        action="unbanned",
        on="cometchat-uid-3",
        text=None,
    )
    published_text = fixture("webhook.message_sent.json")["data"]["message"]
    published_action = fixture("get-user-conversations.200.json")["data"][0]["lastMessage"]
    [text] = get(fake, "/users/cometchat-uid-3/messages", "cometchat-uid-4").json()["data"]
    [action] = get(fake, "/groups/project-group/messages", "cometchat-uid-3").json()["data"]
    assert set(text) == set(published_text)
    assert set(text["data"]) == set(published_text["data"])
    assert set(text["data"]["entities"]) == {"sender", "receiver"}
    assert set(action) == set(published_action)
    assert (action["category"], action["type"]) == ("action", "groupMember")
    assert set(action["data"]) == set(published_action["data"]) == {"action", "entities"}
    for role in ("by", "on", "for"):
        assert (
            action["data"]["entities"][role]["entityType"]
            == (published_action["data"]["entities"][role]["entityType"])
        )
    assert action["data"]["entities"]["on"]["entity"]["uid"] == "cometchat-uid-3"
    assert parse_message_page({"data": [text, action]}).messages[1].action == "unbanned"


def test_deleted_edited_and_attachment_messages(cometchat_fake: FakeCometChat) -> None:
    fake = cometchat_fake
    fake.add_user("alice")
    fake.add_user("bob")
    pdf = {"url": "https://files.example.com/a.pdf", "name": "a.pdf", "mimeType": "application/pdf"}
    fake.add_message("bob", to_user="alice", text=None, attachments=[pdf])
    fake.add_message("bob", to_user="alice", text="typo fixed", edited_at=1_900_000_000)
    doomed = fake.add_message("bob", to_user="alice", text="secret", attachments=[pdf])
    fake.delete_message(doomed["id"], by="bob")
    body = get(fake, "/users/bob/messages", "alice").json()
    attached, edited, deleted = body["data"]
    assert attached["type"] == "file"
    assert attached["data"]["attachments"] == [pdf]
    assert "text" not in attached["data"]
    assert (edited["editedAt"], edited["editedBy"], edited["data"]["text"]) == (
        1_900_000_000,
        "bob",
        "typo fixed",
    )
    assert deleted["deletedBy"] == "bob"
    assert isinstance(deleted["deletedAt"], int)
    assert "text" not in deleted["data"]
    assert "attachments" not in deleted["data"]
    assert "secret" not in json.dumps(body)
    messages = parse_message_page(body).messages
    assert [m.is_deleted for m in messages] == [False, False, True]
    assert messages[0].attachments[0].name == "a.pdf"
    hidden = get(fake, "/users/bob/messages", "alice", hideDeleted="true").json()
    assert [m["id"] for m in hidden["data"]] == [attached["id"], edited["id"]]


def test_a_deleted_last_message_stays_listed_as_deleted(cometchat_fake: FakeCometChat) -> None:
    fake = cometchat_fake
    fake.add_user("alice")
    fake.add_user("bob")
    fake.send_message("bob", to_user="alice", text="one")
    fake.send_message("bob", to_user="alice", text="two")
    fake.delete_last_message("alice_user_bob")
    first, second = get(fake, "/users/bob/messages", "alice").json()["data"]
    assert first["data"]["text"] == "one"
    assert "deletedAt" in second
    assert "text" not in second["data"]


def test_demo_seed_holds_every_shape(cometchat_fake: FakeCometChat) -> None:
    cometchat_fake.seed_demo()
    direct = page_of(cometchat_fake, "/users/bob/messages", "alice", limit=1000).messages
    group = page_of(cometchat_fake, "/groups/engineering/messages", "dave", limit=1000).messages
    every = direct + group
    assert any(m.category == "action" and m.action == "added" for m in group)
    assert any(m.attachments for m in direct)
    assert any(m.attachments for m in group)
    assert any(m.is_edited for m in every)
    assert any(m.is_deleted and m.text is None for m in direct)
    assert any(m.is_deleted and m.text is None for m in group)


# -- who may read ----------------------------------------------------------------------------


def test_only_participants_and_members_may_read(chat: FakeCometChat) -> None:
    def refused(path: str, owner: str | None) -> tuple[int, str]:
        response = get(chat, path, owner)
        body = response.json()
        assert "data" not in body
        return response.status_code, body["error"]["code"]

    not_accessible = (403, "ERR_CONVERSATION_NOT_ACCESSIBLE")
    assert refused("/groups/crew/messages", "mallory") == not_accessible  # not a member
    assert refused("/users/mallory/messages", "alice") == not_accessible  # never chatted
    assert refused("/users/alice/messages", "alice") == not_accessible  # oneself
    assert refused("/users/nobody/messages", "alice") == (404, "ERR_UID_NOT_FOUND")
    assert refused("/groups/nowhere/messages", "alice") == (404, "ERR_GUID_NOT_FOUND")
    assert refused("/users/bob/messages", "nobody") == (404, "ERR_UID_NOT_FOUND")
    assert refused("/users/bob/messages", None) == (400, "ERR_BAD_REQUEST")
    chat.remove_member("crew", "bob")  # kicked, banned or left: no longer reads the group
    assert refused("/groups/crew/messages", "bob") == not_accessible
    chat.configure(not_accessible_status=404)
    assert refused("/groups/crew/messages", "bob") == (404, "ERR_CONVERSATION_NOT_ACCESSIBLE")
    # the other party reads the same one-to-one conversation
    assert page_of(chat, "/users/alice/messages", "bob").messages
    wrong_key = requests.get(
        f"{chat.base_url}/users/bob/messages",
        headers={"apikey": "wrong", "onBehalfOf": "alice"},
        timeout=10,
    )
    assert wrong_key.status_code == 401


# -- faults ----------------------------------------------------------------------------------


def test_faults_apply_to_the_message_lists(chat: FakeCometChat) -> None:
    chat.fail_next(status=503, path="/users/bob/messages")
    assert get(chat, "/conversations", "alice").status_code == 200  # another path: untouched
    assert get(chat, "/users/bob/messages", "alice").status_code == 503
    assert get(chat, "/users/bob/messages", "alice").status_code == 200

    chat.rate_limit_next(path="/groups/crew/messages", retry_after=7)
    limited = get(chat, "/groups/crew/messages", "alice")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")

    chat.inject(chat_fault("wrong_shape", "/messages"))
    shaped = get(chat, "/groups/crew/messages", "alice")
    assert shaped.json() == {"data": {"unexpected": True}}  # a list endpoint answers an object

    chat.transform_next(lambda body: {**body, "data": body["data"][:1]}, path="/messages")
    assert len(get(chat, "/users/bob/messages", "alice").json()["data"]) == 1

    chat.inject(chat_fault("truncate", "/users/bob/messages"))
    with pytest.raises(requests.JSONDecodeError):
        get(chat, "/users/bob/messages", "alice").json()

    chat.drop_next(path="/groups/crew/messages")
    with pytest.raises(requests.ConnectionError):
        get(chat, "/groups/crew/messages", "alice")
    assert [r.status for r in chat.requests][-1] is None


def chat_fault(kind: Any, path: str) -> Any:
    from django_cometchat.testing import Fault

    return Fault(kind, path=path)


# -- configure -------------------------------------------------------------------------------


def test_configure_validates_and_reset_restores(cometchat_fake: FakeCometChat) -> None:
    fake = cometchat_fake
    with pytest.raises(TypeError, match="'messages_shape'"):
        fake.configure(messages_shape="cursor")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="messages_meta"):
        fake.configure(messages_meta="pages", compression="off")  # type: ignore[arg-type]
    assert fake.options == FakeOptions()  # a refused change changes nothing
    options = fake.configure(messages_meta="cursor", compression="off", rate_limit_per_minute=5)
    assert fake.options is options
    assert (options.messages_meta, options.compression) == ("cursor", "off")
    fake.reset()
    assert fake.options == FakeOptions()
    with pytest.raises(TypeError, match="'colour'"):
        FakeCometChat(colour="blue")  # type: ignore[call-arg]


def test_configure_sets_a_budget_counted_afresh(cometchat_fake: FakeCometChat) -> None:
    fake = cometchat_fake
    fake.add_user("alice")
    fake.configure(rate_limit_per_minute=2, rate_limit_window=3600)
    statuses = [get(fake, "/users", None).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    fake.configure(rate_limit_per_minute=2)
    assert get(fake, "/users", None).status_code == 200


def test_old_option_names_still_work_and_warn(cometchat_fake: FakeCometChat) -> None:
    fake = cometchat_fake
    with pytest.warns(DeprecationWarning, match=r"configure\(not_accessible_status=\.\.\.\)"):
        fake.not_accessible_status = 404
    assert fake.options.not_accessible_status == 404
    with pytest.warns(DeprecationWarning, match=r"fake\.options\.single_as_list"):
        assert fake.single_as_list is True
    with pytest.warns(DeprecationWarning, match="rate_limit_per_minute"):
        fake.set_rate_limit(10, window=30)
    assert (fake.options.rate_limit_per_minute, fake.options.rate_limit_window) == (10, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fake.configure(header_style="both")  # the new way never warns


def test_the_typed_keywords_are_the_options() -> None:
    """``configure()``'s keyword types (``OptionChanges``) and ``FakeOptions`` list the same
    names, so an option added to one and not the other fails here."""
    from dataclasses import fields

    from django_cometchat.testing.options import OptionChanges

    assert set(OptionChanges.__annotations__) == {f.name for f in fields(FakeOptions)}


def test_deleting_the_last_message_drops_last_message(cometchat_fake: FakeCometChat) -> None:
    """API.md §3: ``lastMessage`` is missing when the last message was deleted."""
    fake = cometchat_fake
    fake.add_user("alice")
    fake.add_user("bob")
    first = fake.add_message("bob", to_user="alice", text="one")
    last = fake.add_message("bob", to_user="alice", text="two")
    fake.delete_message(first["id"])  # not the last: lastMessage stays
    conversation = get(fake, "/users/bob/conversation", "alice").json()["data"][0]
    assert conversation["lastMessage"]["id"] == last["id"]
    fake.delete_message(last["id"])
    conversation = get(fake, "/users/bob/conversation", "alice").json()["data"][0]
    assert "lastMessage" not in conversation
    listed = get(fake, "/conversations", "alice").json()["data"][0]
    assert "lastMessage" not in listed
