"""The read-only ModelAdmin every page of the app builds on, and its changelist for tables of
millions of rows: no ``COUNT(*)`` (:mod:`.pagination`), no filter that lists values from the
database (:mod:`.filters`), a search whose lookups match indexes, sorting only on indexed
columns, no facet counts, and a constant number of queries per page."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin
from django.contrib.admin.filters import FieldListFilter, ListFilter, SimpleListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import flatten_fieldsets, get_fields_from_path
from django.contrib.admin.views.main import ChangeList
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import smart_split, unescape_string_literal

from ..conversation_types import database_datetime
from .dates import IndexedDateHierarchy
from .pagination import DEFAULT_COUNT_LIMIT, LargeTablePaginator

if TYPE_CHECKING:
    from django.core.paginator import Paginator

ADMIN_CSS = "django_cometchat/admin.css"  # badges, and long values kept to their columns
DATE_PARTS = ("year", "month", "day")  # the date hierarchy's query parameters


def search_terms(search_term: str) -> list[str]:
    """The words of a search, as Django's admin splits them ("quoted phrases" stay whole)."""
    terms = []
    # A NUL can be in no stored value, and PostgreSQL refuses it in a query: drop it.
    for bit in smart_split(search_term.replace("\x00", "")):
        quoted = bit.startswith(('"', "'")) and bit[0] == bit[-1]
        term = (unescape_string_literal(bit) if quoted else bit).strip()
        if term:
            terms.append(term)
    return terms


class ReadOnly:
    """Nothing is added, changed or deleted, and every field shown is read-only (derived from
    the fieldsets, so a field is never listed twice)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # get_fieldsets() without fields or fieldsets asks the form, which asks this: recursion.
        if not (getattr(self, "fields", None) or getattr(self, "fieldsets", None)):
            return [f.name for f in self.model._meta.fields]  # type: ignore[attr-defined]
        return list(flatten_fieldsets(self.get_fieldsets(request, obj)))  # type: ignore[attr-defined]


class ReadOnlyAdmin(ReadOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    """Nothing is added, edited or deleted here: syncs own the mirror, the webhook its events,
    ``cometchat_rebind`` the UID bindings, ``cometchat_prune`` the history and old events. Staff
    with the view (or change) permission see every page read-only.

    Deleting is off even for superusers: a deleted conversation comes back on the next sync, and
    its history would be lost with it.
    """

    paginator = LargeTablePaginator
    count_limit = DEFAULT_COUNT_LIMIT
    show_full_result_count = False  # no second COUNT(*) of the unfiltered table
    show_facets = admin.ShowFacets.NEVER  # a facet is a COUNT per filter choice

    class Media:
        css: ClassVar[dict[str, tuple[str, ...]]] = {"all": (ADMIN_CSS,)}

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LargeTableChangeList

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        """Only the lookups the page offers: its list filters' parameters and its date
        hierarchy's.

        Django's default admits any lookup on the model's own fields from the URL
        (``?payload__icontains=``, ``?peer_name__iregex=``: a scan of the whole table per page,
        for any staff who may view it) and refuses only some across relations. Here anything
        else is Django's 400 (``DisallowedModelAdminLookup``), for superusers too. The search
        box (``q``) is no lookup: ``get_search_results`` decides what it matches. Nor is a
        raw-id popup's ``limit_choices_to`` (Django admits its pairs): a project that points
        one at these read-only lists adds its pairs in a subclass.
        """
        return lookup in self.offered_lookups(request)

    def offered_lookups(self, request: HttpRequest) -> set[str]:
        """The query parameters the list filters and the date hierarchy read, and the bare
        name of each filtered field (an equality, as its filter's ``__exact``)."""
        offered: set[str] = set()
        item: Any  # a field name, a (field name, filter class) pair or a filter class
        for item in self.get_list_filter(request):
            if isinstance(item, type) and issubclass(item, SimpleListFilter):
                offered.add(str(item.parameter_name))  # no need to build it: no query
                continue
            spec: ListFilter
            if isinstance(item, type) and issubclass(item, ListFilter):
                spec = item(request, {}, self.model, self)
            else:
                field_path, filter_class = (
                    item if isinstance(item, list | tuple) else (item, FieldListFilter.create)
                )
                field = get_fields_from_path(self.model, field_path)[-1]
                spec = filter_class(field, request, {}, self.model, self, field_path=field_path)
                # The bare field (?status=failed): the equality its own __exact link asks for.
                offered.add(field_path)
            offered.update(str(name) for name in spec.expected_parameters() if name)
        if self.date_hierarchy:
            offered.update(f"{self.date_hierarchy}__{part}" for part in DATE_PARTS)
        return offered

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator[Any]:
        return LargeTablePaginator(
            queryset, per_page, orphans, allow_empty_first_page, count_limit=self.count_limit
        )


class ExactUIDSearch:
    """The search box takes UIDs, matched exactly (lowercased, as stored): an index lookup."""

    uid_field = "owner_uid"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        uids = sorted({term.lower() for term in search_terms(search_term)})
        if uids:
            queryset = queryset.filter(**{f"{self.uid_field}__in": uids})
        return queryset, False


class LargeTableChangeList(ChangeList):
    """A changelist whose date hierarchy probes the index instead of sorting every row, and
    refuses a period no database column holds.

    ``admin/django_cometchat/change_list.html`` renders ``indexed_date_hierarchy`` in place of
    Django's ``cl``; see :mod:`.dates`.
    """

    @property
    def indexed_date_hierarchy(self) -> IndexedDateHierarchy:
        return IndexedDateHierarchy(self)

    def get_filters(self, request: HttpRequest) -> Any:
        self._check_period()
        return super().get_filters(request)

    def _check_period(self) -> None:
        """The date hierarchy's ``?updated_at__year=`` (``__month``, ``__day``) as a period
        whose bounds the database holds, by the API's cursor rule (``types.database_datetime``).

        Django computes the period's end itself and answers 500 for year 9999 (its end is in
        year 10000), a year too large for a C integer, or year 1 in a time zone east of UTC
        (its start is in year 0 in UTC); and it applies a month or a day without its year as
        a filter on every year, which no index serves. Here each is Django's answer to a bad
        filter value (``IncorrectLookupParameters``: the list again, unfiltered, ``?e=1``).
        """
        field = self.date_hierarchy
        if not field:
            return
        params = self.get_filters_params()
        year, month, day = (params.get(f"{field}__{part}") for part in DATE_PARTS)
        if year is None and month is None and day is None:
            return
        if year is None or (day is not None and month is None):
            # Django would filter on EXTRACT(month) alone: every row read, no index helps.
            raise IncorrectLookupParameters(f"{field}: a period is a year, a month or a day")
        try:
            start = datetime(
                int(year[-1]), int(month[-1] if month else 1), int(day[-1] if day else 1)
            )
            if day:
                end = start + timedelta(days=1)
            elif month:
                end = (start + timedelta(days=32)).replace(day=1)
            else:
                end = start.replace(year=start.year + 1)
        except (ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc
        zone = connections[self.root_queryset.db].timezone
        for bound in (start, end):
            moment = bound if zone is None else timezone.make_aware(bound)  # as Django does
            if database_datetime(moment, zone) is None:
                raise IncorrectLookupParameters(f"{field}: no such period")


class PayloadDeferredChangeList(LargeTableChangeList):
    """The list never shows the payload, so it is not read (nor decoded) for 100 rows."""

    def get_queryset(
        self, request: HttpRequest, exclude_parameters: list[str | None] | None = None
    ) -> QuerySet[Any]:
        return super().get_queryset(request, exclude_parameters).defer("payload")
