"""Cursor pagination, newest first: stable under inserts and no ``COUNT(*)`` on big tables."""

from __future__ import annotations

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

INVALID_CURSOR = "Invalid cursor: use the next and previous links as given."


class NewestFirstPagination(CursorPagination):
    """50 rows a page by default; ``?page_size=`` up to 200.

    Every ordering here starts with a datetime column, so a cursor's position must be a datetime:
    a tampered one (``p=not-a-date``) is a 400, never a database error. DRF answers 404 for a
    cursor it cannot decode; here any invalid cursor is the same 400.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        if (
            cursor is not None
            and cursor.position is not None
            and not _is_datetime(str(cursor.position))
        ):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]})
        return cursor


def _is_datetime(text: str) -> bool:
    try:
        return parse_datetime(text) is not None
    except ValueError:  # well formed but impossible, such as month 13
        return False


class ConversationPagination(NewestFirstPagination):
    # CometChat's updatedAt; the cursor positions on it and breaks ties with the offset, the
    # trailing id keeps the order total.
    ordering = ("-updated_at", "-id")


class SnapshotPagination(NewestFirstPagination):
    ordering = ("-fetched_at", "-id")


class SyncRunPagination(NewestFirstPagination):
    ordering = ("-started_at", "-id")
