"""Who may use what: every API route, the webhook, every admin page and admin action, for every
kind of principal.

The API serves each user their own rows only (by the CometChat UID their account is bound to);
the admin is the operators' view of every owner, gated by Django's permissions (view to browse,
change to refresh from CometChat); the webhook is CometChat's, and no principal of the site gets
in without its Basic credentials, whatever its session. Each case asserts the status and that
the body holds no data of an owner the principal may not see: the other owner's conversation
ids, texts and sync runs, and for principals who own nothing, no UID at all.

UID_RESOLVER is ``tests.resolvers.by_username`` here, so the accounts "alice" and "ALICE" both
resolve to the UID "alice": alice acts first and is bound to it; ALICE is the collision.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.management import get_commands
from django.test import Client
from django.urls import reverse

from django_cometchat import services
from django_cometchat.exceptions import CometChatOwnerConflict
from django_cometchat.models import (
    Conversation,
    ConversationSnapshot,
    MessageAccess,
    SyncRun,
    UIDBinding,
    WebhookEvent,
)
from django_cometchat.storage import content_hash
from django_cometchat.webhook_types import parse_webhook
from tests.surface import (
    ACTIONS,
    ADMIN_MODELS,
    API_ROUTES,
    AUDIT_MODEL,
    MESSAGES_PAGE,
    MODEL_PAGES,
    OWNED_ROUTES,
    WEBHOOK_CREDENTIALS,
    WEBHOOK_ROUTES,
    admin_path,
    api_path,
    basic_authorization,
    unlisted,
    webhook_path,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
FAST = {
    "UID_RESOLVER": "tests.resolvers.by_username",
    "BACKOFF_FACTOR": 0.01,
    "BACKOFF_MAX": 0.05,
    "MAX_RETRIES": 1,
    "WEB_RETRY_BUDGET": 0.5,
}
LOGIN = "/admin/login/?next="
# What only alice's rows hold, and only bob's: conversation ids the other does not share, the
# texts of their last messages and the error messages of their sync runs.
MARKERS = {
    "alice": ("alice_user_carol", "ALICE-ONLY"),
    "bob": ("bob_user_carol", "BOB-ONLY"),
}
UIDS = ("alice", "bob", "carol")

PRINCIPALS = (
    "owner",  # alice, whose rows every case targets
    "anonymous",
    "other user",  # bob, who has rows of his own
    "uid collision",  # ALICE: resolves to alice's UID, which alice already bound
    "staff, no perm",
    "staff, view",  # view permissions on the three models
    "staff, change",  # change permissions (no view ones: change implies view)
    "superuser",
)

# fmt: off
# One row per principal; columns in the order of surface.API_ROUTES. The detail, history,
# messages, refresh and run columns target alice's conversation "alice_user_carol" and alice's
# sync run. Staff read no one's messages through the API, whatever their admin permissions.
API_TABLE = {
    #                  list  sync  detail history messages refresh runs  run  other path
    "owner":          (200,  201,  200,   200,    200,     200,    200,  200, 404),
    "anonymous":      (403,  403,  403,   403,    403,     403,    403,  403, 404),
    "other user":     (200,  201,  404,   404,    404,     404,    200,  404, 404),
    "uid collision":  (409,  409,  409,   409,    409,     409,    409,  409, 404),
    "staff, no perm": (200,  201,  404,   404,    404,     404,    200,  404, 404),
    "staff, view":    (200,  201,  404,   404,    404,     404,    200,  404, 404),
    "staff, change":  (200,  201,  404,   404,    404,     404,    200,  404, 404),
    "superuser":      (200,  201,  404,   404,    404,     404,    200,  404, 404),
}
# Pages of each of the four models (alice's object where one is needed), then the site's index
# and the app's index, then the two actions of the conversation list, then the sync health page
# (view permission on sync runs). 302: to the login page, except "redirect" for staff (to the
# change page, which then checks the permission).
ADMIN_TABLE = {
    #                 changelist change history redirect add  delete index app  refresh sync  health
    "owner":          (302,      302,   302,    302,     302, 302,   302,  302, 302,    302, 302),
    "anonymous":      (302,      302,   302,    302,     302, 302,   302,  302, 302,    302, 302),
    "other user":     (302,      302,   302,    302,     302, 302,   302,  302, 302,    302, 302),
    "uid collision":  (302,      302,   302,    302,     302, 302,   302,  302, 302,    302, 302),
    "staff, no perm": (403,      403,   403,    302,     403, 403,   200,  404, 403,    403, 403),
    "staff, view":    (200,      200,   200,    302,     403, 403,   200,  200, 200,    200, 200),
    "staff, change":  (200,      200,   200,    302,     403, 403,   200,  200, 302,    302, 200),
    "superuser":      (200,      200,   200,    302,     403, 403,   200,  200, 302,    302, 200),
}
# The webhook: every principal of the site is a stranger to it (401, nothing recorded, nothing
# fetched) until its request carries CometChat's Basic credentials.
WEBHOOK_TABLE = dict.fromkeys(PRINCIPALS, 401)
# fmt: on
ADMIN_COLUMNS = (
    *("changelist", "change", "history", "redirect", "add", "delete"),
    *("index", "app", "refresh_from_cometchat", "sync_owners", "health"),
)
STAFF = ("staff, no perm", "staff, view", "staff, change", "superuser")


def test_the_tables_cover_every_principal_route_page_and_action():
    assert unlisted() == {
        "api routes": set(),
        "app routes": set(),
        "admin models": set(),
        "admin pages": set(),
        "admin actions": set(),
    }
    assert set(API_TABLE) == set(ADMIN_TABLE) == set(WEBHOOK_TABLE) == set(PRINCIPALS)
    assert set(WEBHOOK_ROUTES) == {"webhook", "webhook-unslashed"}
    assert {len(row) for row in API_TABLE.values()} == {len(API_ROUTES)}
    assert set(ADMIN_COLUMNS) == {*MODEL_PAGES, "index", "app", *ACTIONS, "health"}
    assert {len(row) for row in ADMIN_TABLE.values()} == {len(ADMIN_COLUMNS)}


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, **FAST}
    cache.clear()  # the refresh throttle counts per user pk, which the next test reuses


def make_row(owner, conversation_id, peer, text):
    payload = {
        "conversationId": conversation_id,
        "conversationType": "user",
        "unreadMessageCount": "1",
        "updatedAt": int(T0.timestamp()),
        "conversationWith": {"uid": peer, "name": peer.title()},
        "lastMessage": {"id": "1", "sender": peer, "data": {"text": text}},
    }
    row = Conversation.objects.create(
        owner=owner,
        owner_uid=owner.username,
        conversation_id=conversation_id,
        conversation_type="user",
        unread_message_count=1,
        created_at=T0,
        updated_at=T0,
        peer_uid=peer,
        peer_name=peer.title(),
        payload=payload,
        content_hash=content_hash(payload),
        fetched_at=T0,
    )
    ConversationSnapshot.objects.create(
        conversation=row, payload=payload, content_hash=row.content_hash, fetched_at=T0
    )
    return row


def make_run(owner, marker):
    return SyncRun.objects.create(
        owner=owner,
        owner_uid=owner.username,
        status=SyncRun.Status.FAILED,
        started_at=T0,
        finished_at=T0,
        error_code="ERR_MISSION_FAILED",
        error_message=f"{marker}: CometChat answered 500",
        public_error_message=f"{marker}: the sync failed",
    )


def grant(user, *codenames):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


@pytest.fixture
def world(fake, django_user_model):
    """The principals, alice's and bob's rows, and the fake CometChat that knows them all.

    Passwords are unusable (no hashing): the test client logs in with force_login.
    """
    fake.send_message("carol", to_user="bob", text="for bob")  # bob_user_carol exists upstream
    users = django_user_model.objects
    alice = users.create_user("alice")
    bob = users.create_user("bob")
    principals = {
        "owner": alice,
        "anonymous": None,
        "other user": bob,
        "uid collision": users.create_user("ALICE"),
        "staff, no perm": users.create_user("staff-none", is_staff=True),
        "staff, view": users.create_user("staff-view", is_staff=True),
        "staff, change": users.create_user("staff-change", is_staff=True),
        "superuser": users.create_superuser("root", "root@example.com", None),
    }
    grant(
        principals["staff, view"],
        "view_conversation",
        "view_conversationsnapshot",
        "view_syncrun",
        "view_uidbinding",
        "view_webhookevent",
    )
    grant(
        principals["staff, change"],
        "change_conversation",
        "change_conversationsnapshot",
        "change_syncrun",
        "change_uidbinding",
        "change_webhookevent",
    )
    for name in ("staff-none", "staff-view", "staff-change", "root"):
        fake.add_user(name)  # their own, empty, CometChat users: a sync of theirs succeeds
    # alice acts first (any API call does this): the UID "alice" is hers from now on.
    services.owner_for(alice)
    services.owner_for(bob)
    rows = {
        "alice": make_row(alice, "alice_user_carol", "carol", "ALICE-ONLY hello"),
        "alice/shared": make_row(alice, "alice_user_bob", "bob", "ALICE-ONLY hi bob"),
        "bob": make_row(bob, "bob_user_carol", "carol", "BOB-ONLY for bob"),
        "bob/shared": make_row(bob, "alice_user_bob", "alice", "BOB-ONLY hi alice"),
    }
    runs = {"alice": make_run(alice, "ALICE-ONLY"), "bob": make_run(bob, "BOB-ONLY")}
    # A webhook event about alice's conversation, as CometChat delivered it.
    hook = services.record_webhook(parse_webhook(webhook_body("ALICE-ONLY webhook")))
    fake.clear_requests()
    return SimpleNamespace(
        fake=fake, principals=principals, rows=rows, runs=runs, webhook_event=hook
    )


def webhook_body(text, message_id="41"):
    message = {
        "id": message_id,
        "conversationId": "alice_user_carol",
        "sender": "carol",
        "receiverType": "user",
        "receiver": "alice",
        "data": {"text": text},
        "sentAt": int(T0.timestamp()),
        "updatedAt": int(T0.timestamp()),
    }
    return {"trigger": "message_sent", "data": {"message": message}, "webhook": "w1"}


def client_for(world, principal):
    client = Client()
    user = world.principals[principal]
    if user is not None:
        client.force_login(user)
    return client


def own_uid(principal):
    return {"owner": "alice", "other user": "bob"}.get(principal)


def assert_nothing_foreign(body: str, principal: str, world) -> None:
    """No data of an owner the principal does not own: markers and run URLs; no UID at all for
    a principal who owns nothing (bob's own rows name alice, his peer)."""
    mine = own_uid(principal)
    for uid, markers in MARKERS.items():
        if uid == mine:
            continue
        for marker in (*markers, api_path("syncrun-detail", pk=world.runs[uid].pk)):
            assert marker not in body, (principal, marker)
    if mine is None:
        lowered = body.lower()
        for uid in UIDS:
            assert f'"{uid}' not in lowered, (principal, uid)
            assert f"{uid}_" not in lowered, (principal, uid)


def snapshot_of_stored_rows():
    return sorted(
        Conversation.objects.values_list("owner_uid", "conversation_id", "content_hash", "owner")
    )


# -- API ----------------------------------------------------------------------------------------

API_CASES = [
    pytest.param(principal, route, status, id=f"{principal}-{route}")
    for principal, statuses in API_TABLE.items()
    for route, status in zip(API_ROUTES, statuses, strict=True)
]


@pytest.mark.parametrize(("principal", "route", "status"), API_CASES)
def test_api(world, principal, route, status):
    client = client_for(world, principal)
    stored = snapshot_of_stored_rows()
    runs_before = SyncRun.objects.count()
    path = api_path(route, conversation_id="alice_user_carol", pk=world.runs["alice"].pk)
    response = getattr(client, API_ROUTES[route])(path)
    body = response.content.decode()
    assert response.status_code == status, body
    assert response["Content-Type"] == "application/json"
    assert_nothing_foreign(body, principal, world)

    if status >= 400:
        error = response.json()["error"]
        assert error["status"] == status
        expected_code = {
            403: "ERR_NOT_AUTHENTICATED",
            404: "ERR_NOT_FOUND",
            409: "ERR_UID_TAKEN",
        }[status]
        assert error["code"] == expected_code
    if principal == "owner" and route not in (
        "conversation-sync",
        "conversation-refresh",
        "conversation-messages",  # read live from CometChat: what carol wrote there
        "not-found",
    ):
        assert "ALICE-ONLY" in body  # the markers are there to be found by their owner
    if principal == "owner" and route == "conversation-messages":
        assert [m["text"] for m in response.json()["results"]] == ["hello"]
    if route == "conversation-messages" and principal != "owner":
        assert not [r for r in world.fake.requests if r.path.endswith("/messages")]
    if principal in ("anonymous", "uid collision"):
        # Refused before anything happened: no upstream call, no sync run, no binding moved.
        assert world.fake.requests == []
        assert SyncRun.objects.count() == runs_before
        assert snapshot_of_stored_rows() == stored
        assert UIDBinding.objects.get(uid="alice").user == world.principals["owner"]
    if principal != "owner":
        # Nothing of alice's was touched, and no one else got a copy of her conversation.
        alice_rows = [row for row in stored if row[0] == "alice"]
        assert [row for row in snapshot_of_stored_rows() if row[0] == "alice"] == alice_rows
        assert list(
            Conversation.objects.filter(conversation_id="alice_user_carol").values_list(
                "owner_uid", flat=True
            )
        ) == ["alice"]


@pytest.mark.parametrize("principal", ["owner", "other user"])
@pytest.mark.parametrize("route", ["conversation-detail", "conversation-history"])
def test_a_shared_conversation_id_answers_each_owner_their_own_copy(world, principal, route):
    # Both alice and bob store "alice_user_bob": the same id, two owners, two rows.
    response = client_for(world, principal).get(api_path(route, conversation_id="alice_user_bob"))
    body = response.content.decode()
    assert response.status_code == 200, body
    mine, theirs = (
        ("ALICE-ONLY", "BOB-ONLY") if principal == "owner" else ("BOB-ONLY", "ALICE-ONLY")
    )
    assert mine in body
    assert theirs not in body


@pytest.mark.parametrize("first", ["alice", "ALICE"])
def test_the_first_account_to_act_binds_the_uid_and_the_other_is_refused_everywhere(
    fake, django_user_model, first
):
    alice = django_user_model.objects.create_user("alice")
    shouting = django_user_model.objects.create_user("ALICE")
    winner, loser = (alice, shouting) if first == "alice" else (shouting, alice)
    winner_client, loser_client = Client(), Client()
    winner_client.force_login(winner)
    loser_client.force_login(loser)

    assert winner_client.post(api_path("conversation-sync")).status_code == 201
    assert UIDBinding.objects.get(uid="alice").user == winner
    runs = list(SyncRun.objects.values_list("pk", flat=True))
    fake.clear_requests()
    for route, method in OWNED_ROUTES.items():
        path = api_path(route, conversation_id="alice_user_bob", pk=runs[0])
        response = getattr(loser_client, method)(path)
        assert response.status_code == 409, (route, response.content)
        assert response.json()["error"]["code"] == "ERR_UID_TAKEN"
        body = response.content.decode().lower()
        assert "alice_user" not in body
        assert "hi alice" not in body
    assert fake.requests == []
    assert list(SyncRun.objects.values_list("pk", flat=True)) == runs
    assert UIDBinding.objects.get(uid="alice").user == winner
    assert set(Conversation.objects.values_list("owner", flat=True)) == {winner.pk}


def test_the_way_out_of_a_uid_collision_that_the_refusal_names_exists(world):
    with pytest.raises(CometChatOwnerConflict) as refused:
        services.owner_for(world.principals["uid collision"])
    assert "manage.py cometchat_rebind" in str(refused.value)
    assert "cometchat_rebind" in get_commands()


def test_a_session_without_the_csrf_token_cannot_refresh(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.principals["owner"])
    for route in ("conversation-sync", "conversation-refresh"):
        response = client.post(api_path(route, conversation_id="alice_user_carol"))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "ERR_PERMISSION_DENIED"
    assert world.fake.requests == []


# -- admin --------------------------------------------------------------------------------------


def admin_cases():
    for principal, statuses in ADMIN_TABLE.items():
        expected = dict(zip(ADMIN_COLUMNS, statuses, strict=True))
        for column in ("index", "app", "health"):
            yield pytest.param(
                principal, None, column, expected[column], id=f"{principal}-{column}"
            )
        for model in ADMIN_MODELS:
            for page in MODEL_PAGES:
                yield pytest.param(
                    principal, model, page, expected[page], id=f"{principal}-{model}-{page}"
                )
        for action in ACTIONS:
            yield pytest.param(
                principal, None, action, expected[action], id=f"{principal}-{action}"
            )


def target(world, model):
    """alice's object of each model: the one every admin page case opens."""
    return {
        "conversation": world.rows["alice"],
        "conversationsnapshot": world.rows["alice"].snapshots.get(),
        "syncrun": world.runs["alice"],
        "uidbinding": UIDBinding.objects.get(uid="alice"),
        "webhookevent": world.webhook_event,
    }[model]


def open_admin(client, world, model, page):
    if page in ACTIONS:
        picked = [world.rows["alice"].pk, world.rows["bob"].pk]
        return client.post(
            admin_path("conversation", "changelist"),
            {"action": page, "_selected_action": picked, "index": "0"},
        )
    if page == "index":
        return client.get("/admin/")
    if page == "app":
        return client.get("/admin/django_cometchat/")
    if page == "health":
        return client.get("/admin/django_cometchat/health/")
    return client.get(admin_path(model, page, target(world, model).pk))


@pytest.mark.parametrize(("principal", "model", "page", "status"), list(admin_cases()))
def test_admin(world, principal, model, page, status):
    before = {"rows": snapshot_of_stored_rows(), "runs": SyncRun.objects.count()}
    response = open_admin(client_for(world, principal), world, model, page)
    body = response.content.decode()
    assert response.status_code == status, body[:500]

    if status == 302 and principal not in STAFF:
        assert response["Location"].startswith(LOGIN)
    elif status == 302 and page == "redirect":
        assert response["Location"] == admin_path(model, "change", target(world, model).pk)
    elif status == 302:  # an action ran: back to the list
        assert response["Location"] == admin_path("conversation", "changelist")
    if status != 200:
        assert_nothing_foreign(body, "anonymous", world)  # not a word of anyone's rows
    elif page == "index":
        # The site index names the app's models to those who may see them, and no rows.
        assert ("/admin/django_cometchat/conversation/" in body) is (principal != "staff, no perm")
        assert_nothing_foreign(body, "anonymous", world)
    elif page == "health":
        # Operators see every owner's figures: alice's run is a successful one here.
        assert "<h1>Sync health</h1>" in body
    elif page in MODEL_PAGES:
        # Operators see every owner's rows: here alice's object (its name on a history page).
        # The conversation list reads like an inbox: the last message, not the raw id.
        markers = {"syncrun": "ALICE-ONLY", "uidbinding": "alice", "webhookevent": "message_sent"}
        if model == "conversation" and page == "changelist":
            markers["conversation"] = "ALICE-ONLY"
        shown = markers.get(model, "alice_user_carol")
        assert (str(target(world, model)) if page == "history" else shown) in body

    if page in ACTIONS:
        check_action_effects(world, principal, page, response, before)


# fmt: off
# Staff reads of messages: alice's conversation's Messages view (needs view_conversation_messages,
# which no staff principal here holds but the superuser), then the read-only MessageAccess list,
# its add and its delete pages (refused to everyone). tests/test_admin_messages.py has the whole
# permission matrix of the Messages view.
MESSAGES_TABLE = {
    #                 messages  accesses  add  delete
    "owner":          (302,     302,      302, 302),
    "anonymous":      (302,     302,      302, 302),
    "other user":     (302,     302,      302, 302),
    "uid collision":  (302,     302,      302, 302),
    "staff, no perm": (403,     403,      403, 403),
    "staff, view":    (403,     403,      403, 403),
    "staff, change":  (403,     403,      403, 403),
    "superuser":      (200,     200,      403, 403),
}
# fmt: on


@pytest.mark.parametrize(
    ("principal", "statuses"), list(MESSAGES_TABLE.items()), ids=list(MESSAGES_TABLE)
)
def test_message_reads_in_the_admin(world, principal, statuses):
    world.fake.send_message("carol", to_user="alice", text="MESSAGE-BODY for alice")
    world.fake.clear_requests()
    access = MessageAccess.objects.create(
        staff_username="root",
        owner_uid="alice",
        conversation_id="alice_user_carol",
        accessed_at=T0,
        message_count=1,
    )
    client = client_for(world, principal)
    pages = (
        reverse(f"admin:{MESSAGES_PAGE}", args=(world.rows["alice"].pk,)),
        admin_path(AUDIT_MODEL, "changelist"),
        admin_path(AUDIT_MODEL, "add"),
        admin_path(AUDIT_MODEL, "delete", access.pk),
    )
    for path, status in zip(pages, statuses, strict=True):
        response = client.get(path)
        assert response.status_code == status, (path, response.content.decode()[:300])
        if status == 302:
            assert response["Location"].startswith(LOGIN)
    read = statuses[0] == 200
    # Only a permitted read reaches CometChat, and only it is recorded (the row made above aside).
    assert bool(world.fake.requests) is read
    assert MessageAccess.objects.count() == 1 + read


def check_action_effects(world, principal, action, response, before):
    if response.status_code == 302 and principal in STAFF:  # it ran, on each owner's behalf
        on_behalf_of = sorted(r.headers["onbehalfof"] for r in world.fake.requests)
        assert set(on_behalf_of) == {"alice", "bob"}
        if action == "sync_owners":
            runs = SyncRun.objects.filter(trigger=SyncRun.Trigger.ADMIN)
            assert sorted(runs.values_list("owner_uid", flat=True)) == ["alice", "bob"]
        else:
            assert on_behalf_of == ["alice", "bob"]  # one fetch per row
            assert snapshot_of_stored_rows() != before["rows"]
        return
    assert world.fake.requests == []
    assert SyncRun.objects.count() == before["runs"]
    assert snapshot_of_stored_rows() == before["rows"]
    if response.status_code == 200:  # view-only staff: the list again, no action offered or run
        body = response.content.decode()
        assert f'value="{action}"' not in body
        assert 'class="messagelist"' not in body


def test_an_admin_action_without_the_csrf_token_is_refused(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.principals["superuser"])
    for action in ACTIONS:
        response = client.post(
            admin_path("conversation", "changelist"),
            {"action": action, "_selected_action": [world.rows["alice"].pk], "index": "0"},
        )
        assert response.status_code == 403
    assert world.fake.requests == []


# -- the webhook ---------------------------------------------------------------------------------


@pytest.mark.parametrize("route", list(WEBHOOK_ROUTES))
@pytest.mark.parametrize(("principal", "status"), list(WEBHOOK_TABLE.items()))
def test_webhook(world, principal, status, route):
    """A session, even a superuser's, is no webhook credential; CSRF plays no part either."""
    client = client_for(world, principal)
    client.handler.enforce_csrf_checks = True
    body = json.dumps(webhook_body("another message", message_id="42"))
    events = WebhookEvent.objects.count()
    response = client.post(webhook_path(route), data=body, content_type="application/json")
    assert response.status_code == status
    assert response["WWW-Authenticate"] == 'Basic realm="cometchat-webhook"'
    assert response.json()["error"]["code"] == "ERR_NOT_AUTHENTICATED"
    assert_nothing_foreign(response.content.decode(), "anonymous", world)
    assert WebhookEvent.objects.count() == events
    assert world.fake.requests == []
    # The same principal with CometChat's credentials is CometChat: recorded and processed.
    with_credentials = client.post(
        webhook_path(route),
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_authorization(*WEBHOOK_CREDENTIALS),
    )
    assert with_credentials.status_code == 200, with_credentials.content
    assert with_credentials.json() == {"status": "accepted"}
    assert WebhookEvent.objects.count() == events + 1
    # alice (bound) is refreshed on her own behalf; carol is no owner here.
    assert [r.headers["onbehalfof"] for r in world.fake.requests] == ["alice"]


@pytest.mark.parametrize("principal", ["anonymous", "superuser"])
@pytest.mark.parametrize(
    "credentials",
    [
        ("cometchat", "wrong-password"),
        ("root", "root-password"),
        (WEBHOOK_CREDENTIALS[0], ""),
    ],
)
def test_webhook_with_other_credentials(world, principal, credentials):
    response = client_for(world, principal).post(
        webhook_path(),
        data=json.dumps(webhook_body("x")),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_authorization(*credentials),
    )
    assert response.status_code == 401
    assert world.fake.requests == []
