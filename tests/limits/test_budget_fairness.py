"""A fair rate budget: on-demand work (the API, the admin) takes at most ``ON_DEMAND_SHARE`` of
each window and is refused at once past it; background work keeps the rest; an inline webhook
never waits for a window (it defers the event, answering CometChat at once), and
``cometchat_refresh_stale`` takes deferred events, and events a dead worker left, up again:
each once, even with two of it running at a time.

Webhook bodies are ``message_sent`` deliveries as in tests/webhooks/test_webhooks.py (API.md §7
"Messages"); the 429 is the fake's limiter answer (API.md §5.4: ``Retry-After``, remaining 0).
"""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from django_cometchat import services, tasks
from django_cometchat.models import Conversation, SyncRun, WebhookEvent
from tests.fake.test_fake_server import settle_in_window
from tests.surface import WEBHOOK_CREDENTIALS, webhook_path
from tests.webhooks.test_webhooks import BACKENDS, message_event, post

WINDOW = 60.0  # one window holds a whole test: its requests never straddle two
CONVERSATION = "alice_user_bob"
REFRESH = f"/cometchat/conversations/{CONVERSATION}/refresh/"


@pytest.fixture
def budget(settings, fake):
    """Set the budget (``per_window`` requests, the on-demand ``share`` of it); counts start
    at zero, in a window with time enough left for the test."""

    def configure(per_window: int | None, share: float = 0.5, **extra: Any) -> Any:
        settings.COMETCHAT = {
            **settings.COMETCHAT,
            "UID_RESOLVER": "tests.resolvers.uid_from_username",
            "REQUESTS_PER_MINUTE": per_window,
            "RATE_LIMIT_WINDOW": extra.pop("window", WINDOW),
            "ON_DEMAND_SHARE": share,
            "BACKOFF_FACTOR": 0.01,
            "BACKOFF_MAX": 0.05,
            **extra,
        }
        cache.clear()
        return fake

    yield configure
    cache.clear()


def v3_requests(fake) -> int:
    return sum(1 for r in fake.requests if r.path.startswith("/v3/"))


@pytest.mark.django_db
def test_on_demand_refreshes_spend_only_their_share_and_background_keeps_the_rest(
    budget, client, alice
):
    fake = budget(12)  # on demand: 6 a window
    settle_in_window(WINDOW, needed=15)
    client.force_login(alice)
    answers = []
    for _ in range(9):
        started = time.monotonic()
        response = client.post(REFRESH)
        answers.append((response.status_code, time.monotonic() - started, response))
    assert [status for status, _, _ in answers] == [200] * 6 + [503] * 3
    for _, took, refused in answers[6:]:
        assert took < 0.5  # at once: no wait for the window, although WEB_DEADLINE is 8 s
        assert refused.json()["error"]["code"] == "ERR_TOO_MANY_REQUESTS"
        assert 1 <= int(refused["Retry-After"]) <= WINDOW  # this window's end
    assert v3_requests(fake) == 6  # the refused sent nothing
    usage = services.rate_budget_usage()
    assert usage is not None
    assert (usage.used, usage.limit, usage.on_demand_used, usage.on_demand_limit) == (6, 12, 6, 6)

    # Background work in the same window still gets the other six, without waiting.
    started = time.monotonic()
    out = io.StringIO()
    call_command("cometchat_sync", "--uid", "alice", stdout=out)  # one page: one request
    assert SyncRun.objects.filter(trigger="command").get().status == "succeeded"
    for _ in range(5):
        services.fetch_conversation(services.owner_by_uid("bob"), CONVERSATION)
    assert time.monotonic() - started < 3
    assert v3_requests(fake) == 12
    usage = services.rate_budget_usage()
    assert usage is not None
    assert (usage.used, usage.on_demand_used) == (12, 6)
    # And on-demand is still refused, at once.
    assert client.post(REFRESH).status_code == 503
    assert v3_requests(fake) == 12


@pytest.mark.django_db
def test_a_whole_share_lets_on_demand_work_take_the_window(budget, client, alice):
    fake = budget(4, share=1.0)
    settle_in_window(WINDOW, needed=10)
    client.force_login(alice)
    assert [client.post(REFRESH).status_code for _ in range(4)] == [200] * 4
    assert v3_requests(fake) == 4


@pytest.mark.django_db
def test_the_admin_says_the_share_is_spent_instead_of_failing(budget, admin_client, alice):
    fake = budget(4)  # on demand: 2 a window
    settle_in_window(WINDOW, needed=10)
    services.sync_conversations(alice)  # background: 1 request, 3 conversations stored
    fake.clear_requests()
    rows = list(Conversation.objects.order_by("pk").values_list("pk", flat=True))
    response = admin_client.post(
        "/admin/django_cometchat/conversation/",
        {"action": "refresh_from_cometchat", "_selected_action": rows},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert shown[0] == "Refreshed 2 conversations from CometChat."
    assert shown[1].startswith("Could not refresh ")
    assert "ERR_TOO_MANY_REQUESTS" in shown[1]
    assert "used its share of this rate window (ON_DEMAND_SHARE); not sending" in shown[1]
    assert v3_requests(fake) == 2  # the share, and not one more


# -- inline webhooks ------------------------------------------------------------------------


@pytest.fixture
def known(budget, alice):
    """alice (bound) and bob (rows only) hold alice_user_bob, stored before the budget binds."""
    fake = budget(None)
    services.sync_conversations(alice)
    services.sync_conversations(services.owner_by_uid("bob"))
    fake.clear_requests()
    return fake


def spend(per_window: int) -> None:
    """Background requests that take every slot of the current window."""
    with services.new_client() as cometchat:
        for _ in range(per_window):
            cometchat.get_user("carol")


@pytest.mark.django_db
def test_an_inline_webhook_past_the_budget_is_deferred_fast_and_refresh_stale_processes_it(
    budget, known, client
):
    budget(2, window=4.0)
    settle_in_window(4.0, needed=2.5)
    spend(2)
    known.delay_next(5.0, n=10)  # a slow CometChat: anything sent now would take 5 s
    sent = v3_requests(known)
    body = message_event(known.send_message("bob", to_user="alice", text="news"))
    started = time.monotonic()
    response = post(client, body)
    took = time.monotonic() - started
    assert response.status_code == 200
    assert response.json() == {"status": "deferred"}
    assert took < 1.0  # CometChat gives up after 2 s
    assert v3_requests(known) == sent  # nothing sent
    event = WebhookEvent.objects.get()
    assert event.status == "deferred"
    assert "ERR_TOO_MANY_REQUESTS" in event.error
    assert event.processed_at is None

    # The next cron run: background work, it waits for the next window and processes it.
    known.clear_faults()
    out = io.StringIO()
    call_command("cometchat_refresh_stale", "--older-than", "1d", stdout=out)
    assert "Took 1 waiting webhook event(s) (1 deferred by the rate budget, 0 left by a" in (
        out.getvalue()
    )
    event.refresh_from_db()
    assert (event.status, event.owners, event.error) == ("processed", ["alice", "bob"], "")
    pair = {(r.headers.get("onbehalfof"), r.path) for r in known.requests[sent:]}
    assert ("alice", "/v3/users/bob/conversation") in pair
    assert ("bob", "/v3/users/alice/conversation") in pair
    # A second run finds nothing left to take.
    again = io.StringIO()
    call_command("cometchat_refresh_stale", "--older-than", "1d", stdout=again)
    assert "webhook event" not in again.getvalue()


@pytest.mark.django_db
def test_an_inline_webhook_answered_429_is_deferred_without_waiting(budget, known, client):
    budget(100)
    known.rate_limit_next(5, retry_after=30)
    body = message_event(known.send_message("bob", to_user="alice", text="news"))
    started = time.monotonic()
    response = post(client, body)
    assert time.monotonic() - started < 1.0  # not the 30 s CometChat asked for
    assert response.json() == {"status": "deferred"}
    assert [r.status for r in known.requests] == [429]  # not retried; the other owner not tried
    assert WebhookEvent.objects.get().status == "deferred"


@pytest.mark.django_db
def test_a_webhook_within_the_budget_is_still_processed_inline(budget, known, client):
    budget(10)
    body = message_event(known.send_message("bob", to_user="alice", text="news"))
    assert post(client, body).json() == {"status": "accepted"}
    assert WebhookEvent.objects.get().status == "processed"


@pytest.mark.django_db(transaction=True)
def test_an_inline_webhook_past_the_budget_over_a_real_server(budget, known, live_server):
    budget(1, window=4.0)
    settle_in_window(4.0, needed=2.5)
    spend(1)
    known.delay_next(5.0, n=10)
    message = known.send_message("bob", to_user="alice", text="news")
    started = time.monotonic()
    answer = requests.post(
        live_server.url + webhook_path(),
        json=message_event(message),
        auth=WEBHOOK_CREDENTIALS,
        timeout=10,
    )
    assert time.monotonic() - started < 2.0
    assert answer.status_code == 200
    assert answer.json() == {"status": "deferred"}
    assert WebhookEvent.objects.get().status == "deferred"


# -- refresh_stale takes stuck events up ---------------------------------------------------------


def queued_events(settings, client, fake, n: int) -> list[int]:
    """``n`` message_sent events recorded with a queue that never runs them (received)."""
    settings.TASKS = {"default": {"BACKEND": f"{BACKENDS}.dummy.DummyBackend"}}
    for i in range(n):
        post(client, message_event(fake.send_message("bob", to_user="alice", text=f"m{i}")))
    tasks.backend().clear()
    settings.TASKS = {"default": {"BACKEND": f"{BACKENDS}.immediate.ImmediateBackend"}}
    return list(WebhookEvent.objects.order_by("pk").values_list("pk", flat=True))


@pytest.mark.django_db
def test_events_a_dead_worker_left_are_taken_up_and_fresh_ones_are_not(
    budget, known, client, settings
):
    budget(None)
    old_received, old_processing, new_received, new_processing = queued_events(
        settings, client, known, 4
    )
    two_hours_ago = timezone.now() - timedelta(hours=2)
    WebhookEvent.objects.filter(pk=old_received).update(received_at=two_hours_ago)
    WebhookEvent.objects.filter(pk=old_processing).update(
        status="processing", received_at=two_hours_ago, attempted_at=two_hours_ago
    )
    # Received long ago, but a worker took it a minute ago: not stuck.
    WebhookEvent.objects.filter(pk=new_processing).update(
        status="processing",
        received_at=two_hours_ago,
        attempted_at=timezone.now() - timedelta(minutes=1),
    )
    out = io.StringIO()
    call_command("cometchat_refresh_stale", "--older-than", "1d", stdout=out)
    assert (
        "Took 2 waiting webhook event(s) (0 deferred by the rate budget, 2 left by a worker)"
        in (out.getvalue())
    )
    status = dict(WebhookEvent.objects.values_list("pk", "status"))
    assert status == {
        old_received: "processed",
        old_processing: "processed",
        new_received: "received",
        new_processing: "processing",
    }


@pytest.mark.django_db
def test_with_a_queue_refresh_stale_queues_the_events_again(budget, known, client, settings):
    budget(None)
    (event,) = queued_events(settings, client, known, 1)
    WebhookEvent.objects.filter(pk=event).update(status="deferred")
    settings.TASKS = {"default": {"BACKEND": f"{BACKENDS}.dummy.DummyBackend"}}
    queue: Any = tasks.backend()
    call_command("cometchat_refresh_stale", "--older-than", "1d", stdout=io.StringIO())
    assert [(r.task.name, list(r.args)) for r in queue.results] == [
        ("process_webhook_event", [event])
    ]
    assert WebhookEvent.objects.get().status == "received"
    assert v3_requests(known) == 0  # the worker fetches, not the command
    queue.clear()


@pytest.mark.django_db(transaction=True)
def test_two_refresh_stale_runs_at_once_take_each_event_once(budget, known, client, settings):
    if connection.vendor != "postgresql":
        pytest.skip("concurrency guarantees are proven on PostgreSQL")
    budget(None)
    events = queued_events(settings, client, known, 12)
    WebhookEvent.objects.update(status="deferred")
    known.clear_requests()
    known.delay_next(0.02, n=1000)  # so that the two runs interleave
    start = threading.Barrier(2)
    outputs: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out = io.StringIO()
            start.wait()
            call_command("cometchat_refresh_stale", "--older-than", "1d", stdout=out)
            outputs.append(out.getvalue())
        except BaseException as exc:  # the test's business
            errors.append(exc)
        finally:
            connections.close_all()

    runs = [threading.Thread(target=run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(60)
    assert errors == []
    took = [
        int(line.split()[1])
        for output in outputs
        for line in output.splitlines()
        if line.startswith("Took ")
    ]
    assert sum(took) == len(events)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    # Each event refreshed its two owners once: taken twice, it would have fetched twice.
    assert v3_requests(known) == 2 * len(events)
