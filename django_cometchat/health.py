"""The figures of the admin's sync health page: is every owner fresh, what failed and why, how
much of CometChat's budget is used, how late webhooks are processed.

Read from the models and the shared rate budget's cache, never from CometChat, in a fixed number
of queries whatever the tables hold, each served by an index: a window of the last hour or day
on an indexed time column, or a walk of an index that stops at ``COUNT_CAP`` rows. The admin's
page (``admin/health.py``) links each figure to the changelist filtered the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
)
from django.utils import timezone

from .budget import BudgetUsage
from .exceptions import CometChatError
from .models import SyncRun, WebhookEvent
from .services import abandoned_before, rate_budget_usage
from .services.errors import ABANDONED_CODE, INTERRUPTED_CODE

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
COUNT_CAP = 1000  # a count that reaches it reads "1,000+": no walk past that many rows
FAILING_SHOWN = 10  # failing owners listed by name; the count links to all of them
ACTIVE = (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING)


@dataclass(frozen=True)
class Capped:
    """A count that stopped at ``COUNT_CAP``: ``more`` when there are more."""

    count: int
    more: bool = False

    def __str__(self) -> str:
        return f"{self.count:,}+" if self.more else f"{self.count:,}"


@dataclass(frozen=True)
class FailingOwner:
    """An owner whose latest sync run failed."""

    owner_uid: str
    username: str  # "" for an owner known by UID only
    error_code: str
    failed_at: datetime
    run_id: int


@dataclass(frozen=True)
class Lag:
    """From CometChat's event time to the end of processing, for the webhook events received in
    the last hour and processed since; the hour's events whose body carries no time are
    counted apart."""

    measured: int
    p50: timedelta | None
    p99: timedelta | None
    without_time: int


@dataclass(frozen=True)
class SyncHealth:
    now: datetime
    synced_last_hour: int  # owners with a successful run finished in the last hour
    synced_last_day: int
    failing: Capped  # owners whose latest run failed, within the last 24 h
    failing_owners: list[FailingOwner]  # the latest FAILING_SHOWN of them
    overdue: Capped  # runs queued or running past SYNC_ABANDONED_AFTER, not yet marked
    abandoned_last_day: int
    interrupted_last_day: int
    events_last_day: dict[str, int]  # webhook events received in the last 24 h, by status
    lag: Lag
    budget: BudgetUsage | None  # None: REQUESTS_PER_MINUTE is None, or the cache failed
    budget_error: str  # what failed reading the budget's cache ("" when nothing did)


def capped(queryset: QuerySet[Any]) -> Capped:
    """How many rows ``queryset`` has, counting no further than ``COUNT_CAP``."""
    count = queryset.order_by()[: COUNT_CAP + 1].count()
    return Capped(min(count, COUNT_CAP), more=count > COUNT_CAP)


def latest_failed_runs(runs: QuerySet[SyncRun] | None = None) -> QuerySet[SyncRun]:
    """Failed runs that are their owner's latest run (of any status): one row per failing
    owner. Each failed run is checked with one probe of the (owner_uid, -started_at) index."""
    runs = SyncRun.objects.all() if runs is None else runs
    later = SyncRun.objects.filter(
        owner_uid=OuterRef("owner_uid"), started_at__gte=OuterRef("started_at")
    ).exclude(pk=OuterRef("pk"))
    return runs.filter(status=SyncRun.Status.FAILED).filter(~Exists(later))


def overdue_runs(
    runs: QuerySet[SyncRun] | None = None, *, now: datetime | None = None
) -> QuerySet[SyncRun]:
    """Runs queued or running for longer than ``SYNC_ABANDONED_AFTER``: their worker died or
    never came; the owner's next sync marks them abandoned."""
    runs = SyncRun.objects.all() if runs is None else runs
    cutoff = abandoned_before(now or timezone.now())
    return runs.filter(status__in=ACTIVE, started_at__lt=cutoff)


def gather(*, now: datetime | None = None) -> SyncHealth:
    """Every figure of the page, in at most eight queries and one cache read."""
    now = now or timezone.now()
    hour_ago, day_ago = now - HOUR, now - DAY
    finished = SyncRun.objects.filter(
        status__in=(SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED), finished_at__gte=day_ago
    ).aggregate(
        day=Count("owner_uid", distinct=True, filter=Q(status=SyncRun.Status.SUCCEEDED)),
        hour=Count(
            "owner_uid",
            distinct=True,
            filter=Q(status=SyncRun.Status.SUCCEEDED, finished_at__gte=hour_ago),
        ),
        abandoned=Count("pk", filter=Q(status=SyncRun.Status.FAILED, error_code=ABANDONED_CODE)),
        interrupted=Count(
            "pk", filter=Q(status=SyncRun.Status.FAILED, error_code=INTERRUPTED_CODE)
        ),
    )
    # Failed in the last day: a bounded walk (every failed run of all time is one index probe
    # each, a second at a million runs). An owner still failing is retried by the stale-owner
    # cron and fails again within the day; one failing longer with no run since is stale, not
    # failing now.
    failing = latest_failed_runs(SyncRun.objects.filter(finished_at__gte=day_ago))
    shown = failing.select_related("owner").order_by("-started_at", "-id")[:FAILING_SHOWN]
    events = (
        WebhookEvent.objects.filter(received_at__gte=day_ago)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
    )
    budget, budget_error = _budget()
    return SyncHealth(
        now=now,
        synced_last_hour=finished["hour"],
        synced_last_day=finished["day"],
        failing=capped(failing),
        failing_owners=[_failing_owner(run) for run in shown],
        overdue=capped(overdue_runs(now=now)),
        abandoned_last_day=finished["abandoned"],
        interrupted_last_day=finished["interrupted"],
        events_last_day={str(status): n for status, n in events},
        lag=webhook_lag(now=now),
        budget=budget,
        budget_error=budget_error,
    )


def _failing_owner(run: SyncRun) -> FailingOwner:
    user = run.owner
    return FailingOwner(
        owner_uid=run.owner_uid,
        username=user.get_username() if user is not None else "",
        error_code=run.error_code,
        failed_at=run.finished_at or run.started_at,
        run_id=run.pk,
    )


def webhook_lag(*, now: datetime | None = None) -> Lag:
    """p50 and p99 (nearest rank) of processing minus event time over the last hour's events,
    in three queries on the received-at index: the counts, then each percentile's row of the
    hour's events ordered by their lag (a sort of that hour only)."""
    now = now or timezone.now()
    received = WebhookEvent.objects.filter(received_at__gte=now - HOUR)
    timed = received.filter(processed_at__isnull=False, event_at__isnull=False)
    counts = received.aggregate(
        timed=Count("pk", filter=Q(processed_at__isnull=False, event_at__isnull=False)),
        untimed=Count("pk", filter=Q(event_at__isnull=True)),
    )
    measured = counts["timed"]
    if not measured:
        return Lag(0, None, None, counts["untimed"])
    lags = (
        timed.annotate(
            lag=ExpressionWrapper(F("processed_at") - F("event_at"), output_field=DurationField())
        )
        .order_by("lag", "pk")
        .values_list("lag", flat=True)
    )

    def rank(share: float) -> timedelta:
        return lags[max(0, math.ceil(share * measured) - 1)]  # type: ignore[no-any-return]

    return Lag(measured, rank(0.50), rank(0.99), counts["untimed"])


def _budget() -> tuple[BudgetUsage | None, str]:
    """The budget's counts, or why they cannot be read: the kind of failure only (a cache's
    message may name its host and password)."""
    try:
        return rate_budget_usage(), ""
    except CometChatError:  # the settings: manage.py check names the key to fix
        return None, "the COMETCHAT settings are invalid (manage.py check names the key)"
    except Exception as exc:  # the cache failed: the page still shows the rest
        return None, f"the rate budget's cache failed ({type(exc).__name__})"
