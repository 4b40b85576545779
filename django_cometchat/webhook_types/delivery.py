"""What a parsed webhook delivery is: the :class:`Delivery`, the :class:`Target` conversations it
names, its dedupe key, and the error a body that cannot be one raises.

Stdlib only, the same layer as :mod:`..types`: which owners this site knows is the services'
business, not this one's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..conversation_types import PayloadShapeError
from ..ids import GROUP_PREFIX, USER_SEPARATOR, validate_id
from .triggers import HANDLED_TRIGGERS

# CometChat retries a failed delivery after 10 s and again after 30 s (API.md §7): a body without
# an event time is a retry only within this many seconds of the first delivery. Five minutes
# leaves room for CometChat's own delays and a clock or two, and is short enough that the same
# action taken again later (block, unblock, block) is never mistaken for a retry.
RETRY_HORIZON_SECONDS = 300


class WebhookPayloadError(PayloadShapeError):
    """A webhook body that API.md §7 does not allow: not an object, no trigger, a missing or
    invalid id, a value no database stores. Its text names the field, never the value."""


@dataclass(frozen=True)
class Target:
    """One conversation to refresh, on its owner's behalf."""

    uid: str
    conversation_id: str
    # A block event's news about the peer, which no single-conversation fetch returns:
    # ("blockedByMe", blocked?) in the blocker's copy, ("hasBlockedMe", blocked?) in the other's.
    peer_flag: tuple[str, bool] | None = None
    # The event says the owner no longer holds the conversation (kicked, left, banned, the group
    # deleted): when CometChat confirms it, the stored copy is marked missing, not failed.
    expect_gone: bool = False


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery, parsed.

    ``targets`` are the (owner, conversation) pairs the event names; ``group_guid`` is set
    instead for a group event: the owners holding a snapshot of ``group_<guid>`` are affected,
    all of them (a group message, ``group_deleted``) or those among ``members`` (a membership
    change). ``gone``: the affected owners lost the conversation. All empty for a trigger this
    app does not act on (``handled`` is False).

    ``dedupe_key`` identifies the event across CometChat's retries; ``horizon`` (seconds) is how
    long it does so, None for good; ``topic`` names what a later event may be news about (a
    blocker, a group): a key whose topic saw a newer event is no longer a retry.
    """

    trigger: str
    dedupe_key: str
    targets: tuple[Target, ...] = ()
    group_guid: str | None = None
    members: tuple[str, ...] | None = None
    gone: bool = False
    horizon: int | None = None
    topic: str | None = None
    # CometChat's time of the event, epoch seconds: a message's updatedAt (else sentAt), a
    # receipt's or a block's time; None when the body carries none (group events, the
    # published block body, triggers this app does not act on).
    occurred_at: float | None = None
    app_id: str | None = None  # the envelope's appId, lowercased (None when absent)
    region: str | None = None  # the envelope's region, lowercased (None when absent)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def handled(self) -> bool:
        return self.trigger in HANDLED_TRIGGERS

    @property
    def occurred_moment(self) -> datetime | None:
        """``occurred_at`` as an aware datetime, for a column; None when the body has no time
        or one past what a datetime holds (a legacy millisecond time as large as an integer)."""
        if self.occurred_at is None:
            return None
        try:
            return datetime.fromtimestamp(self.occurred_at, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None

    @property
    def group_conversation_id(self) -> str | None:
        return None if self.group_guid is None else GROUP_PREFIX + self.group_guid


def foreign_app(delivery: Delivery, *, app_id: str | None, region: str | None) -> str | None:
    """Why ``delivery`` belongs to another CometChat app than ``app_id`` in ``region``, or None.

    Compared case-insensitively, and only where both sides are known: a delivery without an
    ``appId`` (or a site without ``APP_ID``) is not judged on it, nor one without a ``region``
    (legacy webhooks may leave it out) or a site whose region says nothing (pass None). The
    reason names neither value: the delivery's is whatever its sender wrote.
    """
    if app_id and delivery.app_id is not None and delivery.app_id != app_id.strip().lower():
        return 'Another CometChat app\'s delivery: its appId is not COMETCHAT["APP_ID"].'
    if region and delivery.region is not None and delivery.region != region.strip().lower():
        return 'Another CometChat region\'s delivery: its region is not COMETCHAT["REGION"].'
    return None


def dedupe_key(trigger: str, *parts: Any) -> str:
    """SHA-256 (hex) of the trigger and the parts, as canonical JSON."""
    text = json.dumps([trigger, *parts], ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def digest(value: Any) -> str:
    """SHA-256 (hex) of a storable JSON value, keys sorted: the same data, the same digest."""
    try:
        text = json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    except TypeError:  # keys of mixed types cannot be sorted (never so from a JSON text)
        raise WebhookPayloadError("object keys must be strings") from None
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def pair_conversation_id(a: str, b: str) -> str:
    """The one-to-one conversation id of two UIDs: ``<a>_user_<b>``, sorted (API.md §3)."""
    first, second = sorted((a, b))
    return validate_id(first + USER_SEPARATOR + second, "conversation id")


def conversation_targets(conversation_id: str, uids: Iterable[str]) -> tuple[Target, ...]:
    return tuple(Target(uid, conversation_id) for uid in dict.fromkeys(uids))
