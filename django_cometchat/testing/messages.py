"""Messages in the fake: adding any kind of message, and answering the two message lists.

``GET /users/{uid}/messages`` and ``GET /groups/{guid}/messages`` (API.md §4.3) page through
:attr:`.state.State.history` with CometChat's cursor (parsed in :mod:`.api`, selected and rendered
here). The semantics, including every choice made where API.md is silent:

- ``affix=prepend`` walks to older messages, ``append`` to newer ones; without ``affix`` the
  fake prepends (API.md gives no default). Without ``id`` or ``sentAt``, ``prepend`` starts at
  the newest message and ``append`` at the oldest.
- ``id`` is inclusive: ``prepend`` answers the newest ``limit`` messages with an id ≤ ``id``,
  ``append`` the oldest ``limit`` with an id ≥ ``id``. ``sentAt`` (used only without ``id``) is
  exclusive: ``prepend`` < ``sentAt``, ``append`` > ``sentAt``.
- A page lists its messages oldest first (ascending id) in both directions.
- ``meta.next = {affix, sentAt, id}`` (the default shape, API.md §4.3) is the cursor of the
  following page: ``id`` is one past the page's last message in the direction of travel (as a
  string, like message ids), ``sentAt`` that message's time. It is present on every non-empty
  page, also the last one (a poller appending keeps it); it is absent on an empty page, so a
  client stops on a short or empty page. ``meta.current = {limit, count}``.
- With ``FakeOptions.messages_meta = "cursor"`` the meta is ``{pagination: {...}, cursor:
  {affix, sentAt, id}}`` instead (the list-groups shape of API.md §4.1): ``total`` counts the
  messages from the cursor on in that direction, ``current_page`` is always 1 and
  ``total_pages`` says whether another page follows; ``pagination_mode`` and
  ``omit_pagination_keys`` apply as on the other lists.
- A deleted message keeps its place with ``deletedAt``/``deletedBy`` and no text or attachments.

Stdlib only; no Django. Call everything with ``State.lock`` held.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from .render import entity_group, entity_user, message_json
from .state import JSON, MessageRecord, State

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
Affix = Literal["append", "prepend"]
AFFIXES: tuple[str, ...] = get_args(Affix)
CATEGORIES = ("message", "custom", "action", "call", "interactive")  # API.md §4.3
GROUP_MEMBER_ACTIONS = ("joined", "left", "kicked", "banned", "unbanned", "added", "scopeChanged")
MESSAGE_ACTIONS = ("edited", "deleted")
ATTACHMENT_KEYS = ("url", "name", "extension", "mimeType", "size")


@dataclass(frozen=True)
class MessageQuery:
    """A message list request's cursor, already validated (see ``api.Call.message_query``)."""

    limit: int = DEFAULT_LIMIT
    affix: Affix = "prepend"
    id: int | None = None
    sent_at: int | None = None
    hide_deleted: bool = False


def add_message(
    state: State,
    sender: str,
    *,
    to_user: str | None = None,
    to_group: str | None = None,
    text: str | None = "hi",
    type: str | None = None,
    category: str = "message",
    sent_at: int | None = None,
    attachments: Iterable[Mapping[str, Any]] = (),
    metadata: Mapping[str, Any] | None = None,
    edited_at: int | None = None,
    deleted_at: int | None = None,
    action: str | None = None,
    on: str | None = None,
) -> MessageRecord:
    """One message of any shape API.md §4.3 lists; see ``FakeCometChat.add_messages``."""
    attachments = [dict(item) for item in attachments]
    for item in attachments:
        unknown = set(item) - set(ATTACHMENT_KEYS)
        if unknown or "url" not in item:
            raise ValueError(f"an attachment needs a url and only {', '.join(ATTACHMENT_KEYS)}")
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}")
    if (category == "action") != (action is not None):
        raise ValueError("action messages (category 'action') and only they take an action")
    with state.lock:
        record = state.send_message(
            sender, to_user=to_user, to_group=to_group, text=text or "", sent_at=sent_at
        )
        record.category = category
        body = dict(message_json(state, record)["data"])
        if action is not None:
            record.type = type or ("message" if action in MESSAGE_ACTIONS else "groupMember")
            body = {"action": action, "entities": _action_entities(state, record, on)}
        else:
            record.type = type or ("file" if attachments else "text")
            if not text:
                body.pop("text")
            if attachments:
                body["attachments"] = attachments
        if metadata is not None:
            body["metadata"] = dict(metadata)
        record.data = body
        if edited_at is not None:
            record.fields = {
                "editedAt": edited_at,
                "editedBy": record.sender,
                "updatedAt": edited_at,
            }
        if deleted_at is not None:
            state.delete_message(record, by=record.sender, at=deleted_at)
        state.changed()
        return record


def _action_entities(state: State, record: MessageRecord, on: str | None) -> JSON:
    """``by``/``on``/``for`` as in the fixtures' action ``lastMessage`` (``unbanned``)."""
    target = on or record.sender
    entities: JSON = {
        "by": {"entity": entity_user(state, record.sender), "entityType": "user"},
        "on": {"entity": entity_user(state, target), "entityType": "user"},
    }
    if record.receiver_type == "group":
        entities["for"] = {"entity": entity_group(state, record.receiver), "entityType": "group"}
    else:
        entities["for"] = {"entity": entity_user(state, record.receiver), "entityType": "user"}
    return entities


def message_page(
    state: State,
    conversation_id: str,
    query: MessageQuery,
    *,
    meta_shape: str = "next",
    pagination_mode: str = "exact",
    omit_pagination_keys: Iterable[str] = (),
) -> JSON:
    """The answer to one message list request over ``conversation_id``'s history."""
    rows: Sequence[MessageRecord] = state.history.get(conversation_id, ())
    if query.hide_deleted:
        rows = [m for m in rows if not (m.fields and "deletedAt" in m.fields)]
    prepend = query.affix == "prepend"
    if query.id is not None:
        cursor = query.id
        rows = [m for m in rows if (m.id <= cursor if prepend else m.id >= cursor)]
    elif query.sent_at is not None:
        moment = query.sent_at
        rows = [m for m in rows if (m.sent_at < moment if prepend else m.sent_at > moment)]
    chunk = rows[-query.limit :] if prepend else rows[: query.limit]
    data = [message_json(state, message) for message in chunk]
    following: JSON | None = None
    if chunk:
        edge = chunk[0] if prepend else chunk[-1]
        step = -1 if prepend else 1
        following = {"affix": query.affix, "sentAt": edge.sent_at, "id": str(edge.id + step)}
    if meta_shape == "cursor":
        meta = _cursor_meta(len(rows), len(chunk), query.limit, following, pagination_mode)
        for key in omit_pagination_keys:
            meta["pagination"].pop(key, None)
    else:
        meta = {"current": {"limit": query.limit, "count": len(chunk)}}
        if following is not None:
            meta["next"] = following
    return {"data": data, "meta": meta}


def _cursor_meta(
    total: int, count: int, limit: int, following: JSON | None, pagination_mode: str
) -> JSON:
    more = total > count
    if pagination_mode == "lookahead":
        total, total_pages = 0, 2 if more else 1
    else:
        total_pages = max(1, math.ceil(total / limit))
    meta: JSON = {
        "pagination": {
            "total": total,
            "count": count,
            "per_page": limit,
            "current_page": 1,
            "total_pages": total_pages,
        }
    }
    if following is not None:
        meta["cursor"] = following
    return meta
