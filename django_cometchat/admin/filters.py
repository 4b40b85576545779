"""List filters that stay cheap on tables of millions of rows.

None of them loads a list of values from the database: Django's ``RelatedFieldListFilter`` on
``owner`` would render one link per user, and ``AllValuesFieldListFilter`` on ``owner_uid`` would
run ``SELECT DISTINCT`` over the whole table. The owner filter is a text box instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin
from django.contrib.admin.views.main import PAGE_VAR
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from ..exceptions import CometChatInvalidId
from ..health import latest_failed_runs, overdue_runs
from ..ids import validate_id
from ..models import Conversation
from ..webhook_types import KNOWN_TRIGGERS

if TYPE_CHECKING:
    from django.contrib.admin.filters import _ListFilterChoices
    from django.contrib.admin.options import ModelAdmin
    from django.contrib.admin.views.main import ChangeList
    from django.utils.functional import _StrOrPromise


class UnreadFilter(admin.SimpleListFilter):
    title = "unread messages"
    parameter_name = "unread"

    def lookups(
        self, request: HttpRequest, model_admin: ModelAdmin[Any]
    ) -> Iterable[tuple[str, _StrOrPromise]]:
        return (("yes", "Has unread messages"), ("no", "All read"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(unread_message_count__gt=0)
        if self.value() == "no":
            return queryset.filter(unread_message_count=0)
        return queryset


class MissingFilter(admin.SimpleListFilter):
    title = "missing upstream"
    parameter_name = "missing"

    def lookups(
        self, request: HttpRequest, model_admin: ModelAdmin[Any]
    ) -> Iterable[tuple[str, _StrOrPromise]]:
        return (("yes", "Missing from CometChat"), ("no", "Present in CometChat"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(missing_since__isnull=False)
        if self.value() == "no":
            return queryset.filter(missing_since__isnull=True)
        return queryset


class InputFilter(admin.SimpleListFilter):
    """A filter typed into a text box: no list of values is ever queried.

    The template renders a GET form that keeps the other filters of the page; the current
    value shows as a selected choice beside "All", which clears it.
    """

    template = "admin/django_cometchat/input_filter.html"
    placeholder = ""

    def __init__(
        self,
        request: HttpRequest,
        params: dict[str, list[str]],
        model: type[Model],
        model_admin: ModelAdmin[Any],
    ) -> None:
        super().__init__(request, params, model, model_admin)
        # Every other parameter of the page goes back as a hidden field (not the page number).
        self.hidden_params = [
            (key, value)
            for key, values in request.GET.lists()
            if key not in (self.parameter_name, PAGE_VAR)
            for value in values
        ]

    def lookups(
        self, request: HttpRequest, model_admin: ModelAdmin[Any]
    ) -> Iterable[tuple[str, _StrOrPromise]]:
        value = self.value()
        return ((value, self.normalize(value)),) if value else ()

    def normalize(self, value: str) -> str:
        """The value as the filter applies it (and shows it)."""
        return value.strip()

    def has_output(self) -> bool:
        return True

    def choices(self, changelist: ChangeList) -> Iterator[_ListFilterChoices]:
        name = str(self.parameter_name)
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[name]),
            "display": "All",
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": True,
                "query_string": changelist.get_query_string({name: lookup}),
                "display": title,
            }


class OwnerUIDFilter(InputFilter):
    """Exact owner UID (lowercased, as stored): served by the (owner_uid, -updated_at) index."""

    title = "owner UID"
    parameter_name = "owner_uid"
    placeholder = "owner UID, e.g. alice"

    def normalize(self, value: str) -> str:
        return value.strip().lower()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        try:
            uid = validate_id(value.strip(), "UID")
        except CometChatInvalidId:  # no stored row can have it: an empty list, not an error
            return queryset.none()
        return self.matching(queryset, uid)

    def matching(self, queryset: QuerySet[Any], uid: str) -> QuerySet[Any]:
        """The rows of owner ``uid`` (a valid UID)."""
        return queryset.owned_by(uid)  # type: ignore[attr-defined, no-any-return]


_PK = re.compile(r"[0-9]{1,19}")
MAX_PK = 2**63 - 1


class SnapshotConversationFilter(admin.SimpleListFilter):
    """The snapshots of one conversation (``?conversation=<id>``), as linked from its page.

    Only the selected conversation is offered as a choice, so the filter never lists the
    conversations table.
    """

    title = "conversation"
    parameter_name = "conversation"

    def lookups(
        self, request: HttpRequest, model_admin: ModelAdmin[Any]
    ) -> Iterable[tuple[str, _StrOrPromise]]:
        pk = self.pk()
        if pk is None:
            return ()
        conversation = Conversation.objects.filter(pk=pk).first()
        return ((str(pk), str(conversation) if conversation else f"#{pk} (deleted)"),)

    def pk(self) -> int | None:
        """The selected conversation's primary key, or None for anything that cannot be one
        (``str.isdigit`` accepts "²", and a 23-digit number overflows a bigint column)."""
        value = self.value()
        if value is None or not _PK.fullmatch(value):
            return None
        number = int(value)
        return number if number <= MAX_PK else None

    def has_output(self) -> bool:
        return bool(self.lookup_choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() is None:
            return queryset
        pk = self.pk()
        return queryset.none() if pk is None else queryset.filter(conversation=pk)


class TriggerFilter(admin.SimpleListFilter):
    """A webhook event's trigger, chosen from CometChat's documented triggers: a constant list,
    never a ``SELECT DISTINCT`` over the events. Served by the (trigger, -received_at) index."""

    title = "trigger"
    parameter_name = "trigger"

    def lookups(
        self, request: HttpRequest, model_admin: ModelAdmin[Any]
    ) -> Iterable[tuple[str, _StrOrPromise]]:
        return [(trigger, trigger) for trigger in sorted(KNOWN_TRIGGERS)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset if value is None else queryset.filter(trigger=value)


class WithinFilter(admin.SimpleListFilter):
    """Rows whose ``field`` falls within the last hour, day or week: a range on its index (the
    health page links its figures here)."""

    field = ""
    periods: ClassVar[dict[str, tuple[str, timedelta]]] = {
        "1h": ("Last hour", timedelta(hours=1)),
        "24h": ("Last 24 hours", timedelta(days=1)),
        "7d": ("Last 7 days", timedelta(days=7)),
    }

    def lookups(
        self, request: HttpRequest, model_admin: ModelAdmin[Any]
    ) -> Iterable[tuple[str, _StrOrPromise]]:
        return [(key, label) for key, (label, _) in self.periods.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        period = self.periods.get(self.value() or "")
        if period is None:
            return queryset
        return queryset.filter(**{f"{self.field}__gte": timezone.now() - period[1]})


class FinishedWithinFilter(WithinFilter):
    title = "finished"
    parameter_name = "finished"
    field = "finished_at"  # the (status, -finished_at) index


class ReceivedWithinFilter(WithinFilter):
    title = "received"
    parameter_name = "received"
    field = "received_at"  # the (-received_at, -id) index


class ErrorCodeFilter(InputFilter):
    """Runs that failed with one CometChat (or this app's) error code, typed exactly."""

    title = "error code"
    parameter_name = "error_code"
    placeholder = "e.g. ERR_UID_NOT_FOUND"

    def normalize(self, value: str) -> str:
        return value.strip().upper()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(error_code=self.normalize(value)) if value else queryset


class SyncProgressFilter(admin.SimpleListFilter):
    """Runs an operator should look at: each owner's latest run when it failed (the owners
    failing now), and runs queued or running past ``SYNC_ABANDONED_AFTER``."""

    title = "needs a look"
    parameter_name = "health"

    def lookups(
        self, request: HttpRequest, model_admin: ModelAdmin[Any]
    ) -> Iterable[tuple[str, _StrOrPromise]]:
        return (
            ("failing", "Latest run of its owner, failed"),
            ("overdue", "Queued or running too long"),
        )

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "failing":
            return latest_failed_runs(queryset)
        if self.value() == "overdue":
            return overdue_runs(queryset)
        return queryset


class EventTimeFilter(admin.SimpleListFilter):
    """Webhook events by whether their body carried CometChat's time of the event (the health
    page's lag is measured on those that did)."""

    title = "event time"
    parameter_name = "event_time"

    def lookups(
        self, request: HttpRequest, model_admin: ModelAdmin[Any]
    ) -> Iterable[tuple[str, _StrOrPromise]]:
        return (("yes", "Carried one"), ("no", "None in the body"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(event_at__isnull=self.value() == "no")
        return queryset
