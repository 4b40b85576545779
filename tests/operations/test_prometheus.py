"""``django_cometchat.contrib.prometheus``: real syncs and webhooks against the fake CometChat,
then what ``generate_latest()`` (the default registry, as an exporter serves it) shows.

The app is in tests/settings.py's INSTALLED_APPS, so its ``ready()`` connected the receivers;
the counters live for the whole test process, so each test compares samples before and after.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.apps import apps
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from django_cometchat import services
from django_cometchat.budget import RateBudget
from django_cometchat.conf import get_settings
from django_cometchat.contrib.prometheus import metrics
from tests.surface import basic_authorization, published_webhook, webhook_path

# The signals are sent once the work commits: every test commits (no enclosing transaction).
pytestmark = pytest.mark.django_db(transaction=True)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape() -> tuple[str, Samples]:
    """The default registry as text, and its samples keyed by (name, labels)."""
    text = generate_latest(REGISTRY).decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The cometchat_ samples that changed, and by how much (buckets left out)."""
    return {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if key[0].startswith("cometchat_")
        and not key[0].endswith(("_bucket", "_created"))
        and key[0] != metrics.BUDGET_RATIO
        and after[key] != before.get(key, 0.0)
    }


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


Key = tuple[str, frozenset[tuple[str, str]]]


def upstream(endpoint: str, status: str) -> Key:
    return ("cometchat_upstream_requests_total", labels(endpoint=endpoint, status=status))


def runs(trigger: str, outcome: str) -> Key:
    return ("cometchat_sync_runs_total", labels(trigger=trigger, outcome=outcome))


def events(trigger: str, status: str) -> Key:
    return ("cometchat_webhook_events_total", labels(trigger=trigger, status=status))


@pytest.fixture(autouse=True)
def _uids(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "UID_RESOLVER": "tests.resolvers.uid_from_username"}


# -- syncs and requests ---------------------------------------------------------------------------


def test_a_sync_counts_its_requests_its_run_and_its_duration(fake, alice):
    _, before = scrape()
    result = services.sync_conversations(alice)
    text, after = scrape()

    assert result.ok
    assert result.requests == 1  # one page: GET /conversations
    changed = grew(before, after)
    assert (
        changed.pop(
            (
                "cometchat_upstream_requests_total",
                labels(endpoint="GET /conversations", status="200"),
            )
        )
        == 1
    )
    assert changed.pop(runs("code", "succeeded")) == 1
    assert changed.pop(("cometchat_sync_duration_seconds_count", labels(trigger="code"))) == 1
    duration = changed.pop(("cometchat_sync_duration_seconds_sum", labels(trigger="code")))
    assert 0 < duration < 10
    assert changed == {}
    # Labels never carry a UID: alice's sync ran on her behalf, and no line names her.
    cometchat_lines = [line for line in text.splitlines() if "cometchat_" in line]
    assert cometchat_lines
    assert not [line for line in cometchat_lines if "alice" in line or "bob" in line]


def test_a_single_conversation_is_counted_by_its_path_template(fake, alice):
    _, before = scrape()
    services.fetch_conversation(alice, "alice_user_bob")
    services.fetch_conversation(alice, "group_book-club")
    _, after = scrape()

    assert grew(before, after) == {
        (
            "cometchat_upstream_requests_total",
            labels(endpoint="GET /users/{uid}/conversation", status="200"),
        ): 1,
        (
            "cometchat_upstream_requests_total",
            labels(endpoint="GET /groups/{guid}/conversation", status="200"),
        ): 1,
    }


def test_every_attempt_of_a_retried_request_is_counted_and_a_failed_run_too(fake, alice, settings):
    """Two 500s (API.md §5: 5xx are retried), then the third attempt's 200; a sync whose every
    attempt fails (the retries spent) ends failed."""
    settings.COMETCHAT = {**settings.COMETCHAT, "MAX_RETRIES": 2, "BACKOFF_FACTOR": 0.01}
    conversations = "GET /conversations"
    _, before = scrape()
    fake.fail_next(2, status=500)
    services.sync_conversations(alice)
    fake.fail_next(3, status=503)
    result = services.sync_conversations(alice, raise_errors=False)
    _, after = scrape()

    assert not result.ok
    changed = grew(before, after)
    assert changed.pop(upstream(conversations, "500")) == 2
    assert changed.pop(upstream(conversations, "503")) == 3
    assert changed.pop(upstream(conversations, "200")) == 1
    assert changed.pop(runs("code", "succeeded")) == 1
    assert changed.pop(runs("code", "failed")) == 1
    assert changed.pop(("cometchat_sync_duration_seconds_count", labels(trigger="code"))) == 2
    assert set(changed) == {("cometchat_sync_duration_seconds_sum", labels(trigger="code"))}


def test_a_request_without_an_answer_counts_as_error(fake, alice, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "MAX_RETRIES": 0}
    _, before = scrape()
    fake.reset_next(1)  # the connection aborted: no status at all
    result = services.sync_conversations(alice, raise_errors=False)
    _, after = scrape()

    assert result.run.status == "failed"
    assert (
        grew(before, after)[
            (
                "cometchat_upstream_requests_total",
                labels(endpoint="GET /conversations", status="error"),
            )
        ]
        == 1
    )


def test_abandoned_runs_are_counted_as_abandoned(fake, alice):
    from datetime import timedelta

    from django.utils import timezone

    run = services.queue_sync_run(alice, trigger="api")
    run.started_at = timezone.now() - timedelta(hours=2)
    run.save()
    _, before = scrape()
    assert services.mark_abandoned_runs() == 1
    _, after = scrape()

    changed = grew(before, after)
    assert changed.pop(runs("api", "abandoned")) == 1
    assert changed.pop(("cometchat_sync_duration_seconds_count", labels(trigger="api"))) == 1
    assert changed.pop(("cometchat_sync_duration_seconds_sum", labels(trigger="api"))) >= 7200
    assert changed == {}


def test_a_dry_run_counts_requests_but_no_run(fake, alice):
    _, before = scrape()
    services.sync_conversations(alice, dry_run=True)
    _, after = scrape()
    assert set(grew(before, after)) == {upstream("GET /conversations", "200")}


# -- webhooks ---------------------------------------------------------------------------------


def deliver(client, trigger: str, data: Any) -> dict[str, Any]:
    """Post a delivery as CometChat does (API.md §7: the envelope, Basic credentials)."""
    body = {"trigger": trigger, "data": data, "appId": "testapp", "region": "us", "webhook": "w1"}
    response = client.post(
        webhook_path(),
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_authorization(),
    )
    assert response.status_code in (200, 400), response.content
    answer: dict[str, Any] = response.json()
    return answer


@pytest.fixture
def known(fake, alice):
    services.sync_conversations(alice)
    services.sync_conversations(services.owner_by_uid("bob"))
    return fake


def test_a_processed_message_event_is_counted_with_its_lag(client, known):
    """message_sent (API.md §7 "Messages"): the message's sentAt, 30 s ago, is the event
    time; with the immediate backend the event is processed before the answer."""
    message = known.send_message("bob", to_user="alice", text="new", sent_at=int(time.time()) - 30)
    _, before = scrape()
    assert deliver(client, "message_sent", {"message": message}) == {"status": "accepted"}
    _, after = scrape()

    changed = grew(before, after)
    assert changed.pop(events("message_sent", "processed")) == 1
    assert changed.pop(("cometchat_webhook_lag_seconds_count", frozenset())) == 1
    lag = changed.pop(("cometchat_webhook_lag_seconds_sum", frozenset()))
    assert 29 <= lag < 60
    assert (
        value(after, "cometchat_webhook_lag_seconds_bucket", le="60.0")
        - value(before, "cometchat_webhook_lag_seconds_bucket", le="60.0")
        == 1
    )
    assert value(after, "cometchat_webhook_lag_seconds_bucket", le="10.0") == value(
        before, "cometchat_webhook_lag_seconds_bucket", le="10.0"
    )
    # Both parties' conversations were refreshed: two requests, counted by template.
    assert (
        changed.pop(
            (
                "cometchat_upstream_requests_total",
                labels(endpoint="GET /users/{uid}/conversation", status="200"),
            )
        )
        == 2
    )
    assert changed == {}


def test_events_without_an_event_time_are_counted_but_not_in_the_lag(client, cometchat_fake):
    """CometChat's published group_member_kicked example (API.md §7, fixtures/webhook.
    group_member_kicked.json): a group event carries no event time."""
    fake = cometchat_fake
    fake.add_user("alice", "Alice Example")
    fake.add_user("bob", "Bob Example")
    fake.add_group("support-team", "Support Team", members=["alice", "bob"])
    fake.send_message("alice", to_group="support-team", text="welcome")
    services.sync_conversations(services.owner_by_uid("bob"))
    fake.remove_member("support-team", "bob")
    _, before = scrape()
    response = client.post(
        webhook_path(),
        data=json.dumps(published_webhook("group_member_kicked")),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_authorization(),
    )
    _, after = scrape()

    assert response.json() == {"status": "accepted"}
    changed = grew(before, after)
    kicked = labels(trigger="group_member_kicked", status="processed")
    assert changed.pop(("cometchat_webhook_events_total", kicked)) == 1
    # bob's copy, confirmed gone: CometChat answers 403 ERR_CONVERSATION_NOT_ACCESSIBLE.
    group = labels(endpoint="GET /groups/{guid}/conversation", status="403")
    assert changed.pop(("cometchat_upstream_requests_total", group)) == 1
    assert changed == {}  # nothing in the lag histogram


def test_ignored_and_refused_events_are_counted_and_unknown_triggers_are_other(client, known):
    _, before = scrape()
    assert deliver(client, "group_created", {"group": {"guid": "g2"}}) == {"status": "ignored"}
    assert deliver(client, "some_new_trigger", {}) == {"status": "ignored"}
    deliver(client, "message_sent", {"message": {"id": "1"}})  # 400: not the contract
    _, after = scrape()

    assert grew(before, after) == {
        events("group_created", "ignored"): 1,
        events("other", "ignored"): 1,
        events("message_sent", "failed"): 1,
    }


# -- the rate budget gauge ----------------------------------------------------------------------


def test_the_budget_gauge_is_used_over_limit_in_the_current_window(fake, alice, settings):
    # An hour-long window: the test never straddles two.
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "REQUESTS_PER_MINUTE": 40,
        "RATE_LIMIT_WINDOW": 3600.0,
    }
    budget = RateBudget.for_settings(get_settings())
    assert budget is not None
    budget.reset()
    _, samples = scrape()
    assert value(samples, metrics.BUDGET_RATIO) == 0.0

    services.sync_conversations(alice)
    services.fetch_conversation(alice, "alice_user_bob")
    text, samples = scrape()
    assert value(samples, metrics.BUDGET_RATIO) == 2 / 40
    assert "# TYPE cometchat_rate_budget_used_ratio gauge" in text
    budget.reset()


def test_no_budget_gauge_when_the_budget_is_off_or_its_cache_is_down(settings, caplog):
    settings.COMETCHAT = {**settings.COMETCHAT, "REQUESTS_PER_MINUTE": None}
    text, _ = scrape()
    assert metrics.BUDGET_RATIO not in text

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "down": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        },
    }
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "REQUESTS_PER_MINUTE": 100,
        "RATE_LIMIT_CACHE": "down",
    }
    text, _ = scrape()  # the scrape still answers
    assert metrics.BUDGET_RATIO not in text
    assert "cometchat_sync_runs_total" in text or "cometchat_sync_runs" in text
    assert "the rate budget's cache cannot be read" in caplog.text


# -- registration ---------------------------------------------------------------------------------


def test_registering_again_neither_raises_nor_counts_twice(fake, alice):
    """ready() again (as modify_settings(INSTALLED_APPS) does in tests), install() again."""
    apps.get_app_config("django_cometchat_prometheus").ready()
    metrics.install()
    metrics.install(REGISTRY)
    _, before = scrape()
    services.sync_conversations(alice)
    _, after = scrape()
    key = runs("code", "succeeded")
    assert after[key] - before.get(key, 0.0) == 1
    text, _ = scrape()
    assert text.count("# TYPE cometchat_sync_runs_total counter") == 1


def test_the_budget_collector_alone_for_multiprocess_exporters(fake, alice, settings):
    """In multiprocess mode the exporter builds its own registry; the gauge is added alone."""
    from prometheus_client import CollectorRegistry

    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "REQUESTS_PER_MINUTE": 50,
        "RATE_LIMIT_WINDOW": 3600.0,
    }
    budget = RateBudget.for_settings(get_settings())
    assert budget is not None
    budget.reset()
    services.sync_conversations(alice)
    registry = CollectorRegistry()
    registry.register(metrics.BudgetCollector())
    text = generate_latest(registry).decode()
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        "cometchat_rate_budget_used_ratio 0.02"
    ]
    budget.reset()
