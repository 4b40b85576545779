"""Webhook events: each delivery CometChat made, what processing it did, and why one failed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..models import WebhookEvent
from .base import (
    PayloadDeferredChangeList,
    ReadOnlyAdmin,
)
from .filters import (
    EventTimeFilter,
    ReceivedWithinFilter,
    TriggerFilter,
)
from .rendering import (
    clipped,
    error_code_in,
    pretty_json,
    status_badge,
    truncate,
    with_code,
)

if TYPE_CHECKING:
    pass


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    """CometChat's webhook deliveries as received, newest first. Read-only: CometChat sends them,
    ``process_webhook_event`` processes them."""

    list_display = ("received_at", "trigger_column", "status_column", "error_summary")
    list_filter = (TriggerFilter, "status", ReceivedWithinFilter, EventTimeFilter)
    ordering = ("-received_at", "-id")
    sortable_by = ("received_at",)
    fieldsets = (
        (None, {"fields": ("trigger", "status_column", "owners_list", "error")}),
        ("Times", {"fields": ("event_at", "received_at", "processed_at")}),
        ("Payload (as CometChat sent it)", {"fields": ("payload_pretty", "dedupe_key")}),
    )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return PayloadDeferredChangeList

    # A status this map does not name (one added later) gets a neutral badge.
    status_tones: ClassVar[dict[str, str]] = {
        WebhookEvent.Status.RECEIVED: "pending",
        WebhookEvent.Status.PROCESSING: "pending",
        WebhookEvent.Status.PROCESSED: "success",
        WebhookEvent.Status.IGNORED: "neutral",
        WebhookEvent.Status.FAILED: "error",
        WebhookEvent.Status.DEFERRED: "warning",  # waits for cometchat_refresh_stale
    }

    @admin.display(description="trigger")
    def trigger_column(self, obj: WebhookEvent) -> SafeString:
        return clipped(obj.trigger or "-")

    @admin.display(description="status")
    def status_column(self, obj: WebhookEvent) -> SafeString:
        badge = status_badge(obj.status, obj.get_status_display(), self.status_tones)
        if obj.status != WebhookEvent.Status.FAILED:
            return badge
        return with_code(badge, error_code_in(obj.error), obj.error)

    @admin.display(description="error or reason")
    def error_summary(self, obj: WebhookEvent) -> SafeString:
        return clipped(truncate(obj.error, 200))

    @admin.display(description="refreshed owners")
    def owners_list(self, obj: WebhookEvent) -> str:
        owners = obj.owners if isinstance(obj.owners, list) else []
        return ", ".join(map(str, owners)) or "-"

    @admin.display(description="payload")
    def payload_pretty(self, obj: WebhookEvent) -> SafeString:
        if obj.payload is None:
            return format_html("<em>{}</em>", "Not stored: the delivery was refused.")
        return pretty_json(obj.payload)
