"""A paginator for big tables: it never runs ``COUNT(*)`` over a whole table.

Django's admin asks its paginator for ``count`` on every changelist; on a table of millions of
rows that ``COUNT(*)`` alone takes longer than the rest of the page. Here:

* an unfiltered list on PostgreSQL takes the planner's estimate (``pg_class.reltuples``, kept
  fresh by autovacuum/ANALYZE) once the table is bigger than ``count_limit``;
* anything else counts at most ``count_limit + 1`` rows through a LIMITed subquery, so a count
  costs at most ``count_limit`` index entries, and a bigger result shows as "10,000+".

Either way the page links cover the first ``count_limit`` rows only: a deep page is an ``OFFSET``
that reads every row before it.

Both come back as :class:`ApproximateCount`, an ``int`` that renders as "~1,000,000" or
"10,000+", so Django's own templates (pagination, search result count, "Select all") say that
the figure is not exact without being overridden.
"""

from __future__ import annotations

from math import ceil
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.formats import number_format
from django.utils.functional import cached_property

DEFAULT_COUNT_LIMIT = 10_000


class ApproximateCount(int):
    """A row count that is a planner estimate ("~1,000,000") or a lower bound ("10,000+")."""

    estimated: bool

    def __new__(cls, value: int, *, estimated: bool) -> ApproximateCount:
        count = super().__new__(cls, value)
        count.estimated = estimated
        return count

    def __str__(self) -> str:
        shown = number_format(int(self), force_grouping=True)
        return f"~{shown}" if self.estimated else f"{shown}+"

    def __repr__(self) -> str:
        return f"ApproximateCount({int(self)}, estimated={self.estimated})"


def estimated_row_count(queryset: QuerySet[Any]) -> int | None:
    """PostgreSQL's estimate of the rows of ``queryset``'s table, if the queryset is unfiltered.

    None on other databases, for a filtered, sliced, distinct or combined queryset, and for a
    table the statistics have never seen (``reltuples`` is -1 until the first ANALYZE).
    """
    query = queryset.query
    if query.where or query.is_sliced or query.distinct or query.combinator:
        return None
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


class LargeTablePaginator(Paginator):  # type: ignore[type-arg]
    """``count`` without a full ``COUNT(*)``: an estimate when unfiltered, else a capped count.

    ``count_is_exact`` tells a template whether ``count`` is the true number.
    """

    def __init__(
        self,
        object_list: Any,
        per_page: int | str,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
        *,
        count_limit: int = DEFAULT_COUNT_LIMIT,
    ) -> None:
        super().__init__(object_list, per_page, orphans, allow_empty_first_page)
        self.count_limit = count_limit

    @cached_property
    def count(self) -> int:
        object_list = self.object_list
        if not isinstance(object_list, QuerySet):
            return len(object_list)
        estimate = estimated_row_count(object_list)
        if estimate is not None and estimate > self.count_limit:
            return ApproximateCount(estimate, estimated=True)
        # Only the key in the counted subquery: a list's annotations (the conversation list's
        # JSON keys) would otherwise be computed for every counted row.
        counted = object_list.order_by().values("pk")[: self.count_limit + 1].count()
        if counted > self.count_limit:
            return ApproximateCount(self.count_limit, estimated=False)
        return counted

    @property
    def count_is_exact(self) -> bool:
        return not isinstance(self.count, ApproximateCount)

    @cached_property
    def num_pages(self) -> int:
        """With an approximate count, only the first ``count_limit`` rows get page links.

        A page deep in a big table is an ``OFFSET`` that reads every row before it (the last of
        10,000 pages reads a million); filters and search are the way there instead.
        """
        if self.count == 0 and not self.allow_empty_first_page:
            return 0
        reachable = self.count if self.count_is_exact else min(self.count, self.count_limit)
        hits = max(1, reachable - self.orphans)
        return ceil(hits / self.per_page)
