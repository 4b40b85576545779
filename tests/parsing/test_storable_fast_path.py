"""check_storable's orjson fast path refuses what the exact walk refuses, and the page parameter
orjson writes is the JSON json.dumps wrote.

Payloads are the list endpoint's conversation objects (API.md §2.1, fixture
conversations_list.json's shape) with one hostile value put into them.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

import pytest

from django_cometchat.conversation_types import MAX_DEPTH, PayloadShapeError, check_storable
from django_cometchat.storage.portable import PortableDialect
from django_cometchat.storage.postgresql import PostgreSQLDialect
from django_cometchat.storage.rows import Row


def conversation(**extra: Any) -> dict[str, Any]:
    return {
        "conversationId": "alice_user_bob",
        "conversationType": "user",
        "unreadMessageCount": 0,
        "updatedAt": 1700000000,
        "conversationWith": {"uid": "bob", "name": "Bob"},
        **extra,
    }


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "fault"),
    [
        (conversation(x=float("nan")), "non-finite"),
        (conversation(x=[1, float("inf")]), "non-finite"),
        (conversation(x={"y": -float("inf")}), "non-finite"),
        (conversation(x=2**63), "outside 64 bits"),
        (conversation(x=-(2**63) - 1), "outside 64 bits"),
        (conversation(x="a\x00b"), "NUL"),
        (conversation(**{"k\x00": 1}), "NUL"),
        (conversation(x="\ud800"), "lone surrogate"),
        (conversation(x=datetime(2024, 1, 1, tzinfo=timezone.utc)), "not JSON"),
        (conversation(x=nested(MAX_DEPTH)), "nested"),
    ],
)
def test_what_the_walk_refuses_the_fast_path_refuses(value: Any, fault: str) -> None:
    with pytest.raises(PayloadShapeError, match=fault):
        check_storable(value)


@pytest.mark.parametrize(
    "value",
    [
        conversation(),
        conversation(x=None, y=[None, 1.5], z={"w": None}),  # nulls go to the walk, and pass
        conversation(name="null", text=":null,[null"),  # the word inside strings
        conversation(x=2**63 - 1, y=-(2**63), z=2**53 + 1),  # past 53 bits: the walk, in range
        conversation(x=nested(MAX_DEPTH - 2)),
        conversation(x="é ✓ 😀", y="\\u0000 as text"),
        OrderedDict(conversation()),  # a dict subclass: the walk
        MappingProxyType(conversation()),  # a Mapping: the walk
        None,
        1e300,
    ],
)
def test_storable_values_pass(value: Any) -> None:
    check_storable(value)


@pytest.mark.parametrize("dialect", [PortableDialect, PostgreSQLDialect])
def test_page_parameter_is_the_json_json_dumps_wrote(dialect: type[PortableDialect]) -> None:
    """Each row by its own field names; PostgreSQL's datetimes written by orjson, the same
    ISO 8601 text as ``isoformat()``."""
    payload = conversation(text='é \u2028 \x01 "q" \\', n=[1.5, 1e16, 2**63 - 1, None, True])
    row = Row(
        conversation_id="alice_user_bob",
        conversation_type="user",
        unread_message_count=3,
        created_at=None,
        updated_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        peer_uid="bob",
        peer_guid="",
        peer_name="Bob ✓",
        payload=MappingProxyType(payload),
        content_hash="0" * 64,
    )
    written = json.loads(dialect().records([row]))
    assert written == [
        {
            "conversation_id": "alice_user_bob",
            "conversation_type": "user",
            "unread_message_count": 3,
            "created_at": None,
            "updated_at": "2024-01-02T03:04:05+00:00",
            "peer_uid": "bob",
            "peer_guid": "",
            "peer_name": "Bob ✓",
            "payload": payload,
            "content_hash": "0" * 64,
        }
    ]


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc),
        datetime(1, 1, 1, tzinfo=timezone.utc),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
    ],
)
def test_postgresqls_page_datetimes_are_isoformats(moment: datetime) -> None:
    row = Row("c", "user", 0, moment, moment, "bob", "", "", {}, "0" * 64)
    (written,) = json.loads(PostgreSQLDialect().records([row]))
    assert written["created_at"] == written["updated_at"] == moment.isoformat()
