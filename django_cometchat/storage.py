"""The write path for snapshots: one page, one transaction, a constant number of queries.

Why hand-written SQL instead of ``bulk_create(update_conflicts=True)``:

* the stale-write guard. ``ON CONFLICT ... DO UPDATE ... WHERE`` keeps an older payload (smaller
  CometChat ``updatedAt``) from overwriting a newer one; ``bulk_create`` cannot express the WHERE;
* a constant query count. The page travels as ONE JSON parameter (``jsonb_to_recordset`` on
  PostgreSQL, ``json_each`` on SQLite), so 10 or 1,000 rows cost the same number of statements;
  ``bulk_create`` splits into batches under SQLite's 999-variable limit.

Other vendors (and SQLite older than 3.35, which lacks RETURNING) use an ORM path with the same
decisions, only with more queries.

Concurrency: on PostgreSQL each page transaction takes a transaction-scoped advisory lock on the
owner, so two syncs of one owner write their pages one at a time: counts and history are exact,
no duplicate key escapes, and no deadlock is possible between them. The upsert's WHERE guard
still holds without the lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from django.db import DatabaseError, connection, transaction

from .models import Conversation, ConversationSnapshot
from .types import Conversation as RemoteConversation
from .types import User

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    """One conversation as it will be stored."""

    conversation_id: str
    conversation_type: str
    unread_message_count: int
    created_at: datetime | None
    updated_at: datetime
    peer_uid: str
    peer_guid: str
    peer_name: str
    payload: Mapping[str, Any]
    content_hash: str


@dataclass
class PageOutcome:
    created: list[tuple[int, str]] = field(default_factory=list)  # (pk, conversation_id)
    updated: list[tuple[int, str]] = field(default_factory=list)
    unchanged: int = 0
    stale: int = 0  # older than what is stored: kept the stored one


def content_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the payload as CometChat sent it.

    Keys are not sorted: CometChat's key order is stable, and sorting costs a third more on the
    no-change re-sync's hot path. A reordered but equal payload only costs one extra history row.
    """
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _timestamp(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def row_from(conversation: RemoteConversation, *, digest: str | None = None) -> Row:
    peer = conversation.conversation_with
    is_user = isinstance(peer, User)
    updated_at = _timestamp(conversation.updated_at)
    assert updated_at is not None
    return Row(
        conversation_id=conversation.conversation_id,
        conversation_type=conversation.conversation_type,
        unread_message_count=conversation.unread_message_count,
        created_at=_timestamp(conversation.created_at),
        updated_at=updated_at,
        peer_uid=conversation.peer_id if is_user else "",
        peer_guid="" if is_user else conversation.peer_id,
        peer_name=conversation.peer_name[:255],
        payload=conversation.raw,
        content_hash=digest or content_hash(conversation.raw),
    )


def newest_per_id(rows: Iterable[Row]) -> list[Row]:
    """Offset paging may repeat a conversation: keep its newest copy, ordered by id.

    A stable order also keeps concurrent writers' row locks in the same sequence.
    """
    best: dict[str, Row] = {}
    for row in rows:
        kept = best.get(row.conversation_id)
        if kept is None or row.updated_at >= kept.updated_at:
            best[row.conversation_id] = row
    return [best[key] for key in sorted(best)]


@dataclass(frozen=True)
class _Stored:
    content_hash: str
    updated_at: datetime
    fetched_at: datetime
    missing: bool


def _is_stale(row: Row, stored: _Stored, fetched_at: datetime) -> bool:
    """Older than the stored snapshot: a smaller updatedAt, or the same one fetched earlier."""
    return (row.updated_at, fetched_at) < (stored.updated_at, stored.fetched_at)


def store_page(
    *, owner_id: int | None, owner_uid: str, rows: Sequence[Row], fetched_at: datetime
) -> PageOutcome:
    """Write one page atomically; decide created / updated / unchanged / stale per row."""
    rows = newest_per_id(rows)
    outcome = PageOutcome()
    if not rows:
        return outcome
    with transaction.atomic():
        _lock_owner(owner_uid)
        stored = {
            cid: _Stored(digest, updated_at, seen_at, missing is not None)
            for cid, digest, updated_at, seen_at, missing in Conversation.objects.filter(
                owner_uid=owner_uid, conversation_id__in=[r.conversation_id for r in rows]
            )
            .order_by()
            .values_list(
                "conversation_id", "content_hash", "updated_at", "fetched_at", "missing_since"
            )
        }
        to_write: list[Row] = []
        back: list[str] = []  # kept as stored, but CometChat returns them again
        for row in rows:
            old = stored.get(row.conversation_id)
            if old is None:
                to_write.append(row)
                continue
            if _is_stale(row, old, fetched_at):
                outcome.stale += 1
            elif row.content_hash == old.content_hash:
                outcome.unchanged += 1
            else:
                to_write.append(row)
                continue
            if old.missing:
                back.append(row.conversation_id)
        written = _upsert(owner_id, owner_uid, to_write, fetched_at) if to_write else []
        for pk, cid in written:
            (outcome.updated if cid in stored else outcome.created).append((pk, cid))
        # A row the guard refused (a concurrent writer got there first) counts as stale.
        outcome.stale += len(to_write) - len(written)
        if written:
            _insert_history([pk for pk, _ in written])
        if back:
            clear_missing(owner_uid, back)
    return outcome


class StoredHash(NamedTuple):
    """What a sync needs to know of a stored row before deciding to parse and write it."""

    content_hash: str
    missing: bool

    def unchanged_but_missing(self, digest: str) -> bool:
        """CometChat returns, unchanged, a row marked missing: only the mark must go."""
        return self.missing and self.content_hash == digest


def stored_hashes(owner_uid: str, conversation_ids: Sequence[str]) -> dict[str, StoredHash]:
    """``conversation_id -> StoredHash`` of the rows already stored; one query.

    Read without a lock: a sync uses it to skip rows whose content it already holds, and sends
    the rest to ``store_page``, which decides again under the lock.
    """
    if connection.vendor == "postgresql":
        # One array parameter instead of an IN list of 1,000 literals to parse and plan.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT conversation_id, content_hash, missing_since IS NOT NULL "
                f"FROM {CONVERSATION} WHERE owner_uid = %s AND conversation_id = ANY(%s)",
                [owner_uid, list(conversation_ids)],
            )
            return {
                cid: StoredHash(digest, bool(missing)) for cid, digest, missing in cursor.fetchall()
            }
    return {
        cid: StoredHash(digest, missing is not None)
        for cid, digest, missing in Conversation.objects.filter(
            owner_uid=owner_uid, conversation_id__in=conversation_ids
        )
        .order_by()
        .values_list("conversation_id", "content_hash", "missing_since")
    }


def clear_missing(owner_uid: str, conversation_ids: Sequence[str]) -> int:
    """CometChat returns these again: they are no longer missing."""
    return Conversation.objects.filter(
        owner_uid=owner_uid, conversation_id__in=conversation_ids, missing_since__isnull=False
    ).update(missing_since=None)


class SeenSet:
    """The conversation ids one sync has seen, kept in a temporary table, not in memory.

    A complete sync marks missing what it did not see. Keeping the ids in Python would make
    memory grow with the number of pages, and rewriting every seen row (a "last seen" column)
    would make a no-change re-sync write the whole table. A temporary table is private to the
    connection, costs one insert per page, and goes away when the sync ends.
    """

    def __init__(self) -> None:
        self.table = f"cometchat_seen_{uuid.uuid4().hex[:16]}"

    def __enter__(self) -> SeenSet:
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.table} (conversation_id varchar(210) PRIMARY KEY)"
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
        except DatabaseError:  # the connection is gone; so is its temporary table
            logger.debug("Could not drop %s", self.table, exc_info=True)

    def add(self, conversation_ids: Sequence[str]) -> int:
        """Remember these ids; return how many of them were seen before (repeats).

        A repeat means the list shifted under the walk, which may have skipped a conversation.
        """
        ids = json.dumps(list(conversation_ids))
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"INSERT INTO {self.table} SELECT DISTINCT jsonb_array_elements_text(%s::jsonb)"
                    " ON CONFLICT DO NOTHING",
                    [ids],
                )
            elif connection.vendor == "sqlite":
                cursor.execute(
                    f"INSERT OR IGNORE INTO {self.table} SELECT value FROM json_each(%s)", [ids]
                )
            else:
                cursor.execute(f"SELECT conversation_id FROM {self.table}")
                known = {row[0] for row in cursor.fetchall()}
                fresh = set(conversation_ids) - known
                cursor.executemany(
                    f"INSERT INTO {self.table} (conversation_id) VALUES (%s)", [[c] for c in fresh]
                )
                return len(conversation_ids) - len(fresh)
            return len(conversation_ids) - max(0, int(cursor.rowcount))

    def mark_missing(self, owner_uid: str, *, started_at: datetime, now: datetime) -> int:
        """Rows of ``owner_uid`` not seen, and not written since the sync started, go missing."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {CONVERSATION} SET missing_since = %s "
                "WHERE owner_uid = %s AND missing_since IS NULL AND fetched_at < %s "
                f"AND NOT EXISTS (SELECT 1 FROM {self.table} s "
                f"WHERE s.conversation_id = {CONVERSATION}.conversation_id)",
                [_param(now), owner_uid, _param(started_at)],
            )
            return int(cursor.rowcount)


def _native_sql() -> bool:
    if connection.vendor == "postgresql":
        return True
    return connection.vendor == "sqlite" and connection.features.can_return_rows_from_bulk_insert


def _lock_owner(owner_uid: str) -> None:
    if connection.vendor != "postgresql":
        return  # SQLite serialises writers itself
    key = int.from_bytes(hashlib.blake2b(owner_uid.encode(), digest_size=8).digest(), "big")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key - 2**63])


def _param(value: datetime) -> Any:
    """A datetime as the current backend stores it, for hand-written SQL."""
    return connection.ops.adapt_datetimefield_value(value)


def _dt(value: datetime | None) -> str | None:
    """A datetime for the page's JSON: SQLite's stored text (so SQL compares it as stored)."""
    if value is None:
        return None
    return str(_param(value)) if connection.vendor == "sqlite" else value.isoformat()


def _records(rows: Sequence[Row]) -> str:
    return json.dumps(
        [
            {
                "conversation_id": r.conversation_id,
                "conversation_type": r.conversation_type,
                "unread": r.unread_message_count,
                "created_at": _dt(r.created_at),
                "updated_at": _dt(r.updated_at),
                "peer_uid": r.peer_uid,
                "peer_guid": r.peer_guid,
                "peer_name": r.peer_name,
                "payload": r.payload,
                "content_hash": r.content_hash,
            }
            for r in rows
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


CONVERSATION = Conversation._meta.db_table
SNAPSHOT = ConversationSnapshot._meta.db_table

_UPDATE_COLUMNS = (
    "conversation_type",
    "unread_message_count",
    "created_at",
    "updated_at",
    "peer_uid",
    "peer_guid",
    "peer_name",
    "payload",
    "content_hash",
    "fetched_at",
)

_POSTGRES_UPSERT = f"""
INSERT INTO {CONVERSATION} AS t (
    owner_id, owner_uid, conversation_id, conversation_type, unread_message_count,
    created_at, updated_at, peer_uid, peer_guid, peer_name, payload, content_hash,
    fetched_at, missing_since)
SELECT %s, %s, r.conversation_id, r.conversation_type, r.unread, r.created_at, r.updated_at,
       r.peer_uid, r.peer_guid, r.peer_name, r.payload, r.content_hash, %s, NULL
FROM jsonb_to_recordset(%s::jsonb) AS r(
    conversation_id varchar, conversation_type varchar, unread integer,
    created_at timestamptz, updated_at timestamptz, peer_uid varchar, peer_guid varchar,
    peer_name varchar, payload jsonb, content_hash varchar)
ON CONFLICT (owner_uid, conversation_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in _UPDATE_COLUMNS)},
    owner_id = COALESCE(t.owner_id, EXCLUDED.owner_id),
    missing_since = NULL
WHERE (EXCLUDED.updated_at, EXCLUDED.fetched_at) >= (t.updated_at, t.fetched_at)
RETURNING t.id, t.conversation_id
"""

_SQLITE_UPSERT = f"""
INSERT INTO {CONVERSATION} (
    owner_id, owner_uid, conversation_id, conversation_type, unread_message_count,
    created_at, updated_at, peer_uid, peer_guid, peer_name, payload, content_hash,
    fetched_at, missing_since)
SELECT %s, %s, json_extract(r.value, '$.conversation_id'),
       json_extract(r.value, '$.conversation_type'), json_extract(r.value, '$.unread'),
       json_extract(r.value, '$.created_at'), json_extract(r.value, '$.updated_at'),
       json_extract(r.value, '$.peer_uid'), json_extract(r.value, '$.peer_guid'),
       json_extract(r.value, '$.peer_name'), json_extract(r.value, '$.payload'),
       json_extract(r.value, '$.content_hash'), %s, NULL
FROM json_each(%s) AS r WHERE true
ON CONFLICT (owner_uid, conversation_id) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in _UPDATE_COLUMNS)},
    owner_id = COALESCE({CONVERSATION}.owner_id, excluded.owner_id),
    missing_since = NULL
WHERE excluded.updated_at > {CONVERSATION}.updated_at
   OR (excluded.updated_at = {CONVERSATION}.updated_at
       AND excluded.fetched_at >= {CONVERSATION}.fetched_at)
RETURNING id, conversation_id
"""


def _upsert(
    owner_id: int | None, owner_uid: str, rows: Sequence[Row], fetched_at: datetime
) -> list[tuple[int, str]]:
    if not _native_sql():
        return _upsert_orm(owner_id, owner_uid, rows, fetched_at)
    sql = _POSTGRES_UPSERT if connection.vendor == "postgresql" else _SQLITE_UPSERT
    params: list[Any]
    if connection.vendor == "postgresql":
        params = [owner_id, owner_uid, fetched_at, _records(rows)]
    else:
        params = [owner_id, owner_uid, _param(fetched_at), _records(rows)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(int(pk), str(cid)) for pk, cid in cursor.fetchall()]


def _upsert_orm(
    owner_id: int | None, owner_uid: str, rows: Sequence[Row], fetched_at: datetime
) -> list[tuple[int, str]]:
    """Any other backend: same decisions (made under the caller's transaction), more queries."""
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
        for name in _UPDATE_COLUMNS[:-1]:
            setattr(obj, name, getattr(row, name))
        obj.fetched_at = fetched_at
        obj.missing_since = None
        obj.owner_id = obj.owner_id or owner_id  # a row's owner is never reassigned
        obj.save()
        written.append((obj.pk, obj.conversation_id))
    return written


def _insert_history(pks: list[int]) -> None:
    """Copy the just-written rows into history: one statement, payloads never re-sent."""
    columns = "conversation_id, payload, content_hash, fetched_at"
    select = f"SELECT id, payload, content_hash, fetched_at FROM {CONVERSATION}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {SNAPSHOT} ({columns}) {select} WHERE id = ANY(%s)",
                [pks],
            )
        elif connection.vendor == "sqlite":
            cursor.execute(
                f"INSERT INTO {SNAPSHOT} ({columns}) {select} "
                "WHERE id IN (SELECT value FROM json_each(%s))",
                [json.dumps(pks)],
            )
        else:
            ConversationSnapshot.objects.bulk_create(
                ConversationSnapshot(
                    conversation_id=c.pk,
                    payload=c.payload,
                    content_hash=c.content_hash,
                    fetched_at=c.fetched_at,
                )
                for c in Conversation.objects.filter(pk__in=pks)
            )
