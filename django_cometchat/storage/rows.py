"""What a stored conversation row is, and the values every dialect shares."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson

from ..conversation_types import Conversation as RemoteConversation
from ..conversation_types import User
from ..models import Conversation, ConversationSnapshot

CONVERSATION = Conversation._meta.db_table
SNAPSHOT = ConversationSnapshot._meta.db_table

# History copies just-written rows inside the database (payloads are never sent twice); each
# dialect appends its own "which ids" condition.
COPY_TO_HISTORY = (
    f"INSERT INTO {SNAPSHOT} (conversation_id, payload, content_hash, fetched_at) "
    f"SELECT id, payload, content_hash, fetched_at FROM {CONVERSATION} WHERE "
)

# The columns an upsert rewrites from the page (``fetched_at`` and ``owner_id`` are set apart).
ROW_COLUMNS = (
    "conversation_type",
    "unread_message_count",
    "created_at",
    "updated_at",
    "peer_uid",
    "peer_guid",
    "peer_name",
    "payload",
    "content_hash",
)


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


class StoredHash(NamedTuple):
    """What a sync needs to know of a stored row before deciding to parse and write it."""

    content_hash: str
    missing: bool

    def unchanged_but_missing(self, digest: str) -> bool:
        """CometChat returns, unchanged, a row marked missing: only the mark must go."""
        return self.missing and self.content_hash == digest


class UnseenQuery(NamedTuple):
    """``SeenSet``'s query of the rows a walk did not see, for a page's lock statement to run
    (``page_transaction``)."""

    sql: str
    params: list[Any]


class LockedRead(NamedTuple):
    """What a page's transaction read as it took the owner's lock: the stored hashes of the
    page's ids, and the rows of ``unseen`` when it was given and this database ran it in the
    same statement (None: ask ``SeenSet.unseen`` once the page is stored)."""

    hashes: dict[str, StoredHash]
    unseen: list[str] | None = None


def content_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the payload as CometChat sent it, but for ``lastMessage.receipts``.

    The list endpoints add ``receipts`` to the last message and the single-conversation ones
    leave it out (API.md §2.4, §2.10, §3): hashed, one conversation would change each time a
    webhook's refresh and a sync took turns, a history row each time with nothing new in it.

    Keys are not sorted: CometChat's key order is stable, and sorting costs a third more on the
    no-change re-sync's hot path. A reordered but equal payload only costs one extra history row.
    """
    last = payload.get("lastMessage")
    if isinstance(last, dict) and "receipts" in last:
        payload = {**payload, "lastMessage": {k: v for k, v in last.items() if k != "receipts"}}
    try:
        # orjson writes the very bytes of the json.dumps below (compact, UTF-8 unescaped), seven
        # times faster: stored hashes stay valid. It refuses what json.dumps may still write
        # (an integer past 64 bits, a non-string key, a lone surrogate): those take the slow
        # path, and parsing refuses the payload later as before.
        data = orjson.dumps(payload)
    except TypeError:  # orjson.JSONEncodeError
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()


# What the list endpoint says of a user peer and the single-conversation endpoint cannot (it
# takes no withBlockedInfo; API.md §2.1, §2.4): the block flags.
LIST_ONLY_PEER_KEYS = ("blockedByMe", "hasBlockedMe")


def with_list_only_fields(
    fetched: Mapping[str, Any], stored: Any, *, peer_flag: tuple[str, bool] | None = None
) -> Mapping[str, Any]:
    """A single-conversation payload, with the block flags of the stored one (as of the last
    sync) where it has none: without them the same conversation would differ by endpoint, and
    every webhook's refresh followed by a sync would write two history rows about nothing.

    ``peer_flag`` is what a block event says of one flag (``("blockedByMe", True)``): newer than
    the stored one, so it wins."""
    peer = fetched.get("conversationWith")
    if not isinstance(peer, dict):
        return fetched
    before = stored.get("conversationWith") if isinstance(stored, dict) else None
    carried = {
        k: before[k]
        for k in LIST_ONLY_PEER_KEYS
        if isinstance(before, dict) and k in before and k not in peer
    }
    if peer_flag is not None:
        name, value = peer_flag
        if name not in LIST_ONLY_PEER_KEYS or not isinstance(value, bool):
            raise ValueError(f"not a block flag: {peer_flag!r}")
        carried[name] = value
    return {**fetched, "conversationWith": {**peer, **carried}} if carried else fetched


def _timestamp(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def row_from(
    conversation: RemoteConversation,
    *,
    digest: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> Row:
    """The row to store for a parsed conversation; ``payload`` replaces its raw payload (see
    ``with_list_only_fields``)."""
    stored = conversation.raw if payload is None else payload
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
        payload=stored,
        content_hash=digest or content_hash(stored),
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
