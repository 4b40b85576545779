"""The REST API over the stored rows and, for refreshes, the fake CometChat over real HTTP."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, event, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from django_cometchat.api.errors import api_error
from django_cometchat.api.pagination import INVALID_CURSOR
from django_cometchat.api.throttling import RefreshRateThrottle
from django_cometchat.conf import DEFAULT_REFRESH_RATE, get_settings
from django_cometchat.exceptions import (
    CometChatAPIError,
    CometChatAuthError,
    CometChatBadRequest,
    CometChatConfigurationError,
    CometChatDeadlineExceeded,
    CometChatError,
    CometChatForbidden,
    CometChatInvalidId,
    CometChatNotFound,
    CometChatOwnerConflict,
    CometChatRateLimited,
    CometChatResponseError,
    CometChatServerError,
    CometChatTimeout,
    CometChatTransportError,
    CometChatUnknownOwner,
    CometChatUserError,
)
from django_cometchat.models import Conversation, ConversationSnapshot, SyncRun, UIDBinding
from django_cometchat.testing import Fault

pytestmark = pytest.mark.django_db

BASE = "/cometchat/"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
FAST = {
    "UID_RESOLVER": "tests.resolvers.uid_from_username",  # "alice-django" -> "alice"
    "BACKOFF_FACTOR": 0.01,
    "BACKOFF_MAX": 0.05,
    "MAX_RETRIES": 1,
    "WEB_RETRY_BUDGET": 0.5,
}
LIST_KEYS = {
    "url",
    "conversation_id",
    "conversation_type",
    "unread_message_count",
    "created_at",
    "updated_at",
    "conversation_with",
    "last_message",
    "fetched_at",
    "missing_since",
}
RUN_KEYS = {
    "url",
    "id",
    "status",
    "trigger",
    "complete",
    "started_at",
    "finished_at",
    "created_count",
    "updated_count",
    "unchanged_count",
    "missing_count",
    "pages",
    "requests",
    "error_code",
    "error_message",
}


class KeyCheckingClient(APIClient):
    """An APIClient that fails the test if any response body holds the CometChat API key."""

    def request(self, **kwargs: Any) -> Any:
        response = super().request(**kwargs)
        key = (django_settings.COMETCHAT or {}).get("API_KEY")
        if key:
            assert str(key).encode() not in response.content
        return response


@pytest.fixture(autouse=True)
def _fast_settings(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, **FAST}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()  # throttle counters live in the default (locmem) cache
    yield
    cache.clear()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(username="alice-django", password="pw-alice")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user(username="bob-django", password="pw-bob")


@pytest.fixture
def anon():
    return KeyCheckingClient()


@pytest.fixture
def api(alice):
    client = KeyCheckingClient()
    client.force_login(alice)
    return client


def client_for(user):
    client = KeyCheckingClient()
    client.force_login(user)
    return client


def make_conversation(
    owner_uid="alice",
    conversation_id="alice_user_bob",
    *,
    minutes=0,
    unread=0,
    peer_name="Bob Stone",
    conversation_type="user",
    missing=False,
    owner=None,
    last_text: str | None = "hi",
):
    updated_at = T0 + timedelta(minutes=minutes)
    peer = conversation_id.removeprefix("group_").split("_user_")[-1]
    payload: dict[str, Any] = {
        "conversationId": conversation_id,
        "conversationType": conversation_type,
        "unreadMessageCount": str(unread),
        "updatedAt": int(updated_at.timestamp()),
        "conversationWith": {("guid" if conversation_type == "group" else "uid"): peer}
        | {"name": peer_name},
    }
    if last_text is not None:
        payload["lastMessage"] = {"id": "1", "data": {"text": last_text}}
    conversation = Conversation.objects.create(
        owner=owner,
        owner_uid=owner_uid,
        conversation_id=conversation_id,
        conversation_type=conversation_type,
        unread_message_count=unread,
        created_at=T0 - timedelta(days=1),
        updated_at=updated_at,
        peer_uid="" if conversation_type == "group" else peer,
        peer_guid=peer if conversation_type == "group" else "",
        peer_name=peer_name,
        payload=payload,
        content_hash=f"hash-{owner_uid}-{conversation_id}-{minutes}",
        fetched_at=T0 + timedelta(hours=1),
        missing_since=T0 + timedelta(hours=2) if missing else None,
    )
    ConversationSnapshot.objects.create(
        conversation=conversation,
        payload=payload,
        content_hash=conversation.content_hash,
        fetched_at=conversation.fetched_at,
    )
    return conversation


def make_run(owner_uid="alice", *, minutes=0, status=SyncRun.Status.SUCCEEDED):
    return SyncRun.objects.create(
        owner_uid=owner_uid,
        trigger=SyncRun.Trigger.COMMAND,
        status=status,
        started_at=T0 + timedelta(minutes=minutes),
        finished_at=T0 + timedelta(minutes=minutes, seconds=2),
        created_count=minutes,
    )


def ids(response):
    assert response.status_code == 200, response.content
    return [row["conversation_id"] for row in response.json()["results"]]


def error_of(response, status, code):
    """The error object of ``response``, after checking the documented shape."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"code", "message", "status"} <= set(error)
    assert (error["status"], error["code"]) == (status, code)
    assert error["message"]
    return error


# -- list ---------------------------------------------------------------------------------------


def test_list_shows_own_conversations_newest_first_in_snake_case(api, alice):
    make_conversation(conversation_id="alice_user_bob", minutes=5, unread=2)
    make_conversation(conversation_id="alice_user_carol", minutes=9, peer_name="Carol Danvers")
    make_conversation(
        conversation_id="group_book-club",
        conversation_type="group",
        peer_name="Book Club",
        minutes=1,
        last_text=None,
    )
    response = api.get(f"{BASE}conversations/")
    assert ids(response) == ["alice_user_carol", "alice_user_bob", "group_book-club"]
    rows = {row["conversation_id"]: row for row in response.json()["results"]}
    bob = rows["alice_user_bob"]
    assert set(bob) == LIST_KEYS
    assert bob["url"] == "http://testserver/cometchat/conversations/alice_user_bob/"
    assert bob["conversation_type"] == "user"
    assert bob["unread_message_count"] == 2  # an integer, though CometChat sends "2"
    assert bob["conversation_with"] == {"uid": "bob", "name": "Bob Stone"}
    assert bob["last_message"] == {"id": "1", "data": {"text": "hi"}}
    assert bob["updated_at"] == "2024-05-01T12:05:00Z"
    assert bob["created_at"] == "2024-04-30T12:00:00Z"
    assert bob["fetched_at"] == "2024-05-01T13:00:00Z"
    assert bob["missing_since"] is None
    assert rows["group_book-club"]["last_message"] is None
    assert rows["group_book-club"]["conversation_with"] == {
        "guid": "book-club",
        "name": "Book Club",
    }


def test_list_selects_by_owner_uid_whatever_the_owner_fk(api, alice, bob):
    make_conversation(conversation_id="alice_user_bob", owner=None)  # synced by bare uid
    make_conversation(conversation_id="alice_user_carol", owner=alice)
    make_conversation(owner_uid="bob", conversation_id="bob_user_carol", owner=alice)
    assert sorted(ids(api.get(f"{BASE}conversations/"))) == ["alice_user_bob", "alice_user_carol"]


def test_list_paginates_with_a_cursor(api):
    for minute in range(5):
        make_conversation(conversation_id=f"alice_user_peer{minute}", minutes=minute)
    first = api.get(f"{BASE}conversations/", {"page_size": 2})
    assert ids(first) == ["alice_user_peer4", "alice_user_peer3"]
    assert "count" not in first.json()  # no COUNT(*)
    second = api.get(first.json()["next"])
    assert ids(second) == ["alice_user_peer2", "alice_user_peer1"]
    third = api.get(second.json()["next"])
    assert ids(third) == ["alice_user_peer0"]
    assert third.json()["next"] is None
    assert api.get(third.json()["previous"]).json()["results"] == second.json()["results"]


def test_list_page_size_defaults_to_50_and_is_capped_at_200(api):
    payload = {"conversationWith": {"uid": "x"}}
    Conversation.objects.bulk_create(
        Conversation(
            owner_uid="alice",
            conversation_id=f"alice_user_p{n}",
            conversation_type="user",
            updated_at=T0 + timedelta(seconds=n),
            payload=payload,
            content_hash="h",
            fetched_at=T0,
        )
        for n in range(205)
    )
    assert len(ids(api.get(f"{BASE}conversations/"))) == 50
    assert len(ids(api.get(f"{BASE}conversations/", {"page_size": 1000}))) == 200


PAGINATED = ["conversations/", "sync-runs/", "conversations/alice_user_bob/history/"]


def cursor(position: str, *, offset: int = 0, reverse: bool = False) -> str:
    """A cursor as DRF encodes one: ``o``, ``r`` and ``p`` form-encoded, then base64."""
    tokens: dict[str, Any] = {"o": offset} if offset else {}
    tokens |= {"r": "1"} if reverse else {}
    return base64.b64encode(urlencode(tokens | {"p": position}).encode()).decode()


def paginated_rows():
    """A conversation with history and a sync run, so that each paginated endpoint has rows
    (once: a property test runs its body many times in one test's database)."""
    if Conversation.objects.filter(owner_uid="alice", conversation_id="alice_user_bob").exists():
        return
    conversation = make_conversation()
    ConversationSnapshot.objects.create(
        conversation=conversation, fetched_at=T0, content_hash="v1", payload={}
    )
    make_run()


@pytest.mark.parametrize("path", PAGINATED)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("garbage", id="not base64"),
        pytest.param(base64.b64encode(b"p=not-a-date").decode(), id="not a date"),
        pytest.param(base64.b64encode(b"p=2024-13-45T00:00:00").decode(), id="month 13"),
        pytest.param(base64.b64encode(b"o=-1&p=2024-01-01").decode(), id="negative offset"),
        # Datetimes no database column holds (issue 14, item 7):
        pytest.param(cursor("9999-12-31T23:59:59-23:00"), id="year 10000 in UTC"),
        pytest.param(cursor("0001-01-01T00:00:00+23:00"), id="year 0 in UTC"),
        pytest.param(
            cursor("9999-12-31T23:59:59-23:00", reverse=True, offset=3), id="reversed, year 10000"
        ),
        pytest.param(cursor("2024-05-01T12:00:00+24:00"), id="an offset of a day"),
        pytest.param(cursor("2024-05-01 12:00:00"), id="naive"),  # every link has its offset
        pytest.param(cursor("2024-05-01T12:00:00+00:00 "), id="trailing space"),
    ],
)
def test_an_invalid_or_tampered_cursor_is_a_400_in_the_error_shape(api, path, value):
    paginated_rows()
    error = error_of(api.get(BASE + path, {"cursor": value}), 400, "ERR_INVALID_REQUEST")
    assert error["details"] == {"cursor": [INVALID_CURSOR]}


@pytest.mark.parametrize("path", PAGINATED)
@pytest.mark.parametrize(
    "position",
    [
        "9999-12-31T23:59:59.999999+00:00",  # the ends of the range are still positions
        "0001-01-01T00:00:00+00:00",
        "9999-12-31T23:59:59+15:59",
        "0001-01-01T00:00:00-15:59",
    ],
)
def test_a_cursor_at_the_ends_of_the_range_pages_normally(api, path, position):
    paginated_rows()
    every = api.get(BASE + path).json()["results"]
    assert every
    after = api.get(BASE + path, {"cursor": cursor(position)})
    assert after.status_code == 200, after.content
    before = api.get(BASE + path, {"cursor": cursor(position, reverse=True)})
    assert before.status_code == 200, before.content
    late = position.startswith("9999")  # every row is older than year 9999
    assert after.json()["results"] == (every if late else [])
    assert before.json()["results"] == ([] if late else every)


@pytest.mark.parametrize(
    "position",
    [
        "2024-05-01T17:32:00+05:30",
        # An offset past 15:59, which PostgreSQL refuses: the moment it names is sent instead.
        "2024-05-02T04:02:00+16:00",
        "2024-04-30T12:03:00-23:59",
    ],
)
def test_a_position_with_another_offset_is_the_same_moment(api, position):
    """A position is compared as the moment it names, on every database: 17:32+05:30 is
    12:02 UTC."""
    for minute in range(4):
        make_conversation(conversation_id=f"alice_user_peer{minute}", minutes=minute)
    utc = api.get(f"{BASE}conversations/", {"cursor": cursor("2024-05-01 12:02:00+00:00")})
    other = api.get(f"{BASE}conversations/", {"cursor": cursor(position)})
    assert ids(utc) == ids(other) == ["alice_user_peer1", "alice_user_peer0"]
    # Its links are the ones DRF gives for the UTC position, so paging on goes on normally.
    assert other.json()["previous"] == utc.json()["previous"]
    assert ids(api.get(other.json()["previous"])) == ["alice_user_peer3", "alice_user_peer2"]


CURSOR_EXAMPLES = 150  # each a request through the test client on the cell's database
OFFSETS = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
)
POSITIONS = st.one_of(
    st.datetimes(timezones=st.builds(timezone, OFFSETS)).map(str),
    st.datetimes(timezones=st.builds(timezone, OFFSETS)).map(datetime.isoformat),
    st.datetimes().map(str),  # naive
    st.text(max_size=40),
)


def in_range_in_utc(position: str) -> bool:
    """Whether ``position`` reads as an aware datetime whose UTC moment is in years 1 to 9999,
    computed without the app's rule: the moment minus its offset, on naive datetimes."""
    try:
        moment = datetime.fromisoformat(position)
        offset = moment.utcoffset()
        if offset is None:
            return False
        moment.replace(tzinfo=None) - offset
    except (ValueError, OverflowError):
        return False
    return True


@hypothesis_settings(
    max_examples=CURSOR_EXAMPLES,
    deadline=None,  # a shared 2-core machine: no flaky timing failures
    database=None,  # no .hypothesis/ directory in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(position=POSITIONS, path=st.sampled_from(PAGINATED), reverse=st.booleans())
@example(position="2026-01-01T00:00:00+16:00", path="conversations/", reverse=False)
@example(position="9999-12-31 23:59:59-23:00", path="sync-runs/", reverse=True)
@example(position="0001-01-01 00:00:00+23:00", path=PAGINATED[2], reverse=False)
def test_any_cursor_position_is_a_page_or_a_400_never_a_database_error(
    api, position, path, *, reverse
):
    """Hostile positions (any offset up to a day, at the ends of the range, naive, any text):
    the database behind this cell answers every position the rule lets through."""
    paginated_rows()
    response = api.get(BASE + path, {"cursor": cursor(position, reverse=reverse)})
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        error = error_of(response, 400, "ERR_INVALID_REQUEST")
        assert error["details"] == {"cursor": [INVALID_CURSOR]}
        assert not in_range_in_utc(position)
        event("refused")
    else:
        event("a page")


# -- filters ------------------------------------------------------------------------------------


@pytest.fixture
def filterable():
    make_conversation(conversation_id="alice_user_bob", minutes=4, unread=3, peer_name="Bob Stone")
    make_conversation(conversation_id="alice_user_carol", minutes=3, peer_name="Carol Danvers")
    make_conversation(
        conversation_id="group_book-club",
        conversation_type="group",
        minutes=2,
        unread=1,
        peer_name="Book Club",
    )
    make_conversation(conversation_id="alice_user_dave", minutes=1, peer_name="Dave", missing=True)
    make_conversation(owner_uid="bob", conversation_id="alice_user_bob", unread=7)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["alice_user_bob", "alice_user_carol", "group_book-club", "alice_user_dave"]),
        ({"conversation_type": "group"}, ["group_book-club"]),
        ({"conversation_type": "user"}, ["alice_user_bob", "alice_user_carol", "alice_user_dave"]),
        ({"unread": "true"}, ["alice_user_bob", "group_book-club"]),
        ({"unread": "false"}, ["alice_user_carol", "alice_user_dave"]),
        ({"search": "bO"}, ["alice_user_bob", "group_book-club"]),  # "Bob", "Book"
        ({"search": "danvers"}, ["alice_user_carol"]),
        ({"missing": "true"}, ["alice_user_dave"]),
        ({"missing": "false"}, ["alice_user_bob", "alice_user_carol", "group_book-club"]),
        ({"unread": "true", "conversation_type": "user"}, ["alice_user_bob"]),
    ],
)
def test_list_filters(api, filterable, query, expected):
    assert ids(api.get(f"{BASE}conversations/", query)) == expected


def test_an_unknown_conversation_type_is_a_400_naming_the_parameter(api, filterable):
    error = error_of(
        api.get(f"{BASE}conversations/", {"conversation_type": "channel"}),
        400,
        "ERR_INVALID_REQUEST",
    )
    assert "conversation_type" in error["details"]


@pytest.mark.parametrize("value", ["maybe", "yes", "2", "tru"])
@pytest.mark.parametrize("name", ["unread", "missing"])
def test_a_boolean_filter_that_is_not_true_or_false_is_a_400(api, filterable, name, value):
    error = error_of(api.get(f"{BASE}conversations/", {name: value}), 400, "ERR_INVALID_REQUEST")
    assert name in error["details"]


@pytest.mark.parametrize(("value", "unread"), [("1", True), ("TRUE", True), ("0", False)])
def test_boolean_filters_take_1_and_0_in_any_case(api, filterable, value, unread):
    expected = ["alice_user_bob", "group_book-club"] if unread else None
    rows = ids(api.get(f"{BASE}conversations/", {"unread": value}))
    assert rows == (expected or ["alice_user_carol", "alice_user_dave"])


# -- detail and history -------------------------------------------------------------------------


def test_detail_has_the_payload_and_a_history_link(api):
    conversation = make_conversation(unread=2)
    response = api.get(f"{BASE}conversations/alice_user_bob/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == LIST_KEYS | {"payload", "history"}
    assert body["payload"] == conversation.payload
    assert body["unread_message_count"] == 2
    assert body["history"] == "http://testserver/cometchat/conversations/alice_user_bob/history/"
    assert api.get(body["url"]).json() == body


def test_detail_ids_are_matched_lowercased_as_cometchat_does(api):
    make_conversation()
    assert api.get(f"{BASE}conversations/Alice_User_Bob/").json()["conversation_id"] == (
        "alice_user_bob"
    )


def test_history_is_newest_first_and_paginated(api):
    conversation = make_conversation()  # one snapshot at T0 + 1h
    for hours in (3, 2):
        ConversationSnapshot.objects.create(
            conversation=conversation,
            payload={"version": hours},
            content_hash=f"v{hours}",
            fetched_at=T0 + timedelta(hours=hours),
        )
    make_conversation(owner_uid="bob")  # bob's copy of the same conversation: not in alice's
    url = api.get(f"{BASE}conversations/alice_user_bob/").json()["history"]
    first = api.get(url, {"page_size": 2})
    assert first.status_code == 200
    rows = first.json()["results"]
    assert [r["content_hash"] for r in rows] == ["v3", "v2"]
    assert set(rows[0]) == {"fetched_at", "content_hash", "payload"}
    assert rows[0] == {
        "fetched_at": "2024-05-01T15:00:00Z",
        "content_hash": "v3",
        "payload": {"version": 3},
    }
    rest = api.get(first.json()["next"]).json()
    assert [r["content_hash"] for r in rest["results"]] == [conversation.content_hash]
    assert rest["next"] is None


def test_unknown_conversation_is_404(api):
    error_of(api.get(f"{BASE}conversations/alice_user_nobody/"), 404, "ERR_NOT_FOUND")
    error_of(api.get(f"{BASE}conversations/alice_user_nobody/history/"), 404, "ERR_NOT_FOUND")


# -- owner isolation ----------------------------------------------------------------------------


def test_each_owner_sees_only_their_own_rows(api, bob):
    make_conversation(owner_uid="alice", conversation_id="alice_user_bob", unread=1)
    make_conversation(owner_uid="bob", conversation_id="alice_user_bob", unread=5)
    make_conversation(owner_uid="bob", conversation_id="bob_user_carol", peer_name="Carol")
    as_bob = client_for(bob)

    assert ids(api.get(f"{BASE}conversations/")) == ["alice_user_bob"]
    assert sorted(ids(as_bob.get(f"{BASE}conversations/"))) == ["alice_user_bob", "bob_user_carol"]
    # The same conversation, each owner's own copy.
    assert api.get(f"{BASE}conversations/alice_user_bob/").json()["unread_message_count"] == 1
    assert as_bob.get(f"{BASE}conversations/alice_user_bob/").json()["unread_message_count"] == 5
    # Another owner's conversation does not exist for alice: the same 404 as an unknown id.
    unknown = api.get(f"{BASE}conversations/alice_user_nobody/").json()
    assert api.get(f"{BASE}conversations/bob_user_carol/").json() == unknown
    error_of(api.get(f"{BASE}conversations/bob_user_carol/history/"), 404, "ERR_NOT_FOUND")
    assert ids(api.get(f"{BASE}conversations/", {"search": "carol"})) == []


def test_sync_runs_are_the_users_own_newest_first(api, bob):
    mine = [make_run(minutes=1), make_run(minutes=3, status=SyncRun.Status.FAILED)]
    theirs = make_run(owner_uid="bob", minutes=2)
    response = api.get(f"{BASE}sync-runs/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["id"] for r in rows] == [mine[1].pk, mine[0].pk]
    assert set(rows[0]) == RUN_KEYS
    assert rows[0]["status"] == "failed"
    assert rows[0]["url"] == f"http://testserver/cometchat/sync-runs/{mine[1].pk}/"
    assert api.get(rows[0]["url"]).json() == rows[0]
    error_of(api.get(f"{BASE}sync-runs/{theirs.pk}/"), 404, "ERR_NOT_FOUND")
    assert [r["id"] for r in client_for(bob).get(f"{BASE}sync-runs/").json()["results"]] == [
        theirs.pk
    ]


# -- authentication -----------------------------------------------------------------------------

EVERY_ENDPOINT = [
    ("get", "conversations/"),
    ("get", "conversations/alice_user_bob/"),
    ("get", "conversations/alice_user_bob/history/"),
    ("get", "conversations/alice_user_bob/messages/"),
    ("post", "conversations/refresh/"),
    ("post", "conversations/alice_user_bob/refresh/"),
    ("get", "sync-runs/"),
    ("get", "sync-runs/1/"),
]


@pytest.mark.parametrize(("method", "path"), EVERY_ENDPOINT)
def test_anonymous_is_refused(anon, method, path):
    make_conversation()
    response = getattr(anon, method)(BASE + path)
    assert response.status_code in (401, 403)
    error_of(response, response.status_code, "ERR_NOT_AUTHENTICATED")


def test_token_authentication_reads_and_refreshes(fake, alice):
    token = Token.objects.create(user=alice)
    client = KeyCheckingClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.post(f"{BASE}conversations/refresh/").status_code == 201  # no CSRF for tokens
    assert len(ids(client.get(f"{BASE}conversations/"))) == 3
    client.credentials(HTTP_AUTHORIZATION="Token wrong")
    # 403, not 401: DRF answers 401 only when the first authentication class (here the
    # session's) can send a WWW-Authenticate challenge.
    error_of(client.get(f"{BASE}conversations/"), 403, "ERR_AUTHENTICATION_FAILED")


def test_session_authentication_enforces_csrf_on_post(fake, alice):
    client = KeyCheckingClient(enforce_csrf_checks=True)
    assert client.login(username="alice-django", password="pw-alice")
    assert ids(client.get(f"{BASE}conversations/")) == []  # safe methods need no token

    error = error_of(client.post(f"{BASE}conversations/refresh/"), 403, "ERR_PERMISSION_DENIED")
    assert "CSRF" in error["message"]
    assert fake.requests == []

    request = RequestFactory().get("/")
    token = get_token(request)
    client.cookies[django_settings.CSRF_COOKIE_NAME] = request.META["CSRF_COOKIE"]
    response = client.post(f"{BASE}conversations/refresh/", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.content


# -- refreshing ---------------------------------------------------------------------------------


def test_refresh_syncs_the_user_and_answers_the_run(fake, api, alice):
    response = api.post(f"{BASE}conversations/refresh/")
    assert response.status_code == 201, response.content
    run = response.json()
    assert set(run) == RUN_KEYS
    assert (run["status"], run["trigger"], run["complete"]) == ("succeeded", "api", True)
    assert (run["created_count"], run["updated_count"], run["pages"], run["requests"]) == (
        3,
        0,
        1,
        1,
    )
    assert (run["error_code"], run["error_message"]) == ("", "")
    assert response["Location"] == run["url"]
    assert [r.headers["onbehalfof"] for r in fake.requests] == ["alice"]

    stored = Conversation.objects.filter(owner_uid="alice")
    assert sorted(stored.values_list("conversation_id", flat=True)) == [
        "alice_user_bob",
        "alice_user_carol",
        "group_book-club",
    ]
    assert set(stored.values_list("owner", flat=True)) == {alice.pk}
    assert len(ids(api.get(f"{BASE}conversations/"))) == 3
    assert api.get(f"{BASE}sync-runs/").json()["results"] == [run]

    again = api.post(f"{BASE}conversations/refresh/").json()
    assert (again["created_count"], again["unchanged_count"]) == (0, 3)


def test_refresh_one_fetches_and_stores_it(fake, api):
    response = api.post(f"{BASE}conversations/alice_user_bob/refresh/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == LIST_KEYS | {"payload", "history"}
    assert body["conversation_with"]["uid"] == "bob"
    assert body["last_message"]["data"]["text"] == "hi alice"
    assert body["payload"]["conversationId"] == "alice_user_bob"
    assert [(r.path, r.headers["onbehalfof"]) for r in fake.requests] == [
        ("/v3/users/bob/conversation", "alice")
    ]
    assert Conversation.objects.get(owner_uid="alice").conversation_id == "alice_user_bob"

    fake.send_message("bob", to_user="alice", text="still there?")
    again = api.post(f"{BASE}conversations/alice_user_bob/refresh/").json()
    assert again["unread_message_count"] == 2
    history = api.get(again["history"]).json()["results"]
    assert history[0]["payload"]["lastMessage"]["data"]["text"] == "still there?"
    assert len(history) == 2


# -- throttling ---------------------------------------------------------------------------------


def test_refreshes_share_the_cometchat_refresh_throttle(fake, api, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"cometchat_refresh": "2/min"},
    }
    assert api.post(f"{BASE}conversations/refresh/").status_code == 201
    assert api.post(f"{BASE}conversations/alice_user_bob/refresh/").status_code == 200
    before = len(fake.requests)
    response = api.post(f"{BASE}conversations/refresh/")
    error = error_of(response, 429, "ERR_THROTTLED")
    assert 0 < error["retry_after"] <= 60
    assert response["Retry-After"] == str(error["retry_after"])
    assert len(fake.requests) == before  # refused before calling CometChat
    assert api.get(f"{BASE}conversations/").status_code == 200  # reads are not throttled


def test_throttle_defaults_when_the_host_sets_no_rate(fake, api, settings):
    # A host listing DRF's ScopedRateThrottle globally, with no rate for our scope, must not crash.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.ScopedRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {},
    }
    assert RefreshRateThrottle().get_rate() == DEFAULT_REFRESH_RATE == "10/min"
    statuses = [
        api.post(f"{BASE}conversations/alice_user_bob/refresh/").status_code for _ in range(11)
    ]
    assert statuses == [200] * 10 + [429]


# -- upstream failures --------------------------------------------------------------------------

REFRESH_PATHS = ["conversations/refresh/", "conversations/alice_user_bob/refresh/"]


@pytest.mark.parametrize("path", REFRESH_PATHS)
def test_rate_limited_upstream_is_503_with_retry_after(fake, api, path):
    fake.inject(Fault("status", status=429, headers={"Retry-After": "30"}, times=10))
    response = api.post(BASE + path)
    error = error_of(response, 503, "ERR_TOO_MANY_REQUESTS")
    assert response["Retry-After"] == "30"
    assert error["retry_after"] == 30


@pytest.mark.parametrize("path", REFRESH_PATHS)
def test_unreachable_upstream_is_503(fake, api, path):
    fake.inject(Fault("drop", times=10))
    error_of(api.post(BASE + path), 503, "ERR_UPSTREAM_UNREACHABLE")


@pytest.mark.parametrize("path", REFRESH_PATHS)
def test_upstream_timeout_is_504(fake, api, settings, path):
    settings.COMETCHAT = {**settings.COMETCHAT, "TIMEOUT": 0.1}
    fault = fake.inject(Fault("delay", delay=0.4, times=10))
    error_of(api.post(BASE + path), 504, "ERR_UPSTREAM_TIMEOUT")
    # The fake logs a request when it answers: let the late answers land in this test's log,
    # not in a later test's.
    arrived = fault.times - sum(left for f, left in fake.pending_faults if f is fault)
    deadline = time.monotonic() + 5
    while len(fake.requests) < arrived and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fake.requests) == arrived == 2  # MAX_RETRIES 1


@pytest.mark.parametrize("path", REFRESH_PATHS)
def test_malformed_upstream_body_is_502(fake, api, path):
    fake.inject(Fault("html", times=10))
    error_of(api.post(BASE + path), 502, "ERR_BAD_UPSTREAM_RESPONSE")


@pytest.mark.parametrize("path", REFRESH_PATHS)
def test_upstream_server_error_is_502_with_its_code(fake, api, path):
    fake.inject(Fault("status", status=500, times=10))
    error = error_of(api.post(BASE + path), 502, "ERR_UPSTREAM_SERVER_ERROR")
    assert "Something went wrong" not in error["message"]  # CometChat's words stay in the log


@pytest.mark.parametrize("path", REFRESH_PATHS)
def test_refused_api_key_is_502_and_never_shows_a_key(fake, api, settings, path):
    settings.COMETCHAT = {**settings.COMETCHAT, "API_KEY": "wrong-key-0123456789"}
    response = api.post(BASE + path)
    error = error_of(response, 502, "ERR_UPSTREAM_AUTH")
    assert "misconfigured" in error["message"]
    assert b"wrong-key-0123456789" not in response.content
    assert fake.api_key.encode() not in response.content
    assert "apikey" not in error["message"].lower()  # CometChat's own message is not passed on


@pytest.mark.parametrize("path", REFRESH_PATHS)
def test_missing_configuration_is_503(fake, api, settings, monkeypatch, path):
    monkeypatch.delenv("COMETCHAT_API_KEY", raising=False)
    settings.COMETCHAT = {**settings.COMETCHAT, "API_KEY": None}
    error = error_of(api.post(BASE + path), 503, "ERR_NOT_CONFIGURED")
    assert "API_KEY" not in error["message"]  # setting names are for the logs, not users
    assert fake.requests == []


def test_failed_sync_is_recorded_and_listed(fake, api):
    fake.inject(Fault("status", status=500, times=10))
    api.post(f"{BASE}conversations/refresh/")
    (run,) = api.get(f"{BASE}sync-runs/").json()["results"]
    assert (run["status"], run["error_code"]) == ("failed", "ERR_MISSION_FAILED")
    # The owner reads the end user's text; the operator's (endpoint, CometChat's words) stays
    # in the admin and the log.
    stored = SyncRun.objects.get()
    assert run["error_message"] == "CometChat failed to answer. Try again later."
    assert "GET /conversations" in stored.error_message
    assert "GET" not in run["error_message"]


def test_a_failed_runs_text_for_its_owner_names_no_setting_and_no_pk(fake, django_user_model):
    stranger = django_user_model.objects.create_user(username="nobody-django")  # UID "nobody"
    api = client_for(stranger)
    error_of(api.post(f"{BASE}conversations/refresh/"), 404, "ERR_UID_NOT_FOUND")
    (run,) = api.get(f"{BASE}sync-runs/").json()["results"]
    stored = SyncRun.objects.get()
    assert "UID_RESOLVER" in stored.error_message
    assert f"pk {stranger.pk}" in stored.error_message
    assert run["error_message"] == "Your account has no user in CometChat yet."


def test_upstream_not_found_is_404_and_says_nothing_of_what_exists(fake, api):
    missing_user = error_of(
        api.post(f"{BASE}conversations/alice_user_nobody/refresh/"), 404, "ERR_NOT_FOUND"
    )
    missing_group = error_of(
        api.post(f"{BASE}conversations/group_secret-plans/refresh/"), 404, "ERR_NOT_FOUND"
    )
    fake.add_group("secret-plans", members=["bob"])
    fake.send_message("bob", to_group="secret-plans", text="psst")
    existing_group = error_of(
        api.post(f"{BASE}conversations/group_secret-plans/refresh/"), 404, "ERR_NOT_FOUND"
    )
    # The same answer whether the user or group exists or not: nothing to probe with.
    assert missing_user == missing_group == existing_group
    assert "nobody" not in missing_user["message"]
    runs = [r.status for r in fake.requests]
    assert runs == [404, 404, fake.options.not_accessible_status]


def test_refreshing_a_conversation_the_user_is_not_in_is_404_and_stores_nothing(fake, api):
    fake.send_message("bob", to_user="carol", text="private")
    error = error_of(
        api.post(f"{BASE}conversations/bob_user_carol/refresh/"),
        404,
        "ERR_NOT_FOUND",
    )
    assert "private" not in error["message"]
    assert [r.headers["onbehalfof"] for r in fake.requests] == ["alice"]
    assert not Conversation.objects.exists()


def test_a_user_the_resolver_cannot_map_is_400(fake, django_user_model):
    client = client_for(django_user_model.objects.create_user(username="has space-django"))
    for response in (
        client.get(f"{BASE}conversations/"),
        client.get(f"{BASE}sync-runs/"),
        client.post(f"{BASE}conversations/refresh/"),
        client.post(f"{BASE}conversations/alice_user_bob/refresh/"),
    ):
        error = error_of(response, 400, "ERR_NO_UID")
        # An end user learns nothing of settings or primary keys.
        assert error["message"] == "Your account is not linked to a CometChat user."
    assert fake.requests == []


BAD_IDS = ["bad.id", "has space", "semi;colon", "x" * 207, "ünïcode", "it's", "tab\tid"]


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_an_invalid_conversation_id_is_400_before_anything_is_sent(fake, api, bad_id):
    make_conversation()
    segment = quote(bad_id, safe="%")
    for response in (
        api.get(f"{BASE}conversations/{segment}/"),
        api.get(f"{BASE}conversations/{segment}/history/"),
        api.post(f"{BASE}conversations/{segment}/refresh/"),
    ):
        error = error_of(response, 400, "ERR_INVALID_ID")
        assert "conversation id" in error["message"]
    assert fake.requests == []


# -- the mapping, one class at a time -----------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "status", "code", "retry_after"),
    [
        (CometChatUserError("no uid", code="ERR_INVALID_ID"), 400, "ERR_NO_UID", None),
        (CometChatOwnerConflict("taken", uid="alice"), 409, "ERR_UID_TAKEN", None),
        (CometChatInvalidId("bad id"), 400, "ERR_INVALID_ID", None),
        (CometChatBadRequest("x", status=422, code="ERR_BAD"), 502, "ERR_UPSTREAM_REJECTED", None),
        (CometChatNotFound("x", status=404, code="ERR_GUID_NOT_FOUND"), 404, "ERR_NOT_FOUND", None),
        (CometChatUnknownOwner("x", uid="a", status=404), 404, "ERR_UID_NOT_FOUND", None),
        (CometChatRateLimited("x", status=429, retry_after=2.1), 503, "ERR_TOO_MANY_REQUESTS", 3),
        (CometChatRateLimited("x", status=429), 503, "ERR_TOO_MANY_REQUESTS", 60),
        (CometChatRateLimited("x", retry_after=1e9), 503, "ERR_TOO_MANY_REQUESTS", 3600),
        (CometChatAuthError("x", status=401), 502, "ERR_UPSTREAM_AUTH", None),
        (
            CometChatForbidden("x", status=403, code="ERR_PLAN_RESTRICTION"),
            502,
            "ERR_UPSTREAM_FORBIDDEN",
            None,
        ),
        (CometChatServerError("x", status=503), 502, "ERR_UPSTREAM_SERVER_ERROR", None),
        (CometChatAPIError("x", status=409), 502, "ERR_UPSTREAM_REJECTED", None),
        (CometChatTimeout(reason="read_timeout"), 504, "ERR_UPSTREAM_TIMEOUT", None),
        (CometChatDeadlineExceeded(seconds=8), 504, "ERR_UPSTREAM_TIMEOUT", None),
        (CometChatTransportError(reason="refused"), 503, "ERR_UPSTREAM_UNREACHABLE", None),
        (CometChatResponseError("x"), 502, "ERR_BAD_UPSTREAM_RESPONSE", None),
        (CometChatConfigurationError("x"), 503, "ERR_NOT_CONFIGURED", None),
        (CometChatError("x"), 502, "ERR_COMETCHAT", None),
    ],
)
def test_error_mapping(exc, status, code, retry_after):
    error = api_error(exc)
    assert (error.status, error.code, error.retry_after) == (status, code, retry_after)


def test_upstream_words_never_reach_an_end_user(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "API_KEY": "s3cret-key"}
    get_settings()
    exc = CometChatNotFound("The GUID secret-group does not exist; key s3cret-key", status=404)
    response = api_error(exc).response()
    assert response.data["error"]["message"] == (
        "There is no such conversation in CometChat for your account."
    )
    assert "[redacted]" in exc.describe()  # the operator's text is redacted too
    assert "s3cret-key" not in exc.describe()


# -- query count --------------------------------------------------------------------------------


def count_queries(client, path, query=None):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, query or {})
    assert response.status_code == 200, response.content
    return len(queries), len(response.json()["results"])


def test_list_query_count_does_not_grow_with_rows(api):
    api.get(f"{BASE}conversations/")  # binds the user's UID on first use
    for n in range(3):
        make_conversation(conversation_id=f"alice_user_a{n}", minutes=n, unread=1)
        make_run(minutes=n)
    small = count_queries(api, f"{BASE}conversations/", {"unread": "true"})
    small_runs = count_queries(api, f"{BASE}sync-runs/")
    for n in range(27):
        make_conversation(conversation_id=f"alice_user_b{n}", minutes=10 + n, unread=1)
        make_run(minutes=10 + n)
    large = count_queries(api, f"{BASE}conversations/", {"unread": "true"})
    large_runs = count_queries(api, f"{BASE}sync-runs/")
    assert (small[1], large[1], small_runs[1], large_runs[1]) == (3, 30, 3, 30)
    assert small[0] == large[0]
    assert small_runs[0] == large_runs[0]


def test_a_page_of_rows_checks_the_owners_binding_within_its_own_query(api, alice, bob):
    make_conversation(conversation_id="alice_user_bob", minutes=1)
    api.get(f"{BASE}conversations/")  # binds alice's UID on first use
    with CaptureQueriesContext(connection) as queries:
        response = api.get(f"{BASE}conversations/")
    assert ids(response) == ["alice_user_bob"]
    binding_checks = [q["sql"] for q in queries if "uidbinding" in q["sql"].lower()]
    assert len(binding_checks) == 1
    assert "django_cometchat_conversation" in binding_checks[0]  # the page's own statement
    with CaptureQueriesContext(connection) as queries:  # an empty page, bound long ago
        response = api.get(f"{BASE}conversations/", {"search": "nobody"})
    assert ids(response) == []
    pages = [q for q in queries if 'FROM "django_cometchat_conversation"' in q["sql"]]
    assert len(pages) == 1  # read once: only a binding made just now reads it again
    # The UID bound to another account: that page query finds nothing, and the refusal follows.
    UIDBinding.objects.filter(uid="alice").update(user=bob)
    error_of(api.get(f"{BASE}conversations/"), 409, "ERR_UID_TAKEN")


@pytest.mark.urls("tests.urls_login")
def test_a_non_staff_user_signs_in_with_drfs_login_view_then_refreshes(fake, alice):
    """docs/api.md: a site user (no admin access) signs in at DRF's login view for a session,
    then sends the CSRF token with its POSTs."""
    assert not alice.is_staff
    browser = Client(enforce_csrf_checks=True)
    login_page = browser.get("/api-auth/login/")
    assert login_page.status_code == 200
    token = browser.cookies["csrftoken"].value
    signed_in = browser.post(
        "/api-auth/login/",
        {"username": "alice-django", "password": "pw-alice", "csrfmiddlewaretoken": token},
    )
    assert signed_in.status_code == 302
    assert browser.get(f"{BASE}conversations/").status_code == 200
    token = browser.cookies["csrftoken"].value  # rotated at sign-in
    refreshed = browser.post(f"{BASE}conversations/refresh/", HTTP_X_CSRFTOKEN=token)
    assert refreshed.status_code == 201
    assert refreshed.json()["status"] == "succeeded"


@pytest.mark.urls("tests.urls_login")
def test_a_non_staff_user_gets_a_token_for_its_password(fake, alice):
    anonymous = Client()
    answer = anonymous.post("/api-token/", {"username": "alice-django", "password": "pw-alice"})
    assert answer.status_code == 200
    key = answer.json()["token"]
    response = anonymous.get(f"{BASE}conversations/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
