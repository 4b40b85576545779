"""The portable dialect: any database Django supports, through the ORM.

The same decisions as the native dialects (the stale-write guard, history for what was written,
repeats in the seen set), only with more statements; the PostgreSQL and SQLite dialects override
each method with one statement per page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from django.db import connection
from django.db.models import Q

from ..models import Conversation, ConversationSnapshot
from .rows import ROW_COLUMNS, LockedRead, Row, StoredHash, UnseenQuery


class PortableDialect:
    vendor = ""
    # "conversation_id is not in this list", the list one parameter (``id_list``); None where
    # the seen set must use its temporary table from the first page on.
    not_in_ids: str | None = None
    # Whether ``lock_and_read_hashes`` runs a one-page walk's ``UnseenQuery`` in its statement.
    reads_unseen_with_lock = False

    def id_list(self, conversation_ids: Sequence[str]) -> Any:
        return json.dumps(list(conversation_ids))

    def lock_owner(self, owner_uid: str) -> None:
        """Serialise one owner's page writes (the ORM upsert locks its rows instead)."""

    def param(self, value: datetime) -> Any:
        """A datetime as this backend stores it, for hand-written SQL."""
        return connection.ops.adapt_datetimefield_value(value)

    def lock_and_read_hashes(
        self, owner_uid: str, conversation_ids: Sequence[str], unseen: UnseenQuery | None = None
    ) -> LockedRead:
        """Inside a page's transaction: take the owner's lock, read the stored hashes.
        ``unseen`` is left to its own statement after the page (no round trip to save here)."""
        self.lock_owner(owner_uid)
        return LockedRead(self.stored_hashes(owner_uid, conversation_ids))

    def lock_owners(self, owner_uids: Sequence[str]) -> None:
        """Take each owner's lock, in the order given."""
        for owner_uid in owner_uids:
            self.lock_owner(owner_uid)

    def read_peers(self, wanted: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """The stored rows' ``conversationWith`` by ``(owner_uid, conversation_id)``, for those
        stored with one; one query."""
        if not wanted:
            return {}
        which = Q()
        for owner_uid, conversation_id in wanted:
            which |= Q(owner_uid=owner_uid, conversation_id=conversation_id)
        return {
            (owner_uid, conversation_id): payload["conversationWith"]
            for owner_uid, conversation_id, payload in Conversation.objects.filter(which)
            .order_by()
            .values_list("owner_uid", "conversation_id", "payload")
            if isinstance(payload, dict) and payload.get("conversationWith") is not None
        }

    def stored_hashes(
        self, owner_uid: str, conversation_ids: Sequence[str]
    ) -> dict[str, StoredHash]:
        return {
            cid: StoredHash(digest, missing is not None)
            for cid, digest, missing in Conversation.objects.owned_by(owner_uid)
            .filter(conversation_id__in=conversation_ids)
            .order_by()
            .values_list("conversation_id", "content_hash", "missing_since")
        }

    def upsert(
        self, owner_id: int | None, owner_uid: str, rows: Sequence[Row], fetched_at: datetime
    ) -> list[tuple[int, str]]:
        """Write the rows the guard lets through; ``(pk, conversation_id)`` of each written."""
        existing = {
            c.conversation_id: c
            for c in Conversation.objects.select_for_update().filter(
                owner_uid=owner_uid, conversation_id__in=[r.conversation_id for r in rows]
            )
        }
        written: list[tuple[int, str]] = []
        for row in rows:
            obj = existing.get(row.conversation_id) or Conversation(
                owner_uid=owner_uid, conversation_id=row.conversation_id
            )
            if obj.pk and (row.updated_at, fetched_at) < (obj.updated_at, obj.fetched_at):
                continue
            for name in ROW_COLUMNS:
                setattr(obj, name, getattr(row, name))
            obj.fetched_at = fetched_at
            if obj.missing_since is not None and obj.missing_since <= fetched_at:
                obj.missing_since = None  # a mark proven by a request sent later stays
            obj.owner_id = obj.owner_id or owner_id  # a row's owner is never reassigned
            obj.save()
            written.append((obj.pk, obj.conversation_id))
        return written

    def insert_history(self, pks: list[int]) -> None:
        """Copy the just-written rows into history."""
        ConversationSnapshot.objects.bulk_create(
            ConversationSnapshot(
                conversation_id=c.pk,
                payload=c.payload,
                content_hash=c.content_hash,
                fetched_at=c.fetched_at,
            )
            for c in Conversation.objects.filter(pk__in=pks)
        )

    def remember_seen(self, table: str, conversation_ids: Sequence[str]) -> int:
        """Add ids to a sync's seen table; return how many were there already (repeats)."""
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT conversation_id FROM {table}")
            known = {row[0] for row in cursor.fetchall()}
            fresh = set(conversation_ids) - known
            cursor.executemany(
                f"INSERT INTO {table} (conversation_id) VALUES (%s)", [[c] for c in fresh]
            )
        return len(conversation_ids) - len(fresh)

    def json_datetime(self, value: datetime) -> str:
        """A datetime inside a page's JSON parameter, as this backend's SQL will read it."""
        return value.isoformat()

    def records(self, rows: Sequence[Row]) -> str:
        """The page as one JSON parameter (for the native dialects' single statement): each
        ``Row`` as an object of its own fields, by name.

        orjson writes the dataclasses in C and what ``json.dumps(ensure_ascii=False)`` would of
        the payloads (checked JSON by now: ``types.check_storable``); datetimes go through
        ``json_datetime``."""
        return orjson.dumps(
            rows, default=self._json_value, option=orjson.OPT_PASSTHROUGH_DATETIME
        ).decode()

    def _json_value(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return self.json_datetime(value)
        return mapping_as_dict(value)


def mapping_as_dict(value: Any) -> Any:
    """A payload that is a Mapping but not a dict, for orjson."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
