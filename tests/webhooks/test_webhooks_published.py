"""CometChat's webhook fed CometChat's published bodies (API.md §7, ``fixtures/webhook.*.json``),
through the real view (Basic auth, JSON) against the fake CometChat; and what a delivery means
beyond its body: a retry of a failed event (taken over, processed again), a body without an
event time (deduplicated within the retry horizon only), another app's delivery (ignored, nothing
fetched), membership lost (the copy marked missing once CometChat confirms), and the view under
``LoginRequiredMiddleware``.

The fixtures' ``<appId>`` / ``<region>`` placeholders are filled with this site's values
(``surface.published_webhook``); every other field is as published. The helpers and the
``known`` / ``queue`` fixtures are test_webhooks.py's.
"""

from __future__ import annotations

import copy
import json
import threading
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.models import AnonymousUser
from django.db import connection, connections
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone

from django_cometchat import services, tasks, webhooks
from django_cometchat.models import Conversation, ConversationSnapshot, WebhookEvent
from django_cometchat.storage import mark_gone
from django_cometchat.webhook_types import (
    KNOWN_TRIGGERS,
    RETRY_HORIZON_SECONDS,
    parse_webhook,
)
from tests.surface import basic_authorization, published_webhook
from tests.webhooks import test_webhooks as hooks
from tests.webhooks.test_webhooks import ALICE_BOB, block_flags, error_of, post, refreshes, upstream

try:  # Django 6.x
    from django.tasks.backends.immediate import ImmediateBackend
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks.backends.immediate import (  # type: ignore[assignment,no-redef,unused-ignore]
        ImmediateBackend,
    )

pytestmark = pytest.mark.django_db

# test_webhooks.py's fixtures, under their own names.
queue = hooks.queue
known = hooks.known

TEAM = "/v3/groups/support-team/conversation"


@pytest.fixture(autouse=True)
def _uids(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "UID_RESOLVER": "tests.resolvers.uid_from_username"}


@pytest.fixture
def team(known, alice):
    """The published group examples' group: "support-team", alice (its owner) and bob, both
    holding its conversation here. carol is a member upstream but not known here."""
    known.add_group("support-team", "Support Team", members=["alice", "bob", "carol"])
    known.send_message("alice", to_group="support-team", text="welcome")
    services.sync_conversations(alice)
    services.sync_conversations(services.owner_by_uid("bob"))
    known.clear_requests()
    return known


def team_row(uid: str) -> Conversation:
    return Conversation.objects.get(owner_uid=uid, conversation_id="group_support-team")


def the_event() -> WebhookEvent:
    return WebhookEvent.objects.get()


# -- the published list of triggers --------------------------------------------------------------


def test_known_triggers_are_the_published_list():
    """API.md §7: the current trigger table and the legacy triggers, nothing else."""
    assert len(KNOWN_TRIGGERS) == len(set(KNOWN_TRIGGERS))
    for trigger in (
        "message_delivered_to_all",
        "message_read_by_all",
        "transcription_generated",
        "moderation_engine_failed",
        "after_campaign_completed",
        "after_campaign_failed",
        "after_notification_created",
        "after_feed_item_sent",
        "after_feed_item_delivered",
        "after_feed_item_read",
        "after_feed_item_interacted",
        "after_push_notification_sent",
        "after_push_notification_delivered",
        "after_push_notification_clicked",
        "after_connection_status_changed",  # legacy presence
        "before_message",
        "after_message",
    ):
        assert trigger in KNOWN_TRIGGERS
    # The docs' heading for legacy presence, not a trigger value.
    assert "user_connection_status_change" not in KNOWN_TRIGGERS
    assert len(KNOWN_TRIGGERS) == 57  # 54 current + 3 legacy-only (the receipts are shared)


# -- blocks: API.md §7 "user_blocked / user_unblocked" -------------------------------------------


def test_published_user_blocked_sets_both_flags(client, known):
    """fixtures/webhook.user_blocked.json: data.by (alice) blocked every UID of data.users."""
    known.block_user("alice", "bob")
    body = published_webhook("user_blocked")
    assert post(client, body).json() == {"status": "accepted"}
    assert upstream(known) == ALICE_BOB
    assert block_flags() == (True, True)  # alice's blockedByMe, bob's hasBlockedMe
    event = the_event()
    assert (event.status, event.owners) == ("processed", ["alice", "bob"])


def test_published_user_unblocked_clears_both_flags(client, known):
    """fixtures/webhook.user_unblocked.json, after the block."""
    known.block_user("alice", "bob")
    post(client, published_webhook("user_blocked"))
    known.unblock_user("alice", "bob")
    assert post(client, published_webhook("user_unblocked")).json() == {"status": "accepted"}
    assert block_flags() == (False, False)


def test_a_published_block_of_several_users(client, known, queue):
    """API.md §7: ``users`` is an object keyed by UID; each user gets their pair refreshed."""
    body = published_webhook("user_blocked")
    body["data"]["users"]["carol"] = {"uid": "carol", "name": "Carol"}
    assert post(client, body).json() == {"status": "accepted"}
    assert refreshes(queue) == [  # carol is not known here: her own copy is not refreshed
        ["alice", "alice_user_bob", ["blockedByMe", True]],
        ["alice", "alice_user_carol", ["blockedByMe", True]],
        ["bob", "alice_user_bob", ["hasBlockedMe", True]],
    ]


def test_a_published_block_names_at_most_max_blocked_users(client, known):
    body = published_webhook("user_blocked")
    body["data"]["users"] = {f"user-{n}": {"uid": f"user-{n}"} for n in range(26)}
    error_of(post(client, body), 400, "ERR_INVALID_PAYLOAD")
    assert known.requests == []


def test_block_unblock_block_with_identical_bodies_ends_blocked(client, known):
    """No event time in a block body (API.md §7): the third delivery, byte-identical to the
    first and well within the retry horizon, is news because an unblock came in between."""
    block, unblock = published_webhook("user_blocked"), published_webhook("user_unblocked")
    known.block_user("alice", "bob")
    assert post(client, block).json() == {"status": "accepted"}
    assert block_flags() == (True, True)
    known.unblock_user("alice", "bob")
    assert post(client, unblock).json() == {"status": "accepted"}
    assert block_flags() == (False, False)
    known.block_user("alice", "bob")
    assert post(client, copy.deepcopy(block)).json() == {"status": "accepted"}
    assert block_flags() == (True, True)
    # CometChat's retry of that last one is a duplicate: nothing newer arrived since.
    known.clear_requests()
    assert post(client, block).json() == {"status": "duplicate"}
    assert known.requests == []
    events = list(WebhookEvent.objects.order_by("pk").values_list("trigger", "status"))
    assert events == [
        ("user_blocked", "processed"),
        ("user_unblocked", "processed"),
        ("user_blocked", "processed"),
    ]
    # The first block gave its key up to the third: one row holds a key at a time.
    first, _, third = WebhookEvent.objects.order_by("pk")
    assert first.dedupe_key is None
    assert third.dedupe_key == parse_webhook(block).dedupe_key


def test_a_block_body_is_a_retry_only_within_the_horizon(client, known, queue):
    body = published_webhook("user_blocked")
    assert post(client, body).json() == {"status": "accepted"}
    assert post(client, body).json() == {"status": "duplicate"}  # CometChat's retry, 10 s on
    # The same body after the horizon: the same action taken again, not a retry.
    WebhookEvent.objects.update(
        received_at=timezone.now() - timedelta(seconds=RETRY_HORIZON_SECONDS + 1)
    )
    assert post(client, body).json() == {"status": "accepted"}
    assert WebhookEvent.objects.count() == 2
    assert len(queue.results) == 2


def test_a_block_with_its_own_time_dedupes_for_good(client, known, queue):
    """A body with an event time names one event whenever it comes (a plausible variant)."""
    body = hooks.block_event("alice", "bob")  # blockedAt
    assert post(client, body).json() == {"status": "accepted"}
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(days=1))
    assert post(client, body).json() == {"status": "duplicate"}


def test_a_block_by_someone_else_does_not_end_the_horizon(client, known, queue):
    """News about another blocker is not news about this pair: the retry stays a duplicate."""
    body = published_webhook("user_blocked")
    post(client, body)
    other = published_webhook("user_blocked")
    other["data"] = {"users": {"alice": {"uid": "alice"}}, "by": {"uid": "bob"}}
    assert post(client, other).json() == {"status": "accepted"}
    assert post(client, body).json() == {"status": "duplicate"}


# -- receipts: API.md §7 "Receipts (current)" and "Legacy receipts" ------------------------------


def test_published_current_read_receipt(client, known, queue):
    """fixtures/webhook.message_read_receipt.json: bob (body.user) read alice's message."""
    assert post(client, published_webhook("message_read_receipt")).json() == {"status": "accepted"}
    assert refreshes(queue) == [["alice", "alice_user_bob"], ["bob", "alice_user_bob"]]


@pytest.mark.parametrize("name", ["legacy.message_read_receipt", "legacy.message_delivery_receipt"])
def test_published_legacy_receipts_refresh_the_reader_and_the_sender(client, known, name):
    """receiptSender (bob) read or received the message messageSender (alice) wrote."""
    body = published_webhook(name)
    assert "origin" in body
    assert "chatAPIVersion" in body
    assert post(client, body).json() == {"status": "accepted"}
    assert upstream(known) == ALICE_BOB
    event = the_event()
    assert (event.status, event.owners) == ("processed", ["alice", "bob"])
    assert post(client, body).json() == {"status": "duplicate"}  # its readAt / deliveredAt


def test_a_legacy_group_receipt_refreshes_the_readers_group_copy(client, known):
    """A group receipt names the group in receiptReceiver, with receiverType "group"."""
    body = published_webhook("legacy.message_read_receipt")
    body["data"].update({"receiptReceiver": "book-club", "receiverType": "group"})
    assert post(client, body).json() == {"status": "accepted"}
    assert upstream(known) == [("bob", "/v3/groups/book-club/conversation")]


def test_legacy_receipts_dedupe_on_message_reader_and_time(client, known, queue):
    body = published_webhook("legacy.message_read_receipt")
    assert post(client, body).json() == {"status": "accepted"}
    later = copy.deepcopy(body)
    later["data"]["readAt"] += 1
    assert post(client, later).json() == {"status": "accepted"}
    by_alice = copy.deepcopy(body)
    by_alice["data"].update({"receiptSender": "alice", "messageSender": "bob"})
    assert post(client, by_alice).json() == {"status": "accepted"}
    # Three events to process; one task, queued for the first, processes the burst.
    assert WebhookEvent.objects.filter(status="received").count() == 3
    assert len(queue.results) == 1


# -- membership: API.md §7 "Groups" --------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["group_member_kicked", "group_member_left", "group_member_banned"]
)
def test_a_member_who_lost_the_group_has_their_copy_marked_missing(client, team, name):
    """bob no longer holds support-team: his copy is fetched on his behalf, CometChat answers
    ERR_CONVERSATION_NOT_ACCESSIBLE, and the copy is marked missing with its history kept."""
    history = ConversationSnapshot.objects.filter(conversation=team_row("bob")).count()
    team.remove_member("support-team", "bob")
    assert post(client, published_webhook(name)).json() == {"status": "accepted"}
    assert upstream(team) == [("bob", TEAM)]
    assert [r.status for r in team.requests] == [403]
    bob, alice = team_row("bob"), team_row("alice")
    assert bob.missing_since is not None
    assert alice.missing_since is None  # alice (who kicked him) still holds it
    assert ConversationSnapshot.objects.filter(conversation=bob).count() == history
    event = the_event()
    assert (event.status, event.owners, event.error) == ("processed", ["bob"], "")


def test_a_member_still_holding_the_group_is_refreshed_not_marked(client, team):
    """The event says kicked, CometChat says member (re-added since): CometChat wins."""
    body = published_webhook("group_member_kicked")
    assert post(client, body).json() == {"status": "accepted"}
    assert upstream(team) == [("bob", TEAM)]
    assert team_row("bob").missing_since is None
    assert the_event().status == "processed"


def test_a_member_without_a_copy_here_costs_no_request(client, team):
    body = published_webhook("group_member_kicked")
    body["data"]["members"] = {"carol": {"uid": "carol"}}
    team.remove_member("support-team", "carol")
    assert post(client, body).json() == {"status": "accepted"}
    assert team.requests == []
    assert (the_event().status, the_event().owners) == ("processed", [])


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 503},
        {"status": 429, "headers": {"Retry-After": "0"}},
        {"status": 404, "body": {"error": {"code": "ERR_API_NOT_FOUND", "message": "?"}}},
        "drop",
    ],
    ids=["500", "503", "429", "no-such-endpoint", "connection-dropped"],
)
def test_only_a_gone_answer_marks_missing(client, team, settings, fault):
    """A transport error, a 5xx, a 429 or an unrelated 404 proves nothing: the copy stays,
    the event fails (and CometChat's retry will take it over); after a 429 (CometChat's window
    is spent) it is deferred, for cometchat_refresh_stale."""
    settings.COMETCHAT = {**settings.COMETCHAT, "MAX_RETRIES": 0}
    team.remove_member("support-team", "bob")
    limited = fault != "drop" and fault["status"] == 429
    if fault == "drop":
        team.drop_next(1, path=TEAM)
    else:
        team.fail_next(1, path=TEAM, **fault)
    answer = post(client, published_webhook("group_member_kicked")).json()
    assert answer == {"status": "deferred" if limited else "accepted"}
    assert team_row("bob").missing_since is None
    event = the_event()
    assert (event.status, event.owners) == ("deferred" if limited else "failed", [])
    if limited:  # the next cron run takes it up, and now CometChat says gone
        services.take_waiting_webhook_events()
        assert tasks.process_webhook_event.call(event.pk)["status"] == "processed"
    else:  # CometChat's retry of the failed event: taken over, and now CometChat says gone
        again = post(client, published_webhook("group_member_kicked")).json()
        assert again == {"status": "accepted"}
    assert team_row("bob").missing_since is not None
    assert WebhookEvent.objects.get().status == "processed"


def test_not_accessible_marks_nothing_for_an_event_that_did_not_say_gone(client, team):
    """A group message's refresh answered ERR_CONVERSATION_NOT_ACCESSIBLE: the event did not
    say bob left, so nothing is marked (the next complete sync decides)."""
    message = team.send_message("alice", to_group="support-team", text="bye?")
    team.remove_member("support-team", "bob")
    team.clear_requests()
    assert post(client, hooks.message_event(message)).json() == {"status": "accepted"}
    assert team_row("bob").missing_since is None
    assert the_event().status == "failed"
    assert "ERR_CONVERSATION_NOT_ACCESSIBLE" in the_event().error


def test_a_member_who_joined_again_has_their_copy_back(client, team):
    """fixtures/webhook.group_member_joined.json: the copy marked missing comes back."""
    team.remove_member("support-team", "bob")
    post(client, published_webhook("group_member_left"))
    assert team_row("bob").missing_since is not None
    team.add_member("support-team", "bob")
    assert post(client, published_webhook("group_member_joined")).json() == {"status": "accepted"}
    assert upstream(team) == [("bob", TEAM), ("bob", TEAM)]
    assert team_row("bob").missing_since is None


@pytest.mark.parametrize("trigger", ["group_member_added", "group_member_unbanned"])
def test_members_added_or_unbanned_are_refreshed_when_they_hold_a_copy(client, team, trigger):
    """API.md §7: members keyed by UID and ``by``; only members holding a copy cost a request."""
    body = published_webhook("group_member_banned")  # the same data shape, with ``by``
    body["trigger"] = trigger
    body["data"]["members"]["carol"] = {"uid": "carol", "name": "Carol"}
    assert post(client, body).json() == {"status": "accepted"}
    assert upstream(team) == [("bob", TEAM)]
    assert team_row("bob").missing_since is None


def test_a_deleted_group_marks_every_holders_copy_missing(client, team):
    """fixtures/webhook.group_deleted.json: one request per holder; CometChat answers
    ERR_GUID_NOT_FOUND (API.md §2.10) to each, and each copy is marked missing."""
    team.delete_group("support-team")
    body = published_webhook("group_deleted")
    assert post(client, body).json() == {"status": "accepted"}
    assert upstream(team) == [("alice", TEAM), ("bob", TEAM)]
    assert [r.status for r in team.requests] == [404, 404]
    assert team_row("alice").missing_since is not None
    assert team_row("bob").missing_since is not None
    event = the_event()
    assert (event.status, event.owners) == ("processed", ["alice", "bob"])
    # Nothing deleted; the retry is a duplicate; a copy marked already is not asked about again.
    assert Conversation.objects.filter(conversation_id="group_support-team").count() == 2
    assert post(client, body).json() == {"status": "duplicate"}
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(hours=1))
    team.clear_requests()
    assert post(client, body).json() == {"status": "accepted"}
    assert team.requests == []


def test_a_deleted_group_fans_out_one_refresh_task_per_holder(client, team, queue):
    team.delete_group("support-team")
    post(client, published_webhook("group_deleted"))
    (processing,) = queue.results
    processing.task.call(*processing.args)
    enqueued = [result for result in queue.results if result is not processing]
    assert sorted((r.task.name, r.args, r.kwargs) for r in enqueued) == [
        ("refresh_conversation", ["alice", "group_support-team"], {"expect_gone": True}),
        ("refresh_conversation", ["bob", "group_support-team"], {"expect_gone": True}),
    ]
    assert team.requests == []  # the refresh tasks fetch, not the event's
    # As a worker runs them (arguments through JSON): both copies marked missing.
    for result in enqueued:
        args, kwargs = json.loads(json.dumps([result.args, result.kwargs]))
        outcome = result.task.call(*args, **kwargs)
        assert outcome == {"status": "missing", "conversation": "group_support-team"}
    assert set(
        Conversation.objects.filter(missing_since__isnull=False).values_list(
            "owner_uid", "conversation_id"
        )
    ) == {("alice", "group_support-team"), ("bob", "group_support-team")}


def test_a_deleted_group_marks_nothing_when_cometchat_fails(client, team, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "MAX_RETRIES": 0}
    team.delete_group("support-team")
    team.fail_next(2, status=500, path=TEAM)
    post(client, published_webhook("group_deleted"))
    assert not Conversation.objects.filter(missing_since__isnull=False).exists()
    assert the_event().status == "failed"


def test_a_copy_written_after_the_request_left_is_not_marked(team):
    """The missing mark is for the copy CometChat was asked about: a copy stored by a request
    sent later is kept as it is (the guard of a sync's missing marks)."""
    asked_at = timezone.now()
    Conversation.objects.filter(pk=team_row("bob").pk).update(
        fetched_at=asked_at + timedelta(seconds=1)
    )
    assert mark_gone("bob", ["group_support-team"], proven_at=asked_at) == 0
    assert team_row("bob").missing_since is None
    assert mark_gone("alice", ["group_support-team"], proven_at=asked_at) == 1
    assert team_row("alice").missing_since is not None


# -- retries that count: API.md §7 "Delivery" ----------------------------------------------------


class RefusingBackend(ImmediateBackend):
    """A task backend that refuses every task while ``down`` (a broker outage), and otherwise
    runs it at once, as Django's immediate backend does."""

    down: ClassVar[bool] = True

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        if RefusingBackend.down:
            raise ConnectionError("broker down")
        return super().enqueue(task, args, kwargs)


@pytest.fixture
def flaky(settings):
    RefusingBackend.down = True
    settings.TASKS = {"default": {"BACKEND": f"{__name__}.RefusingBackend"}}
    yield RefusingBackend
    RefusingBackend.down = True


def test_a_redelivery_after_a_503_is_processed(client, known, flaky):
    """The queue refused the task: 503, the event failed. CometChat retries after 10 s: the
    retry takes the failed event over, enqueues it (the queue is back) and it is processed."""
    body = published_webhook("user_blocked")
    known.block_user("alice", "bob")
    error_of(post(client, body), 503, "ERR_QUEUE_UNAVAILABLE")
    event = the_event()
    assert (event.status, "broker down" in event.error) == ("failed", True)
    assert known.requests == []

    flaky.down = False
    assert post(client, body).json() == {"status": "accepted"}
    retried = the_event()  # the same row, taken over: no second event
    assert retried.pk == event.pk
    assert (retried.status, retried.owners, retried.error) == ("processed", ["alice", "bob"], "")
    assert upstream(known) == ALICE_BOB
    assert block_flags() == (True, True)
    # And CometChat's second retry (after 30 s) is now a duplicate.
    assert post(client, body).json() == {"status": "duplicate"}
    assert len(known.requests) == 2


def test_a_redelivery_of_an_event_whose_processing_failed_is_processed(client, known, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "MAX_RETRIES": 0}
    body = published_webhook("legacy.message_read_receipt")
    known.fail_next(2, status=500)
    assert post(client, body).json() == {"status": "accepted"}
    assert the_event().status == "failed"
    assert post(client, body).json() == {"status": "accepted"}
    assert (the_event().status, the_event().owners) == ("processed", ["alice", "bob"])
    assert len(known.requests) == 4


def test_only_a_failed_event_is_taken_over(known):
    """received, processing, processed, ignored: a duplicate. failed: taken over, once."""
    delivery = parse_webhook(published_webhook("legacy.message_read_receipt"))
    event = services.record_webhook(delivery)
    assert event is not None
    for status in ("received", "processing", "processed", "ignored"):
        WebhookEvent.objects.filter(pk=event.pk).update(status=status)
        assert services.record_webhook(delivery) is None
    WebhookEvent.objects.filter(pk=event.pk).update(status="failed", error="boom")
    taken = services.record_webhook(delivery)
    assert taken is not None
    assert (taken.pk, taken.status, taken.error) == (event.pk, "received", "")
    assert services.record_webhook(delivery) is None  # a second redelivery finds it taken


# -- another app's delivery ----------------------------------------------------------------------


def test_another_apps_delivery_is_ignored_and_fetches_nothing(client, known, queue):
    """The published example left as published: its appId "<appId>" is not APP_ID "testapp"."""
    body = published_webhook("legacy.message_read_receipt", placeholders=True)
    assert post(client, body).json() == {"status": "ignored"}
    event = the_event()
    assert (event.status, event.dedupe_key) == ("ignored", None)
    assert event.error == 'Another CometChat app\'s delivery: its appId is not COMETCHAT["APP_ID"].'
    assert event.payload == body
    assert queue.results == []
    assert known.requests == []
    # It holds no key: this app's own event with the same ids is not a duplicate of it.
    assert post(client, published_webhook("legacy.message_read_receipt")).json() == {
        "status": "accepted"
    }


def test_another_apps_delivery_sends_nothing_upstream_with_the_immediate_backend(client, known):
    body = published_webhook("group_deleted")
    body["appId"] = "someone-elses-app"
    known.delete_group("book-club")
    assert post(client, body).json() == {"status": "ignored"}
    assert known.requests == []
    assert not Conversation.objects.filter(missing_since__isnull=False).exists()


def test_the_app_id_is_compared_case_insensitively_and_only_when_known(client, known, queue):
    body = published_webhook("user_blocked")
    body["appId"] = "TestApp"
    assert post(client, body).json() == {"status": "accepted"}
    unnamed = published_webhook("user_unblocked")
    del unnamed["appId"]
    assert post(client, unnamed).json() == {"status": "accepted"}


def test_the_region_is_compared_when_it_picks_cometchats_host(client, fake, settings, queue):
    """With BASE_URL unset, REGION picks the host, so a delivery from another region is for
    another app; with BASE_URL set (a proxy, the fake), REGION says nothing and is not used."""
    body = published_webhook("user_blocked")
    body["region"] = "EU"
    assert post(client, body).json() == {"status": "accepted"}  # BASE_URL: the fake
    settings.COMETCHAT = {**settings.COMETCHAT, "BASE_URL": None}
    other = published_webhook("user_unblocked")
    other["region"] = "eu"
    assert post(client, other).json() == {"status": "ignored"}
    assert WebhookEvent.objects.latest("pk").error.startswith("Another CometChat region")
    same = published_webhook("user_unblocked")
    same["region"] = "US"
    assert post(client, same).json() == {"status": "accepted"}


# -- LoginRequiredMiddleware ---------------------------------------------------------------------


def test_the_webhook_needs_no_login_under_login_required_middleware(client, known, settings):
    """Django 5.1's LoginRequiredMiddleware redirects every view to the login page unless it is
    marked ``login_not_required``: CometChat has no session, its Basic credentials are checked
    by the view itself."""
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    settings.LOGIN_URL = "/admin/login/"
    assert getattr(webhooks.receive, "login_required", True) is False
    assert getattr(webhooks.receive, "csrf_exempt", False) is True
    body = published_webhook("legacy.message_read_receipt")
    assert post(client, body).json() == {"status": "accepted"}
    wrong = basic_authorization("cometchat", "wrong")
    error_of(post(client, body, auth=wrong), 401, "ERR_NOT_AUTHENTICATED")
    # The middleware is on: another view of the site still sends strangers to the login page.
    # The control: the same middleware sends a view without the marker to the login page.
    middleware = LoginRequiredMiddleware(lambda request: HttpResponse())
    request = RequestFactory().post(hooks.WEBHOOK)
    request.user = AnonymousUser()
    assert middleware.process_view(request, webhooks.receive, (), {}) is None

    def unmarked(request: Any) -> HttpResponse:
        return HttpResponse()

    redirect = middleware.process_view(request, unmarked, (), {})
    assert redirect is not None
    assert redirect.status_code == 302
    assert redirect["Location"].startswith("/admin/login/")


# -- races, on PostgreSQL ------------------------------------------------------------------------

THREADS = 6


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency guarantees are proven on PostgreSQL")


def race(delivery_body: dict[str, Any]) -> list[WebhookEvent | None]:
    """``THREADS`` concurrent record_webhook calls of one body; what each got."""
    start = threading.Barrier(THREADS)
    results: list[WebhookEvent | None] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            start.wait()
            results.append(services.record_webhook(parse_webhook(delivery_body)))
        except BaseException as exc:  # the test's business
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_concurrent_redeliveries_of_a_failed_event_take_it_over_once():
    body = published_webhook("legacy.message_read_receipt")
    event = services.record_webhook(parse_webhook(body))
    assert event is not None
    WebhookEvent.objects.filter(pk=event.pk).update(status="failed", error="queue down")
    results = race(body)
    taken = [result for result in results if result is not None]
    assert [result.pk for result in taken] == [event.pk]
    assert WebhookEvent.objects.get().status == "received"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_concurrent_identical_blocks_after_an_unblock_record_one_event():
    block = published_webhook("user_blocked")
    services.record_webhook(parse_webhook(block))
    services.record_webhook(parse_webhook(published_webhook("user_unblocked")))
    results = race(block)
    assert len([result for result in results if result is not None]) == 1
    keyed = WebhookEvent.objects.filter(dedupe_key=parse_webhook(block).dedupe_key)
    assert keyed.count() == 1
    assert WebhookEvent.objects.count() == 3
