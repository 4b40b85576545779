"""Parsing a conversation's messages (django_cometchat.messages_types), on the published shapes.

CometChat publishes no message-list example: the message objects here are the fixtures' own
(API.md §4.3's fields): the action message that is ``lastMessage`` in
``get-user-conversations.200.json`` (``unbanned``) and the text message of
``webhook.message_sent.json``. Deleted, edited and attachment messages add the optional fields
§4.3 lists (``deletedAt``/``deletedBy``, ``editedAt``/``editedBy``, ``data.attachments``) to
the fixture text message; the attachments' item fields are not published (API.md is silent), so
``url`` and ``name`` follow CometChat's SDK model.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_cometchat.conversation_types import PayloadShapeError
from django_cometchat.messages_types import (
    MAX_TEXT,
    Attachment,
    Message,
    MessageCursor,
    parse_message,
    parse_message_page,
)
from tests import FIXTURES


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def action_message() -> dict[str, Any]:
    """§3 / §4.3: the ``unbanned`` action message of get-user-conversations.200.json."""
    message: dict[str, Any] = load("get-user-conversations.200.json")["data"][0]["lastMessage"]
    return message


def text_message() -> dict[str, Any]:
    """§7 / §4.3: the text message of webhook.message_sent.json."""
    message: dict[str, Any] = load("webhook.message_sent.json")["data"]["message"]
    return message


def with_changes(**changes: Any) -> dict[str, Any]:
    message = text_message()
    message.update(changes)
    return message


def test_the_fixture_text_message() -> None:
    message = parse_message(text_message())
    assert message == Message(
        id="1",
        conversation_id="cometchat-uid-1_user_cometchat-uid-2",
        sender="cometchat-uid-1",
        receiver="cometchat-uid-2",
        receiver_type="user",
        category="message",
        type="text",
        sent_at=1696934912,
        updated_at=1696934912,
        text="hi",
    )
    assert not message.is_deleted
    assert not message.is_edited
    assert message.data["entities"]["sender"]["entity"]["name"] == "Andrew Joseph"


def test_the_fixture_action_message_has_an_action_and_no_text() -> None:
    message = parse_message(action_message())
    assert (message.category, message.type, message.action) == ("action", "groupMember", "unbanned")
    assert message.text is None
    assert message.receiver_type == "group"
    assert message.data["entities"]["on"]["entity"]["uid"] == "cometchat-uid-3"


def test_a_deleted_message_has_no_text_nor_attachments_whatever_it_carries() -> None:
    attachment = {"url": "https://files-us.cometchat.io/a.png", "name": "a.png"}
    raw = with_changes(deletedAt=1696935000, deletedBy="cometchat-uid-1")
    raw["data"]["attachments"] = [attachment]
    message = parse_message(raw)
    assert message.is_deleted
    assert (message.deleted_at, message.deleted_by) == (1696935000, "cometchat-uid-1")
    assert message.text is None
    assert message.attachments == ()


def test_an_edited_message() -> None:
    raw = with_changes(editedAt=1696934999, editedBy="cometchat-uid-1", updatedAt=1696934999)
    raw["data"]["text"] = "hi (edited)"
    message = parse_message(raw)
    assert (message.edited_at, message.edited_by, message.text) == (
        1696934999,
        "cometchat-uid-1",
        "hi (edited)",
    )


def test_attachments_keep_url_and_name() -> None:
    raw = with_changes(type="file")
    raw["data"]["attachments"] = [
        {
            "url": "https://files-us.cometchat.io/x/report.pdf",
            "name": "report.pdf",
            "extension": "pdf",
            "mimeType": "application/pdf",
            "size": 12345,
        },
        {"url": "http://example.com/b"},
    ]
    message = parse_message(raw)
    assert message.attachments == (
        Attachment(
            url="https://files-us.cometchat.io/x/report.pdf",
            name="report.pdf",
            extension="pdf",
            mime_type="application/pdf",
            size=12345,
        ),
        Attachment(url="http://example.com/b"),
    )


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.com/a",
        "/relative/path.png",
        "https://",
        "https://example.com/a\nb",
        "https://example.com/" + "a" * 3000,
        42,
        None,
    ],
)
def test_hostile_attachment_urls_are_refused(url: Any) -> None:
    raw = text_message()
    raw["data"]["attachments"] = [{"url": url, "name": "x"}]
    with pytest.raises(PayloadShapeError, match="url"):
        parse_message(raw)


@pytest.mark.parametrize("name", ["a\nb", "x" * 256, 7, "\x1b[31mred"])
def test_hostile_attachment_names_are_refused(name: Any) -> None:
    raw = text_message()
    raw["data"]["attachments"] = [{"url": "https://example.com/a", "name": name}]
    with pytest.raises(PayloadShapeError, match="name"):
        parse_message(raw)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": "1e3"}, "message.id"),
        ({"id": "-1"}, "message.id"),
        ({"id": ""}, "message.id"),
        ({"id": True}, "message.id"),
        ({"id": "9" * 20}, "message.id"),
        ({"sentAt": 10**13}, "message.sentAt"),
        ({"sentAt": None}, "message.sentAt"),
        ({"sentAt": "soon"}, "message.sentAt"),
        ({"editedAt": -1}, "message.editedAt"),
        ({"deletedAt": "yesterday"}, "message.deletedAt"),
        ({"receiverType": "room"}, "receiverType"),
        ({"category": "spam"}, "category"),
        ({"type": "te xt"}, "message.type"),
        ({"conversationId": "../../admin"}, "message.conversationId"),
        ({"sender": "bob/../alice"}, "message.sender"),
        ({"receiver": ""}, "message.receiver"),
        ({"deletedBy": "a b"}, "message.deletedBy"),
        ({"data": []}, "message.data"),
        ({"data": {"text": "\x00"}}, "NUL"),
        ({"data": {"text": "\ud800"}}, "surrogate"),
        ({"data": {"text": "x" * (MAX_TEXT + 1)}}, "message.data.text"),
        ({"data": {"text": 5}}, "message.data.text"),
        ({"data": {"attachments": {"url": "https://a.b"}}}, "attachments"),
    ],
)
def test_hostile_values_are_refused(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadShapeError, match=field.replace(".", r"\.")):
        parse_message(with_changes(**changes))


def test_longest_text_is_accepted() -> None:
    raw = with_changes(data={"text": "x" * MAX_TEXT})
    assert parse_message(raw).text == "x" * MAX_TEXT


def test_a_message_id_may_come_as_an_integer() -> None:
    assert parse_message(with_changes(id=50)).id == "50"


# -- pages ------------------------------------------------------------------------------------


def test_the_published_meta_next_shape() -> None:
    """API.md §4.3: ``meta = {current: {limit, count}, next: {affix, sentAt, id}}``."""
    body: dict[str, Any] = {
        "data": [text_message(), action_message()],
        "meta": {
            "current": {"limit": 2, "count": 2},
            "next": {"affix": "prepend", "sentAt": 1630305562, "id": "0"},
        },
    }
    page = parse_message_page(body)
    assert [m.id for m in page.messages] == ["1", "50"]
    assert page.next == MessageCursor(affix="prepend", id="0", sent_at=1630305562)
    assert (page.limit, page.has_more, page.is_last) == (2, None, False)
    body["meta"]["current"] = {"limit": 3, "count": 2}  # a short page ends the walk
    assert parse_message_page(body).is_last


def test_the_pagination_and_cursor_shape() -> None:
    """API.md §4.1/§8.5: ``meta.pagination`` with a cursor in ``meta`` or at the top level."""
    cursor = {"affix": "append", "sentAt": 1696934912, "id": "2"}
    pagination = {"total": 3, "count": 1, "per_page": 1, "current_page": 1, "total_pages": 3}
    in_meta: dict[str, Any] = {
        "data": [text_message()],
        "meta": {"pagination": pagination, "cursor": cursor},
    }
    on_top: dict[str, Any] = {
        "data": [text_message()],
        "meta": {"pagination": pagination},
        "cursor": cursor,
    }
    for body in (in_meta, on_top):
        page = parse_message_page(body)
        assert page.next == MessageCursor(affix="append", id="2", sent_at=1696934912)
        assert (page.limit, page.has_more, page.is_last) == (1, True, False)
    last = copy.deepcopy(in_meta)
    last["meta"]["pagination"]["total_pages"] = 1
    assert parse_message_page(last).is_last


def test_an_empty_page_or_one_without_cursor_is_the_last() -> None:
    assert parse_message_page({"data": [], "meta": {"current": {"limit": 10, "count": 0}}}).is_last
    assert parse_message_page({"data": [text_message()]}).is_last


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"id": "1"}},
        {"data": "nope"},
        [],
        {"data": [], "meta": []},
        {"data": [], "meta": {"next": {"affix": "sideways", "id": "1"}}},
        {"data": [], "meta": {"next": {"affix": "append", "id": "1; DROP"}}},
        {"data": [], "meta": {"current": {"limit": 0}}},
        {"data": [], "meta": {"next": []}},
    ],
)
def test_malformed_pages_are_refused(body: Any) -> None:
    with pytest.raises(PayloadShapeError):
        parse_message_page(body)


def test_a_page_repeating_a_message_id_is_refused() -> None:
    with pytest.raises(PayloadShapeError, match="twice"):
        parse_message_page({"data": [text_message(), text_message()]})


# -- properties -------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = (
    "id",
    "conversationId",
    "sender",
    "receiver",
    "receiverType",
    "category",
    "type",
    "sentAt",
    "updatedAt",
    "editedAt",
    "deletedAt",
    "deletedBy",
    "data",
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from([text_message, action_message]),
    field=st.sampled_from(FIELDS),
    value=JSON_VALUES,
)
def test_any_value_in_any_field_parses_or_is_refused_cleanly(base, field, value) -> None:
    """A fixture message with one field replaced by any JSON: a checked Message, or the
    package's parse error, never another exception."""
    raw = base()
    raw[field] = value
    try:
        message = parse_message(raw)
    except PayloadShapeError:
        return
    assert message.id.isdigit()
    assert 0 <= message.sent_at <= 253_402_300_799
    assert message.text is None or (isinstance(message.text, str) and len(message.text) <= MAX_TEXT)
    if message.is_deleted:
        assert message.text is None
        assert message.attachments == ()


@settings(max_examples=200)
@given(body=JSON_VALUES)
def test_any_json_page_parses_or_is_refused_cleanly(body) -> None:
    try:
        page = parse_message_page(body)
    except PayloadShapeError:
        return
    assert page.is_last in (True, False)
