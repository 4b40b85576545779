"""Query-string filters of the conversation list (django-filter)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from ..models import Conversation, ConversationType


class ConversationFilter(django_filters.FilterSet):  # type: ignore[misc]
    conversation_type = django_filters.ChoiceFilter(
        choices=ConversationType.choices, help_text="Only one-to-one or only group conversations."
    )
    unread = django_filters.BooleanFilter(
        method="filter_unread",
        help_text="true: only conversations with unread messages; false: only fully read ones.",
    )
    search = django_filters.CharFilter(
        field_name="peer_name",
        lookup_expr="icontains",
        help_text="Part of the peer's name (the other user or the group), case-insensitive.",
    )
    missing = django_filters.BooleanFilter(
        method="filter_missing",
        help_text="true: only conversations CometChat no longer returns; false: only present ones.",
    )

    class Meta:
        model = Conversation
        fields = ("conversation_type", "unread", "search", "missing")

    def filter_unread(
        self, queryset: QuerySet[Conversation], name: str, value: bool
    ) -> QuerySet[Conversation]:
        if value:
            return queryset.filter(unread_message_count__gt=0)
        return queryset.filter(unread_message_count=0)

    def filter_missing(
        self, queryset: QuerySet[Conversation], name: str, value: bool
    ) -> QuerySet[Conversation]:
        return queryset.filter(missing_since__isnull=not value)
