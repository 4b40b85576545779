"""Cursor pagination, newest first: stable under inserts and no ``COUNT(*)`` on big tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView

from ..conversation_types import database_datetime

INVALID_CURSOR = "Invalid cursor: use the next and previous links as given."


class NewestFirstPagination(CursorPagination):
    """50 rows a page by default; ``?page_size=`` up to 200.

    Every ordering here starts with a datetime column, so a cursor's position must be a datetime
    the database can hold (``types.database_datetime``, checked against the connection that runs
    the query): a tampered one (``p=not-a-date``, a naive one, a moment past year 9999 in UTC)
    is a 400, never a database error. The query gets the checked moment in the database's time
    zone, written as DRF writes the positions of its links, so an offset PostgreSQL refuses
    (``+16:00``) never reaches it. DRF answers 404 for a cursor it cannot decode; here any
    invalid cursor is the same 400.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    database = DEFAULT_DB_ALIAS  # the connection of the queryset being paginated

    def paginate_queryset(
        self,
        queryset: QuerySet[Any] | Sequence[Any],
        request: Request,
        view: APIView | None = None,
    ) -> list[Any] | None:
        self.database = getattr(queryset, "db", DEFAULT_DB_ALIAS)
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        if cursor is None or cursor.position is None:
            return cursor
        zone = connections[self.database].timezone
        position = database_datetime(str(cursor.position), zone)
        if position is None:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]})
        # DRF's stubs type a position as an int; DRF itself compares and encodes strings.
        return cursor._replace(position=str(position))  # type: ignore[arg-type]


class ConversationPagination(NewestFirstPagination):
    # CometChat's updatedAt; the cursor positions on it and breaks ties with the offset, the
    # trailing id keeps the order total.
    ordering = ("-updated_at", "-id")


class SnapshotPagination(NewestFirstPagination):
    ordering = ("-fetched_at", "-id")


class SyncRunPagination(NewestFirstPagination):
    ordering = ("-started_at", "-id")
