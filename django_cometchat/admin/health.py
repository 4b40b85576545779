"""The admin's sync health page: ``admin/django_cometchat/health/``, named
``admin:django_cometchat_health``.

The figures come from :mod:`django_cometchat.health`; this module only links each one to the
changelist filtered the same way, and decides who may see it: staff who may view sync runs.
The page is listed in the app's index through the ``Health`` model, which has no table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import urlencode

from ..health import SyncHealth, gather
from ..models import Health, SyncRun, WebhookEvent
from ..services.errors import ABANDONED_CODE, INTERRUPTED_CODE
from .base import ADMIN_CSS
from .rendering import format_moment


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    url: str = ""  # the changelist behind it ("" when none holds it: the budget's cache)
    note: str = ""
    tone: str = ""  # a badge tone (rendering.TONES) when the figure calls for attention


def changelist(model: type[Any], **filters: str) -> str:
    url = reverse(f"admin:django_cometchat_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def seconds(value: timedelta | None) -> str:
    if value is None:
        return "-"
    total = value.total_seconds()
    if abs(total) < 60:
        return f"{total:.1f} s"
    minutes, rest = divmod(round(total), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes / 60:.1f} h"


def sync_figures(health: SyncHealth) -> list[Figure]:
    succeeded = SyncRun.Status.SUCCEEDED.value
    failed = SyncRun.Status.FAILED.value
    return [
        Figure(
            "Owners synced in the last hour",
            f"{health.synced_last_hour:,}",
            changelist(SyncRun, status__exact=succeeded, finished="1h"),
        ),
        Figure(
            "Owners synced in the last 24 hours",
            f"{health.synced_last_day:,}",
            changelist(SyncRun, status__exact=succeeded, finished="24h"),
        ),
        Figure(
            "Owners whose latest run failed",
            str(health.failing),
            changelist(SyncRun, health="failing", finished="24h"),
            note="it failed in the last 24 hours",
            tone="error" if health.failing.count else "",
        ),
        Figure(
            "Runs queued or running too long",
            str(health.overdue),
            changelist(SyncRun, health="overdue"),
            note="past SYNC_ABANDONED_AFTER: their worker stopped, or none took them",
            tone="warning" if health.overdue.count else "",
        ),
        Figure(
            "Runs abandoned in the last 24 hours",
            f"{health.abandoned_last_day:,}",
            changelist(SyncRun, status__exact=failed, error_code=ABANDONED_CODE, finished="24h"),
            tone="warning" if health.abandoned_last_day else "",
        ),
        Figure(
            "Runs interrupted in the last 24 hours",
            f"{health.interrupted_last_day:,}",
            changelist(SyncRun, status__exact=failed, error_code=INTERRUPTED_CODE, finished="24h"),
            note="stopped by a signal (a deploy, SIGTERM)",
            tone="warning" if health.interrupted_last_day else "",
        ),
    ]


EVENT_TONES: dict[str, str] = {
    WebhookEvent.Status.FAILED: "error",
    WebhookEvent.Status.DEFERRED: "warning",
}


def event_figures(health: SyncHealth) -> list[Figure]:
    figures = []
    for status, label in WebhookEvent.Status.choices:
        count = health.events_last_day.get(status, 0)
        figures.append(
            Figure(
                label,
                f"{count:,}",
                changelist(WebhookEvent, status__exact=status, received="24h"),
                tone=EVENT_TONES.get(status, "") if count else "",
            )
        )
    return figures


def lag_figures(health: SyncHealth) -> list[Figure]:
    lag = health.lag
    timed = changelist(WebhookEvent, received="1h", event_time="yes")
    return [
        Figure("p50", seconds(lag.p50), timed),
        Figure("p99", seconds(lag.p99), timed),
        Figure("Events measured", f"{lag.measured:,}", timed),
        Figure(
            "Received without an event time",
            f"{lag.without_time:,}",
            changelist(WebhookEvent, received="1h", event_time="no"),
            note="their body carries no time (group events, the published block body)",
        ),
    ]


def budget_figures(health: SyncHealth) -> list[Figure]:
    usage = health.budget
    if usage is None:
        return []
    share = f"{usage.on_demand_used:,} of {usage.on_demand_limit:,}"
    figures = [
        Figure(
            "Requests this window",
            f"{usage.used:,} of {usage.limit:,}",
            note="REQUESTS_PER_MINUTE, counted across processes in the shared cache",
            tone="warning" if usage.used >= usage.limit else "",
        ),
        Figure("On-demand share used", share, note="ON_DEMAND_SHARE of the window"),
        Figure(
            "429s in the last hour",
            f"{usage.rejected_last_hour:,}",
            tone="error" if usage.rejected_last_hour else "",
        ),
    ]
    if usage.remaining is None or usage.remaining_at is None:
        figures.append(Figure("Latest X-Rate-Limit-Remaining", "-", note="none in the last hour"))
    else:
        read_at = datetime.fromtimestamp(usage.remaining_at, tz=health.now.tzinfo)
        figures.append(
            Figure(
                "Latest X-Rate-Limit-Remaining",
                f"{usage.remaining:,}",
                note=f"read {format_moment(read_at)}",
            )
        )
    if usage.paused_until is not None:
        until = datetime.fromtimestamp(usage.paused_until, tz=health.now.tzinfo)
        figures.append(
            Figure("Paused after a 429", f"until {format_moment(until)}", tone="warning")
        )
    return figures


@admin.register(Health)
class HealthAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """No list, no object: one page of figures, for staff who may view sync runs."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        opts = SyncRun._meta
        user: Any = request.user
        return any(
            user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
            for action in ("view", "change")  # Django's own rule: change implies view
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.health_view)
        # The page's own name, and the changelist's, which the admin's index links to.
        return [
            path("", view, name="django_cometchat_health"),
            path("", view, name="django_cometchat_health_changelist"),
        ]

    def health_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        health = gather()
        context = {
            **self.admin_site.each_context(request),
            "title": "Sync health",
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "health": health,
            "sync_figures": sync_figures(health),
            "event_figures": event_figures(health),
            "lag_figures": lag_figures(health),
            "budget_figures": budget_figures(health),
            "failing_owners": [
                {
                    "owner": owner,
                    "run_url": reverse(
                        "admin:django_cometchat_syncrun_change", args=(owner.run_id,)
                    ),
                    "code_url": changelist(
                        SyncRun,
                        status__exact=SyncRun.Status.FAILED.value,
                        error_code=owner.error_code,
                    ),
                }
                for owner in health.failing_owners
            ],
            "stylesheet": ADMIN_CSS,
        }
        return TemplateResponse(request, "admin/django_cometchat/health.html", context)
