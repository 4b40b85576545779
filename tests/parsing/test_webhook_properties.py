"""Property tests (Hypothesis) of the webhook parser, ``webhook_types.parse_webhook``.

The property, as for every parser of upstream data (tests/parsing/test_parsers_properties.py, whose
strategies this file reuses): any JSON value either parses into a valid ``Delivery`` or raises
``CometChatResponseError`` (``WebhookPayloadError`` is one), never another exception. Valid: the
trigger is a lowercase event name, the dedupe key 64 hex digits and the same for the same body,
every UID and GUID matches ``^[a-z0-9_-]{1,100}$`` and every conversation id
``^[a-z0-9_-]{1,206}$`` (a hostile id is never used), each of them came from the body, and the
body is JSON every supported database stores. No over-refusal: every event inside the contract
is accepted, with the targets it names. And the view itself, fed any body, answers 200 or 400 and
records the delivery, never a 500.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from django_cometchat.conversation_types import check_storable
from django_cometchat.exceptions import CometChatResponseError
from django_cometchat.models import WebhookEvent
from django_cometchat.webhook_types import (
    BLOCK_TRIGGERS,
    GROUP_TRIGGERS,
    HANDLED_TRIGGERS,
    KNOWN_TRIGGERS,
    MAX_BLOCKED,
    MAX_MEMBERS,
    MEMBER_LOST_TRIGGERS,
    RECEIPT_TRIGGERS,
    Delivery,
    parse_webhook,
    trigger_of,
)
from tests import FIXTURES
from tests.parsing.test_parsers_properties import (
    CONVERSATION_ID_RE,
    MISSING,
    PURE,
    UID_RE,
    any_json,
    digits_or_int,
    ids,
    json_values,
    same_json,
    scalars,
    seconds,
    set_path,
    storable_by_spec,
    storable_json,
    valid_id,
)
from tests.surface import basic_authorization, published_webhook

HOSTILE_EXAMPLES = 400
DB_EXAMPLES = 60  # each is a request through the test client and a row or two

TRIGGER_RE = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
KEY_RE = re.compile(r"[0-9a-f]{64}\Z")
WEBHOOK = "/cometchat/webhook/"
AUTH = basic_authorization()

triggers = st.sampled_from([*HANDLED_TRIGGERS, *KNOWN_TRIGGERS, "", "Message_Sent", "x" * 65])


# -- bases: one valid body per shape the parser accepts ----------------------------------------


def _fixture() -> dict[str, Any]:
    return published_webhook("message_sent")


def _action(message: dict[str, Any], action: str) -> dict[str, Any]:
    acted_on = {**message, "editedAt": 1696934999, "updatedAt": 1696934999}
    return {
        **message,
        "id": "2",
        "category": "action",
        "type": "message",
        "data": {
            "action": action,
            "entities": {
                "by": {"entity": {"uid": message["sender"]}, "entityType": "user"},
                "on": {"entity": acted_on, "entityType": "message"},
            },
        },
    }


def _bases() -> list[dict[str, Any]]:
    sent = _fixture()
    message = sent["data"]["message"]
    group_message = {
        **message,
        "receiverType": "group",
        "receiver": "book-club",
        "conversationId": "group_book-club",
    }
    envelope = {k: v for k, v in sent.items() if k not in ("trigger", "data")}
    receipt: dict[str, Any] = {
        "receiver": "cometchat-uid-1",
        "receiverType": "user",
        "type": "receipts",
        "sender": {"uid": "cometchat-uid-2"},
        "messageSender": "cometchat-uid-1",
        "body": {"action": "read", "messageId": "1", "user": {"uid": "cometchat-uid-2"}},
    }
    receipt["body"]["timestamp"] = 1696935000
    bodies = [
        sent,
        {**envelope, "trigger": "message_sent", "data": {"message": group_message}},
        {**envelope, "trigger": "message_edited", "data": {"message": _action(message, "edited")}},
        {
            **envelope,
            "trigger": "message_deleted",
            "data": {"message": _action(group_message, "deleted")},
        },
        {**envelope, "trigger": "after_message", "data": message},
        {**envelope, "trigger": "message_read_receipt", "data": receipt},
        {
            **envelope,
            "trigger": "message_delivery_receipt",
            "data": {**receipt, "receiverType": "group", "receiver": "book-club"},
        },
        {
            **envelope,
            "trigger": "message_read_receipt",
            "data": {
                "messageId": "1",
                "readAt": 1696935000,
                "receiverType": "user",
                "receiver": "a",
                "sender": "b",
            },
        },
        {
            **envelope,
            "trigger": "user_blocked",
            "data": {"user": {"uid": "a"}, "blockedUser": {"uid": "b"}, "blockedAt": 1},
        },
        {**envelope, "trigger": "user_unblocked", "data": {"uid": "a", "blockedUids": ["b", "c"]}},
        {**envelope, "trigger": "group_created", "data": {"group": {"guid": "g"}}},
        # CometChat's published examples of every other trigger the app acts on (API.md §7).
        *(published_webhook(path.name[len("webhook.") : -len(".json")]) for path in PUBLISHED),
    ]
    for body in bodies:
        assert parse_webhook(body).handled is (body["trigger"] in HANDLED_TRIGGERS)
    return bodies


PUBLISHED = sorted(
    path for path in FIXTURES.glob("webhook.*.json") if path.name != "webhook.message_sent.json"
)
BASES = _bases()

# Where a field may sit in one of the bases, and what is put there instead.
PATHS: list[tuple[str, ...]] = [
    ("trigger",),
    ("data",),
    ("data", "message"),
    ("data", "message", "id"),
    ("data", "message", "sender"),
    ("data", "message", "receiver"),
    ("data", "message", "receiverType"),
    ("data", "message", "conversationId"),
    ("data", "message", "updatedAt"),
    ("data", "message", "sentAt"),
    ("data", "message", "data", "entities", "on", "entity"),
    ("data", "message", "data", "entities", "on", "entity", "id"),
    ("data", "message", "data", "entities", "on", "entity", "sender"),
    ("data", "message", "data", "entities", "on", "entity", "receiverType"),
    ("data", "message", "data", "entities", "on", "entity", "updatedAt"),
    ("data", "id"),
    ("data", "sender"),
    ("data", "receiver"),
    ("data", "receiverType"),
    ("data", "conversationId"),
    ("data", "messageSender"),
    ("data", "messageId"),
    ("data", "body"),
    ("data", "body", "messageId"),
    ("data", "body", "user"),
    ("data", "body", "user", "uid"),
    ("data", "body", "timestamp"),
    ("data", "user"),
    ("data", "user", "uid"),
    ("data", "blockedUser"),
    ("data", "blockedUser", "uid"),
    ("data", "blockedUids"),
    ("data", "blockedAt"),
    ("data", "users"),
    ("data", "users", "bob"),
    ("data", "users", "bob", "uid"),
    ("data", "by"),
    ("data", "by", "uid"),
    ("data", "members"),
    ("data", "members", "bob"),
    ("data", "members", "bob", "uid"),
    ("data", "group"),
    ("data", "group", "guid"),
    ("data", "group", "conversationId"),
    ("data", "receiptSender"),
    ("data", "receiptReceiver"),
    ("data", "readAt"),
    ("appId",),
    ("region",),
    ("webhook",),
    ("somethingNew",),
]
hostile_values = st.one_of(
    st.just(MISSING),
    ids(100),
    ids(206),
    st.sampled_from(["user", "group", "User", "", "group_", "group_../x", "a_user_b"]),
    st.lists(ids(100), max_size=MAX_BLOCKED + 2),
    triggers,
    json_values,
    scalars,
)


@st.composite
def hostile_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A base body with one to four fields replaced (or removed)."""
    body: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(BASES)))
    for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=4)):
        set_path(body, path, draw(hostile_values))
    return body


# -- what "valid" means ------------------------------------------------------------------------


def strings_in(value: Any) -> set[str]:
    """Every string of a JSON value, lowercased (keys too)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.update(k.lower() for k in item if isinstance(k, str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found.add(item.lower())
        elif isinstance(item, int) and not isinstance(item, bool):
            found.add(str(item))
    return found


def assert_delivery(delivery: Delivery, body: Any) -> None:
    assert isinstance(delivery, Delivery)
    assert TRIGGER_RE.match(delivery.trigger)
    assert delivery.trigger == body["trigger"]
    assert trigger_of(body) == delivery.trigger
    assert KEY_RE.match(delivery.dedupe_key)
    assert delivery.raw is body
    check_storable(delivery.raw)
    assert storable_by_spec(delivery.raw)
    assert delivery.handled is (delivery.trigger in HANDLED_TRIGGERS)
    if not delivery.handled:
        assert delivery.targets == ()
        assert delivery.group_guid is None
    assert not (delivery.targets and delivery.group_guid)
    # Every id is valid and came from the body (lowercased), never made up.
    sent = strings_in(body)
    for target in delivery.targets:
        assert UID_RE.match(target.uid), target.uid
        assert CONVERSATION_ID_RE.match(target.conversation_id), target.conversation_id
        assert target.uid in sent
    if delivery.members is not None:
        assert delivery.trigger in GROUP_TRIGGERS
        assert 1 <= len(delivery.members) <= MAX_MEMBERS
        assert list(delivery.members) == sorted(set(delivery.members))
        for uid in delivery.members:
            assert UID_RE.match(uid), uid
            assert uid in sent
    assert delivery.gone is (delivery.trigger in (*MEMBER_LOST_TRIGGERS, "group_deleted"))
    if delivery.group_guid is not None:
        assert UID_RE.match(delivery.group_guid)
        assert delivery.group_guid in sent or f"group_{delivery.group_guid}" in sent
        assert delivery.group_conversation_id == f"group_{delivery.group_guid}"
    assert len(delivery.targets) == len(set(delivery.targets))
    assert len(delivery.targets) <= 2 * MAX_BLOCKED
    if delivery.trigger in RECEIPT_TRIGGERS:
        assert len(delivery.targets) in (1, 2)
    # The same body, the same key: after a JSON round trip, a copy, a different webhook id.
    again = parse_webhook(json.loads(json.dumps(body)))
    assert again.dedupe_key == delivery.dedupe_key
    assert again.targets == delivery.targets
    other_webhook = parse_webhook({**copy.deepcopy(body), "webhook": "another-webhook"})
    assert other_webhook.dedupe_key == delivery.dedupe_key


def parsed(body: Any) -> Delivery | None:
    try:
        return parse_webhook(body)
    except CometChatResponseError:
        return None


# -- properties --------------------------------------------------------------------------------

envelopes = st.fixed_dictionaries(
    {"trigger": triggers, "data": any_json},
    optional={"appId": json_values, "webhook": json_values},
)


@PURE
@given(any_json | envelopes)
@example({"trigger": "message_sent", "data": {"message": {"id": "1", "receiverType": "group"}}})
@example(BASES[0])
def test_parse_webhook_any_json(body):
    delivery = parsed(body)
    event("accepted" if delivery is not None else "refused")
    if delivery is not None:
        assert_delivery(delivery, body)


@settings(PURE, max_examples=HOSTILE_EXAMPLES)
@given(hostile_bodies())
def test_parse_webhook_hostile_bodies(body):
    delivery = parsed(body)
    event("accepted" if delivery is not None else "refused")
    if delivery is not None:
        assert_delivery(delivery, body)


def pair_id(a: str, b: str) -> str:
    first, second = sorted((a.lower(), b.lower()))
    return f"{first}_user_{second}"


# Two UIDs that differ even lowercased (the second made longer when they do not).
distinct_uids = st.tuples(valid_id(100), valid_id(100)).map(
    lambda pair: pair if pair[0].lower() != pair[1].lower() else (pair[0], pair[1][:98] + "-b")
)
message_ids = valid_id(100) | st.integers(0, 2**63 - 1)
times = st.none() | digits_or_int(seconds)


@st.composite
def valid_events(draw: st.DrawFn) -> tuple[dict[str, Any], set[tuple[str, str]], str | None]:
    """An event inside the contract, with the (owner, conversation) targets and the group GUID
    it must yield."""
    kind = draw(
        st.sampled_from(
            [
                "user message",
                "group message",
                "user receipt",
                "group receipt",
                "block",
            ]
        )
    )
    a, b = draw(distinct_uids)
    guid = draw(valid_id(100))
    extra = draw(storable_json)
    if kind in ("user message", "group message"):
        group = kind == "group message"
        message: dict[str, Any] = {
            "id": draw(message_ids),
            "sender": a,
            "receiverType": "group" if group else "user",
            "receiver": guid if group else b,
            "updatedAt": draw(times),
            "data": {"text": draw(st.text(max_size=10).filter(lambda t: "\x00" not in t))},
            "somethingNew": extra,
        }
        conversation_id = pair_id(a, b)
        if draw(st.booleans()):
            message["conversationId"] = f"group_{guid}" if group else conversation_id
        trigger = draw(st.sampled_from(["message_sent", "message_edited", "message_deleted"]))
        if trigger != "message_sent":
            message = _action(message, trigger.removeprefix("message_"))
        body = {"trigger": trigger, "data": {"message": message}}
        if group:
            return body, set(), guid.lower()
        return body, {(a.lower(), conversation_id), (b.lower(), conversation_id)}, None
    if kind in ("user receipt", "group receipt"):
        group = kind == "group receipt"
        user = draw(st.sampled_from([a, {"uid": a}, {"entity": {"uid": a}}]))
        data = {
            "receiverType": "group" if group else "user",
            "receiver": guid if group else b,
            "messageSender": b,
            "body": {"messageId": draw(message_ids), "user": user, "timestamp": draw(times)},
            "somethingNew": extra,
        }
        body = {"trigger": draw(st.sampled_from(RECEIPT_TRIGGERS)), "data": data}
        if group:
            return body, {(a.lower(), f"group_{guid.lower()}")}, None
        return body, {(a.lower(), pair_id(a, b)), (b.lower(), pair_id(a, b))}, None
    data = {"user": a, "blockedUser": {"uid": b}, "blockedAt": draw(times), "other": extra}
    body = {"trigger": draw(st.sampled_from(BLOCK_TRIGGERS)), "data": data}
    return body, {(a.lower(), pair_id(a, b)), (b.lower(), pair_id(a, b))}, None


@st.composite
def published_events(draw: st.DrawFn) -> tuple[dict[str, Any], set[tuple[str, str]], str | None]:
    """As ``valid_events``, in the shapes API.md §7 publishes for legacy receipts, blocks and
    membership changes."""
    kind = draw(st.sampled_from(["legacy receipt", "published block", "membership"]))
    a, b = draw(distinct_uids)
    guid = draw(valid_id(100))
    extra = draw(storable_json)
    if kind == "legacy receipt":  # API.md §7 "Legacy receipts"
        group = draw(st.booleans())
        data = {
            "messageId": draw(message_ids),
            "receiptType": "read",
            "readAt": draw(times),
            "messageSender": b,
            "receiptSender": a,
            "receiptReceiver": guid if group else b,
            "receiverType": "group" if group else "user",
            "somethingNew": extra,
        }
        body = {"trigger": draw(st.sampled_from(RECEIPT_TRIGGERS)), "data": data}
        if group:
            return body, {(a.lower(), f"group_{guid.lower()}")}, None
        return body, {(a.lower(), pair_id(a, b)), (b.lower(), pair_id(a, b))}, None
    if kind == "membership":  # API.md §7 "Groups": members keyed by UID
        group_object = {"guid": guid, "conversationId": f"group_{guid}", "other": extra}
        trigger = draw(st.sampled_from([t for t in GROUP_TRIGGERS if t != "group_deleted"]))
        data = {"group": group_object, "members": {a: {"uid": a}, b: {"name": "no uid here"}}}
        return {"trigger": trigger, "data": data}, set(), guid.lower()
    # "published block", API.md §7: users keyed by UID, by, no timestamp
    data = {"users": {b: {"uid": b, "name": "B"}}, "by": {"uid": a}, "other": extra}
    body = {"trigger": draw(st.sampled_from(BLOCK_TRIGGERS)), "data": data}
    return body, {(a.lower(), pair_id(a, b)), (b.lower(), pair_id(a, b))}, None


@settings(PURE, max_examples=HOSTILE_EXAMPLES)
@given(valid_events() | published_events())
def test_parse_webhook_accepts_every_valid_event(case):
    """No over-refusal: an event inside the contract is accepted, with the targets it names."""
    body, targets, group = case
    delivery = parse_webhook(body)
    assert_delivery(delivery, body)
    assert {(t.uid, t.conversation_id) for t in delivery.targets} == targets
    assert delivery.group_guid == group
    if body["trigger"] in GROUP_TRIGGERS:
        assert delivery.members == tuple(sorted({uid.lower() for uid in body["data"]["members"]}))


@settings(PURE, max_examples=HOSTILE_EXAMPLES)
@given(valid_events() | published_events(), st.sampled_from(["trigger", "id"]))
def test_different_events_have_different_keys(case, what):
    body, _, _ = case
    other = copy.deepcopy(body)
    if what == "trigger":
        other["trigger"] = {
            "message_sent": "message_edited",
            "message_edited": "message_deleted",
            "message_deleted": "message_sent",
            "message_read_receipt": "message_delivery_receipt",
            "message_delivery_receipt": "message_read_receipt",
            "user_blocked": "user_unblocked",
            "user_unblocked": "user_blocked",
            "group_member_kicked": "group_member_left",
            "group_member_left": "group_member_banned",
            "group_member_banned": "group_member_added",
            "group_member_added": "group_member_joined",
            "group_member_joined": "group_member_unbanned",
            "group_member_unbanned": "group_member_kicked",
        }[body["trigger"]]  # the same body under another trigger: another event
    elif "message" in other["data"]:
        other["data"]["message"]["id"] = "different-id"
    elif "body" in other["data"]:
        other["data"]["body"]["messageId"] = "different-id"
    elif "messageId" in other["data"]:
        other["data"]["messageId"] = "different-id"
    elif "group" in other["data"]:
        other["data"]["group"]["guid"] = "different-guid"
    elif "by" in other["data"]:
        other["data"]["by"] = {"uid": "different-uid"}
    else:
        other["data"]["user"] = "different-uid"
    assert parse_webhook(other).dedupe_key != parse_webhook(body).dedupe_key


# -- the view is the judge ---------------------------------------------------------------------


def encoded(body: Any) -> bytes:
    """``body`` as JSON text; what json cannot write (a 3000-deep value, 5000 digits) is sent
    as it would be written."""
    try:
        return json.dumps(body).encode()
    except RecursionError:
        return b"[" * 3000 + b"]" * 3000
    except ValueError:
        return b'{"trigger": "group_created", "data": ' + b"9" * 5000 + b"}"


bodies = st.one_of(
    hostile_bodies().map(encoded),
    (any_json | envelopes).map(encoded),
    st.binary(max_size=64),
    st.sampled_from([b"", b"{", b"NaN", b'{"trigger": "message_sent", "data": {"n": Infinity}}']),
)


@pytest.mark.django_db
@settings(
    PURE,
    max_examples=DB_EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(bodies)
def test_the_view_answers_any_body_with_200_or_400_and_records_it(raw):
    before = WebhookEvent.objects.count()
    response = Client().post(
        WEBHOOK, data=raw, content_type="application/json", HTTP_AUTHORIZATION=AUTH
    )
    assert response.status_code in (200, 400), response.content
    answer = response.json()
    if response.status_code == 400:
        assert answer["error"]["code"] in ("ERR_MALFORMED_JSON", "ERR_INVALID_PAYLOAD")
        refused = WebhookEvent.objects.latest("pk")
        assert WebhookEvent.objects.count() == before + 1
        assert (refused.status, refused.payload, refused.dedupe_key) == ("failed", None, None)
        assert TRIGGER_RE.match(refused.trigger) or refused.trigger == ""
        check_storable(refused.error)
        event("refused")
        return
    event(answer["status"])
    delivery = parse_webhook(json.loads(raw))
    latest = WebhookEvent.objects.latest("pk")
    if answer["status"] == "ignored" and latest.dedupe_key is None:  # another app's: no key
        assert WebhookEvent.objects.count() == before + 1
        assert latest.error.startswith("Another CometChat")
        assert same_json(latest.payload, json.loads(raw))
        return
    stored = WebhookEvent.objects.get(dedupe_key=delivery.dedupe_key)
    assert stored.trigger == delivery.trigger
    if answer["status"] == "duplicate":  # the first delivery's body stays
        assert WebhookEvent.objects.count() == before
    else:
        assert WebhookEvent.objects.count() == before + 1
        assert same_json(stored.payload, json.loads(raw))
        assert stored.status in ("processed", "ignored", "failed")
