"""CometChat identifiers: validation (API.md §6) and conversation-id resolution.

An id that breaks the rules raises ``CometChatInvalidId`` here, before anything is sent: a
hostile id can neither reach CometChat nor smuggle a path segment or header into a request. The
same rules check the ids CometChat sends back before they are stored (``types``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from .exceptions import CometChatInvalidId

MAX_ID_LENGTH = 100
MAX_CONVERSATION_ID_LENGTH = 2 * MAX_ID_LENGTH + len("_user_")
# "alpha-dash": letters, digits, '-' and '_'. CometChat lowercases UIDs and GUIDs itself, so
# upper case is accepted here and lowercased.
_ID_RE = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_ID_LENGTH}}}\Z")
# A conversation id is two UIDs joined by "_user_" or "group_" + a GUID.
_CONVERSATION_ID_RE = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_CONVERSATION_ID_LENGTH}}}\Z")

GROUP_PREFIX = "group_"
USER_SEPARATOR = "_user_"

IdKind = Literal["UID", "GUID", "conversation id", "message id"]


def validate_id(value: object, kind: IdKind = "UID") -> str:
    """Return ``value`` lowercased, or raise ``CometChatInvalidId`` naming what is wrong."""
    pattern = _CONVERSATION_ID_RE if kind == "conversation id" else _ID_RE
    if not isinstance(value, str) or not pattern.match(value):
        shown = repr(value)[:60] if isinstance(value, str) else type(value).__name__
        longest = MAX_CONVERSATION_ID_LENGTH if kind == "conversation id" else MAX_ID_LENGTH
        raise CometChatInvalidId(
            f"Invalid {kind} {shown}: use 1-{longest} letters, digits, '-' or '_'"
        )
    return value.lower()


def path_segment(value: str, kind: IdKind = "UID") -> str:
    """A validated id, percent-encoded for use as one URL path segment."""
    return quote(validate_id(value, kind), safe="")


@dataclass(frozen=True)
class ConversationTarget:
    """Which endpoint serves a conversation id for a given owner."""

    kind: Literal["user", "group", "deprecated"]
    identifier: str  # the peer UID, the GUID, or the whole conversation id


def resolve_conversation_id(conversation_id: str, *, owner_uid: str) -> ConversationTarget:
    """Map a conversation id onto the supported endpoint for ``owner_uid``.

    ``<a>_user_<b>``: the peer is the party that is not the owner. UIDs may contain ``_`` (even
    ``_user_``), so the owner's UID is stripped from either end instead of splitting. That check
    runs first, because a UID may itself start with ``group_``. Otherwise ``group_<guid>`` is a
    group. Anything else falls back to the deprecated ``/conversations/{id}`` endpoint.
    """
    cid = validate_id(conversation_id, "conversation id")
    owner = validate_id(owner_uid, "UID")
    for prefix_or_suffix, peer in (
        (cid.startswith(owner + USER_SEPARATOR), cid[len(owner) + len(USER_SEPARATOR) :]),
        (cid.endswith(USER_SEPARATOR + owner), cid[: -(len(owner) + len(USER_SEPARATOR))]),
    ):
        if prefix_or_suffix and _ID_RE.match(peer):
            return ConversationTarget("user", peer)
    if cid.startswith(GROUP_PREFIX) and _ID_RE.match(cid[len(GROUP_PREFIX) :]):
        return ConversationTarget("group", cid[len(GROUP_PREFIX) :])
    return ConversationTarget("deprecated", cid)
