"""The write path for snapshots: one page, one transaction, a constant number of queries.

Why hand-written SQL instead of ``bulk_create(update_conflicts=True)``:

* the stale-write guard. ``ON CONFLICT ... DO UPDATE ... WHERE`` keeps an older payload (smaller
  CometChat ``updatedAt``, or the same one from a request that left earlier) from overwriting a
  newer one; ``bulk_create`` cannot express the WHERE;
* a constant query count. The page travels as ONE JSON parameter, so 10 or 1,000 rows cost the
  same number of statements; ``bulk_create`` splits into batches under SQLite's variable limit.

The decisions live here; the SQL lives in one dialect per backend, next to its only caller:
:mod:`.postgresql`, :mod:`.sqlite`, and :mod:`.portable` (the ORM, for any other database and
SQLite older than 3.35, which lacks RETURNING).

Order: ``fetched_at`` is when the request that fetched a row's content *left* (the client's
``Page.sent_at`` / ``Fetched.sent_at``), not when the row was stored: an answer that was slow to
land never passes one from a request sent after it. A row is replaced only by content with a
larger CometChat ``updatedAt``, or the same ``updatedAt`` from a request sent no earlier.
``missing_since`` is the time of the proof that CometChat no longer has the row (when the request
that proved it left), so a page sent before the proof never clears it.

Concurrency: on PostgreSQL each page transaction takes a transaction-scoped advisory lock on the
owner, so two syncs of one owner write their pages one at a time: counts and history are exact,
no duplicate key escapes, and no deadlock is possible between them. The upsert's WHERE guard
still holds without the lock. A row's owner is set once and never reassigned by a write.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection, transaction

from ..conversation_types import Conversation as RemoteConversation
from ..models import Conversation
from .portable import PortableDialect
from .postgresql import PostgreSQLDialect
from .rows import (
    CONVERSATION,
    LockedRead,
    Row,
    StoredHash,
    UnseenQuery,
    content_hash,
    newest_per_id,
    row_from,
    with_list_only_fields,
)
from .sqlite import SQLiteDialect

__all__ = [
    "FetchedConversation",
    "LockedRead",
    "PageOutcome",
    "Row",
    "SeenSet",
    "StoredHash",
    "UnseenQuery",
    "clear_missing",
    "content_hash",
    "dialect",
    "mark_gone",
    "newest_per_id",
    "page_transaction",
    "row_from",
    "store_fetched",
    "store_fetched_together",
    "store_page",
    "stored_hashes",
    "with_list_only_fields",
]

logger = logging.getLogger(__name__)


def dialect() -> PortableDialect:
    """The dialect of the default database connection."""
    if connection.vendor == "postgresql":
        return PostgreSQLDialect()
    if connection.vendor == "sqlite" and connection.features.can_return_rows_from_bulk_insert:
        return SQLiteDialect()
    return PortableDialect()


@dataclass
class PageOutcome:
    created: list[tuple[int, str]] = field(default_factory=list)  # (pk, conversation_id)
    updated: list[tuple[int, str]] = field(default_factory=list)
    unchanged: int = 0
    stale: int = 0  # older than what is stored: kept the stored one


@dataclass(frozen=True)
class _Stored:
    content_hash: str
    updated_at: datetime
    fetched_at: datetime
    missing: bool

    def is_newer_than(self, row: Row, fetched_at: datetime) -> bool:
        """The stored snapshot wins: a larger updatedAt, or the same one from a request that
        left later."""
        return (row.updated_at, fetched_at) < (self.updated_at, self.fetched_at)


@contextmanager
def page_transaction(
    owner_uid: str, conversation_ids: Sequence[str], *, unseen: UnseenQuery | None = None
) -> Iterator[LockedRead]:
    """A page's transaction, holding the owner's lock, and the stored hashes of these ids: a
    sync decides what to parse from them, then calls ``store_page(..., locked=True)`` inside.
    On PostgreSQL the lock and the read are one statement, and so is ``unseen`` when given (a
    walk of one page: ``SeenSet.only_page_unseen``), one round trip fewer."""
    sql = dialect()
    with transaction.atomic():
        yield sql.lock_and_read_hashes(owner_uid, conversation_ids, unseen)


def store_fetched(
    *,
    owner_id: int | None,
    owner_uid: str,
    remote: RemoteConversation,
    fetched_at: datetime,
    peer_flag: tuple[str, bool] | None = None,
) -> PageOutcome:
    """Store one conversation fetched through its own endpoint.

    A one-to-one keeps the stored row's block flags the list alone carries
    (``with_list_only_fields``), read in the page's transaction once the owner's lock is held;
    ``peer_flag`` is a block event's newer news of one."""
    fetched = FetchedConversation(owner_id, owner_uid, remote, fetched_at, peer_flag)
    return store_fetched_together([fetched])[0]


@dataclass(frozen=True)
class FetchedConversation:
    """One owner's conversation fetched through its own endpoint (``store_fetched``'s
    arguments)."""

    owner_id: int | None
    owner_uid: str
    remote: RemoteConversation
    fetched_at: datetime
    peer_flag: tuple[str, bool] | None = None


def store_fetched_together(
    fetched: Sequence[FetchedConversation],
    *,
    lock_also: Iterable[str] = (),
    savepoint: bool = True,
) -> list[PageOutcome]:
    """``store_fetched`` for several owners (a webhook event's) in one transaction; their
    outcomes in the order given.

    Every owner's lock is taken first (and those of ``lock_also``, owners the caller writes to
    in the same transaction), in UID order, so two such transactions never wait on each other
    in a cycle; then the stored peers are read, in a statement of their own so that it sees
    what a writer committed while this one waited for a lock. ``savepoint=False``, as
    ``transaction.atomic``'s: inside the caller's transaction no savepoint of its own (two
    round trips fewer), and an error rolls back the caller's whole transaction."""
    locks = sorted({*(one.owner_uid for one in fetched), *lock_also})
    if not locks:
        return []
    sql = dialect()
    outcomes = []
    with transaction.atomic(savepoint=savepoint):
        sql.lock_owners(locks)
        peers = sql.read_peers(
            [(one.owner_uid, one.remote.conversation_id) for one in fetched if _is_user(one)]
        )
        for one in fetched:
            payload = one.remote.raw
            if _is_user(one):
                peer = peers.get((one.owner_uid, one.remote.conversation_id))
                payload = with_list_only_fields(
                    payload, {"conversationWith": peer}, peer_flag=one.peer_flag
                )
            outcomes.append(
                store_page(
                    owner_id=one.owner_id,
                    owner_uid=one.owner_uid,
                    rows=[row_from(one.remote, payload=payload)],
                    fetched_at=one.fetched_at,
                    locked=True,
                )
            )
    return outcomes


def _is_user(fetched: FetchedConversation) -> bool:
    return fetched.remote.conversation_type == "user"


def store_page(
    *,
    owner_id: int | None,
    owner_uid: str,
    rows: Sequence[Row],
    fetched_at: datetime,
    locked: bool = False,
) -> PageOutcome:
    """Write one page atomically; decide created / updated / unchanged / stale per row.

    ``fetched_at`` is when the request that fetched these rows left (see the module docstring).
    ``locked``: the caller is inside ``page_transaction`` (the transaction and the lock held).
    """
    rows = newest_per_id(rows)
    outcome = PageOutcome()
    if not rows:
        return outcome
    sql = dialect()
    if isinstance(sql, PostgreSQLDialect):
        return _store_in_one_statement(sql, owner_id, owner_uid, rows, fetched_at, locked=locked)
    with transaction.atomic() if not locked else nullcontext():
        if not locked:
            sql.lock_owner(owner_uid)
        stored = {
            cid: _Stored(digest, updated_at, seen_at, missing is not None)
            for cid, digest, updated_at, seen_at, missing in Conversation.objects.owned_by(
                owner_uid
            )
            .filter(conversation_id__in=[r.conversation_id for r in rows])
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
            if old.is_newer_than(row, fetched_at):
                outcome.stale += 1
            elif row.content_hash == old.content_hash:
                outcome.unchanged += 1
            else:
                to_write.append(row)
                continue
            if old.missing:
                back.append(row.conversation_id)
        written = sql.upsert(owner_id, owner_uid, to_write, fetched_at) if to_write else []
        for pk, cid in written:
            (outcome.updated if cid in stored else outcome.created).append((pk, cid))
        # A row the guard refused (a concurrent writer got there first) counts as stale.
        outcome.stale += len(to_write) - len(written)
        if written:
            sql.insert_history([pk for pk, _ in written])
        if back:
            clear_missing(owner_uid, back, before=fetched_at)
    return outcome


def _store_in_one_statement(
    sql: PostgreSQLDialect,
    owner_id: int | None,
    owner_uid: str,
    rows: Sequence[Row],
    fetched_at: datetime,
    *,
    locked: bool,
) -> PageOutcome:
    """``store_page`` on PostgreSQL: the lock, then one statement that decides and writes."""
    outcome = PageOutcome()
    with transaction.atomic() if not locked else nullcontext():
        if not locked:
            sql.lock_owner(owner_uid)
        verdicts = sql.store(owner_id, owner_uid, rows, fetched_at)
    for cid, verdict, existed, pk in verdicts:
        if verdict == "unchanged":
            outcome.unchanged += 1
        elif verdict == "stale" or pk is None:  # refused by the guard: a writer got there first
            outcome.stale += 1
        else:
            (outcome.updated if existed else outcome.created).append((pk, cid))
    return outcome


def stored_hashes(owner_uid: str, conversation_ids: Sequence[str]) -> dict[str, StoredHash]:
    """``conversation_id -> StoredHash`` of the rows already stored; one query.

    Read without a lock: a sync uses it to skip rows whose content it already holds, and sends
    the rest to ``store_page``, which decides again under the lock.
    """
    return dialect().stored_hashes(owner_uid, conversation_ids)


def clear_missing(
    owner_uid: str, conversation_ids: Sequence[str], *, before: datetime | None = None
) -> int:
    """CometChat returns these again: they are no longer missing. With ``before`` (when the
    request that returned them left), a mark proven by a later request stays."""
    marked = Conversation.objects.owned_by(owner_uid).filter(
        conversation_id__in=conversation_ids, missing_since__isnull=False
    )
    if before is not None:
        marked = marked.filter(missing_since__lt=before)
    return marked.update(missing_since=None)


def mark_gone(owner_uid: str, conversation_ids: Sequence[str], *, proven_at: datetime) -> int:
    """CometChat confirmed these gone by a request that left at ``proven_at``: mark them
    missing since then, unless a request sent later stored them (they were back by then)."""
    return (
        Conversation.objects.owned_by(owner_uid)
        .filter(
            conversation_id__in=conversation_ids,
            missing_since__isnull=True,
            fetched_at__lt=proven_at,
        )
        .update(missing_since=proven_at)
    )


class SeenSet:
    """The conversation ids one sync has seen: the first page's in memory, more in a temporary
    table.

    A complete sync marks missing what it did not see. Keeping every id in Python would make
    memory grow with the number of pages, and rewriting every seen row (a "last seen" column)
    would make a no-change re-sync write the whole table. Most owners have one page, so its ids
    stay in memory and travel as one parameter of the final anti-join (no table to create, fill
    and drop: three statements fewer); a second page moves them into a temporary table, private
    to the connection, one insert per page, gone when the sync ends. A dialect that cannot pass
    a list as one parameter uses the table from the first page on.
    """

    def __init__(self) -> None:
        self.table = f"cometchat_seen_{uuid.uuid4().hex[:16]}"
        self.sql = dialect()
        self.first: list[str] | None = None  # the first page's ids, while there is no table
        self.created = False

    def __enter__(self) -> SeenSet:
        if self.sql.not_in_ids is None:
            self._create()
        return self

    def _create(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.table} (conversation_id varchar(210) PRIMARY KEY)"
            )
        self.created = True

    def __exit__(self, *exc_info: object) -> None:
        if not self.created:
            return
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
        except DatabaseError:  # the connection is gone; so is its temporary table
            logger.debug("Could not drop %s", self.table, exc_info=True)

    def add(self, conversation_ids: Sequence[str]) -> int:
        """Remember these ids; return how many of them were seen before (repeats).

        A repeat means the list shifted under the walk, which may have skipped a conversation.
        """
        if not self.created and self.first is None:
            self.first = list(conversation_ids)
            return len(self.first) - len(set(self.first))
        if not self.created:
            self._create()
            self.sql.remember_seen(self.table, self.first or [])
            self.first = None
        return self.sql.remember_seen(self.table, conversation_ids)

    def _unseen(self, first: Sequence[str] | None = None) -> tuple[str, list[Any]]:
        """The rows of an owner (the first parameter) not seen, not marked missing yet, and not
        fetched by a request that left after the second parameter (the sync's start: such a
        row was live after the walk began); and the parameters that follow those two.
        ``first``: the ids of a first page not added yet."""
        head = "owner_uid = %s AND missing_since IS NULL AND fetched_at < %s AND "
        if not self.created:
            assert self.sql.not_in_ids is not None
            ids = self.first if first is None else first
            return head + self.sql.not_in_ids, [self.sql.id_list(ids or [])]
        return (
            head + f"NOT EXISTS (SELECT 1 FROM {self.table} s "
            f"WHERE s.conversation_id = {CONVERSATION}.conversation_id)",
            [],
        )

    def _unseen_query(
        self, owner_uid: str, before: datetime, limit: int, first: Sequence[str] | None = None
    ) -> UnseenQuery:
        condition, params = self._unseen(first)
        return UnseenQuery(
            f"SELECT conversation_id FROM {CONVERSATION} WHERE {condition} "
            "ORDER BY conversation_id LIMIT %s",
            [owner_uid, self.sql.param(before), *params, limit],
        )

    def unseen(self, owner_uid: str, *, before: datetime, limit: int) -> list[str]:
        """Up to ``limit`` ids of the owner's stored rows the sync has not seen: the candidates
        for a missing mark, which the sync re-checks before marking any."""
        query = self._unseen_query(owner_uid, before, limit)
        with connection.cursor() as cursor:
            cursor.execute(query.sql, query.params)
            return [str(cid) for (cid,) in cursor.fetchall()]

    def only_page_unseen(
        self, owner_uid: str, page_ids: Sequence[str], *, before: datetime, limit: int
    ) -> UnseenQuery | None:
        """``unseen``'s query as it will be once the walk's only page (``page_ids``, not added
        yet) is added, for that page's lock statement to run (``page_transaction``); None once
        ids were added, or where the lock statement does not read it (SQLite, the portable
        dialect: no round trip to save).

        Its snapshot may precede the wait for the lock: a row another writer committed
        meanwhile is then left out, as it would be had it committed just after the check (it
        is the next sync's candidate). Every candidate is re-checked before it is marked."""
        if self.created or self.first is not None or not self.sql.reads_unseen_with_lock:
            return None
        return self._unseen_query(owner_uid, before, limit, first=page_ids)

    def mark_missing(self, owner_uid: str, *, before: datetime, proven_at: datetime) -> int:
        """Every unseen row (see :meth:`unseen`) goes missing since ``proven_at``: for rows two
        complete walks over the list left out (too many to re-check one by one)."""
        condition, params = self._unseen()
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {CONVERSATION} SET missing_since = %s WHERE {condition}",
                [self.sql.param(proven_at), owner_uid, self.sql.param(before), *params],
            )
            return int(cursor.rowcount)
