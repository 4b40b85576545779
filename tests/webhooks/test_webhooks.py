"""CometChat's webhook: ``POST /cometchat/webhook/``.

Each answer (401, 400, 405, 413, 200 accepted / ignored / duplicate), the credentials (every entry
compared, in constant time; rotation), CSRF (not required here, still required elsewhere), the
fan-out of each trigger against the fake CometChat (one upstream request per affected owner:
counted as enqueued refreshes with a queuing backend, and as requests with the immediate one), the
signal, the admin pages and the system check. Through a real server: tests/api/test_real_server.py.
"""

from __future__ import annotations

import base64
import copy
import hmac
import io
import json
import re
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import django
import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import DatabaseError, connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cometchat import services, storage, tasks, webhooks
from django_cometchat.checks import check_webhook_credentials
from django_cometchat.exceptions import CometChatError
from django_cometchat.models import Conversation, WebhookEvent
from django_cometchat.signals import webhook_processed
from django_cometchat.webhook_types import (
    KNOWN_TRIGGERS,
    WebhookPayloadError,
    parse_webhook,
)
from tests.surface import WEBHOOK_CREDENTIALS, basic_authorization, published_webhook

pytestmark = pytest.mark.django_db

BACKENDS = "django.tasks.backends" if django.VERSION >= (6, 0) else "django_tasks.backends"
WEBHOOK = "/cometchat/webhook/"
USER, PASSWORD = WEBHOOK_CREDENTIALS  # tests/settings.py
JSON = "application/json"
WEBHOOKS_ADMIN = "/admin/django_cometchat/webhookevent/"


AUTH = basic_authorization()


def post(client, body: Any, *, auth: str | None = AUTH, raw: bytes | None = None, **extra):
    if auth is not None:
        extra["HTTP_AUTHORIZATION"] = auth
    data = raw if raw is not None else json.dumps(body)
    return client.post(WEBHOOK, data=data, content_type=JSON, **extra)


def envelope(trigger: str, data: Any) -> dict[str, Any]:
    return {"trigger": trigger, "data": data, "appId": "testapp", "region": "us", "webhook": "w1"}


def message_event(message: dict[str, Any], trigger: str = "message_sent") -> dict[str, Any]:
    return envelope(trigger, {"message": message})


def action_event(message: dict[str, Any], action: str) -> dict[str, Any]:
    """message_edited / message_deleted: an action message about ``message`` (API.md §7)."""
    acted_on = {**message, "updatedAt": message["updatedAt"] + 5}
    if action == "deleted":
        acted_on["deletedAt"] = acted_on["updatedAt"]
    else:
        acted_on["editedAt"] = acted_on["updatedAt"]
    action_message = {
        "id": str(int(message["id"]) + 1000),
        "conversationId": message["conversationId"],
        "sender": message["sender"],
        "receiverType": message["receiverType"],
        "receiver": message["receiver"],
        "category": "action",
        "type": "message",
        "data": {
            "action": action,
            "entities": {
                "by": {"entity": {"uid": message["sender"]}, "entityType": "user"},
                "on": {"entity": acted_on, "entityType": "message"},
            },
        },
        "sentAt": acted_on["updatedAt"],
        "updatedAt": acted_on["updatedAt"],
    }
    return envelope(f"message_{action}", {"message": action_message})


def receipt_event(
    *, reader: str, message: dict[str, Any], kind: str = "read", at: int = 1_700_000_000
) -> dict[str, Any]:
    group = message["receiverType"] == "group"
    return envelope(
        f"message_{'read' if kind == 'read' else 'delivery'}_receipt",
        {
            "receiver": message["receiver"] if group else message["sender"],
            "receiverType": message["receiverType"],
            "type": "receipts",
            "sender": {"uid": reader, "name": reader.title()},
            "messageSender": message["sender"],
            "body": {
                "action": kind,
                "messageId": message["id"],
                "user": {"uid": reader, "name": reader.title()},
                "timestamp": at,
            },
        },
    )


def block_event(blocker: str, blocked: str, trigger: str = "user_blocked") -> dict[str, Any]:
    return envelope(
        trigger,
        {"user": {"uid": blocker}, "blockedUser": {"uid": blocked}, "blockedAt": 1_700_000_000},
    )


def error_of(response, status: int, code: str) -> Any:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == JSON
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


@pytest.fixture(autouse=True)
def _uids(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "UID_RESOLVER": "tests.resolvers.uid_from_username"}


@pytest.fixture
def queue(settings, monkeypatch):
    """A backend that keeps what is enqueued and runs nothing (as in tests/tasks/test_tasks.py).
    Every refresh is enqueued, even an event's first two (``INLINE_REFRESHES``), so that the owners
    an event affects show as tasks."""
    settings.TASKS = {"default": {"BACKEND": f"{BACKENDS}.dummy.DummyBackend"}}
    monkeypatch.setattr(services.webhook_processing, "INLINE_REFRESHES", 0)
    backend: Any = tasks.backend()
    assert tasks.queues()
    yield backend
    backend.clear()


@pytest.fixture
def known(fake, alice):
    """alice (a Django user, bound) and bob (rows only, synced by UID) are known here; carol is
    not. Both hold alice_user_bob and group_book-club."""
    services.sync_conversations(alice)
    services.sync_conversations(services.owner_by_uid("bob"))
    fake.clear_requests()
    return fake


def upstream(fake) -> list[tuple[str, str]]:
    """(onBehalfOf, path) of each request the fake received, sorted."""
    return sorted((r.headers.get("onbehalfof", ""), r.path) for r in fake.requests)


def refreshes(queue) -> list[list[str]]:
    """Run the enqueued process_webhook_event tasks, as a worker would (arguments through
    JSON); the refreshes they enqueued, sorted. The queue is empty afterwards."""
    processing = list(queue.results)
    assert {r.task.name for r in processing} <= {"process_webhook_event"}
    for result in processing:
        args = json.loads(json.dumps(result.args))
        result.task.call(*args)
    enqueued = [r for r in queue.results if r not in processing]
    assert {r.task.name for r in enqueued} <= {"refresh_conversation"}
    queue.clear()
    return sorted(list(r.args) for r in enqueued)


# -- 401: credentials --------------------------------------------------------------------------


def test_missing_credentials_are_refused_and_nothing_is_recorded(client, fake):
    response = post(client, message_event(fake.send_message("bob", to_user="alice")), auth=None)
    error_of(response, 401, "ERR_NOT_AUTHENTICATED")
    assert response["WWW-Authenticate"] == 'Basic realm="cometchat-webhook"'
    assert not WebhookEvent.objects.exists()
    assert fake.requests == []


@pytest.mark.parametrize(
    "auth",
    [
        basic_authorization(USER, "wrong-password"),
        basic_authorization("someone", PASSWORD),
        basic_authorization(USER, PASSWORD + "x"),
        basic_authorization(USER, PASSWORD[:-1]),
        basic_authorization(USER.upper(), PASSWORD),
        "Basic " + base64.b64encode(f"{USER}{PASSWORD}".encode()).decode(),  # no colon
        "Basic not base64!",
        "Basic ",
        f"Bearer {PASSWORD}",
        PASSWORD,
        "",
    ],
)
def test_wrong_credentials_are_refused(client, fake, auth):
    response = post(client, envelope("message_sent", {}), auth=auth)
    error_of(response, 401, "ERR_NOT_AUTHENTICATED")
    assert response["WWW-Authenticate"] == 'Basic realm="cometchat-webhook"'
    assert not WebhookEvent.objects.exists()
    assert PASSWORD not in response.content.decode()


def test_the_scheme_is_case_insensitive(client, fake):
    assert post(client, envelope("group_created", {}), auth="basic " + AUTH[6:]).status_code == 200


def test_without_configured_credentials_everything_is_refused(client, fake, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "WEBHOOK_BASIC_AUTH": []}
    for auth in (AUTH, basic_authorization("", ""), basic_authorization(":", ":"), None):
        error_of(
            post(client, envelope("group_created", {}), auth=auth), 401, "ERR_NOT_AUTHENTICATED"
        )
    assert not WebhookEvent.objects.exists()


def test_broken_settings_refuse_rather_than_fail(client, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "PAGE_SIZE": 0}
    error_of(post(client, envelope("group_created", {})), 401, "ERR_NOT_AUTHENTICATED")


def test_rotation_every_configured_entry_works(client, fake, settings):
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "WEBHOOK_BASIC_AUTH": ["old-user:old-password", "new-user:new-password"],
    }
    for n, auth in enumerate(
        (
            basic_authorization("old-user", "old-password"),
            basic_authorization("new-user", "new-password"),
        )
    ):
        assert post(client, envelope("group_created", {"n": n}), auth=auth).status_code == 200
    # A mix of two entries is no entry.
    error_of(
        post(
            client,
            envelope("group_created", {}),
            auth=basic_authorization("old-user", "new-password"),
        ),
        401,
        "ERR_NOT_AUTHENTICATED",
    )
    assert WebhookEvent.objects.count() == 2


@pytest.mark.parametrize("given", ["first", "second", "third", "none"])
def test_every_entry_is_compared_user_and_password_in_constant_time(
    client, fake, settings, monkeypatch, given
):
    entries = {"first": ("u1", "password-1"), "second": ("u2", "password-2")}
    entries["third"] = ("u3", "password-3")
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "WEBHOOK_BASIC_AUTH": [f"{u}:{p}" for u, p in entries.values()],
    }
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def compare_digest(a, b):
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", compare_digest)
    user, password = entries.get(given, ("u9", "password-9"))
    response = post(client, envelope("group_created", {}), auth=basic_authorization(user, password))
    assert response.status_code == (401 if given == "none" else 200)
    # Two comparisons per entry whichever matched (or none): nothing stops at the first match,
    # and every comparison went through compare_digest.
    assert len(compared) == 2 * len(entries)
    assert {b for _, b in compared} == {v.encode() for pair in entries.values() for v in pair}
    assert all(a in (user.encode(), password.encode()) for a, _ in compared)


def test_credentials_match_needs_both_halves_of_one_entry():
    from django_cometchat.redaction import Secret

    pairs = (("a-user", Secret("a-password")), ("b-user", Secret("b-password")))
    assert webhooks.credentials_match(basic_authorization("a-user", "a-password"), pairs)
    assert webhooks.credentials_match(basic_authorization("b-user", "b-password"), pairs)
    assert not webhooks.credentials_match(basic_authorization("a-user", "b-password"), pairs)
    assert not webhooks.credentials_match(basic_authorization("a-user", "a-password"), ())
    assert not webhooks.credentials_match("Basic %%%", pairs)


# -- 405, 413, 400 -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "head", "options"])
def test_other_methods_are_405(client, fake, method):
    response = getattr(client, method)(WEBHOOK, HTTP_AUTHORIZATION=AUTH)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    if method != "head":
        error_of(response, 405, "ERR_METHOD_NOT_ALLOWED")
    assert not WebhookEvent.objects.exists()


def test_a_body_over_one_mebibyte_is_413_and_recorded_without_it(client, fake):
    big = envelope("message_sent", {"padding": "x" * webhooks.MAX_BODY_BYTES})
    response = post(client, big)
    error_of(response, 413, "ERR_PAYLOAD_TOO_LARGE")
    event = WebhookEvent.objects.get()
    assert (event.status, event.trigger, event.payload, event.dedupe_key) == (
        "failed",
        "",
        None,
        None,
    )
    assert "larger than 1048576 bytes" in event.error
    # Exactly at the limit is read (and parsed).
    pad = webhooks.MAX_BODY_BYTES - len(json.dumps(envelope("group_created", {"padding": ""})))
    exact = json.dumps(envelope("group_created", {"padding": "x" * pad}))
    assert len(exact) == webhooks.MAX_BODY_BYTES
    assert post(client, None, raw=exact.encode()).status_code == 200


def test_a_body_without_a_length_is_cut_at_the_limit(fake):
    # A server that streams a chunked body gives no CONTENT_LENGTH: the read itself is bounded.
    request = RequestFactory().post(WEBHOOK, data=b"{}", content_type=JSON, HTTP_AUTHORIZATION=AUTH)
    del request.META["CONTENT_LENGTH"]
    request._stream = io.BytesIO(b" " * (webhooks.MAX_BODY_BYTES + 10) + b"{}")
    response = webhooks.receive(request)
    assert response.status_code == 413
    assert json.loads(response.content)["error"]["code"] == "ERR_PAYLOAD_TOO_LARGE"
    assert WebhookEvent.objects.get().status == "failed"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b'{"trigger": "message_sent",',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the decoder recurses
        b'{"n": ' + b"9" * 5000 + b"}",  # more digits than int() converts
    ],
    ids=["empty", "text", "truncated", "not-utf8", "deep", "huge-number"],
)
def test_malformed_json_is_400_and_recorded_without_the_body(client, fake, raw):
    error_of(post(client, None, raw=raw), 400, "ERR_MALFORMED_JSON")
    event = WebhookEvent.objects.get()
    assert (event.status, event.payload, event.dedupe_key) == ("failed", None, None)
    assert event.error == "The body is not valid JSON."


HOSTILE_UID = "../../users/admin"

HOSTILE = {
    "not an object": [1, 2],
    "no trigger": {"data": {}},
    "trigger not text": {"trigger": ["message_sent"], "data": {}},
    "trigger shouting": {"trigger": "MESSAGE_SENT; DROP TABLE", "data": {}},
    "no data": {"trigger": "message_sent"},
    "no message": envelope("message_sent", {"text": "hi"}),
    "no message id": envelope(
        "message_sent", {"message": {"receiverType": "user", "sender": "a", "receiver": "b"}}
    ),
    "hostile sender": envelope(
        "message_sent",
        {"message": {"id": "1", "receiverType": "user", "sender": HOSTILE_UID, "receiver": "b"}},
    ),
    "hostile conversation id": envelope(
        "message_sent",
        {
            "message": {
                "id": "1",
                "receiverType": "user",
                "sender": "a",
                "receiver": "b",
                "conversationId": "a_user_b/../../x",
            }
        },
    ),
    "hostile group": envelope(
        "message_sent", {"message": {"id": "1", "receiverType": "group", "receiver": HOSTILE_UID}}
    ),
    "unknown receiver type": envelope(
        "message_sent", {"message": {"id": "1", "receiverType": "channel", "receiver": "x"}}
    ),
    "hostile message id": envelope(
        "message_sent", {"message": {"id": "1; rm -rf", "receiverType": "group", "receiver": "g"}}
    ),
    "bad updatedAt": envelope(
        "message_sent",
        {"message": {"id": "1", "receiverType": "group", "receiver": "g", "updatedAt": "soon"}},
    ),
    "NUL in a text": envelope("group_created", {"name": "a\x00b"}),
    "lone surrogate": envelope("group_created", {"name": "\ud800"}),
    "nested too deep": envelope("group_created", json.loads("[" * 40 + "]" * 40)),
    "receipt of nobody": envelope(
        "message_read_receipt", {"receiverType": "user", "body": {"messageId": "1"}}
    ),
    "receipt by a hostile user": envelope(
        "message_read_receipt",
        {
            "receiverType": "user",
            "receiver": "bob",
            "body": {"messageId": "1", "user": {"uid": HOSTILE_UID}},
        },
    ),
    "block of nobody": envelope("user_blocked", {"user": "alice"}),
    "block of a hostile user": envelope("user_blocked", {"user": "alice", "blocked": HOSTILE_UID}),
    "block of oneself": envelope("user_blocked", {"user": "alice", "blocked": "alice"}),
    "block of too many": envelope(
        "user_blocked", {"user": "alice", "blockedUids": [f"u{n}" for n in range(26)]}
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_payloads_are_400_recorded_without_the_payload(client, fake, case):
    body = HOSTILE[case]
    raw = json.dumps(body).encode()  # json.dumps escapes NUL and the lone surrogate
    response = post(client, None, raw=raw)
    error = error_of(response, 400, "ERR_INVALID_PAYLOAD")
    event = WebhookEvent.objects.get()
    assert (event.status, event.payload, event.dedupe_key) == ("failed", None, None)
    assert event.error.startswith("The body is not a CometChat webhook: ")
    assert error["message"] == event.error
    for hostile in (HOSTILE_UID, "../", "DROP TABLE", "\x00", "\ud800", "rm -rf"):
        assert hostile not in event.error
        assert hostile not in event.trigger
    if isinstance(body, dict) and body.get("trigger") in KNOWN_TRIGGERS:
        assert event.trigger == body["trigger"]  # what it was, for the operator
    else:
        assert event.trigger == ""
    assert fake.requests == []


def test_nan_is_not_json_a_database_stores(client, fake):
    response = post(client, None, raw=b'{"trigger": "group_created", "data": {"n": NaN}}')
    error_of(response, 400, "ERR_INVALID_PAYLOAD")
    assert WebhookEvent.objects.get().payload is None


# -- 200: ignored, duplicate -------------------------------------------------------------------


def test_an_unknown_trigger_is_recorded_and_ignored(client, fake, queue):
    body = envelope("campaign_sent_to_the_moon", {"anything": [1, {"x": None}]})
    response = post(client, body)
    assert response.status_code == 200
    assert response.json() == {"status": "ignored"}
    event = WebhookEvent.objects.get()
    assert (event.trigger, event.status, event.processed_at) == (
        "campaign_sent_to_the_moon",
        "ignored",
        None,
    )
    assert event.payload == body
    assert event.dedupe_key is not None
    assert len(event.dedupe_key) == 64
    assert queue.results == []
    assert fake.requests == []
    # And its retry is a duplicate.
    assert post(client, body).json() == {"status": "duplicate"}
    assert WebhookEvent.objects.count() == 1


def test_a_known_trigger_this_app_does_not_act_on_is_ignored_too(client, fake, queue):
    # API.md §7 "Reactions": data.reaction.
    reaction = {"id": "1", "messageId": "57", "reaction": "+1", "uid": "bob", "reactedAt": 1}
    body = envelope("message_reaction_added", {"reaction": {**reaction, "reactedBy": "bob"}})
    assert post(client, body).json() == {"status": "ignored"}
    assert WebhookEvent.objects.get().status == "ignored"
    assert queue.results == []


def test_a_retried_delivery_is_a_duplicate_and_enqueues_nothing(client, known, queue):
    body = message_event(known.send_message("bob", to_user="alice", text="once"))
    assert post(client, body).json() == {"status": "accepted"}
    assert len(queue.results) == 1
    for _retry in ("after 10 s", "after 30 s"):
        response = post(client, copy.deepcopy(body))
        assert response.status_code == 200
        assert response.json() == {"status": "duplicate"}
    assert len(queue.results) == 1  # nothing more enqueued
    assert WebhookEvent.objects.count() == 1
    # A second webhook pointed at the same URL delivers the same event: a duplicate too.
    assert post(client, {**body, "webhook": "w2"}).json() == {"status": "duplicate"}
    assert known.requests == []


def test_a_retried_delivery_fetches_nothing_again(client, known):
    body = message_event(known.send_message("bob", to_user="alice", text="once"))
    assert post(client, body).json() == {"status": "accepted"}
    fetched = upstream(known)
    assert len(fetched) == 2
    assert post(client, body).json() == {"status": "duplicate"}
    assert upstream(known) == fetched


def test_the_same_message_updated_later_is_a_new_event(client, known, queue):
    message = known.send_message("bob", to_user="alice", text="v1")
    assert post(client, message_event(message)).json() == {"status": "accepted"}
    later = {**message, "updatedAt": message["updatedAt"] + 1}
    assert post(client, message_event(later)).json() == {"status": "accepted"}
    assert WebhookEvent.objects.count() == 2


def test_concurrent_deliveries_of_one_event_record_it_once(known):
    delivery = parse_webhook(message_event(known.send_message("bob", to_user="alice")))
    first = services.record_webhook(delivery)
    assert first is not None
    assert services.record_webhook(delivery) is None  # the unique key refused the second
    assert WebhookEvent.objects.count() == 1


# -- CSRF ---------------------------------------------------------------------------------------


def test_csrf_does_not_apply_to_the_webhook_but_still_does_elsewhere(fake, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)  # a session cookie, and no CSRF token
    assert post(client, envelope("group_created", {})).status_code == 200
    refused = client.post("/cometchat/conversations/refresh/")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]
    assert client.post("/admin/logout/").status_code == 403
    assert fake.requests == []


# -- fan-out, per trigger ----------------------------------------------------------------------

ALICE_BOB = [
    ("alice", "/v3/users/bob/conversation"),
    ("bob", "/v3/users/alice/conversation"),
]


def test_message_sent_refreshes_both_parties_once_each(client, known):
    body = message_event(known.send_message("bob", to_user="alice", text="news"))
    assert post(client, body).json() == {"status": "accepted"}
    assert upstream(known) == ALICE_BOB
    for owner in ("alice", "bob"):
        row = Conversation.objects.get(owner_uid=owner, conversation_id="alice_user_bob")
        assert row.last_message is not None
        assert row.last_message["data"]["text"] == "news"
    event = WebhookEvent.objects.get()
    assert (event.status, event.owners, event.error) == ("processed", ["alice", "bob"], "")
    assert event.processed_at is not None
    assert event.processed_at >= event.received_at


def test_message_sent_enqueues_one_refresh_per_owner(client, known, queue):
    body = message_event(known.send_message("bob", to_user="alice", text="news"))
    assert post(client, body).json() == {"status": "accepted"}
    assert WebhookEvent.objects.get().status == "received"
    assert refreshes(queue) == [["alice", "alice_user_bob"], ["bob", "alice_user_bob"]]
    assert known.requests == []  # the workers fetch, not the webhook
    event = WebhookEvent.objects.get()
    assert (event.status, event.owners) == ("processed", ["alice", "bob"])


def test_an_event_for_two_owners_refreshes_them_within_its_own_task(
    client, known, queue, monkeypatch
):
    monkeypatch.setattr(services.webhook_processing, "INLINE_REFRESHES", 2)  # the default
    body = message_event(known.send_message("bob", to_user="alice", text="news"))
    assert post(client, body).json() == {"status": "accepted"}
    assert known.requests == []
    assert refreshes(queue) == []  # no refresh task: the event's task fetched both
    assert upstream(known) == ALICE_BOB
    for owner in ("alice", "bob"):
        row = Conversation.objects.get(owner_uid=owner, conversation_id="alice_user_bob")
        assert row.last_message is not None
        assert row.last_message["data"]["text"] == "news"
    event = WebhookEvent.objects.get()
    assert (event.status, event.owners) == ("processed", ["alice", "bob"])


def test_an_event_for_more_owners_fans_out_as_refresh_tasks(client, known, queue, monkeypatch):
    # a group of two holders is "more" here
    monkeypatch.setattr(services.webhook_processing, "INLINE_REFRESHES", 1)
    post(client, message_event(known.send_message("carol", to_group="book-club")))
    assert refreshes(queue) == [["alice", "group_book-club"], ["bob", "group_book-club"]]
    assert known.requests == []  # the refresh tasks fetch, not the event's


def test_the_fixture_body_is_accepted(client, known, queue):
    """fixtures/webhook.message_sent.json (API.md §7 "Messages"); the published shapes of the
    other triggers: test_webhooks_published.py."""
    fixture = published_webhook("message_sent")
    assert post(client, fixture).json() == {"status": "accepted"}
    # Neither cometchat-uid-1 nor cometchat-uid-2 is known here: nothing to refresh.
    assert refreshes(queue) == []
    assert WebhookEvent.objects.get().owners == []


def test_only_owners_known_here_are_refreshed(client, known, queue):
    # carol has neither a binding nor rows: her copy is not created from webhook traffic.
    body = message_event(known.send_message("carol", to_user="alice", text="hey"))
    post(client, body)
    assert refreshes(queue) == [["alice", "alice_user_carol"]]
    body = message_event(known.send_message("carol", to_user="bob", text="hey bob"))
    post(client, body)
    assert refreshes(queue) == [["bob", "bob_user_carol"]]
    assert not Conversation.objects.filter(owner_uid="carol").exists()


def test_a_conversation_id_is_built_when_the_message_has_none(client, known, queue):
    message = known.send_message("bob", to_user="alice")
    del message["conversationId"]
    post(client, message_event(message))
    assert refreshes(queue) == [["alice", "alice_user_bob"], ["bob", "alice_user_bob"]]


def test_a_group_message_refreshes_each_holder_of_the_group_once(client, known):
    # alice and bob hold group_book-club; carol, a member, does not.
    body = message_event(known.send_message("carol", to_group="book-club", text="ch. 4"))
    assert post(client, body).json() == {"status": "accepted"}
    assert upstream(known) == [
        ("alice", "/v3/groups/book-club/conversation"),
        ("bob", "/v3/groups/book-club/conversation"),
    ]
    row = Conversation.objects.get(owner_uid="alice", conversation_id="group_book-club")
    assert row.last_message is not None
    assert row.last_message["data"]["text"] == "ch. 4"
    assert WebhookEvent.objects.get().owners == ["alice", "bob"]


def test_a_group_message_enqueues_one_refresh_per_holder(client, known, queue):
    post(client, message_event(known.send_message("carol", to_group="book-club")))
    assert refreshes(queue) == [["alice", "group_book-club"], ["bob", "group_book-club"]]


@pytest.mark.parametrize("action", ["edited", "deleted"])
def test_edits_and_deletions_refresh_both_parties(client, known, action):
    message = known.send_message("bob", to_user="alice", text="typo")
    assert post(client, action_event(message, action)).json() == {"status": "accepted"}
    assert upstream(known) == ALICE_BOB
    assert WebhookEvent.objects.get().trigger == f"message_{action}"


@pytest.mark.parametrize("action", ["edited", "deleted"])
def test_edits_and_deletions_in_a_group_fan_out(client, known, queue, action):
    message = known.send_message("bob", to_group="book-club", text="typo")
    post(client, action_event(message, action))
    assert refreshes(queue) == [["alice", "group_book-club"], ["bob", "group_book-club"]]


def test_two_edits_of_one_message_are_two_events(client, known, queue):
    message = known.send_message("bob", to_user="alice", text="typo")
    first = action_event(message, "edited")
    second = copy.deepcopy(first)
    second["data"]["message"]["id"] = "99999"
    on = second["data"]["message"]["data"]["entities"]["on"]["entity"]
    on["updatedAt"] += 1
    assert post(client, first).json() == {"status": "accepted"}
    assert post(client, second).json() == {"status": "accepted"}
    assert post(client, second).json() == {"status": "duplicate"}


@pytest.mark.parametrize("kind", ["read", "delivered"])
def test_a_user_receipt_refreshes_both_parties(client, known, kind):
    message = known.send_message("bob", to_user="alice", text="read me")
    body = receipt_event(reader="alice", message=message, kind=kind)
    assert post(client, body).json() == {"status": "accepted"}
    assert upstream(known) == ALICE_BOB


def test_a_group_receipt_refreshes_the_readers_group_conversation(client, known, queue):
    message = known.send_message("bob", to_group="book-club")
    post(client, receipt_event(reader="alice", message=message))
    assert refreshes(queue) == [["alice", "group_book-club"]]
    # carol is not known here: her receipt refreshes nothing.
    post(client, receipt_event(reader="carol", message=message))
    assert refreshes(queue) == []


def test_receipts_dedupe_on_message_user_and_time(client, known, queue):
    message = known.send_message("bob", to_user="alice")
    body = receipt_event(reader="alice", message=message, at=1_700_000_000)
    assert post(client, body).json() == {"status": "accepted"}
    assert post(client, body).json() == {"status": "duplicate"}
    later = receipt_event(reader="alice", message=message, at=1_700_000_001)
    assert post(client, later).json() == {"status": "accepted"}
    delivered = receipt_event(reader="alice", message=message, kind="delivered")
    assert post(client, delivered).json() == {"status": "accepted"}
    # Three events to process; one task, queued for the first, processes the burst.
    assert WebhookEvent.objects.filter(status="received").count() == 3
    assert len(queue.results) == 1


def test_a_legacy_receipt_with_its_fields_in_data(client, known, queue):
    body = envelope(
        "message_read_receipt",
        {
            "messageId": "7",
            "receiptType": "read",
            "readAt": 1673017183,
            "receiverType": "user",
            "receiver": "bob",
            "sender": "alice",
        },
    )
    assert post(client, body).json() == {"status": "accepted"}
    assert refreshes(queue) == [["alice", "alice_user_bob"], ["bob", "alice_user_bob"]]


def block_flags() -> tuple[Any, Any]:
    """alice's blockedByMe (of bob, in her copy) and bob's hasBlockedMe (of alice, in his)."""
    peers = {
        uid: Conversation.objects.owned_by(uid)
        .get(conversation_id="alice_user_bob")
        .payload["conversationWith"]
        for uid in ("alice", "bob")
    }
    return peers["alice"].get("blockedByMe"), peers["bob"].get("hasBlockedMe")


@pytest.mark.parametrize("trigger", ["user_blocked", "user_unblocked"])
def test_a_block_refreshes_the_pair_with_the_flags_it_sets(client, known, alice, trigger):
    """No single-conversation fetch says who blocked whom (API.md §2.4): the event does, and both
    copies keep it until the next sync, which agrees."""
    blocking = trigger == "user_blocked"
    known.block_user("alice", "bob")
    if not blocking:  # stored while blocked, then unblocked upstream
        services.sync_conversations(alice)
        services.sync_conversations(services.owner_by_uid("bob"))
        assert block_flags() == (True, True)
        known.unblock_user("alice", "bob")
        known.clear_requests()
    assert post(client, block_event("alice", "bob", trigger)).json() == {"status": "accepted"}
    assert upstream(known) == ALICE_BOB
    assert block_flags() == (blocking, blocking)
    services.sync_conversations(alice)
    services.sync_conversations(services.owner_by_uid("bob"))
    assert block_flags() == (blocking, blocking)


@pytest.mark.parametrize(
    "data",
    [
        {"blockedBy": "alice", "blocked": "bob"},
        {
            "by": {"entity": {"uid": "alice"}, "entityType": "user"},
            "on": {"entity": {"uid": "bob"}},
        },
        {"blocker": {"uid": "alice"}, "blockee": {"uid": "bob"}},
        {"uid": "alice", "blockedUids": ["bob"]},
        {"user": "ALICE", "blockedUser": "Bob"},  # CometChat lowercases UIDs
    ],
)
def test_block_events_in_other_plausible_shapes(client, known, queue, data):
    assert post(client, envelope("user_blocked", data)).json() == {"status": "accepted"}
    assert refreshes(queue) == [
        ["alice", "alice_user_bob", ["blockedByMe", True]],
        ["bob", "alice_user_bob", ["hasBlockedMe", True]],
    ]


def test_a_block_without_a_timestamp_dedupes_on_its_data(client, known, queue):
    body = envelope("user_blocked", {"user": "alice", "blockedUser": "bob"})
    assert post(client, body).json() == {"status": "accepted"}
    assert post(client, body).json() == {"status": "duplicate"}
    other = envelope("user_blocked", {"user": "alice", "blockedUser": "bob", "reason": "spam"})
    assert post(client, other).json() == {"status": "accepted"}


def test_the_legacy_after_message_carries_the_message_as_data(client, known, queue):
    message = known.send_message("bob", to_user="alice")
    assert post(client, envelope("after_message", message)).json() == {"status": "accepted"}
    assert refreshes(queue) == [["alice", "alice_user_bob"], ["bob", "alice_user_bob"]]


def test_a_refresh_that_fails_upstream_fails_the_event_not_the_webhook(client, known, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "MAX_RETRIES": 0}
    known.fail_next(1, status=500)  # the first of the two refreshes
    body = message_event(known.send_message("bob", to_user="alice"))
    assert post(client, body).json() == {"status": "accepted"}
    assert len(known.requests) == 2  # one each, not retried into a storm
    event = WebhookEvent.objects.get()
    refreshed = {"alice", "bob"} - {known.requests[0].headers["onbehalfof"]}
    assert (event.status, event.owners) == ("failed", sorted(refreshed))  # only who was refreshed
    assert "ERR_MISSION_FAILED" in event.error


# -- the task ------------------------------------------------------------------------------------


def test_an_event_is_processing_while_its_refreshes_run(client, known, monkeypatch):
    """Taken by a worker, not yet processed: a worker that dies here leaves it "processing"."""
    seen = []
    fetch = services.refresh.fetch_target

    def watching(*args: Any, **kwargs: Any) -> Any:
        seen.append(WebhookEvent.objects.get().status)
        return fetch(*args, **kwargs)

    monkeypatch.setattr(services.webhook_processing, "fetch_target", watching)
    body = message_event(known.send_message("bob", to_user="alice"))
    assert post(client, body).json() == {"status": "accepted"}
    assert seen == ["processing", "processing"]  # one fetch per owner
    assert WebhookEvent.objects.get().status == "processed"


def _recorded_message_event(client, known, queue, monkeypatch, text: str) -> int:
    """bob messages alice; the event recorded (its task queued, not run), its two refreshes
    left to the event's own task (``INLINE_REFRESHES``, the default)."""
    body = message_event(known.send_message("bob", to_user="alice", text=text))
    assert post(client, body).json() == {"status": "accepted"}
    monkeypatch.setattr(services.webhook_processing, "INLINE_REFRESHES", 2)
    queue.clear()
    return WebhookEvent.objects.get().pk


def test_an_events_refreshes_are_stored_and_it_is_finished_in_one_transaction(
    client, known, queue, monkeypatch
):
    """One transaction (in the test's own, a savepoint) for the event's two stores and its
    finish, not one each; both owners locked at once, in UID order whatever order the delivery
    names them in (tests/services/test_sync_races.py: the locks themselves)."""
    event_id = _recorded_message_event(client, known, queue, monkeypatch, "news")
    event = WebhookEvent.objects.get()
    assert [t.uid for t in services.webhook_targets(event)] == ["bob", "alice"]  # sender first
    locked = []
    sql = storage.dialect()
    lock = type(sql).lock_owners

    def watching(self: Any, uids: Any) -> Any:
        locked.append(list(uids))
        return lock(self, uids)

    monkeypatch.setattr(type(sql), "lock_owners", watching)
    with CaptureQueriesContext(connection) as queries:
        outcome = services.process_webhook_event_in_background(event_id)
    assert (outcome.status, outcome.owners) == ("processed", ["alice", "bob"])
    assert locked == [["alice", "bob"]]
    savepoints = [q["sql"] for q in queries if q["sql"].startswith("SAVEPOINT")]
    assert len(savepoints) == 1, savepoints
    for owner in ("alice", "bob"):
        row = Conversation.objects.get(owner_uid=owner, conversation_id="alice_user_bob")
        assert row.last_message is not None
        assert row.last_message["data"]["text"] == "news"


def test_a_database_error_storing_one_owner_stores_neither_and_fails_the_event(
    client, known, queue, monkeypatch
):
    event_id = _recorded_message_event(client, known, queue, monkeypatch, "lost")
    store_page = storage.store_page

    def second_fails(**kwargs: Any) -> Any:
        if kwargs["owner_uid"] == "bob":  # stored second (UID order)
            raise DatabaseError("could not extend file: No space left on device")
        return store_page(**kwargs)

    monkeypatch.setattr(storage, "store_page", second_fails)
    with pytest.raises(DatabaseError):
        services.process_webhook_event_in_background(event_id)
    for owner in ("alice", "bob"):  # alice's store was rolled back with the rest
        row = Conversation.objects.get(owner_uid=owner, conversation_id="alice_user_bob")
        assert row.last_message is not None
        assert row.last_message["data"].get("text") != "lost"
    event = WebhookEvent.objects.get()
    assert (event.status, event.owners) == ("failed", [])
    assert "No space left on device" in event.error


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_raises_after_the_commit_leaves_the_event_processed(
    client, known, queue, monkeypatch
):
    """``webhook_processed`` runs once the event's transaction commits; a receiver that raises
    then is the host's failure, raised, and the committed event stays processed (it is not
    finished again as failed, nor announced twice)."""
    event_id = _recorded_message_event(client, known, queue, monkeypatch, "news")
    heard: list[str] = []

    def broken(sender: Any, event: WebhookEvent, **kwargs: Any) -> None:
        heard.append(str(event.status))
        raise RuntimeError("the host's receiver failed")

    webhook_processed.connect(broken)
    try:
        with pytest.raises(RuntimeError, match="host's receiver"):
            services.process_webhook_event_in_background(event_id)
    finally:
        webhook_processed.disconnect(broken)
    assert heard == ["processed"]
    event = WebhookEvent.objects.get()
    assert (event.status, event.owners, event.error) == ("processed", ["alice", "bob"], "")


def test_the_task_runs_once_per_event(client, known, queue):
    post(client, message_event(known.send_message("bob", to_user="alice")))
    (result,) = queue.results
    event_id = result.args[0]
    queue.clear()
    first = tasks.process_webhook_event.call(event_id)
    assert first == {
        "event": event_id,
        "status": "processed",
        "owners": ["alice", "bob"],
        "followers": {},
    }
    again = tasks.process_webhook_event.call(event_id)  # a queue that delivered it twice
    assert again["status"] == "skipped"
    assert len(queue.results) == 2  # the first run's two refreshes only
    assert tasks.process_webhook_event.call(999_999)["status"] == "skipped"


def test_an_events_refreshes_read_no_row_back_and_its_owners_once(client, known):
    """What a message event costs the database, both owners refreshed in the task: the claim,
    the owners (bindings and users in one read, then the unbound ones' rows), then one
    transaction holding each owner's lock and writing, and finishing the event. No stored row
    is read back."""
    event = services.record_webhook(
        parse_webhook(message_event(known.send_message("bob", to_user="alice")))
    )
    assert event is not None
    with CaptureQueriesContext(connection) as captured:
        outcome = tasks.process_webhook_event.call(event.pk)
    assert outcome["owners"] == ["alice", "bob"]
    statements = [" ".join(q["sql"].split()) for q in captured.captured_queries]
    bindings = [s for s in statements if s.startswith("SELECT") and "uidbinding" in s]
    assert len(bindings) == 1, bindings
    read_back = 'SELECT "django_cometchat_conversation"."id"'
    assert [s for s in statements if s.startswith(read_back)] == []
    if connection.vendor == "postgresql":
        # Claim, bindings, unbound owners' rows; BEGIN, both owners' locks in one statement,
        # their stored peers in another, 2 x upsert with history, finish, COMMIT (here a
        # savepoint and its release, inside the test's transaction).
        assert len(statements) == 10, "\n".join(statements)


def test_a_queue_that_refuses_the_task_leaves_a_failed_event(client, known, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks, "process_webhook_event", SimpleNamespace(enqueue=refuse))
    response = post(client, message_event(known.send_message("bob", to_user="alice")))
    error_of(response, 503, "ERR_QUEUE_UNAVAILABLE")
    event = WebhookEvent.objects.get()
    assert event.status == "failed"
    assert "broker down" in event.error


def test_a_stored_payload_that_no_longer_parses_fails_the_event():
    event = WebhookEvent.objects.create(
        trigger="message_sent",
        received_at=timezone.now(),
        dedupe_key="x" * 64,
        payload={"trigger": "message_sent", "data": {}},
    )
    result = tasks.process_webhook_event.enqueue(event.pk)  # the immediate backend: no TASKS
    assert result.status == "FAILED"  # the task ends failed too, with the reason
    assert "data.message must be a JSON object" in result.errors[0].traceback
    event.refresh_from_db()
    assert event.status == "failed"
    assert "data.message must be a JSON object" in event.error


def test_an_event_whose_refresh_fails_fails_its_task_after_the_event(
    client, known, queue, settings, monkeypatch
):
    """A worker's verdict on the event's task: FAILED with the refresh's error (never
    SUCCESSFUL), once the event itself is recorded failed with the reason."""
    monkeypatch.setattr(
        services.webhook_processing, "INLINE_REFRESHES", 2
    )  # both refreshes in the event's task
    settings.COMETCHAT = {**settings.COMETCHAT, "MAX_RETRIES": 0}
    assert post(client, message_event(known.send_message("bob", to_user="alice"))).json() == {
        "status": "accepted"
    }
    (queued,) = queue.results
    known.fail_next(1, status=500)
    settings.TASKS = {
        **settings.TASKS,
        "worker": {"BACKEND": f"{BACKENDS}.immediate.ImmediateBackend"},
    }
    result = queued.task.using(backend="worker").enqueue(*queued.args)
    assert result.status == "FAILED"
    assert result.errors[0].exception_class_path.endswith(".CometChatServerError")
    event = WebhookEvent.objects.get()
    assert event.status == "failed"
    assert "ERR_MISSION_FAILED" in event.error
    assert "ERR_MISSION_FAILED" in result.errors[0].traceback


def test_an_unexpected_failure_is_recorded_on_the_event_and_raised(client, known, monkeypatch):
    def broken(event):
        raise RuntimeError("database gone")

    monkeypatch.setattr(services.webhook_processing, "_targets_and_owners", broken)
    event = services.record_webhook(
        parse_webhook(message_event(known.send_message("bob", to_user="alice")))
    )
    assert event is not None
    with pytest.raises(RuntimeError):
        tasks.process_webhook_event.call(event.pk)
    event.refresh_from_db()
    assert (event.status, event.error) == ("failed", "database gone")
    assert event.processed_at is not None


# -- a burst: one task for the events waiting behind it ------------------------------------------


@pytest.fixture
def worker_queue(settings):
    """A backend that queues (and runs nothing until the test calls a task, as a worker would);
    an event's two refreshes run within its task, as in production."""
    settings.TASKS = {"default": {"BACKEND": f"{BACKENDS}.dummy.DummyBackend"}}
    backend: Any = tasks.backend()
    yield backend
    backend.clear()


def burst(client, fake, count: int) -> list[int]:
    """``count`` message events (bob to alice, API.md §7 message_sent) accepted; their ids."""
    for n in range(count):
        body = message_event(fake.send_message("bob", to_user="alice", text=f"m{n}"))
        assert post(client, body).json() == {"status": "accepted"}
    return list(WebhookEvent.objects.order_by("pk").values_list("pk", flat=True))


def run_queued(queue) -> list[dict[str, Any]]:
    """Run the queued process_webhook_event tasks as a worker would (arguments through JSON),
    those they queue too; their results."""
    results = []
    while queue.results:
        result = queue.results.pop(0)
        assert result.task.name == "process_webhook_event"
        results.append(result.task.call(*json.loads(json.dumps(result.args))))
    return results


def test_a_burst_is_processed_by_the_task_queued_for_its_first_event(client, known, worker_queue):
    ids = burst(client, known, 5)
    (queued,) = worker_queue.results  # one task, for the first event
    assert queued.args == [ids[0]]
    assert list(WebhookEvent.objects.filter(task_queued=True).values_list("pk", flat=True)) == [
        ids[0]
    ]
    first = worker_queue.results.pop(0)
    result = first.task.call(*first.args)
    assert result == {
        "event": ids[0],
        "status": "processed",
        "owners": ["alice", "bob"],
        "followers": {"processed": 4},
    }
    # Its first follower taken, it queued a task for the next waiting event (a second worker
    # helps with a backlog) without reserving it: it took that one too, and the helper,
    # arriving after, found nothing left.
    (helper,) = worker_queue.results
    assert helper.args == [ids[2]]
    assert not WebhookEvent.objects.get(pk=ids[2]).task_queued
    assert [r["status"] for r in run_queued(worker_queue)] == ["skipped"]
    events = WebhookEvent.objects.order_by("pk")
    assert [(e.status, e.owners) for e in events] == [("processed", ["alice", "bob"])] * 5
    # Both owners' copies show the last message: each event refreshed them, in order.
    for owner in ("alice", "bob"):
        row = Conversation.objects.get(owner_uid=owner, conversation_id="alice_user_bob")
        assert row.payload["lastMessage"]["data"]["text"] == "m4"


def test_a_delivery_looks_ahead_and_marks_its_event_in_one_statement(client, known, worker_queue):
    """needs_task's look for an earlier event waiting for its task and the mark of this one
    are one conditional UPDATE: it marks the first event of a burst and not the second."""
    statements = []
    for n in range(2):
        body = message_event(known.send_message("bob", to_user="alice", text=f"m{n}"))
        with CaptureQueriesContext(connection) as captured:
            assert post(client, body).json() == {"status": "accepted"}
        statements.append([" ".join(q["sql"].split()) for q in captured.captured_queries])
    for delivery in statements:
        looks = [s for s in delivery if "task_queued" in s and not s.startswith("INSERT")]
        assert len(looks) == 1, "\n".join(delivery)
        assert looks[0].startswith("UPDATE")
        assert "EXISTS" in looks[0]
    assert list(WebhookEvent.objects.order_by("pk").values_list("task_queued", flat=True)) == [
        True,
        False,
    ]
    assert len(worker_queue.results) == 1


def query_plan(sql: str) -> str:
    """The database's plan for a logged statement over a table of 3,000 processed events,
    analysed (PostgreSQL's EXPLAIN with sequential scans off; SQLite's EXPLAIN QUERY PLAN)."""
    populate(3000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
        return "\n".join(" ".join(str(part) for part in row) for row in cursor.fetchall())


def test_the_look_ahead_reads_the_partial_index_of_events_waiting_for_a_task(
    client, known, worker_queue
):
    """needs_task's statement is written out (the ORM's building of it was most of the view's
    CPU): its look ahead still reads the partial index of received events with a task queued,
    never every earlier event (on SQLite only a bare ``task_queued`` matches the index's
    condition)."""
    body = message_event(known.send_message("bob", to_user="alice", text="m"))
    with CaptureQueriesContext(connection) as captured:
        assert post(client, body).json() == {"status": "accepted"}
    (look,) = [q["sql"] for q in captured.captured_queries if "NOT EXISTS" in q["sql"]]
    plan = query_plan(look)
    assert "cometchat_hook_queued_for" in plan, plan


def test_a_task_takes_the_oldest_event_behind_it_through_the_index_of_waiting_events(
    client, known, worker_queue
):
    """The follower's pick is written out too: it takes the oldest received event with no task
    of its own (the second of a burst), and reads the partial index of received events, never
    the whole table."""
    first, second, third = burst(client, known, 3)
    assert services.claim_webhook_event(first) is not None  # the first event's own task
    with CaptureQueriesContext(connection) as captured:
        taken = services.claim_next_webhook_event()
    assert taken is not None
    assert (taken.pk, taken.status) == (second, "processing")
    assert WebhookEvent.objects.get(pk=third).status == "received"
    pick = next(q["sql"] for q in captured.captured_queries if "NOT task_queued" in q["sql"])
    plan = query_plan(pick)
    assert "cometchat_hook_waiting" in plan, plan
    assert services.oldest_waiting_event() == third


def test_where_an_update_cannot_read_its_table_the_look_and_the_mark_are_two(
    client, known, worker_queue, monkeypatch
):
    """MySQL refuses an UPDATE whose subquery reads the updated table (its features say
    update_can_self_select = False): there the webhook looks, then marks, with the same rule."""
    monkeypatch.setattr(connection.features, "update_can_self_select", False)
    for n in range(2):
        body = message_event(known.send_message("bob", to_user="alice", text=f"m{n}"))
        with CaptureQueriesContext(connection) as captured:
            assert post(client, body).json() == {"status": "accepted"}
        assert not [q for q in captured.captured_queries if "EXISTS(" in q["sql"].upper()]
    assert list(WebhookEvent.objects.order_by("pk").values_list("task_queued", flat=True)) == [
        True,
        False,
    ]
    assert len(worker_queue.results) == 1


def test_an_event_after_the_task_took_its_own_queues_a_task(client, known, worker_queue):
    (first,) = burst(client, known, 1)
    assert run_queued(worker_queue)[0]["followers"] == {}
    body = message_event(known.send_message("bob", to_user="alice"))
    assert post(client, body).json() == {"status": "accepted"}
    (queued,) = worker_queue.results
    assert queued.args[0] > first


def test_a_task_leaves_an_event_with_a_task_of_its_own_to_that_task(
    client, known, worker_queue, monkeypatch
):
    """Two events each with a task queued (two deliveries at once both found none ahead): the
    first task does not take the second event, whose task would then run for nothing (within
    LEFT_TO_ITS_TASK, made a minute here so that a slow machine cannot outlast it)."""
    monkeypatch.setattr(services.webhook_events, "LEFT_TO_ITS_TASK", timedelta(minutes=1))
    first, second = burst(client, known, 2)
    WebhookEvent.objects.filter(pk=second).update(task_queued=True)
    (task,) = worker_queue.results
    assert task.task.call(first)["followers"] == {}
    assert WebhookEvent.objects.get(pk=second).status == "received"
    assert task.task.call(second)["status"] == "processed"


def test_an_event_whose_task_has_not_started_is_taken_after_a_moment(client, known, worker_queue):
    """Every worker busy: an event with a task of its own, still waiting for it after
    LEFT_TO_ITS_TASK (half a second), is taken by the first task processing the events behind
    its own, oldest first, rather than waiting behind younger events (for as long as the
    webhook counts on a queued task: COALESCE_WITHIN, 5 s); its own task then finds it taken."""
    first, second, third = burst(client, known, 3)
    WebhookEvent.objects.filter(pk=second).update(task_queued=True)
    a_second_ago = timezone.now() - timedelta(seconds=1)
    WebhookEvent.objects.filter(pk=second).update(received_at=a_second_ago)
    (task,) = worker_queue.results
    assert task.task.call(first)["followers"] == {"processed": 2}
    assert WebhookEvent.objects.get(pk=second).owners == ["alice", "bob"]
    assert task.task.call(second)["status"] == "skipped"
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    in_order = WebhookEvent.objects.order_by("processed_at", "pk").values_list("pk", flat=True)
    assert list(in_order) == [first, second, third]  # oldest first


def test_events_taken_up_again_are_each_left_to_the_task_queued_for_it(
    client, known, worker_queue, settings, monkeypatch
):
    """cometchat_refresh_stale queues a task for each event it takes up again: those tasks do
    not take each other's events (each would then run for nothing) within LEFT_TO_ITS_TASK,
    made a minute here so that a slow machine cannot outlast it."""
    monkeypatch.setattr(services.webhook_events, "LEFT_TO_ITS_TASK", timedelta(minutes=1))
    ids = burst(client, known, 3)
    worker_queue.clear()
    settings.COMETCHAT = {**settings.COMETCHAT, "SYNC_ABANDONED_AFTER": 60}
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(minutes=5))
    taken = services.take_waiting_webhook_events()
    assert taken.stuck == ids
    assert list(WebhookEvent.objects.values_list("task_queued", flat=True)) == [True] * 3
    results = [tasks.process_webhook_event.call(pk) for pk in ids]
    assert [(r["status"], r["followers"]) for r in results] == [("processed", {})] * 3


def test_a_task_queued_too_long_ago_is_not_counted_on(client, known, worker_queue):
    """The first event's task may be lost (a worker killed, a queue flushed): once it is older
    than COALESCE_WITHIN, a new event queues a task of its own, which processes both."""
    (first,) = burst(client, known, 1)
    long_ago = timezone.now() - services.webhook_events.COALESCE_WITHIN - timedelta(seconds=1)
    WebhookEvent.objects.filter(pk=first).update(received_at=long_ago)
    body = message_event(known.send_message("bob", to_user="alice"))
    assert post(client, body).json() == {"status": "accepted"}
    assert len(worker_queue.results) == 2
    lost = worker_queue.results.pop(0)  # never delivered
    (result,) = run_queued(worker_queue)
    assert result["followers"] == {"processed": 1}
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert lost.task.call(first)["status"] == "skipped"  # delivered late after all


def test_a_task_processes_at_most_so_many_followers_then_queues_the_rest(
    client, known, worker_queue, monkeypatch
):
    monkeypatch.setattr(services.webhook_processing, "FOLLOWERS_PER_TASK", 2)
    ids = burst(client, known, 6)
    first = worker_queue.results.pop(0)
    assert first.task.call(*first.args)["followers"] == {"processed": 2}
    # A helper for the third event (with its first follower), a successor for the fourth (past
    # the bound): the oldest then waiting.
    assert [r.args[0] for r in worker_queue.results] == [ids[2], ids[3]]
    results = run_queued(worker_queue)
    assert sum(sum(r["followers"].values()) for r in results) == 3  # the fourth to the sixth
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_a_failing_event_fails_alone_in_a_burst(client, known, worker_queue, monkeypatch, settings):
    """A follower whose processing raises is recorded failed; the ones after it still run. The
    task's own event failing (CometChat refuses it) still lets the followers run before the
    task fails."""
    ids = burst(client, known, 4)
    real = services.webhook_processing._targets_and_owners

    def broken_for_the_second(event: WebhookEvent) -> Any:
        if event.pk == ids[1]:
            raise RuntimeError("database hiccup")
        return real(event)

    monkeypatch.setattr(services.webhook_processing, "_targets_and_owners", broken_for_the_second)
    settings.COMETCHAT = {**settings.COMETCHAT, "MAX_RETRIES": 0}
    known.fail_next(2, status=500)  # the first event's two refreshes
    (queued,) = worker_queue.results
    with pytest.raises(CometChatError):
        queued.task.call(*queued.args)
    worker_queue.results.pop(0)
    run_queued(worker_queue)  # the helper queued for the third
    statuses = dict(WebhookEvent.objects.values_list("pk", "status"))
    assert statuses == {
        ids[0]: "failed",
        ids[1]: "failed",
        ids[2]: "processed",
        ids[3]: "processed",
    }
    assert WebhookEvent.objects.get(pk=ids[1]).error == "database hiccup"


def test_the_immediate_backend_processes_each_event_in_its_request(client, known):
    burst(client, known, 3)  # no TASKS: each request runs its own event's task inline
    assert (
        list(WebhookEvent.objects.values_list("status", "task_queued"))
        == [("processed", False)] * 3
    )


# -- the signal ----------------------------------------------------------------------------------


def test_a_signal_for_every_processed_event(client, known, django_capture_on_commit_callbacks):
    received = []

    def listener(sender, event, owners, **kwargs):
        received.append((sender, event.pk, event.status, owners))

    webhook_processed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            post(client, message_event(known.send_message("bob", to_user="alice")))
            post(client, message_event(known.send_message("carol", to_group="book-club")))
            post(client, envelope("group_created", {"guid": "new"}))  # ignored: no signal
    finally:
        webhook_processed.disconnect(listener)
    events = list(WebhookEvent.objects.order_by("pk").values_list("pk", flat=True))
    assert received == [
        (WebhookEvent, events[0], "processed", ["alice", "bob"]),
        (WebhookEvent, events[1], "processed", ["alice", "bob"]),
    ]


def test_no_signal_before_the_commit(client, known, django_capture_on_commit_callbacks):
    received = []

    def listener(**kwargs):
        received.append(kwargs)

    webhook_processed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            post(client, message_event(known.send_message("bob", to_user="alice")))
        assert received == []
        assert callbacks
        for callback in callbacks:
            callback()
        assert [kwargs["owners"] for kwargs in received] == [["alice", "bob"]]
    finally:
        webhook_processed.disconnect(listener)


# -- the admin -------------------------------------------------------------------------------------


@pytest.fixture
def events(client, known):
    """A processed, an ignored and a refused delivery."""
    post(client, message_event(known.send_message("bob", to_user="alice", text="hello <b>")))
    post(client, envelope("group_created", {"guid": "new-group"}))
    post(client, None, raw=b"{oops")
    return {e.status: e for e in WebhookEvent.objects.all()}


def listed(response) -> list[int]:
    return [
        int(pk)
        for pk in re.findall(
            r'<th class="field-[^"]*"><a href="/admin/django_cometchat/webhookevent/(\d+)/change/',
            response.content.decode(),
        )
    ]


def test_admin_lists_webhook_events_newest_first(admin_client, events):
    response = admin_client.get(WEBHOOKS_ADMIN)
    assert response.status_code == 200
    html = response.content.decode()
    assert listed(response) == sorted((e.pk for e in events.values()), reverse=True)
    for text in ("message_sent", "group_created", "Processed", "Ignored", "Failed"):
        assert text in html
    assert "The body is not valid JSON." in html
    assert "Add webhook event" not in html


@pytest.mark.parametrize(
    ("query", "statuses"),
    [
        ({"trigger": "message_sent"}, {"processed"}),
        ({"trigger": "group_created"}, {"ignored"}),
        ({"trigger": "user_blocked"}, set()),
        ({"status__exact": "failed"}, {"failed"}),
        ({"status__exact": "processed"}, {"processed"}),
    ],
)
def test_admin_filters(admin_client, events, query, statuses):
    response = admin_client.get(WEBHOOKS_ADMIN, query)
    assert response.status_code == 200
    assert set(listed(response)) == {events[s].pk for s in statuses}


def test_the_trigger_filter_lists_known_triggers_without_querying_them(admin_client, events):
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(WEBHOOKS_ADMIN)
    html = response.content.decode()
    for trigger in ("message_sent", "user_blocked", "group_owner_transferred"):
        assert f"?trigger={trigger}" in html
    assert not [q for q in captured.captured_queries if "DISTINCT" in q["sql"].upper()]


def test_admin_detail_shows_the_payload_pretty_printed_and_escaped(admin_client, events):
    event = events["processed"]
    response = admin_client.get(f"{WEBHOOKS_ADMIN}{event.pk}/change/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "&quot;trigger&quot;: &quot;message_sent&quot;" in html
    assert "hello &lt;b&gt;" in html
    assert "hello <b>" not in html
    assert "alice, bob" in html
    assert 'name="_save"' not in html
    refused = admin_client.get(f"{WEBHOOKS_ADMIN}{events['failed'].pk}/change/")
    assert "Not stored: the delivery was refused." in refused.content.decode()


def test_admin_never_shows_a_credential(admin_client, events):
    for url in (WEBHOOKS_ADMIN, *(f"{WEBHOOKS_ADMIN}{e.pk}/change/" for e in events.values())):
        html = admin_client.get(url).content.decode()
        assert PASSWORD not in html
        assert AUTH[6:] not in html


def test_admin_is_read_only(admin_client, events):
    event = events["processed"]
    assert admin_client.get(f"{WEBHOOKS_ADMIN}add/").status_code == 403
    assert admin_client.get(f"{WEBHOOKS_ADMIN}{event.pk}/delete/").status_code == 403
    response = admin_client.post(
        WEBHOOKS_ADMIN, {"action": "delete_selected", "_selected_action": [event.pk]}
    )
    assert WebhookEvent.objects.filter(pk=event.pk).exists()
    assert response.status_code in (200, 302)


def populate(n: int) -> None:
    now = timezone.now()
    WebhookEvent.objects.bulk_create(
        WebhookEvent(
            trigger="message_sent",
            received_at=now - timedelta(seconds=i),
            dedupe_key=f"{i:064d}",
            status="processed",
            payload={"n": i},
        )
        for i in range(n)
    )


@pytest.mark.parametrize(
    "query", ["", "?trigger=message_sent", "?status__exact=failed", "?trigger=x&status__exact=x"]
)
def test_admin_query_count_does_not_grow_with_rows(admin_client, query):
    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(WEBHOOKS_ADMIN + query).status_code == 200
        return len(captured.captured_queries)

    populate(5)
    few = count()
    WebhookEvent.objects.all().delete()
    populate(60)
    assert count() == few


def test_admin_list_reads_no_payload(admin_client):
    populate(3)
    with CaptureQueriesContext(connection) as captured:
        admin_client.get(WEBHOOKS_ADMIN)
    selects = [q["sql"] for q in captured.captured_queries if "webhookevent" in q["sql"]]
    assert selects
    assert not [sql for sql in selects if '"payload"' in sql]


# -- the system check --------------------------------------------------------------------------


def test_no_credentials_with_the_webhook_mounted_is_said_as_information(settings):
    assert check_webhook_credentials() == []
    settings.COMETCHAT = {**settings.COMETCHAT, "WEBHOOK_BASIC_AUTH": []}
    (warning,) = check_webhook_credentials()
    assert warning.id == "django_cometchat.I001"
    assert not warning.is_serious()
    assert warning.level == checks.INFO  # never fails `check --fail-level WARNING`
    assert "/cometchat/webhook/" in warning.msg
    assert 'COMETCHAT["WEBHOOK_BASIC_AUTH"]' in warning.msg
    assert "SILENCED_SYSTEM_CHECKS" in (warning.hint or "")


def test_the_information_is_for_deploy_checks_only(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "WEBHOOK_BASIC_AUTH": []}
    plain = checks.run_checks(include_deployment_checks=False)
    deploy = checks.run_checks(include_deployment_checks=True)
    assert "django_cometchat.I001" not in [message.id for message in plain]
    assert "django_cometchat.I001" in [message.id for message in deploy]


def test_no_warning_when_the_webhook_is_not_mounted(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "WEBHOOK_BASIC_AUTH": []}
    settings.ROOT_URLCONF = "tests.urls_admin_only"
    assert check_webhook_credentials() == []


def test_a_bad_credentials_setting_is_e006_not_w004(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "WEBHOOK_BASIC_AUTH": ["no-colon"]}
    assert check_webhook_credentials() == []
    with pytest.raises(SystemCheckError) as info:
        call_command("check")
    assert "django_cometchat.E006" in str(info.value)
    assert "WEBHOOK_BASIC_AUTH" in str(info.value)


# -- the parser, by example (its properties: tests/parsing/test_webhook_properties.py) --------


def test_parse_webhook_examples():
    delivery = parse_webhook(envelope("user_blocked", {"user": "a", "blockedUids": ["b", "c"]}))
    assert [(t.uid, t.conversation_id) for t in delivery.targets] == [
        ("a", "a_user_b"),
        ("b", "a_user_b"),
        ("a", "a_user_c"),
        ("c", "a_user_c"),
    ]
    assert delivery.handled
    group = parse_webhook(
        message_event({"id": 5, "receiverType": "group", "conversationId": "group_club"})
    )
    assert (group.group_guid, group.group_conversation_id, group.targets) == (
        "club",
        "group_club",
        (),
    )
    with pytest.raises(WebhookPayloadError):
        parse_webhook(message_event({"id": True, "receiverType": "group", "receiver": "g"}))


def test_the_url_without_its_trailing_slash_is_accepted_too(client, known):
    """CometChat POSTs (API.md §7); APPEND_SLASH cannot redirect a POST, so a URL typed without
    the slash in CometChat's dashboard must work as it is."""
    body = message_event(known.send_message("bob", to_user="alice", text="no slash"))
    response = client.post(
        WEBHOOK.rstrip("/"), data=json.dumps(body), content_type=JSON, HTTP_AUTHORIZATION=AUTH
    )
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    assert WebhookEvent.objects.get().status == "processed"
    refused = client.post(WEBHOOK.rstrip("/"), data=json.dumps(body), content_type=JSON)
    assert refused.status_code == 401  # the same view: the same credentials apply
