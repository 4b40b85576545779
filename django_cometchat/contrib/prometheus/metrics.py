"""The metrics, their receivers, and the one collector that puts them in a registry.

The counters and histograms are created unregistered and served through one
:class:`CometChatCollector`, which also computes the budget gauge at each scrape. Registering
it is idempotent (``install()`` may run again: a test that calls ``ready()``, an autoreload in
the same interpreter): a registry holding it already is left alone, and the receivers are
connected with a ``dispatch_uid`` each, so no sample is ever counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from django_cometchat.budget import RateBudget
from django_cometchat.conf import get_settings
from django_cometchat.signals import (
    sync_run_finished,
    upstream_request_answered,
    webhook_event_finished,
)
from django_cometchat.webhook_types import KNOWN_TRIGGERS

TRIGGERS = frozenset(KNOWN_TRIGGERS)

logger = logging.getLogger(__name__)

LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
SYNC_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

UPSTREAM_REQUESTS = Counter(
    "cometchat_upstream_requests",
    "Attempts of requests to CometChat, by endpoint template and HTTP status (error: none came).",
    ["endpoint", "status"],
    registry=None,
)
SYNC_RUNS = Counter(
    "cometchat_sync_runs",
    "Finished sync runs, by trigger and outcome (succeeded, failed, abandoned).",
    ["trigger", "outcome"],
    registry=None,
)
SYNC_DURATION = Histogram(
    "cometchat_sync_duration_seconds",
    "Seconds from a sync run's start to its end.",
    ["trigger"],
    buckets=SYNC_BUCKETS,
    registry=None,
)
WEBHOOK_EVENTS = Counter(
    "cometchat_webhook_events",
    "Webhook events that reached an end, by trigger and status (processed, failed, ignored).",
    ["trigger", "status"],
    registry=None,
)
WEBHOOK_LAG = Histogram(
    "cometchat_webhook_lag_seconds",
    "Seconds from CometChat's event time to the event's end (events with an event time only).",
    buckets=LAG_BUCKETS,
    registry=None,
)
BUDGET_RATIO = "cometchat_rate_budget_used_ratio"


METRICS = (UPSTREAM_REQUESTS, SYNC_RUNS, SYNC_DURATION, WEBHOOK_EVENTS, WEBHOOK_LAG)
BUDGET_HELP = (
    "Requests counted in the shared rate budget's current window over "
    'COMETCHAT["REQUESTS_PER_MINUTE"].'
)


class BudgetCollector(Collector):
    """``cometchat_rate_budget_used_ratio``, read from the budget's cache at each collect.
    Register it alone on the exporter's registry in prometheus_client's multiprocess mode,
    where the counters and histograms come from the processes' files instead."""

    def describe(self) -> Iterator[Metric]:
        # What the registry checks names against at register(): no cache read at start-up.
        yield GaugeMetricFamily(BUDGET_RATIO, BUDGET_HELP)

    def collect(self) -> Iterator[Metric]:
        ratio = budget_used_ratio()
        if ratio is not None:
            yield GaugeMetricFamily(BUDGET_RATIO, BUDGET_HELP, value=ratio)


class CometChatCollector(BudgetCollector):
    """The package's counters and histograms, and the budget gauge."""

    def describe(self) -> Iterator[Metric]:
        for metric in METRICS:
            yield from metric.describe()
        yield from super().describe()

    def collect(self) -> Iterator[Metric]:
        for metric in METRICS:
            yield from metric.collect()
        yield from super().collect()


def budget_used_ratio() -> float | None:
    """Used over limit in the current window; None when the budget is off or unreadable (a
    scrape must not fail with the cache: the health check reports a dead cache)."""
    try:
        budget = RateBudget.for_settings(get_settings())
        if budget is None:
            return None
        return budget.used() / budget.per_window
    except Exception:
        logger.warning("CometChat metrics: the rate budget's cache cannot be read", exc_info=True)
        return None


COLLECTOR = CometChatCollector()


def install(registry: CollectorRegistry = REGISTRY) -> None:
    """Connect the receivers and register the collector, once however often called."""
    upstream_request_answered.connect(on_request, dispatch_uid="cometchat_prometheus_request")
    sync_run_finished.connect(on_sync_run, dispatch_uid="cometchat_prometheus_sync_run")
    webhook_event_finished.connect(on_webhook_event, dispatch_uid="cometchat_prometheus_webhook")
    try:
        registry.register(COLLECTOR)
    except ValueError:  # registered already: this collector, or one of an earlier import
        logger.debug("CometChat metrics are registered already")


def on_request(
    sender: Any, *, endpoint: str, status: int | None, seconds: float, **kwargs: Any
) -> None:
    UPSTREAM_REQUESTS.labels(endpoint, "error" if status is None else str(status)).inc()


def on_sync_run(sender: Any, *, outcome: str, trigger: str, seconds: float, **kwargs: Any) -> None:
    SYNC_RUNS.labels(trigger, outcome).inc()
    SYNC_DURATION.labels(trigger).observe(max(seconds, 0.0))


def on_webhook_event(
    sender: Any, *, trigger: str, status: str, lag: float | None, **kwargs: Any
) -> None:
    # Any lowercase name passes the webhook's parser: only CometChat's own become labels.
    WEBHOOK_EVENTS.labels(trigger if trigger in TRIGGERS else "other", status).inc()
    if lag is not None:
        WEBHOOK_LAG.observe(max(lag, 0.0))
