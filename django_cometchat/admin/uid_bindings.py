"""UID bindings: which Django account holds each CometChat UID."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.utils.safestring import SafeString

from ..models import UIDBinding
from .base import (
    ExactUIDSearch,
    ReadOnlyAdmin,
)
from .rendering import (
    clipped,
)

if TYPE_CHECKING:
    pass


@admin.register(UIDBinding)
class UIDBindingAdmin(ExactUIDSearch, ReadOnlyAdmin):
    """Which account each CometChat UID belongs to. Read-only: ``cometchat_rebind`` moves a UID
    on purpose, with its rows."""

    list_display = ("uid_column", "user_column", "bound_at")
    list_select_related = ("user",)
    search_fields = ("=uid",)
    search_help_text = "Exact CometChat UID; several UIDs separated by spaces."
    uid_field = "uid"
    ordering = ("uid",)
    sortable_by = ("uid_column",)
    fields = ("uid", "user", "bound_at")

    @admin.display(description="CometChat UID", ordering="uid")
    def uid_column(self, obj: UIDBinding) -> SafeString:
        return clipped(obj.uid)

    @admin.display(description="user")
    def user_column(self, obj: UIDBinding) -> SafeString:
        return clipped(str(obj.user))
