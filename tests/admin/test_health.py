"""The admin's sync health page (``admin:django_cometchat_health``) and its figures
(``django_cometchat.health``): what each figure counts, that each links to the changelist that
lists the same rows, who may see it, and that its queries do not grow with the tables.

Runs and events are written as rows (their times chosen); webhook payloads are CometChat's
published examples (API.md §7, ``fixtures/cometchat/webhook.*.json``); the 429s come from the
fake server as CometChat's limiter answers (API.md §5.4).
"""

from __future__ import annotations

import html
import re
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_cometchat import health, services
from django_cometchat.client import CometChatClient
from django_cometchat.exceptions import CometChatRateLimited
from django_cometchat.models import SyncRun, WebhookEvent
from django_cometchat.services.errors import ABANDONED_CODE, INTERRUPTED_CODE
from django_cometchat.testing.ratelimit import UNLIMITED_NOMINAL
from django_cometchat.webhook_types import parse_webhook
from tests.surface import published_webhook

pytestmark = pytest.mark.django_db

PAGE = "/admin/django_cometchat/health/"
FAILED, SUCCEEDED = SyncRun.Status.FAILED, SyncRun.Status.SUCCEEDED


def run(owner_uid: str, status: str, started: timedelta, *, took: float = 5, **fields: Any):
    """A run of ``owner_uid`` started ``started`` ago, finished ``took`` seconds later."""
    now = timezone.now()
    finished = None if status in health.ACTIVE else now - started + timedelta(seconds=took)
    return SyncRun.objects.create(
        owner_uid=owner_uid,
        status=status,
        started_at=now - started,
        finished_at=finished,
        **fields,
    )


def event(status: str, received: timedelta, *, lag: float | None = None, timed: bool = True):
    """An event received ``received`` ago, processed ``lag`` seconds after its event time."""
    now = timezone.now()
    processed = event_at = None
    if lag is not None:
        processed = now - received + timedelta(seconds=1)
        event_at = processed - timedelta(seconds=lag) if timed else None
    return WebhookEvent.objects.create(
        trigger="message_sent",
        status=status,
        received_at=now - received,
        processed_at=processed,
        event_at=event_at,
    )


@pytest.fixture
def world(django_user_model):
    alice = django_user_model.objects.create_user(username="alice-django")
    bob = django_user_model.objects.create_user(username="bob-django")
    m = timedelta(minutes=1)
    run("alice", SUCCEEDED, 30 * m, owner=alice)  # synced in the last hour
    run("bob", SUCCEEDED, 5 * 60 * m, owner=bob)  # in the last day only
    run("bob", FAILED, 50 * m, owner=bob, error_code="ERR_UID_NOT_FOUND")  # bob fails now
    run("carol", FAILED, 3 * 24 * 60 * m, error_code="ERR_OLD")  # failed, then synced:
    run("carol", SUCCEEDED, 2 * 24 * 60 * m)  # too long ago to count, and not failing
    run("dave", FAILED, 10 * m, error_code="ERR_INTERNAL")  # a UID only, failing
    run("erin", FAILED, 20 * m, error_code="ERR_X")  # failed, and a new run is on its way
    run("erin", SyncRun.Status.RUNNING, 5 * m)
    run("frank", SyncRun.Status.RUNNING, 2 * 60 * m)  # past SYNC_ABANDONED_AFTER (1 h)
    run("grace", SyncRun.Status.QUEUED, 10 * m)  # queued, not for long
    run("heidi", FAILED, 3 * 60 * m, error_code=ABANDONED_CODE)  # abandoned, failing
    run("judy", FAILED, 30 * 60 * m, error_code="ERR_STALE")  # failing, but not within a day
    run("ivan", FAILED, 26 * 60 * m, error_code=INTERRUPTED_CODE)  # yesterday's
    run("ivan", FAILED, 3 * m, error_code=INTERRUPTED_CODE)  # interrupted, failing
    # Events: a day's by status, one older; the last hour's lags 1..50 s, two without time.
    for lag in range(1, 51):
        event(WebhookEvent.Status.PROCESSED, timedelta(minutes=30), lag=lag)
    event(WebhookEvent.Status.PROCESSED, timedelta(minutes=20), lag=3, timed=False)
    event(WebhookEvent.Status.FAILED, timedelta(minutes=20), lag=4, timed=False)
    event(WebhookEvent.Status.PROCESSED, timedelta(hours=5), lag=500)  # not the last hour
    event(WebhookEvent.Status.RECEIVED, timedelta(minutes=1))
    event(WebhookEvent.Status.DEFERRED, timedelta(hours=2))
    event(WebhookEvent.Status.IGNORED, timedelta(days=2))  # not the last day
    cache.clear()
    yield
    cache.clear()


def test_the_figures(world):
    seen = health.gather()
    assert (seen.synced_last_hour, seen.synced_last_day) == (1, 2)
    assert str(seen.failing) == "4"
    assert [(o.owner_uid, o.username, o.error_code) for o in seen.failing_owners] == [
        ("ivan", "", "ERR_INTERRUPTED"),
        ("dave", "", "ERR_INTERNAL"),
        ("bob", "bob-django", "ERR_UID_NOT_FOUND"),
        ("heidi", "", "ERR_ABANDONED"),
    ]
    assert str(seen.overdue) == "1"
    assert (seen.abandoned_last_day, seen.interrupted_last_day) == (1, 1)
    assert seen.events_last_day == {"processed": 52, "failed": 1, "received": 1, "deferred": 1}
    assert seen.lag.measured == 50
    assert seen.lag.p50 == timedelta(seconds=25)
    assert seen.lag.p99 == timedelta(seconds=50)
    assert seen.lag.without_time == 3
    assert seen.budget is not None
    assert (seen.budget.used, seen.budget.limit, seen.budget.rejected_last_hour) == (
        0,
        1_000_000,
        0,
    )


def test_a_count_stops_at_its_cap(world, monkeypatch):
    monkeypatch.setattr(health, "COUNT_CAP", 2)
    seen = health.gather()
    assert (seen.failing.count, seen.failing.more, str(seen.failing)) == (2, True, "2+")


FIGURE = re.compile(
    r'<th scope="row">(?P<label>[^<]+)</th>\s*<td class="cometchat-figure">'
    r'(?:<a href="(?P<url>[^"]+)">)?(?:<span[^>]*>)?(?P<value>[^<]+)'
)


def figures(body: str) -> dict[str, tuple[str, str]]:
    return {m["label"]: (m["value"], html.unescape(m["url"] or "")) for m in FIGURE.finditer(body)}


def listed(client: Client, url: str, column: str) -> list[str]:
    """The texts of ``column`` in a changelist's rows (an empty list says so)."""
    response = client.get(url)
    assert response.status_code == 200, url
    body = response.content.decode()
    cells = re.findall(rf'<t[dh] class="field-{column}[^"]*">(.*?)</t[dh]>', body, flags=re.DOTALL)
    return [re.sub(r"<[^>]+>", " ", cell).split()[0] for cell in cells]


def test_each_figure_links_to_the_changelist_of_what_it_counts(world, admin_client):
    response = admin_client.get(reverse("admin:django_cometchat_health"))
    assert response.status_code == 200
    body = response.content.decode()
    shown = figures(body)

    def owners(label: str) -> list[str]:
        return listed(admin_client, shown[label][1], "owner_column")

    assert shown["Owners synced in the last hour"][0] == "1"
    assert owners("Owners synced in the last hour") == ["alice"]
    assert sorted(set(owners("Owners synced in the last 24 hours"))) == ["alice", "bob"]
    assert sorted(owners("Owners whose latest run failed")) == ["bob", "dave", "heidi", "ivan"]
    assert owners("Runs queued or running too long") == ["frank"]
    assert owners("Runs abandoned in the last 24 hours") == ["heidi"]
    assert owners("Runs interrupted in the last 24 hours") == ["ivan"]
    # Each failing owner: the username (else the UID) links to the run, the code to its runs.
    assert 'href="/admin/django_cometchat/syncrun/' in body
    assert ">bob-django</a>" in body
    code = re.search(r'<a class="cometchat-code" href="([^"]+)">ERR_UID_NOT_FOUND</a>', body)
    assert code is not None
    assert listed(admin_client, html.unescape(code[1]), "owner_column") == ["bob"]

    def events(label: str) -> int:
        return len(listed(admin_client, shown[label][1], "received_at"))

    for label, value in [("Processed", 52), ("Failed", 1), ("Deferred", 1), ("Ignored", 0)]:
        assert shown[label][0] == str(value)
        assert events(label) == value, label
    assert (shown["p50"][0], shown["p99"][0]) == ("25.0 s", "50.0 s")
    assert events("Events measured") == 50
    assert events("Received without an event time") == 3
    assert shown["Requests this window"][0] == "0 of 1,000,000"
    assert shown["429s in the last hour"] == ("0", "")


def test_the_app_index_links_to_the_page(admin_client):
    body = admin_client.get("/admin/django_cometchat/").content.decode()
    assert f'<a href="{PAGE}"' in body
    assert "Sync health" in body


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("anonymous", 302),
        ("staff without view_syncrun", 403),
        ("staff with view_syncrun", 200),
        ("staff with change_syncrun", 200),
        ("non-staff with view_syncrun", 302),
        ("superuser", 200),
    ],
)
def test_who_may_see_it(django_user_model, who, status):
    client = Client()
    if who != "anonymous":
        user = django_user_model.objects.create_user(
            username="someone",
            is_staff=who != "non-staff with view_syncrun",
            is_superuser=who == "superuser",
        )
        codename = "change_syncrun" if "change_syncrun" in who else "view_syncrun"
        if "without" in who:
            codename = "view_conversation"  # staff of the app, but not of its runs
        user.user_permissions.add(Permission.objects.get(codename=codename))
        client.force_login(user)
    response = client.get(PAGE)
    assert response.status_code == status
    if status == 302:
        assert response["Location"] == f"/admin/login/?next={PAGE}"
    if status == 200:
        assert "<h1>Sync health</h1>" in response.content.decode()
    index = client.get("/admin/django_cometchat/")
    assert (PAGE in index.content.decode()) is (status == 200)


def test_its_queries_do_not_grow_with_the_tables(world, admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(PAGE).status_code == 200
        return len(captured)

    before = queries()
    for n in range(50):
        run(f"owner-{n}", FAILED, timedelta(minutes=n + 1), error_code="ERR_MANY")
        event(WebhookEvent.Status.PROCESSED, timedelta(minutes=5), lag=n)
    assert queries() == before
    with CaptureQueriesContext(connection) as captured:
        health.gather()
    assert len(captured) <= 8


def test_a_budget_cache_that_fails_leaves_the_rest_of_the_page(world, admin_client, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "RATE_LIMIT_CACHE": "broken"}
    settings.CACHES = {
        **settings.CACHES,
        "broken": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }
    body = admin_client.get(PAGE).content.decode()
    assert "Unavailable: the rate budget&#x27;s cache failed (ConnectionError)." in body
    assert figures(body)["Owners synced in the last hour"][0] == "1"
    settings.COMETCHAT = {**settings.COMETCHAT, "REQUESTS_PER_MINUTE": None}
    body = admin_client.get(PAGE).content.decode()
    assert "Off: REQUESTS_PER_MINUTE is None" in body


def test_429s_and_the_latest_remaining_are_read_from_the_shared_cache(
    cometchat_fake, settings, admin_client
):
    """Two 429s (the first retried, the second the last answer, seen by the retry policy and
    the client alike) count twice, not three times; the next answer's X-Rate-Limit-Remaining
    is the latest reading (the fake's limiter, API.md §5.4)."""
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "MAX_RETRIES": 1,
        "BACKOFF_FACTOR": 0.01,
        "RETRY_AFTER_MAX": 0.05,
    }
    cache.clear()
    cometchat_fake.add_user("bob")
    cometchat_fake.rate_limit_next(2, retry_after=0)
    with CometChatClient() as client:
        with pytest.raises(CometChatRateLimited):
            client.get_user("bob")
        time.sleep(0.1)  # the pause a 429 set
        assert client.get_user("bob").uid == "bob"
    assert [r.status for r in cometchat_fake.requests] == [429, 429, 200]
    usage = services.rate_budget_usage()
    assert usage is not None
    assert usage.rejected_last_hour == 2
    assert usage.remaining == UNLIMITED_NOMINAL  # the 200's reading, after the 429s' 0
    shown = figures(admin_client.get(PAGE).content.decode())
    assert shown["429s in the last hour"][0] == "2"
    assert shown["Latest X-Rate-Limit-Remaining"][0] == f"{usage.remaining:,}"
    cache.clear()


def test_an_event_records_cometchats_time_of_it():
    """The published message_sent carries its message's time; group_member_joined none."""
    sent = published_webhook("message_sent")
    recorded = services.record_webhook(parse_webhook(sent))
    assert recorded is not None
    message = sent["data"]["message"]
    seconds = message.get("updatedAt") or message["sentAt"]
    assert recorded.event_at == datetime.fromtimestamp(int(seconds), tz=dt_timezone.utc)
    WebhookEvent.objects.filter(pk=recorded.pk).update(event_at=None)
    joined = services.record_webhook(parse_webhook(published_webhook("group_member_joined")))
    assert joined is not None
    assert joined.event_at is None
