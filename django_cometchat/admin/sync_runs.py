"""Sync runs: every sync attempt, its status badge and the reason of a failure."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django.contrib import admin
from django.utils.safestring import SafeString

from ..models import SyncRun
from .base import (
    ExactUIDSearch,
    ReadOnlyAdmin,
)
from .filters import (
    ErrorCodeFilter,
    FinishedWithinFilter,
    SyncProgressFilter,
)
from .rendering import (
    clipped,
    pretty_json,
    status_badge,
    with_code,
)

if TYPE_CHECKING:
    pass


@admin.register(SyncRun)
class SyncRunAdmin(ExactUIDSearch, ReadOnlyAdmin):
    # The Django user, each count and the error message are on the object page.
    list_display = ("started_at", "owner_column", "trigger", "status_column", "duration", "changes")
    list_select_related = ("owner",)
    # The health page links here with these (admin/health.py).
    list_filter = (
        "status",
        "trigger",
        FinishedWithinFilter,
        ErrorCodeFilter,
        SyncProgressFilter,
    )
    search_fields = ("=owner_uid",)
    search_help_text = "Exact owner UID; several UIDs separated by spaces."
    ordering = ("-started_at", "-id")
    sortable_by = ("started_at",)
    fieldsets = (
        (None, {"fields": ("owner_uid", "owner", "trigger", "status_column", "complete")}),
        ("Times", {"fields": ("started_at", "finished_at", "duration")}),
        (
            "Counts",
            {
                "fields": (
                    "created_count",
                    "updated_count",
                    "unchanged_count",
                    "missing_count",
                    "rechecked_count",
                    "pages",
                    "requests",
                )
            },
        ),
        ("Filters", {"fields": ("filters_pretty",)}),
        ("Error", {"fields": ("error_code", "error_message")}),
    )

    # A status this map does not name (one added later) gets a neutral badge.
    status_tones: ClassVar[dict[str, str]] = {
        SyncRun.Status.QUEUED: "pending",
        SyncRun.Status.RUNNING: "pending",
        SyncRun.Status.SUCCEEDED: "success",
        SyncRun.Status.FAILED: "error",
    }

    @admin.display(description="owner UID")
    def owner_column(self, obj: SyncRun) -> SafeString:
        return clipped(obj.owner_uid)

    @admin.display(description="status")
    def status_column(self, obj: SyncRun) -> SafeString:
        badge = status_badge(obj.status, obj.get_status_display(), self.status_tones)
        return with_code(badge, obj.error_code, obj.error_message)

    @admin.display(description="duration")
    def duration(self, obj: SyncRun) -> str:
        seconds = obj.duration_seconds
        if seconds is None:
            return "running" if obj.status == SyncRun.Status.RUNNING else "-"
        return f"{seconds:.2f} s"

    @admin.display(description="changes")
    def changes(self, obj: SyncRun) -> str:
        """What the run changed, zeros left out: "2 new, 1 updated"; "none" once it ended."""
        counts = (
            (obj.created_count, "new"),
            (obj.updated_count, "updated"),
            (obj.missing_count, "missing"),
        )
        changed = ", ".join(f"{count:,} {what}" for count, what in counts if count)
        return changed or ("none" if obj.finished_at is not None else "-")

    @admin.display(description="filters")
    def filters_pretty(self, obj: SyncRun) -> SafeString:
        return pretty_json(obj.filters)
