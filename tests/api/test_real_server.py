"""Smoke test through a real WSGI server: every API route, the webhook, every admin page and
admin action.

Django's test client hands the response object straight back, so it never meets what only a real
server refuses: wsgiref (the server of runserver and of pytest-django's ``live_server``) asserts
that every header value is a plain ``str``, and DRF's ``Hyperlink`` in the sync's Location header
once turned a successful sync into a 500. Here every request crosses a socket with ``requests``;
logins go through the admin's login form (with its CSRF token) and DRF token authentication;
CometChat's webhook deliveries carry its Basic credentials.

Routes, pages and actions come from ``tests.surface``, which fails when the app grows one that is
not listed there. Who may use what is ``tests/api/test_authorization.py``'s job.
"""

from __future__ import annotations

import html
import re
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from django_cometchat.api.pagination import INVALID_CURSOR
from django_cometchat.models import (
    Conversation,
    ConversationSnapshot,
    SyncRun,
    UIDBinding,
    WebhookEvent,
)
from django_cometchat.services import owner_by_uid, record_webhook, sync_conversations
from django_cometchat.webhook_types import parse_webhook
from tests.api.test_api import cursor
from tests.surface import (
    ACTIONS,
    ADMIN_MODELS,
    API_ROUTES,
    MODEL_PAGES,
    OWNED_ROUTES,
    WEBHOOK_CREDENTIALS,
    WEBHOOK_ROUTES,
    admin_path,
    api_path,
    unlisted,
    webhook_path,
)

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "smoke-password"
FAST = {
    "UID_RESOLVER": "tests.resolvers.uid_from_username",  # "alice-django" -> "alice"
    "BACKOFF_FACTOR": 0.01,
    "BACKOFF_MAX": 0.05,
    "MAX_RETRIES": 1,
    "WEB_RETRY_BUDGET": 0.5,
}
JSON = "application/json"
ADMIN = "/admin/"
CHANGELIST = "/admin/django_cometchat/conversation/"


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, **FAST}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()  # the refresh throttle counts in the default cache


class Session(requests.Session):
    """A requests session bound to the live server that never waits forever."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", 30)
        if url.startswith("/"):
            url = self.base_url + url
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def new_session(live_server):
    """Sessions closed when the test ends: on SQLite the server's request threads share the
    test's connection, and a keep-alive socket closed later (after the server stopped) would
    close it from a thread no longer allowed to touch it."""
    sessions = []

    def new():
        sessions.append(Session(live_server.url))
        return sessions[-1]

    yield new
    for session in sessions:
        session.close()


@pytest.fixture
def world(fake, django_user_model):
    """alice (a token, no staff), root (a superuser) and bob's rows, synced by UID only."""
    fake.add_user("root", "Site Admin")  # the superuser's own, empty, CometChat user
    fake.send_message("carol", to_user="bob", text="for bob only")  # alice cannot see it
    alice = django_user_model.objects.create_user(username="alice-django", password=PASSWORD)
    django_user_model.objects.create_superuser("root-django", "root@example.com", PASSWORD)
    bob_run = sync_conversations(owner_by_uid("bob")).run
    return SimpleNamespace(
        fake=fake, alice=alice, token=Token.objects.create(user=alice).key, bob_run=bob_run
    )


@pytest.fixture
def api(world, new_session):
    """alice, authenticated with her DRF token."""
    session = new_session()
    session.headers["Authorization"] = f"Token {world.token}"
    return session


def csrf_in(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


def log_in(session: Session, username: str, password: str = PASSWORD) -> Any:
    """Sign in through the admin's login form, as a person would; returns the form's answer."""
    form = session.get("/admin/login/?next=/admin/")
    assert form.status_code == 200
    assert 'name="username"' in form.text
    return session.post(
        "/admin/login/?next=/admin/",
        data={
            "csrfmiddlewaretoken": csrf_in(form.text),
            "username": username,
            "password": password,
            "next": "/admin/",
        },
        allow_redirects=False,
    )


@pytest.fixture
def root(world, new_session):
    session = new_session()
    answer = log_in(session, "root-django")
    assert answer.status_code == 302
    assert answer.headers["Location"] == ADMIN
    return session


def error_of(response, status, code):
    """The error object of a JSON error answer, after checking the documented shape."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == JSON
    body = response.json()
    assert set(body) == {"error"}
    assert (body["error"]["status"], body["error"]["code"]) == (status, code)
    assert body["error"]["message"]
    return body["error"]


def text_of(response) -> str:
    """The page as a person reads it: entities decoded (messages quote settings)."""
    return html.unescape(response.text)


def listed(response, model: str) -> list[int]:
    """Primary keys of the rows a changelist shows, in order (each row's first-column link)."""
    return [
        int(pk)
        for pk in re.findall(
            rf'<th class="field-[^"]*"><a href="/admin/django_cometchat/{model}/(\d+)/change/',
            response.text,
        )
    ]


def messages_in(response) -> list[str]:
    return [
        html.unescape(m)
        for m in re.findall(r'<li class="(?:success|error|warning|info)">(.*?)</li>', response.text)
    ]


def page_title(session, path) -> str:
    """The <title> of a page. Only the text is returned: an expected failure's traceback lives
    until the run ends, and a response held in it would keep its connection open past the
    server's stop (see new_session)."""
    page = session.get(path)
    assert page.status_code == 200
    title = re.search(r"<title>(.*?)</title>", page.text)
    assert title is not None
    return title.group(1)


def pks(queryset) -> set[int]:
    return set(queryset.values_list("pk", flat=True))


def test_the_surface_lists_every_route_page_and_action():
    assert unlisted() == {
        "api routes": set(),
        "app routes": set(),
        "admin models": set(),
        "admin pages": set(),
        "admin actions": set(),
    }


# -- API ----------------------------------------------------------------------------------------


def test_every_api_route_over_a_real_server(world, api, live_server):
    visited = set()

    def call(name, status, *, params=None, **ids):
        visited.add(name)
        response = api.request(API_ROUTES[name], api_path(name, **ids), params=params)
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"] == JSON
        return response

    # The sync: 201 and a Location that wsgiref accepted (a plain str) and that answers 200.
    sync = call("conversation-sync", 201)
    run = sync.json()
    assert (run["status"], run["trigger"], run["complete"]) == ("succeeded", "api", True)
    assert (run["created_count"], run["error_code"]) == (3, "")
    location = sync.headers["Location"]
    assert location == run["url"]
    assert location == live_server.url + api_path("syncrun-detail", pk=run["id"])
    followed = api.get(location)
    assert followed.status_code == 200
    assert followed.json() == run

    listing = call("conversation-list", 200).json()
    mine = {"alice_user_bob", "alice_user_carol", "group_book-club"}
    assert {row["conversation_id"] for row in listing["results"]} == mine
    groups = call("conversation-list", 200, params={"conversation_type": "group"}).json()
    assert [row["conversation_id"] for row in groups["results"]] == ["group_book-club"]

    detail = call("conversation-detail", 200, conversation_id="alice_user_bob").json()
    assert detail["payload"]["conversationId"] == "alice_user_bob"
    assert detail["last_message"]["data"]["text"] == "hi alice"
    assert detail["history"] == live_server.url + api_path(
        "conversation-history", conversation_id="alice_user_bob"
    )
    history = call("conversation-history", 200, conversation_id="alice_user_bob").json()
    assert len(history["results"]) == 1
    assert history["results"][0]["payload"]["lastMessage"]["data"]["text"] == "hi alice"

    world.fake.send_message("bob", to_user="alice", text="see you at 5")
    refreshed = call("conversation-refresh", 200, conversation_id="alice_user_bob").json()
    assert refreshed["last_message"]["data"]["text"] == "see you at 5"
    assert refreshed["unread_message_count"] == 2
    history = call("conversation-history", 200, conversation_id="alice_user_bob").json()
    assert len(history["results"]) == 2  # the refresh stored a new version

    messages = call("conversation-messages", 200, conversation_id="alice_user_bob").json()
    assert [m["text"] for m in messages["results"]] == ["see you at 5", "hi alice"]  # newest first
    assert (messages["next"], messages["previous"]) == (None, None)

    runs = call("syncrun-list", 200).json()
    assert [r["id"] for r in runs["results"]] == [run["id"]]  # bob's run is not alice's
    assert call("syncrun-detail", 200, pk=run["id"]).json()["id"] == run["id"]
    # Any other path under the API answers in the API's shape, not Django's HTML 404.
    assert call("not-found", 404).json()["error"]["code"] == "ERR_NOT_FOUND"
    assert visited == set(API_ROUTES)


def test_api_error_paths_over_a_real_server(world, api, new_session):
    # A malformed id: refused before any lookup or upstream call.
    world.fake.clear_requests()
    for name in ("conversation-detail", "conversation-history", "conversation-refresh"):
        response = api.request(API_ROUTES[name], api_path(name, conversation_id="not.an.id"))
        error_of(response, 400, "ERR_INVALID_ID")
    assert world.fake.requests == []

    # bob's conversation and bob's sync run are no one else's: plain 404s.
    for name in ("conversation-detail", "conversation-history", "conversation-refresh"):
        response = api.request(API_ROUTES[name], api_path(name, conversation_id="bob_user_carol"))
        error_of(response, 404, "ERR_NOT_FOUND")
        assert "for bob only" not in response.text
    assert not Conversation.objects.filter(owner_uid="alice", conversation_id="bob_user_carol")
    error_of(api.get(api_path("syncrun-detail", pk=world.bob_run.pk)), 404, "ERR_NOT_FOUND")
    error_of(api.get(api_path("syncrun-detail", pk=999999)), 404, "ERR_NOT_FOUND")

    # The wrong method: 405 in the same shape, with Allow.
    response = api.get(api_path("conversation-sync"))
    error_of(response, 405, "ERR_METHOD_NOT_ALLOWED")
    assert "POST" in response.headers["Allow"]

    # No credentials, or a wrong token: refused in the same shape, on every route.
    anonymous = new_session()
    wrong = new_session()
    wrong.headers["Authorization"] = "Token not-a-token"
    for name, method in OWNED_ROUTES.items():
        path = api_path(name, conversation_id="bob_user_carol", pk=world.bob_run.pk)
        error_of(anonymous.request(method, path), 403, "ERR_NOT_AUTHENTICATED")
        error_of(wrong.request(method, path), 403, "ERR_AUTHENTICATION_FAILED")


def test_a_tampered_cursor_is_a_json_400_over_a_real_server(world, api):
    """A cursor position no database holds is refused before SQL on every paginated route;
    one naming a real moment with an offset PostgreSQL refuses (+16:00) pages normally."""
    assert api.post(api_path("conversation-sync")).status_code == 201
    first = api.get(api_path("conversation-list")).json()["results"][0]["conversation_id"]
    paths = [
        api_path("conversation-list"),
        api_path("syncrun-list"),
        api_path("conversation-history", conversation_id=first),
    ]
    for path in paths:
        for position in ("9999-12-31T23:59:59-23:00", "0001-01-01T00:00:00+23:00"):
            response = api.get(path, params={"cursor": cursor(position)})
            error = error_of(response, 400, "ERR_INVALID_REQUEST")
            assert error["details"] == {"cursor": [INVALID_CURSOR]}
        response = api.get(path, params={"cursor": cursor("9999-12-31T12:00:00+16:00")})
        assert response.status_code == 200, response.text
        assert response.json()["results"]  # every row is older than that


def test_cometchat_failing_is_a_json_502_not_an_html_500(world, api):
    world.fake.fail_next(50, status=500)
    sync = api.post(api_path("conversation-sync"))
    error = error_of(sync, 502, "ERR_UPSTREAM_SERVER_ERROR")
    assert "<html" not in sync.text.lower()
    assert error["message"] == "CometChat failed to answer. Try again later."
    refresh = api.post(api_path("conversation-refresh", conversation_id="alice_user_bob"))
    error_of(refresh, 502, "ERR_UPSTREAM_SERVER_ERROR")
    world.fake.clear_faults()
    # The failed sync is recorded, with CometChat's code, for alice to see.
    (run,) = api.get(api_path("syncrun-list")).json()["results"]
    assert (run["status"], run["error_code"]) == ("failed", "ERR_MISSION_FAILED")


def test_waits_are_announced_in_a_retry_after_header(world, api, settings):
    # Headers this app sets itself, through the server that once refused a Location header.
    world.fake.rate_limit_next(50, retry_after=30)
    limited = api.post(api_path("conversation-sync"))
    assert error_of(limited, 503, "ERR_TOO_MANY_REQUESTS")["retry_after"] == 30
    assert limited.headers["Retry-After"] == "30"
    world.fake.clear_faults()
    cache.clear()  # that refresh counted; start the throttle afresh
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"cometchat_refresh": "1/min"},
    }
    assert api.post(api_path("conversation-sync")).status_code == 201
    throttled = api.post(api_path("conversation-sync"))
    error = error_of(throttled, 429, "ERR_THROTTLED")
    assert throttled.headers["Retry-After"] == str(error["retry_after"])
    assert 0 < error["retry_after"] <= 60


def test_cometchat_not_configured_is_a_json_503(world, api, settings, monkeypatch):
    monkeypatch.delenv("COMETCHAT_API_KEY", raising=False)
    settings.COMETCHAT = {**settings.COMETCHAT, "API_KEY": None}
    world.fake.clear_requests()
    for name in ("conversation-sync", "conversation-refresh"):
        response = api.post(api_path(name, conversation_id="alice_user_bob"))
        error = error_of(response, 503, "ERR_NOT_CONFIGURED")
        assert "API_KEY" not in error["message"]  # an end user gets no setting names
    assert world.fake.requests == []


def test_the_api_with_a_session_from_the_admin_login_checks_csrf(world, root):
    # A superuser has no special access to the API: its own (empty) conversations only.
    listing = root.get(api_path("conversation-list"))
    assert listing.status_code == 200
    assert listing.json()["results"] == []
    assert root.get(api_path("syncrun-list")).json()["results"] == []

    error = error_of(root.post(api_path("conversation-sync")), 403, "ERR_PERMISSION_DENIED")
    assert "CSRF" in error["message"]
    sync = root.post(
        api_path("conversation-sync"), headers={"X-CSRFToken": root.cookies["csrftoken"]}
    )
    assert sync.status_code == 201, sync.text
    assert sync.json()["created_count"] == 0
    followed = root.get(sync.headers["Location"])
    assert followed.status_code == 200
    assert followed.json()["status"] == "succeeded"


# -- the webhook ----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["webhook", "webhook-unslashed"])
def test_a_webhook_delivered_through_a_real_server(world, new_session, live_server, route):
    assert set(WEBHOOK_ROUTES) == {"webhook", "webhook-unslashed"}
    cometchat = new_session()
    cometchat.auth = WEBHOOK_CREDENTIALS
    path = webhook_path(route)
    message = world.fake.send_message("carol", to_user="bob", text="news for bob")
    body = {"trigger": "message_sent", "data": {"message": message}, "webhook": "w1"}
    world.fake.clear_requests()

    answer = cometchat.post(path, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == JSON
    assert answer.json() == {"status": "accepted"}
    # The immediate backend refreshed inline: bob (synced in world) on his own behalf; carol,
    # unknown here, not at all.
    assert [(r.headers["onbehalfof"], r.path) for r in world.fake.requests] == [
        ("bob", "/v3/users/carol/conversation")
    ]
    row = Conversation.objects.get(owner_uid="bob", conversation_id="bob_user_carol")
    assert row.last_message is not None
    assert row.last_message["data"]["text"] == "news for bob"
    event = WebhookEvent.objects.get()
    assert (event.status, event.owners) == ("processed", ["bob"])

    # CometChat's retry after 10 s: a duplicate, nothing fetched again.
    retry = cometchat.post(path, json=body)
    assert retry.json() == {"status": "duplicate"}
    assert len(world.fake.requests) == 1

    # No credentials, wrong ones, the wrong method, a body that is not JSON: in the error shape.
    stranger = new_session()
    refused = stranger.post(path, json=body)
    assert error_of(refused, 401, "ERR_NOT_AUTHENTICATED")
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="cometchat-webhook"'
    error_of(
        stranger.post(path, json=body, auth=("cometchat", "wrong")), 401, "ERR_NOT_AUTHENTICATED"
    )
    wrong_method = cometchat.get(path)
    error_of(wrong_method, 405, "ERR_METHOD_NOT_ALLOWED")
    assert wrong_method.headers["Allow"] == "POST"
    error_of(cometchat.post(path, data=b"{not json"), 400, "ERR_MALFORMED_JSON")
    too_large = cometchat.post(path, data=b" " * (1024 * 1024 + 1))
    error_of(too_large, 413, "ERR_PAYLOAD_TOO_LARGE")
    assert WebhookEvent.objects.count() == 3  # the delivery and the two refused ones
    assert WEBHOOK_CREDENTIALS[1] not in refused.text


# -- admin --------------------------------------------------------------------------------------


def test_admin_login_and_logout_through_the_forms(world, new_session):
    for username, password in (("root-django", "wrong"), ("alice-django", PASSWORD)):
        answer = log_in(new_session(), username, password)  # alice is not staff
        assert answer.status_code == 200
        assert "Please enter the correct username and password for a staff account" in (
            text_of(answer)
        )
    session = new_session()
    assert log_in(session, "root-django").status_code == 302
    index = session.get(ADMIN)
    assert index.status_code == 200
    assert "Site administration" in index.text
    logout = session.post("/admin/logout/", data={"csrfmiddlewaretoken": csrf_in(index.text)})
    assert logout.status_code == 200
    assert "Logged out" in logout.text
    again = session.get(ADMIN, allow_redirects=False)
    assert again.status_code == 302
    assert again.headers["Location"] == "/admin/login/?next=/admin/"


@pytest.fixture
def synced(world):
    """alice's rows too, one of bob's marked missing and moved to 2020, a failed run."""
    sync_conversations(world.alice)
    old = Conversation.objects.get(owner_uid="bob", conversation_id="group_book-club")
    old.updated_at = old.updated_at.replace(year=2020)
    old.missing_since = timezone.now()
    old.save()
    SyncRun.objects.create(
        owner_uid="carol",
        status=SyncRun.Status.FAILED,
        trigger=SyncRun.Trigger.COMMAND,
        started_at=timezone.now(),
        error_code="ERR_UID_NOT_FOUND",
        error_message="GET /users/carol/conversations -> HTTP 404 ERR_UID_NOT_FOUND",
    )
    message = world.fake.send_message("carol", to_user="alice", text="webhook news")
    record_webhook(parse_webhook({"trigger": "message_sent", "data": {"message": message}}))
    return world


def test_every_admin_page_over_a_real_server(synced, root):
    conversations = Conversation.objects.all()
    alice_bob = conversations.get(owner_uid="alice", conversation_id="alice_user_bob")
    snapshot = alice_bob.snapshots.get()
    run = SyncRun.objects.filter(owner_uid="alice").get()
    today = alice_bob.updated_at
    by_day = {
        "updated_at__year": today.year,
        "updated_at__month": today.month,
        "updated_at__day": today.day,
    }
    snapshots = ConversationSnapshot.objects.all()
    runs = SyncRun.objects.all()
    hooks = WebhookEvent.objects.all()

    index = root.get(ADMIN)
    assert index.status_code == 200
    for name in ("Conversations", "Conversation snapshots", "Sync runs", "Webhook events"):
        assert f">{name}</a>" in index.text
    app = root.get(reverse("admin:app_list", args=("django_cometchat",)))
    assert app.status_code == 200
    assert "CometChat administration" in app.text
    for name in ("Conversations", "Conversation snapshots", "Sync runs", "Webhook events"):
        assert f">{name}</a>" in app.text

    # (model, query, rows the list must show)
    changelists = [
        ("conversation", {}, pks(conversations)),
        ("conversation", {"owner_uid": "bob"}, pks(conversations.filter(owner_uid="bob"))),
        ("conversation", {"unread": "yes"}, pks(conversations.filter(unread_message_count__gt=0))),
        (
            "conversation",
            {"missing": "yes"},
            pks(conversations.filter(missing_since__isnull=False)),
        ),
        ("conversation", {"missing": "no"}, pks(conversations.filter(missing_since__isnull=True))),
        ("conversation", {"conversation_type": "group"}, pks(conversations.filter(peer_uid=""))),
        ("conversation", by_day, pks(conversations.filter(updated_at__date=today.date()))),
        (
            "conversation",
            {"q": "alice_user_carol"},
            pks(conversations.filter(conversation_id="alice_user_carol")),
        ),
        ("conversation", {"q": "Carol"}, pks(conversations.filter(peer_name="Carol Danvers"))),
        ("conversationsnapshot", {}, pks(snapshots)),
        (
            "conversationsnapshot",
            {"conversation": alice_bob.pk},
            pks(snapshots.filter(conversation=alice_bob)),
        ),
        ("syncrun", {}, pks(runs)),
        ("syncrun", {"status": "failed"}, pks(runs.filter(status="failed"))),
        ("syncrun", {"trigger": "command"}, pks(runs.filter(trigger="command"))),
        ("syncrun", {"q": "bob"}, pks(runs.filter(owner_uid="bob"))),
        ("webhookevent", {}, pks(hooks)),
        ("webhookevent", {"trigger": "message_sent"}, pks(hooks.filter(trigger="message_sent"))),
        ("webhookevent", {"status__exact": "received"}, pks(hooks.filter(status="received"))),
    ]
    for model, query, expected in changelists:
        response = root.get(admin_path(model, "changelist"), params=query)
        assert response.status_code == 200, (model, query)
        assert expected, (model, query)  # every filter has rows to show
        assert set(listed(response, model)) == expected, (model, query)
    unfiltered = root.get(CHANGELIST).text
    assert "?updated_at__year=2020" in unfiltered  # the date hierarchy offers the old row's year
    by_peer = root.get(CHANGELIST, params={"o": "1"})  # sorted on the inbox's peer column
    shown = [conversations.get(pk=pk).peer_name for pk in listed(by_peer, "conversation")]
    assert shown == sorted(conversations.values_list("peer_name", flat=True))

    objects = {
        "conversation": alice_bob.pk,
        "conversationsnapshot": snapshot.pk,
        "syncrun": run.pk,
        "uidbinding": UIDBinding.objects.get(uid="alice").pk,
        "webhookevent": hooks.get().pk,
    }
    details = {
        "conversation": ['"conversationId": "alice_user_bob"', "hi alice", "1 stored"],
        "conversationsnapshot": ["alice_user_bob", '"conversationId": "alice_user_bob"'],
        "syncrun": ["alice", "Succeeded", "Code"],  # sync_conversations() in code
        "uidbinding": ["alice", "alice-django"],
        "webhookevent": ["message_sent", "Received", '"text": "webhook news"'],
    }
    for model in ADMIN_MODELS:
        pk = objects[model]
        change = root.get(admin_path(model, "change", pk))
        assert change.status_code == 200, model
        for text in details[model]:
            assert text in text_of(change), (model, text)
        assert 'name="_save"' not in change.text  # read-only
        history = root.get(admin_path(model, "history", pk))
        assert history.status_code == 200, model
        assert "change history" in text_of(history)
        redirect = root.get(admin_path(model, "redirect", pk), allow_redirects=False)
        assert redirect.status_code == 302, model
        assert redirect.headers["Location"] == admin_path(model, "change", pk)
        for page in ("add", "delete"):  # nothing is added or deleted here, even by a superuser
            refused = root.get(admin_path(model, page, pk))
            assert refused.status_code == 403, (model, page)
            assert "403 Forbidden" in refused.text
    assert set(MODEL_PAGES) == {"changelist", "change", "history", "redirect", "add", "delete"}


def test_a_snapshots_admin_page_names_its_cometchat_conversation(synced, root):
    alice_bob = Conversation.objects.get(owner_uid="alice", conversation_id="alice_user_bob")
    snapshot = alice_bob.snapshots.get()
    title = page_title(root, admin_path("conversationsnapshot", "change", snapshot.pk))
    assert f"alice_user_bob @ {snapshot.fetched_at:%Y-%m-%d}" in title


def run_action(session, action, rows):
    """Pick rows and an action on the changelist form and submit it, as the browser would."""
    page = session.get(CHANGELIST)
    assert f'<option value="{action}">' in page.text
    response = session.post(
        CHANGELIST,
        data={
            "csrfmiddlewaretoken": csrf_in(page.text),
            "action": action,
            "_selected_action": [str(row.pk) for row in rows],
            "index": "0",
        },
    )
    assert [r.status_code for r in response.history] == [302]  # back to the list
    assert response.status_code == 200
    assert "Traceback" not in response.text
    return response


def test_admin_actions_over_a_real_server(synced, root):
    assert set(ACTIONS) == {"refresh_from_cometchat", "sync_owners"}
    alice_bob = Conversation.objects.get(owner_uid="alice", conversation_id="alice_user_bob")
    bob_carol = Conversation.objects.get(owner_uid="bob", conversation_id="bob_user_carol")
    synced.fake.send_message("bob", to_user="alice", text="news for alice")
    synced.fake.send_message("carol", to_user="bob", text="news for bob")

    response = run_action(root, "refresh_from_cometchat", [alice_bob, bob_carol])
    assert messages_in(response) == ["Refreshed 2 conversations from CometChat."]
    alice_bob.refresh_from_db()
    bob_carol.refresh_from_db()
    assert alice_bob.last_message is not None
    assert alice_bob.last_message["data"]["text"] == "news for alice"
    assert bob_carol.last_message is not None
    assert bob_carol.last_message["data"]["text"] == "news for bob"

    before = set(SyncRun.objects.values_list("pk", flat=True))
    response = run_action(root, "sync_owners", [alice_bob, bob_carol])
    (message,) = messages_in(response)
    assert message.startswith("Synced 2 owners from CometChat: alice (")
    assert "; bob (" in message
    new = SyncRun.objects.exclude(pk__in=before)
    assert sorted(new.values_list("owner_uid", "trigger", "status")) == [
        ("alice", "admin", "succeeded"),
        ("bob", "admin", "succeeded"),
    ]


TROUBLES = [(action, trouble) for action in ACTIONS for trouble in ("upstream 500", "no API key")]


@pytest.mark.parametrize("case", TROUBLES, ids=["-".join(case) for case in TROUBLES])
def test_admin_actions_report_trouble_as_messages(synced, root, settings, monkeypatch, case):
    action, trouble = case
    if trouble == "no API key":
        monkeypatch.delenv("COMETCHAT_API_KEY", raising=False)
        settings.COMETCHAT = {**settings.COMETCHAT, "API_KEY": None}
        expected = 'COMETCHAT["API_KEY"] is not set'
    else:
        synced.fake.fail_next(50, status=500)
        expected = "ERR_MISSION_FAILED (HTTP 500)"
    rows = Conversation.objects.filter(conversation_id="group_book-club")  # alice's and bob's
    response = run_action(root, action, rows)
    shown = messages_in(response)
    assert shown[0].startswith("Could not ")
    assert expected in shown[0]
    if trouble == "upstream 500":  # it may be about one row (batches.stops_batch): both are tried
        assert shown[1].startswith("Could not ")
        assert expected in shown[1]
    else:
        assert "were not tried" in shown[1]
    assert synced.fake.api_key not in response.text
