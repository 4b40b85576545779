"""Cursor pagination, newest first: stable under inserts and no ``COUNT(*)`` on big tables."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class NewestFirstPagination(CursorPagination):
    """50 rows a page by default; ``?page_size=`` up to 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class ConversationPagination(NewestFirstPagination):
    # CometChat's updatedAt; the cursor positions on it and breaks ties with the offset, the
    # trailing id keeps the order total.
    ordering = ("-updated_at", "-id")


class SnapshotPagination(NewestFirstPagination):
    ordering = ("-fetched_at", "-id")


class SyncRunPagination(NewestFirstPagination):
    ordering = ("-started_at", "-id")
