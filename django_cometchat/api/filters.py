"""Query-string filters of the conversation list (django-filter)."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend

from ..models import Conversation, ConversationType


class StrictBooleanField(forms.NullBooleanField):
    """``true`` / ``false`` (or ``1`` / ``0``, any case); anything else is a 400, where
    django-filter's select widget would quietly read ``?unread=maybe`` as no filter at all."""

    widget = forms.TextInput

    def to_python(self, value: Any) -> bool | None:  # type: ignore[override]
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValidationError("Use true or false.", code="invalid")

    def validate(self, value: Any) -> None:
        pass  # None (not given) is fine; to_python refused everything else already


class StrictBooleanFilter(django_filters.BooleanFilter):  # type: ignore[misc]
    field_class = StrictBooleanField


class ConversationFilter(django_filters.FilterSet):  # type: ignore[misc]
    conversation_type = django_filters.ChoiceFilter(
        choices=ConversationType.choices, help_text="Only one-to-one or only group conversations."
    )
    unread = StrictBooleanFilter(
        method="filter_unread",
        help_text="true: only conversations with unread messages; false: only fully read ones.",
    )
    search = django_filters.CharFilter(
        field_name="peer_name",
        lookup_expr="icontains",
        help_text="Part of the peer's name (the other user or the group), case-insensitive.",
    )
    missing = StrictBooleanFilter(
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


class FilterBackend(DjangoFilterBackend):  # type: ignore[misc]
    """django-filter's backend, minus building and validating its form when the request names
    none of the filters (most list requests): the same answer, about 0.8 ms sooner."""

    def filter_queryset(self, request: Any, queryset: QuerySet[Any], view: Any) -> QuerySet[Any]:
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None and not any(
            name in request.query_params for name in filterset_class.base_filters
        ):
            return queryset
        return super().filter_queryset(request, queryset, view)  # type: ignore[no-any-return]
