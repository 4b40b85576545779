"""The record of staff reads of conversations' messages (``MessageAccess``), listed read-only.

An audit trail is only worth something if it cannot be edited where it is read: nothing is
added, changed or deleted here, for superusers too, and the bulk delete action is gone with the
delete permission. ``cometchat_prune --message-access-days N`` is the only way rows go.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from ..models import MessageAccess
from .base import ReadOnlyAdmin
from .filters import InputFilter, OwnerUIDFilter
from .rendering import clipped


class StaffUserFilter(InputFilter):
    """The reads of one staff user, by username (exact): the account's rows through the
    (staff_user, -accessed_at) index; rows of a deleted account by the username they kept."""

    title = "staff user"
    parameter_name = "staff"
    placeholder = "username, e.g. support-ann"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        username = (self.value() or "").strip()
        if not username:
            return queryset
        model = get_user_model()
        user = model._default_manager.filter(**{model.USERNAME_FIELD: username}).first()
        if user is None:
            return queryset.filter(staff_user__isnull=True, staff_username=username)
        return queryset.filter(staff_user=user)


class AccessOwnerFilter(OwnerUIDFilter):
    """The reads of one owner's conversations (exact UID, lowercased as stored)."""

    def matching(self, queryset: QuerySet[Any], uid: str) -> QuerySet[Any]:
        return queryset.filter(owner_uid=uid)


@admin.register(MessageAccess)
class MessageAccessAdmin(ReadOnlyAdmin):
    """Who read which conversation's messages, when, and how many: one row per page read."""

    list_display = (
        "accessed_at",
        "staff_column",
        "owner_column",
        "conversation_column",
        "message_count",
        "cursor_column",
    )
    list_filter = (StaffUserFilter, AccessOwnerFilter)
    date_hierarchy = "accessed_at"
    ordering = ("-accessed_at", "-id")
    sortable_by = ("accessed_at",)
    fields = (
        "accessed_at",
        "staff_column",
        "owner_uid",
        "conversation_id",
        "message_count",
        "cursor_column",
    )

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # action_location: Django 6.1 passes where the actions are shown (and warns about an
        # override without it); 5.2 does not.
        return {}  # no bulk delete, whatever a subclass grants

    @admin.display(description="staff user")
    def staff_column(self, obj: MessageAccess) -> SafeString:
        deleted = "" if obj.staff_user_id is not None else " (account deleted)"
        return clipped(f"{obj.staff_username}{deleted}")

    @admin.display(description="owner UID")
    def owner_column(self, obj: MessageAccess) -> SafeString:
        return clipped(obj.owner_uid)

    @admin.display(description="conversation id")
    def conversation_column(self, obj: MessageAccess) -> SafeString:
        return clipped(obj.conversation_id)

    @admin.display(description="cursor")
    def cursor_column(self, obj: MessageAccess) -> SafeString:
        """The page read: the newest, or the messages past message ``cursor``."""
        if not obj.cursor:
            return clipped("newest page" if obj.direction == "older" else "oldest page")
        side = "older" if obj.direction == "older" else "newer"
        return clipped(f"{side} than message {obj.cursor}")
