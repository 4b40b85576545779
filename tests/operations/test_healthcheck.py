"""``django_cometchat.contrib.healthcheck`` through django-health-check's own view
(``HealthCheckView`` at ``/health/`` in tests/urls.py), over Django's test client and a real
server: 200 while everything is fine, 500 naming what is wrong otherwise.

Owners, runs and events are made the real way: syncs against the fake CometChat and webhook
deliveries to the view.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import django
import pytest
import redis
import requests
from django.utils import timezone

from django_cometchat import services
from django_cometchat.models import Conversation, SyncRun, WebhookEvent
from tests.surface import basic_authorization, webhook_path

pytestmark = pytest.mark.django_db

HEALTH = "/health/"
BACKENDS = "django.tasks.backends" if django.VERSION >= (6, 0) else "django_tasks.backends"
CHECK_NAMES = ("RateBudgetCache()", "SyncFreshness()", "WebhookBacklog()")
DOWN = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
}
REDIS_URL = "redis://127.0.0.1:6379/6"


def health(client) -> tuple[int, dict[str, str]]:
    response = client.get(HEALTH, HTTP_ACCEPT="application/json")
    return response.status_code, response.json()


def failing(report: dict[str, str]) -> dict[str, str]:
    return {name: text for name, text in report.items() if text != "OK"}


@pytest.fixture(autouse=True)
def _uids(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "UID_RESOLVER": "tests.resolvers.uid_from_username"}


def test_a_new_site_is_healthy(client):
    status, report = health(client)
    assert (status, report) == (200, dict.fromkeys(CHECK_NAMES, "OK"))


def test_a_recent_successful_sync_is_healthy_an_old_one_is_not(client, fake, alice, settings):
    run = services.sync_conversations(alice).run
    assert health(client) == (200, dict.fromkeys(CHECK_NAMES, "OK"))

    SyncRun.objects.filter(pk=run.pk).update(
        started_at=timezone.now() - timedelta(hours=2, seconds=5),
        finished_at=timezone.now() - timedelta(hours=2),
    )
    status, report = health(client)
    assert status == 500
    assert set(failing(report)) == {"SyncFreshness()"}
    text = report["SyncFreshness()"]
    assert text.startswith("Unavailable: no CometChat sync succeeded since ")
    assert 'COMETCHAT["HEALTH_MAX_SYNC_AGE"] = 3600 s' in text
    assert "alice" not in json.dumps(report)

    settings.COMETCHAT = {**settings.COMETCHAT, "HEALTH_MAX_SYNC_AGE": 3 * 3600}
    assert health(client)[0] == 200
    settings.COMETCHAT = {**settings.COMETCHAT, "HEALTH_MAX_SYNC_AGE": None}
    assert health(client)[0] == 200


def test_owners_whose_every_sync_failed_are_unhealthy(client, fake, alice, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "MAX_RETRIES": 0}
    fake.fail_next(1, status=500)
    result = services.sync_conversations(alice, raise_errors=False)
    assert result.run.status == "failed"

    status, report = health(client)
    assert status == 500
    assert failing(report) == {
        "SyncFreshness()": "Unavailable: no CometChat sync succeeded ever (more than "
        'COMETCHAT["HEALTH_MAX_SYNC_AGE"] = 3600 s): are the workers and the cron running? '
        "The latest failed runs tell why"
    }


def test_stored_conversations_without_any_run_count_as_owners(client, fake, alice):
    services.sync_conversations(alice)
    SyncRun.objects.all().delete()  # pruned, say
    assert Conversation.objects.exists()
    assert set(failing(health(client)[1])) == {"SyncFreshness()"}


# -- webhook events waiting ---------------------------------------------------------------------


@pytest.fixture
def queued(settings):
    """A backend that queues and runs nothing: events stay received (no worker)."""
    settings.TASKS = {"default": {"BACKEND": f"{BACKENDS}.dummy.DummyBackend"}}


def deliver(client, fake) -> WebhookEvent:
    """message_sent as CometChat posts it (API.md §7 "Messages"), for alice and bob."""
    message = fake.send_message("bob", to_user="alice", text="later")
    body = {"trigger": "message_sent", "data": {"message": message}, "appId": "testapp"}
    response = client.post(
        webhook_path(),
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_authorization(),
    )
    assert response.json() == {"status": "accepted"}
    return WebhookEvent.objects.get()


def test_a_webhook_event_waiting_too_long_is_unhealthy(client, fake, alice, queued, settings):
    services.sync_conversations(alice)
    event = deliver(client, fake)
    assert event.status == "received"
    assert health(client)[0] == 200  # just arrived

    WebhookEvent.objects.filter(pk=event.pk).update(
        received_at=timezone.now() - timedelta(minutes=10)
    )
    status, report = health(client)
    assert status == 500
    text = failing(report)["WebhookBacklog()"]
    assert text.startswith("Unavailable: a CometChat webhook event has waited 60")  # 600 s
    assert 'COMETCHAT["HEALTH_MAX_EVENT_WAIT"] = 300 s' in text
    assert set(failing(report)) == {"WebhookBacklog()"}

    settings.COMETCHAT = {**settings.COMETCHAT, "HEALTH_MAX_EVENT_WAIT": None}
    assert health(client)[0] == 200
    settings.COMETCHAT = {**settings.COMETCHAT, "HEALTH_MAX_EVENT_WAIT": 300}
    # A worker processes it: nothing waits any more.
    settings.TASKS = {"default": {"BACKEND": f"{BACKENDS}.immediate.ImmediateBackend"}}
    from django_cometchat import tasks

    tasks.process_webhook_event.call(event.pk)
    assert WebhookEvent.objects.get().status == "processed"
    assert health(client)[0] == 200


# -- the rate budget's cache ---------------------------------------------------------------------


def test_an_unreachable_budget_cache_is_unhealthy(client, settings):
    settings.CACHES = {**settings.CACHES, "down": DOWN}
    settings.COMETCHAT = {**settings.COMETCHAT, "RATE_LIMIT_CACHE": "down"}
    status, report = health(client)
    assert status == 500
    assert failing(report) == {
        "RateBudgetCache()": "Unavailable: the rate budget's cache "
        "COMETCHAT[\"RATE_LIMIT_CACHE\"] = 'down' cannot be read (ConnectionError): every "
        "process sends without counting"
    }
    settings.COMETCHAT = {**settings.COMETCHAT, "REQUESTS_PER_MINUTE": None}  # no budget
    assert health(client)[0] == 200


def test_a_reachable_redis_budget_cache_is_healthy(client, settings):
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.ConnectionError:
        pytest.skip(f"Redis is not running at {REDIS_URL}")
    settings.CACHES = {
        **settings.CACHES,
        "shared": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
    }
    settings.COMETCHAT = {**settings.COMETCHAT, "RATE_LIMIT_CACHE": "shared"}
    assert health(client) == (200, dict.fromkeys(CHECK_NAMES, "OK"))


def test_invalid_settings_are_unhealthy_and_named(client, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "HEALTH_MAX_SYNC_AGE": "an hour"}
    status, report = health(client)
    assert status == 500
    assert set(failing(report)) == set(CHECK_NAMES)
    assert "HEALTH_MAX_SYNC_AGE" in report["SyncFreshness()"]


# -- a real server ------------------------------------------------------------------------------


def get(live_server: Any, accept: str) -> requests.Response:
    return requests.get(f"{live_server.url}{HEALTH}", headers={"Accept": accept}, timeout=10)


def test_over_a_real_server(live_server, fake, alice, settings):
    """What a load balancer sees: the status code; a monitor, the plain-text report."""
    assert get(live_server, "application/json").json() == dict.fromkeys(CHECK_NAMES, "OK")
    services.sync_conversations(alice)
    response = get(live_server, "text/plain")
    assert response.status_code == 200
    assert response.text.splitlines() == [f"{name}: OK" for name in CHECK_NAMES]

    settings.CACHES = {**settings.CACHES, "down": DOWN}
    settings.COMETCHAT = {**settings.COMETCHAT, "RATE_LIMIT_CACHE": "down"}
    SyncRun.objects.update(finished_at=timezone.now() - timedelta(days=1))
    response = get(live_server, "text/plain")
    assert response.status_code == 500
    lines = response.text.splitlines()
    assert lines[0].startswith("RateBudgetCache(): Unavailable: the rate budget's cache")
    assert lines[1].startswith("SyncFreshness(): Unavailable: no CometChat sync succeeded since")
    assert lines[2] == "WebhookBacklog(): OK"
