"""SQLite (3.35+, which has RETURNING): one statement per page through ``json_each``.

SQLite serialises writers itself, so no owner lock is needed. Datetimes inside the page's JSON
are written the way Django stores them in SQLite (text), so SQL compares them as stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from django.db import connection

from .portable import PortableDialect
from .rows import CONVERSATION, COPY_TO_HISTORY, ROW_COLUMNS, Row

UPSERT = f"""
INSERT INTO {CONVERSATION} (
    owner_id, owner_uid, conversation_id, conversation_type, unread_message_count,
    created_at, updated_at, peer_uid, peer_guid, peer_name, payload, content_hash,
    fetched_at, missing_since)
SELECT %s, %s, json_extract(r.value, '$.conversation_id'),
       json_extract(r.value, '$.conversation_type'),
       json_extract(r.value, '$.unread_message_count'),
       json_extract(r.value, '$.created_at'), json_extract(r.value, '$.updated_at'),
       json_extract(r.value, '$.peer_uid'), json_extract(r.value, '$.peer_guid'),
       json_extract(r.value, '$.peer_name'), json_extract(r.value, '$.payload'),
       json_extract(r.value, '$.content_hash'), %s, NULL
FROM json_each(%s) AS r WHERE true
ON CONFLICT (owner_uid, conversation_id) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in ROW_COLUMNS)},
    fetched_at = excluded.fetched_at,
    owner_id = COALESCE({CONVERSATION}.owner_id, excluded.owner_id),
    -- a mark proven by a request sent after this page stays (NULL > x is NULL: cleared)
    missing_since = CASE WHEN {CONVERSATION}.missing_since > excluded.fetched_at
                         THEN {CONVERSATION}.missing_since END
WHERE excluded.updated_at > {CONVERSATION}.updated_at
   OR (excluded.updated_at = {CONVERSATION}.updated_at
       AND excluded.fetched_at >= {CONVERSATION}.fetched_at)
RETURNING id, conversation_id
"""


class SQLiteDialect(PortableDialect):
    vendor = "sqlite"
    not_in_ids = "conversation_id NOT IN (SELECT value FROM json_each(%s))"

    def json_datetime(self, value: datetime) -> str:
        return str(self.param(value))

    def upsert(
        self, owner_id: int | None, owner_uid: str, rows: Sequence[Row], fetched_at: datetime
    ) -> list[tuple[int, str]]:
        with connection.cursor() as cursor:
            cursor.execute(
                UPSERT, [owner_id, owner_uid, self.param(fetched_at), self.records(rows)]
            )
            return [(int(pk), str(cid)) for pk, cid in cursor.fetchall()]

    def insert_history(self, pks: list[int]) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                COPY_TO_HISTORY + "id IN (SELECT value FROM json_each(%s))", [json.dumps(pks)]
            )

    def remember_seen(self, table: str, conversation_ids: Sequence[str]) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT OR IGNORE INTO {table} SELECT value FROM json_each(%s)",
                [json.dumps(list(conversation_ids))],
            )
            return len(conversation_ids) - max(0, int(cursor.rowcount))
