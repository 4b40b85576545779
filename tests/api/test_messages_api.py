"""GET conversations/<conversation_id>/messages/: the signed-in owner's messages, read live from
the fake CometChat over real HTTP (API.md §4.3's message lists; payloads as the fake renders
them, see django_cometchat/testing/messages.py), through the API's links, error shape and
signed cursors.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core import signing
from django.core.cache import cache
from rest_framework.test import APIClient

from django_cometchat import services
from django_cometchat.api.messages import CURSOR_SALT, INVALID_CURSOR
from django_cometchat.models import Conversation, MessageAccess
from django_cometchat.testing import FakeCometChat, Fault
from tests.message_history import seed_message_history

pytestmark = pytest.mark.django_db

BASE = "/cometchat/conversations/"
TOTAL = 250
FAST = {
    "UID_RESOLVER": "tests.resolvers.uid_from_username",
    "BACKOFF_FACTOR": 0.01,
    "BACKOFF_MAX": 0.05,
    "MAX_RETRIES": 1,
    "WEB_RETRY_BUDGET": 0.5,
}
KEYS = {
    "id",
    "sender",
    "receiver",
    "receiver_type",
    "category",
    "type",
    "text",
    "sent_at",
    "edited_at",
    "deleted_at",
    "data",
}
CONVERSATIONS = {"user": "alice_user_bob", "group": "group_crew"}


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, **FAST}
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def chat(cometchat_fake: FakeCometChat, django_user_model) -> FakeCometChat:
    """alice's conversation with bob and her group "crew", 250 messages each (other
    conversations' messages in between), stored for alice and for bob by a sync."""
    fake = cometchat_fake
    seed_message_history(fake, TOTAL, elsewhere_to="bob")
    for name in ("alice", "bob"):
        user = django_user_model.objects.create_user(username=f"{name}-django", password="pw")
        services.sync_conversations(user)
    fake.clear_requests()
    return fake


def signed_in(name: str) -> APIClient:
    from django.contrib.auth import get_user_model

    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(username=f"{name}-django"))
    return client


@pytest.fixture
def api(chat) -> APIClient:
    return signed_in("alice")


def history(fake: FakeCometChat, conversation_id: str) -> list[str]:
    return [str(m.id) for m in reversed(fake.state.history[conversation_id])]


def sent(fake: FakeCometChat) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/messages")]


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert (body["status"], body["code"]) == (status, code)
    return dict(body)


@pytest.mark.parametrize("kind", ["user", "group"])
@pytest.mark.parametrize("page_size", [None, 7, 200])
def test_next_links_walk_every_message_once_newest_first(api, chat, kind, page_size):
    conversation_id = CONVERSATIONS[kind]
    query = {} if page_size is None else {"page_size": page_size}
    response = api.get(f"{BASE}{conversation_id}/messages/", query)
    seen: list[str] = []
    pages = 0
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        pages += 1
        assert len(body["results"]) <= (page_size or 50)
        assert all(set(row) == KEYS for row in body["results"])
        seen += [row["id"] for row in body["results"]]
        if pages == 1:
            assert body["previous"] is None  # the newest page
        else:
            assert body["previous"] is not None
        if body["next"] is None:
            break
        response = api.get(body["next"])
    assert seen == history(chat, conversation_id)
    assert pages == -(-TOTAL // (page_size or 50))
    assert len(sent(chat)) == pages  # one upstream request a page
    assert not MessageAccess.objects.exists()  # the owner reading is no staff read


def test_previous_links_walk_back_to_the_newest(api, chat):
    everything = history(chat, "group_crew")
    pages = [api.get(f"{BASE}group_crew/messages/", {"page_size": 40}).json()]
    while pages[-1]["next"]:
        pages.append(api.get(pages[-1]["next"]).json())
    back = pages[-1]
    seen = [row["id"] for row in back["results"]]
    while back["previous"]:
        back = api.get(back["previous"]).json()
        seen = [row["id"] for row in back["results"]] + seen
    assert seen == everything
    assert [row["id"] for row in back["results"]] == everything[:40]


def test_fields_as_cometchat_sent_them(api, chat):
    gone = chat.add_message("bob", to_user="alice", text="oops")
    chat.delete_message(gone["id"])
    chat.add_message("bob", to_user="alice", text="fixed", edited_at=1_750_000_000)
    chat.add_message(
        "bob",
        to_user="alice",
        text=None,
        attachments=[{"url": "https://files.example/a.png", "name": "a.png"}],
        metadata={"k": "v"},
    )
    rows = api.get(f"{BASE}alice_user_bob/messages/", {"page_size": 3}).json()["results"]
    attachment, edited, deleted = rows
    assert attachment["data"]["attachments"] == [
        {"url": "https://files.example/a.png", "name": "a.png"}
    ]
    assert attachment["data"]["metadata"] == {"k": "v"}
    assert attachment["text"] is None
    assert (attachment["sender"], attachment["receiver"]) == ("bob", "alice")
    assert (attachment["receiver_type"], attachment["category"]) == ("user", "message")
    assert attachment["type"] == "file"
    assert edited["text"] == "fixed"
    assert edited["edited_at"] == "2025-06-15T15:06:40Z"
    assert deleted["deleted_at"] is not None
    assert deleted["text"] is None
    assert "text" not in deleted["data"]


def test_another_users_conversation_is_a_404_with_nothing_sent(chat):
    bob = signed_in("bob")
    alice = signed_in("alice")
    assert Conversation.objects.filter(owner_uid="bob", conversation_id="bob_user_carol").exists()
    theirs = alice.get(f"{BASE}bob_user_carol/messages/")
    unknown = alice.get(f"{BASE}alice_user_nobody/messages/")
    error_of(theirs, 404, "ERR_NOT_FOUND")
    assert theirs.json() == unknown.json()
    assert not chat.requests
    # bob reads his own.
    assert bob.get(f"{BASE}bob_user_carol/messages/").status_code == 200


def test_an_invalid_conversation_id_is_a_400_with_nothing_sent(api, chat):
    error_of(api.get(f"{BASE}not%20an%20id/messages/"), 400, "ERR_INVALID_ID")
    assert not chat.requests


@pytest.mark.parametrize("auth", [None, "Token wrong"], ids=["anonymous", "bad-token"])
def test_anonymous_is_refused_with_nothing_sent(chat, auth):
    client = APIClient()
    if auth:
        client.credentials(HTTP_AUTHORIZATION=auth)
    response = client.get(f"{BASE}alice_user_bob/messages/")
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] in (
        "ERR_NOT_AUTHENTICATED",
        "ERR_AUTHENTICATION_FAILED",
    )
    assert not chat.requests


def cursor_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["cursor"][0]


def tampered(token: str) -> str:
    value, signature = token.rsplit(":", 1)
    return f"{value}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}"


@pytest.mark.parametrize(
    "make",
    [
        tampered,
        lambda good: "garbage",
        lambda good: good.split(":", 1)[0],
        # Signed right, but for another conversation.
        lambda good: signing.dumps({"d": "o", "i": "5"}, salt=f"{CURSOR_SALT}:group_crew"),
        # Signed right, with a value the view never writes.
        lambda good: signing.dumps({"d": "x", "i": "5"}, salt=f"{CURSOR_SALT}:alice_user_bob"),
        lambda good: signing.dumps({"d": "o", "i": "5 OR 1"}, salt=f"{CURSOR_SALT}:alice_user_bob"),
    ],
    ids=["tampered", "garbage", "unsigned", "other-conversation", "bad-direction", "bad-id"],
)
def test_a_bad_cursor_is_a_400_with_nothing_sent(api, chat, make):
    first = api.get(f"{BASE}alice_user_bob/messages/").json()
    chat.clear_requests()
    bad = make(cursor_of(first["next"]))
    body = error_of(
        api.get(f"{BASE}alice_user_bob/messages/", {"cursor": bad}), 400, "ERR_INVALID_REQUEST"
    )
    assert body["details"] == {"cursor": [INVALID_CURSOR]}
    assert not chat.requests


@pytest.mark.parametrize(
    ("asked", "served", "limit"),
    [
        ("0", 50, 51),
        ("-3", 50, 51),
        ("abc", 50, 51),
        ("1", 1, 2),
        ("200", 200, 201),
        ("201", 200, 201),
        ("100000", 200, 201),
    ],
)
def test_page_size_defaults_and_caps(api, chat, asked, served, limit):
    body = api.get(f"{BASE}alice_user_bob/messages/", {"page_size": asked}).json()
    assert len(body["results"]) == served
    assert sent(chat)[-1].query["limit"] == str(limit)  # one past the page tells what follows
    if served != 50:
        assert parse_qs(urlsplit(body["next"]).query)["page_size"] == [str(served)]


FAILURES = [
    (Fault("status", status=500, times=5), 502, "ERR_UPSTREAM_SERVER_ERROR"),
    (
        Fault("status", status=429, headers={"Retry-After": "30"}, times=5),
        503,
        "ERR_TOO_MANY_REQUESTS",
    ),
    (Fault("drop", times=5), 503, "ERR_UPSTREAM_UNREACHABLE"),
    (Fault("html", times=5), 502, "ERR_BAD_UPSTREAM_RESPONSE"),
    (
        Fault(
            "status",
            status=403,
            body={"error": {"code": "AUTH_ERR_NO_ACCESS", "message": "no"}},
        ),
        502,
        "ERR_UPSTREAM_AUTH",
    ),
    (
        Fault(
            "status",
            status=404,
            body={"error": {"code": "ERR_UID_NOT_FOUND", "message": "gone"}},
        ),
        404,
        "ERR_NOT_FOUND",
    ),
    (
        Fault("transform", transform=lambda body: {"data": [{"id": "x"}]}),
        502,
        "ERR_BAD_UPSTREAM_RESPONSE",
    ),
]


@pytest.mark.parametrize(("fault", "status", "code"), FAILURES, ids=lambda v: getattr(v, "kind", v))
def test_upstream_failures_answer_in_the_error_shape(api, chat, fault, status, code):
    fault.path = "/messages"
    chat.inject(fault)
    response = api.get(f"{BASE}alice_user_bob/messages/")
    body = error_of(response, status, code)
    assert body["message"]
    assert chat.api_key not in response.content.decode()


def test_a_slow_cometchat_is_cut_at_the_web_deadline(api, chat, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "WEB_DEADLINE": 0.3}
    chat.inject(Fault("delay", delay=1.0, path="/messages", times=5))
    error_of(api.get(f"{BASE}alice_user_bob/messages/"), 504, "ERR_UPSTREAM_TIMEOUT")


def test_the_on_demand_share_of_the_rate_budget_applies(api, chat, settings):
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "REQUESTS_PER_MINUTE": 4,
        "ON_DEMAND_SHARE": 0.5,
    }
    cache.clear()  # the sync of the fixture counted in this window's budget
    assert api.get(f"{BASE}alice_user_bob/messages/").status_code == 200
    assert api.get(f"{BASE}alice_user_bob/messages/").status_code == 200
    error_of(api.get(f"{BASE}alice_user_bob/messages/"), 503, "ERR_TOO_MANY_REQUESTS")
    assert len(sent(chat)) == 2


def test_with_the_cache_a_page_is_served_again_without_cometchat(api, chat, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "MESSAGES_CACHE_SECONDS": 30}
    first = api.get(f"{BASE}alice_user_bob/messages/").json()
    assert api.get(f"{BASE}alice_user_bob/messages/").json() == first
    assert len(sent(chat)) == 1


def test_through_a_live_server(chat, live_server):
    """A real HTTP client, a real server, the session cookie of a real sign-in."""
    from django.test import Client

    browser = Client()
    browser.login(username="alice-django", password="pw")
    session = requests.Session()
    session.cookies.set("sessionid", browser.cookies["sessionid"].value)
    url = f"{live_server.url}{BASE}group_crew/messages/?page_size=100"
    seen: list[str] = []
    while url:
        response = session.get(url, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
        if url:
            assert url.startswith(live_server.url)
    assert seen == history(chat, "group_crew")
    assert requests.get(f"{live_server.url}{BASE}group_crew/messages/", timeout=10).status_code in (
        401,
        403,
    )
