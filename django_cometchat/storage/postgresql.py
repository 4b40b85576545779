"""PostgreSQL: one statement per page (read, decide, upsert, history), an advisory lock per owner.

The page travels as one ``jsonb`` parameter (``jsonb_to_recordset``); ``ON CONFLICT ... DO UPDATE
... WHERE`` is the stale-write guard; id lists travel as one JSON text parameter
(``IDS_ARRAY``) instead of an IN list of 1,000 literals to parse and plan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
from django.db import connection

from .portable import PortableDialect, mapping_as_dict
from .rows import (
    CONVERSATION,
    COPY_TO_HISTORY,
    ROW_COLUMNS,
    SNAPSHOT,
    LockedRead,
    Row,
    StoredHash,
    UnseenQuery,
)

UPSERT = f"""
INSERT INTO {CONVERSATION} AS t (
    owner_id, owner_uid, conversation_id, conversation_type, unread_message_count,
    created_at, updated_at, peer_uid, peer_guid, peer_name, payload, content_hash,
    fetched_at, missing_since)
SELECT %s, %s, r.conversation_id, r.conversation_type, r.unread_message_count, r.created_at,
       r.updated_at, r.peer_uid, r.peer_guid, r.peer_name, r.payload, r.content_hash, %s, NULL
FROM jsonb_to_recordset(%s::jsonb) AS r(
    conversation_id varchar, conversation_type varchar, unread_message_count integer,
    created_at timestamptz, updated_at timestamptz, peer_uid varchar, peer_guid varchar,
    peer_name varchar, payload jsonb, content_hash varchar)
ON CONFLICT (owner_uid, conversation_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in ROW_COLUMNS)},
    fetched_at = EXCLUDED.fetched_at,
    owner_id = COALESCE(t.owner_id, EXCLUDED.owner_id),
    -- a mark proven by a request sent after this page stays (NULL > x is NULL: cleared)
    missing_since = CASE WHEN t.missing_since > EXCLUDED.fetched_at THEN t.missing_since END
WHERE (EXCLUDED.updated_at, EXCLUDED.fetched_at) >= (t.updated_at, t.fetched_at)
RETURNING t.id, t.conversation_id
"""

# One page in one statement, under the owner's lock (taken by the statement before, so this
# statement's snapshot sees every earlier writer of the owner): read what is stored, decide per
# row (new, stale, unchanged or changed: the same rules as ``storage.store_page``), upsert what
# changed behind the stale-write guard, copy what was written into the history (inside the
# database: payloads are never sent back), clear the missing mark of rows CometChat returns
# unchanged, and answer one verdict per row.
STORE_PAGE = f"""
WITH page AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
        conversation_id varchar, conversation_type varchar, unread_message_count integer,
        created_at timestamptz, updated_at timestamptz, peer_uid varchar, peer_guid varchar,
        peer_name varchar, payload jsonb, content_hash varchar)
),
decided AS (
    SELECT p.*, o.id IS NOT NULL AS existed, o.missing_since IS NOT NULL AS was_missing,
        CASE
            WHEN o.id IS NULL THEN 'write'
            WHEN (p.updated_at, %(fetched_at)s::timestamptz) < (o.updated_at, o.fetched_at)
                THEN 'stale'
            WHEN p.content_hash = o.content_hash THEN 'unchanged'
            ELSE 'write'
        END AS verdict
    FROM page p
    LEFT JOIN {CONVERSATION} o
        ON o.owner_uid = %(owner_uid)s AND o.conversation_id = p.conversation_id
),
written AS (
    INSERT INTO {CONVERSATION} AS t (
        owner_id, owner_uid, conversation_id, conversation_type, unread_message_count,
        created_at, updated_at, peer_uid, peer_guid, peer_name, payload, content_hash,
        fetched_at, missing_since)
    SELECT %(owner_id)s, %(owner_uid)s, d.conversation_id, d.conversation_type,
           d.unread_message_count, d.created_at, d.updated_at, d.peer_uid, d.peer_guid,
           d.peer_name, d.payload, d.content_hash, %(fetched_at)s, NULL
    FROM decided d WHERE d.verdict = 'write' ORDER BY d.conversation_id
    ON CONFLICT (owner_uid, conversation_id) DO UPDATE SET
        {", ".join(f"{c} = EXCLUDED.{c}" for c in ROW_COLUMNS)},
        fetched_at = EXCLUDED.fetched_at,
        owner_id = COALESCE(t.owner_id, EXCLUDED.owner_id),
        -- a mark proven by a request sent after this page stays (NULL > x is NULL: cleared)
        missing_since = CASE WHEN t.missing_since > EXCLUDED.fetched_at THEN t.missing_since END
    WHERE (EXCLUDED.updated_at, EXCLUDED.fetched_at) >= (t.updated_at, t.fetched_at)
    RETURNING t.id, t.conversation_id, t.payload, t.content_hash, t.fetched_at
),
history AS (
    INSERT INTO {SNAPSHOT} (conversation_id, payload, content_hash, fetched_at)
    SELECT id, payload, content_hash, fetched_at FROM written
),
cleared AS (
    UPDATE {CONVERSATION} c SET missing_since = NULL
    FROM decided d
    WHERE d.verdict <> 'write' AND d.was_missing AND c.owner_uid = %(owner_uid)s
        AND c.conversation_id = d.conversation_id AND c.missing_since < %(fetched_at)s
)
SELECT d.conversation_id, d.verdict, d.existed, w.id
FROM decided d LEFT JOIN written w ON w.conversation_id = d.conversation_id
ORDER BY d.conversation_id
"""


try:
    import psycopg
    from psycopg.types.json import Jsonb
except ImportError:  # psycopg2: every parameter is bound on the client, pages travel as text
    psycopg = None  # type: ignore[assignment]


if psycopg is not None:

    class _BoundOnServer(psycopg.Cursor):
        """Binds on the server, and never prepares: a prepared statement's text is gone from
        psycopg's cursor, so Django would log and count it as ``None`` (under a host's
        ``prepare_threshold``), and planning is about 1 ms of a 1,000-row page's 100."""

        def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
            return super().execute(query, params, **{**options, "prepare": False})


@contextmanager
def _page_cursor() -> Iterator[Any]:
    """Where Django's connection is psycopg 3, a cursor that sends the parameters beside the
    statement instead of inside it, wrapped as Django wraps its own (query logging,
    ``execute_wrapper`` and ``CaptureQueriesContext`` see it); Django's own cursor otherwise.

    Django's psycopg cursors bind on the client: a 1,000-row page's 1.5 MB parameter was
    escaped into the SQL text in Python, then lexed by the server (5 ms of the worker's CPU a
    page). Under ``OPTIONS["server_side_binding"]`` Django's log writes every statement's
    parameters into its text, this one's too: that is Django's choice for that option."""
    connection.ensure_connection()
    raw = connection.connection
    if psycopg is None or not isinstance(raw, psycopg.Connection):
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.validate_thread_sharing()
    bound: Any = _BoundOnServer(raw)  # django-stubs type the wrapped cursor as Django's own
    cursor = (
        connection.make_debug_cursor(bound)
        if connection.queries_logged
        else connection.make_cursor(bound)
    )
    with cursor:
        yield cursor


def _page_json(rows: Sequence[Row]) -> bytes:
    return orjson.dumps(rows, default=mapping_as_dict)


def _as_is(data: bytes) -> bytes:
    return data


# A list of conversation ids as one parameter: JSON text that PostgreSQL unpacks. A Python list
# went through psycopg's list dumper, element by element: 2 ms of a worker's CPU for a
# 1,000-row page's ids, against 0.7 ms for this, the same plan (docs/benchmarks.md, seventh round).
IDS_ARRAY = "ARRAY(SELECT jsonb_array_elements_text(%s::jsonb))"


def _ids_parameter(conversation_ids: Sequence[str]) -> str:
    return orjson.dumps(list(conversation_ids)).decode()


def _lock_key(owner_uid: str) -> int:
    key = int.from_bytes(hashlib.blake2b(owner_uid.encode(), digest_size=8).digest(), "big")
    return key - 2**63


class PostgreSQLDialect(PortableDialect):
    vendor = "postgresql"
    not_in_ids = f"NOT (conversation_id = ANY({IDS_ARRAY}))"
    reads_unseen_with_lock = True  # one round trip fewer for most syncs

    def id_list(self, conversation_ids: Sequence[str]) -> Any:
        return _ids_parameter(conversation_ids)

    def records(self, rows: Sequence[Row]) -> str:
        """As the portable dialect's, with datetimes written by orjson (ISO 8601 with their
        offset, what ``timestamptz`` reads) instead of a Python call each."""
        return _page_json(rows).decode()

    def page_parameter(self, rows: Sequence[Row]) -> Any:
        """The page for its statement: with psycopg 3 orjson's bytes as they are, a ``jsonb``
        parameter (decoding 1.5 MB of UTF-8 to ``str`` for psycopg to encode again cost 5 ms of
        CPU a 1,000-row page); as ``records`` with psycopg2."""
        return _page_json(rows).decode() if psycopg is None else Jsonb(_page_json(rows), _as_is)

    def lock_owner(self, owner_uid: str) -> None:
        """A transaction-scoped advisory lock: two syncs of one owner write pages one at a time,
        so counts and history are exact and no deadlock is possible between them."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(owner_uid)])

    def lock_owners(self, owner_uids: Sequence[str]) -> None:
        """Every owner's lock in one statement, in the order given (a FROM-less SELECT
        evaluates its target list in order: with one of them held elsewhere, the ones before
        it are granted and the ones after it not yet asked for)."""
        if not owner_uids:
            return
        locks = ", ".join(["pg_advisory_xact_lock(%s)"] * len(owner_uids))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {locks}", [_lock_key(uid) for uid in owner_uids])

    def read_peers(self, wanted: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """As the portable dialect's, the conversationWith alone sent back."""
        if not wanted:
            return {}
        pairs = ", ".join(["(%s, %s)"] * len(wanted))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT owner_uid, conversation_id, payload -> 'conversationWith' "
                f"FROM {CONVERSATION} WHERE (owner_uid, conversation_id) IN ({pairs}) "
                "AND payload ? 'conversationWith'",
                [value for pair in wanted for value in pair],
            )
            found = cursor.fetchall()
        return {
            (owner_uid, cid): json.loads(peer) if isinstance(peer, str) else peer
            for owner_uid, cid, peer in found
        }

    def lock_and_read_hashes(
        self, owner_uid: str, conversation_ids: Sequence[str], unseen: UnseenQuery | None = None
    ) -> LockedRead:
        """One statement: the lock (a FROM-less SELECT always evaluates its whole target list),
        the stored hashes and ``unseen``'s rows. The reads' snapshot may precede the lock: the
        hashes are a hint only, as ``STORE_PAGE``, a later statement, decides again with a
        snapshot taken under the lock (``SeenSet.only_page_unseen`` says why ``unseen`` may)."""
        also = f", ARRAY({unseen.sql})" if unseen is not None else ""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s), (SELECT json_agg(json_build_array("
                "conversation_id, content_hash, missing_since IS NOT NULL)) "
                f"FROM {CONVERSATION} WHERE owner_uid = %s AND conversation_id = ANY({IDS_ARRAY}))"
                f"{also}",
                [
                    _lock_key(owner_uid),
                    owner_uid,
                    _ids_parameter(conversation_ids),
                    *(unseen.params if unseen is not None else ()),
                ],
            )
            row = cursor.fetchone()
        assert row is not None  # a FROM-less SELECT returns one row
        found = row[1]
        if isinstance(found, str):
            found = json.loads(found)
        hashes = {
            str(cid): StoredHash(str(digest), bool(missing)) for cid, digest, missing in found or []
        }
        return LockedRead(hashes, [str(cid) for cid in row[2]] if unseen is not None else None)

    def stored_hashes(
        self, owner_uid: str, conversation_ids: Sequence[str]
    ) -> dict[str, StoredHash]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT conversation_id, content_hash, missing_since IS NOT NULL "
                f"FROM {CONVERSATION} WHERE owner_uid = %s AND conversation_id = ANY({IDS_ARRAY})",
                [owner_uid, _ids_parameter(conversation_ids)],
            )
            return {
                cid: StoredHash(digest, bool(missing)) for cid, digest, missing in cursor.fetchall()
            }

    def upsert(
        self, owner_id: int | None, owner_uid: str, rows: Sequence[Row], fetched_at: datetime
    ) -> list[tuple[int, str]]:
        with _page_cursor() as cursor:
            cursor.execute(UPSERT, [owner_id, owner_uid, fetched_at, self.page_parameter(rows)])
            return [(int(pk), str(cid)) for pk, cid in cursor.fetchall()]

    def store(
        self, owner_id: int | None, owner_uid: str, rows: Sequence[Row], fetched_at: datetime
    ) -> list[tuple[str, str, bool, int | None]]:
        """``storage.store_page``'s decisions and writes in one statement (see ``STORE_PAGE``):
        ``(conversation_id, verdict, existed, pk if written)`` per row, by id."""
        with _page_cursor() as cursor:
            cursor.execute(
                STORE_PAGE,
                {
                    "rows": self.page_parameter(rows),
                    "owner_id": owner_id,
                    "owner_uid": owner_uid,
                    "fetched_at": fetched_at,
                },
            )
            return [
                (str(cid), str(verdict), bool(existed), None if pk is None else int(pk))
                for cid, verdict, existed, pk in cursor.fetchall()
            ]

    def insert_history(self, pks: list[int]) -> None:
        """One statement; the payloads are copied inside the database, never re-sent."""
        with connection.cursor() as cursor:
            cursor.execute(COPY_TO_HISTORY + "id = ANY(%s)", [pks])

    def remember_seen(self, table: str, conversation_ids: Sequence[str]) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} SELECT DISTINCT jsonb_array_elements_text(%s::jsonb) "
                "ON CONFLICT DO NOTHING",
                [json.dumps(list(conversation_ids))],
            )
            return len(conversation_ids) - max(0, int(cursor.rowcount))
