"""CometChat webhook deliveries (API.md §7): the envelope parsed into what to refresh.

Stdlib only, the same layer as :mod:`.types`, and the same kind of boundary: a delivery comes from
the network, so every id in it is held to the rules of the ids we send (``ids.validate_id``)
before anything is stored or used, and the envelope must be JSON every supported database stores
(``types.check_storable``). Anything else raises :class:`WebhookPayloadError`, a
:class:`~django_cometchat.exceptions.CometChatResponseError`, whose text never repeats the value
it refused (a hostile id is neither stored nor used, not even in an error message).

:func:`parse_webhook` returns a frozen :class:`Delivery`: the trigger, how to deduplicate it, the
app it is for, and what to refresh: (owner UID, conversation id) pairs, or a group whose stored
conversations fan out to the owners holding one. Which owners this site knows is the services'
business, not this one's.

The shapes accepted are the published ones (API.md §7, ``fixtures/webhook.*.json``), current and
legacy, and a few plausible variants met before:

* ``message_sent`` / ``message_edited`` / ``message_deleted``: ``data.message`` is a message
  object; an edit or deletion arrives as an action message whose edited or deleted message sits in
  ``data.message.data.entities.on.entity``. Legacy ``after_message`` carries the message as
  ``data`` itself.
* ``message_delivery_receipt`` / ``message_read_receipt``, current: ``data.{receiver,
  receiverType, sender, messageSender, body: {action, messageId, user, timestamp}}``, the reader
  being ``body.user`` (else ``sender``). Legacy: ``data.{messageId, receiptType, readAt |
  deliveredAt, messageSender, receiptSender, receiptReceiver, receiverType}``, the reader being
  ``receiptSender`` and a group receipt naming the group in ``receiptReceiver``. A user may be a
  UID or a user object (``{"uid": …}``, or an entity wrapper ``{"entity": {"uid": …}}``).
* ``user_blocked`` / ``user_unblocked``: ``data.by`` blocked (unblocked) every user of
  ``data.users``, an object keyed by UID. Also accepted: the blocker under another of
  ``BLOCKER_KEYS`` and the blocked user, a list of them, or an object keyed by UID under another
  of ``BLOCKED_KEYS``. At most ``MAX_BLOCKED`` users.
* ``group_member_kicked`` / ``_left`` / ``_banned`` (the members lost the group) and
  ``group_member_added`` / ``_joined`` / ``_unbanned`` (they gained it): ``data.group`` (``guid``,
  else ``conversationId`` ``group_<guid>``) and ``data.members``, an object keyed by UID (or a
  list of users), at most ``MAX_MEMBERS``. ``group_deleted``: ``data.group`` only.

Dedupe keys (CometChat sends no event id and retries after 10 s and 30 s) and how long they hold:

* message events, for good: the trigger, the message's id and ``updatedAt`` (``sentAt`` when
  absent), and for an edit or deletion also the id and ``updatedAt`` (else
  ``editedAt``/``deletedAt``) of the message it acts on;
* receipts, for good: the trigger, ``messageId``, the reader and the receipt's ``timestamp``
  (else ``readAt``/``deliveredAt``);
* blocks: the trigger, both UIDs, and the body's timestamp when it has one (then for good). The
  published body has none: then the hash of the raw ``data``, and the key holds only within
  ``RETRY_HORIZON_SECONDS`` and only while nothing newer from the same blocker (``topic``)
  arrived: block, unblock, block with byte-identical bodies are three events;
* group membership and ``group_deleted`` (no event time either: the group's ``updatedAt`` does
  not move with each membership change): the trigger, the GUID, the members and the hash of
  ``data``, within the horizon and while nothing newer about the same group arrived;
* any other trigger: the trigger and the hash of the raw ``data``, within the horizon.

The webhook's own id (``webhook``) is left out on purpose: two webhooks pointed at the same URL
(say, while credentials rotate) deliver the same event once. So are ``appId`` and ``region``: a
delivery for another app is recorded without a key (:func:`foreign_app`), so it never makes one
of this app's events a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from .exceptions import CometChatInvalidId
from .ids import GROUP_PREFIX, USER_SEPARATOR, IdKind, validate_id
from .types import MAX_INTEGER, PayloadShapeError, check_storable

# -- triggers ----------------------------------------------------------------------------------

MESSAGE_TRIGGERS = ("message_sent", "message_edited", "message_deleted")
ACTION_TRIGGERS = ("message_edited", "message_deleted")  # an action message about another one
LEGACY_MESSAGE_TRIGGERS = ("after_message",)  # legacy webhooks: ``data`` is the message
RECEIPT_TRIGGERS = ("message_delivery_receipt", "message_read_receipt")  # current and legacy
BLOCK_TRIGGERS = ("user_blocked", "user_unblocked")
MEMBER_LOST_TRIGGERS = ("group_member_kicked", "group_member_left", "group_member_banned")
MEMBER_GAINED_TRIGGERS = ("group_member_added", "group_member_joined", "group_member_unbanned")
GROUP_DELETED = "group_deleted"
GROUP_TRIGGERS = (*MEMBER_LOST_TRIGGERS, *MEMBER_GAINED_TRIGGERS, GROUP_DELETED)
HANDLED_TRIGGERS = (
    *MESSAGE_TRIGGERS,
    *LEGACY_MESSAGE_TRIGGERS,
    *RECEIPT_TRIGGERS,
    *BLOCK_TRIGGERS,
    *GROUP_TRIGGERS,
)
# Every trigger value CometChat publishes (API.md §7: the current trigger table, then the legacy
# ones), for the admin's filter: a constant list, never a query of the values stored. A trigger
# not listed here is still recorded (and ignored).
KNOWN_TRIGGERS: tuple[str, ...] = (
    # Message
    *MESSAGE_TRIGGERS,
    *RECEIPT_TRIGGERS,
    "message_delivered_to_all",
    "message_read_by_all",
    "message_reaction_added",
    "message_reaction_removed",
    "user_mentioned",
    # User
    *BLOCK_TRIGGERS,
    "user_connection_status_changed",
    # Group
    "group_created",
    "group_updated",
    GROUP_DELETED,
    "group_member_added",
    "group_member_removed",
    "group_member_banned",
    "group_member_unbanned",
    "group_member_joined",
    "group_member_left",
    "group_member_kicked",
    "group_member_scope_changed",
    "group_owner_transferred",
    # Call / meeting
    "call_initiated",
    "call_started",
    "call_ended",
    "call_participant_joined",
    "call_participant_left",
    "call_busy",
    "call_cancelled",
    "call_rejected",
    "call_unanswered",
    "meeting_started",
    "meeting_ended",
    "meeting_participant_joined",
    "meeting_participant_left",
    "recording_generated",
    "transcription_generated",
    # Moderation
    "moderation_engine_approved",
    "moderation_engine_blocked",
    "moderation_manual_approved",
    "moderation_engine_failed",
    # Campaigns, notifications, feeds
    "after_campaign_completed",
    "after_campaign_failed",
    "after_notification_created",
    "after_feed_item_sent",
    "after_feed_item_delivered",
    "after_feed_item_read",
    "after_feed_item_interacted",
    "after_push_notification_sent",
    "after_push_notification_delivered",
    "after_push_notification_clicked",
    # Legacy webhooks (the receipts are listed above, under the same names)
    "before_message",
    *LEGACY_MESSAGE_TRIGGERS,
    "after_connection_status_changed",
)
# What a trigger may look like to be stored at all (CometChat's are lowercase snake case).
MAX_TRIGGER_LENGTH = 64
_TRIGGER_RE = re.compile(rf"[a-z][a-z0-9_]{{0,{MAX_TRIGGER_LENGTH - 1}}}")
_INTEGER_TEXT = re.compile(r"[0-9]{1,19}")

# CometChat retries a failed delivery after 10 s and again after 30 s (API.md §7): a body without
# an event time is a retry only within this many seconds of the first delivery. Five minutes
# leaves room for CometChat's own delays and a clock or two, and is short enough that the same
# action taken again later (block, unblock, block) is never mistaken for a retry.
RETRY_HORIZON_SECONDS = 300

BLOCKER_KEYS = ("by", "user", "blockedBy", "blocker", "uid", "sender")
BLOCKED_KEYS = (
    "users",
    "blockedUser",
    "blocked",
    "blockee",
    "on",
    "blockedUid",
    "blockedUids",
    "receiver",
)
BLOCK_TIME_KEYS = ("blockedAt", "unblockedAt", "timestamp", "updatedAt", "createdAt", "at")
MAX_BLOCKED = 25  # users one block event may name; each is two refreshes
# Members one membership event may name. Each is at most one refresh, and only for a member who
# holds a stored copy of the group; API.md gives no limit for CometChat's add-members call.
MAX_MEMBERS = 1000


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


def trigger_of(body: Any) -> str:
    """The trigger of any decoded body when it looks like one (for recording a refused
    delivery), else an empty string."""
    trigger = body.get("trigger") if isinstance(body, Mapping) else None
    return trigger if isinstance(trigger, str) and _TRIGGER_RE.fullmatch(trigger) else ""


def parse_webhook(body: Any) -> Delivery:
    """A decoded webhook body as a :class:`Delivery`, or :class:`WebhookPayloadError`."""
    envelope = _object(body, "the webhook body")
    try:
        check_storable(envelope, "the webhook body")
    except PayloadShapeError as exc:
        raise WebhookPayloadError(str(exc)) from None
    trigger = envelope.get("trigger")
    if not isinstance(trigger, str) or not _TRIGGER_RE.fullmatch(trigger):
        raise WebhookPayloadError(
            f"trigger must be a lowercase event name of at most {MAX_TRIGGER_LENGTH} characters"
        )
    data = envelope.get("data")
    if trigger in MESSAGE_TRIGGERS or trigger in LEGACY_MESSAGE_TRIGGERS:
        delivery = _message_delivery(trigger, _object(data, "data"))
    elif trigger in RECEIPT_TRIGGERS:
        delivery = _receipt_delivery(trigger, _object(data, "data"))
    elif trigger in BLOCK_TRIGGERS:
        delivery = _block_delivery(trigger, _object(data, "data"))
    elif trigger in GROUP_TRIGGERS:
        delivery = _group_delivery(trigger, _object(data, "data"))
    else:
        delivery = Delivery(
            trigger, dedupe_key(trigger, digest(data)), horizon=RETRY_HORIZON_SECONDS
        )
    return replace(
        delivery,
        app_id=_envelope_text(envelope.get("appId")),
        region=_envelope_text(envelope.get("region")),
        raw=envelope,
    )


def _envelope_text(value: Any) -> str | None:
    """``appId`` / ``region`` as compared: a non-blank string, lowercased; else unknown."""
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


# -- the events --------------------------------------------------------------------------------


def _message_delivery(trigger: str, data: Mapping[str, Any]) -> Delivery:
    where = "data" if trigger in LEGACY_MESSAGE_TRIGGERS else "data.message"
    message = _object(data if where == "data" else data.get("message"), where)
    sent = _first_time(message, ("updatedAt", "sentAt"), where)
    parts: list[Any] = [_message_id(message.get("id"), f"{where}.id", required=True), sent]
    subject, subject_where = message, where
    if trigger in ACTION_TRIGGERS:
        on = _object_at(message, ("data", "entities", "on", "entity"))
        if on is not None:
            inner = f"{where}.data.entities.on.entity"
            parts += [
                _message_id(on.get("id"), f"{inner}.id", required=False),
                _first_time(on, ("updatedAt", "editedAt", "deletedAt"), inner),
            ]
            if on.get("receiverType") is not None:  # the acted-on message names the parties
                subject, subject_where = on, inner
    key = dedupe_key(trigger, *parts)
    when = _seconds(sent)
    receiver_type = subject.get("receiverType")
    if receiver_type == "group":
        guid = _group_of(subject, subject_where)
        return Delivery(trigger, key, group_guid=guid, occurred_at=when)
    if receiver_type != "user":
        raise WebhookPayloadError(f"{subject_where}.receiverType must be 'user' or 'group'")
    sender = _id(subject.get("sender"), f"{subject_where}.sender", "UID")
    receiver = _id(subject.get("receiver"), f"{subject_where}.receiver", "UID")
    given = subject.get("conversationId")
    conversation_id = (
        pair_conversation_id(sender, receiver)
        if given is None
        else _id(given, f"{subject_where}.conversationId", "conversation id")
    )
    return Delivery(trigger, key, _targets(conversation_id, (sender, receiver)), occurred_at=when)


def _receipt_delivery(trigger: str, data: Mapping[str, Any]) -> Delivery:
    """The reader's copy (its unread count changed) and, for a one-to-one receipt, the copy of
    the message's sender (its receipts changed)."""
    if data.get("receiptSender") is not None:  # legacy: API.md §7 "Legacy receipts"
        return _legacy_receipt_delivery(trigger, data)
    # Current webhooks nest the receipt in data.body; older variants put its fields in data.
    body = data.get("body")
    receipt = _object(body, "data.body") if body is not None else data
    where = "data.body" if body is not None else "data"
    message_id = _message_id(
        _first(receipt, data, "messageId"), f"{where}.messageId", required=True
    )
    user_value = receipt.get("user")
    reader = (
        _user(user_value, f"{where}.user")
        if user_value is not None
        else _user(data.get("sender"), "data.sender")
    )
    timestamp = _first_time(receipt, ("timestamp", "readAt", "deliveredAt"), where)
    key = dedupe_key(trigger, message_id, reader, timestamp)
    when = _seconds(timestamp)
    receiver_type = _first(data, receipt, "receiverType")
    if receiver_type == "group":
        guid = _party(_first(data, receipt, "receiver"), "data.receiver", "GUID")
        return Delivery(trigger, key, (Target(reader, GROUP_PREFIX + guid),), occurred_at=when)
    if receiver_type != "user":
        raise WebhookPayloadError("data.receiverType must be 'user' or 'group'")
    # The other party: the sender of the message that was read, to whom the receipt goes.
    other_value = _first(data, receipt, "messageSender")
    other = (
        _user(other_value, "data.messageSender")
        if other_value is not None
        else _user(_first(data, receipt, "receiver"), "data.receiver")
    )
    return _pair_receipt(trigger, key, reader, other, when)


def _legacy_receipt_delivery(trigger: str, data: Mapping[str, Any]) -> Delivery:
    """``receiptSender`` read (received) the message ``messageSender`` wrote; a group receipt
    names the group in ``receiptReceiver``."""
    message_id = _message_id(data.get("messageId"), "data.messageId", required=True)
    reader = _user(data["receiptSender"], "data.receiptSender")
    timestamp = _first_time(data, ("readAt", "deliveredAt", "timestamp"), "data")
    key = dedupe_key(trigger, message_id, reader, timestamp)
    when = _seconds(timestamp)
    receiver_type = data.get("receiverType")
    if receiver_type == "group":
        guid = _party(data.get("receiptReceiver"), "data.receiptReceiver", "GUID")
        return Delivery(trigger, key, (Target(reader, GROUP_PREFIX + guid),), occurred_at=when)
    if receiver_type != "user":
        raise WebhookPayloadError("data.receiverType must be 'user' or 'group'")
    other = _user(data.get("messageSender"), "data.messageSender")
    return _pair_receipt(trigger, key, reader, other, when)


def _pair_receipt(trigger: str, key: str, reader: str, other: str, when: float | None) -> Delivery:
    if other == reader:
        raise WebhookPayloadError("a user receipt needs two different users")
    targets = _targets(pair_conversation_id(reader, other), (reader, other))
    return Delivery(trigger, key, targets, occurred_at=when)


def _block_delivery(trigger: str, data: Mapping[str, Any]) -> Delivery:
    blocker_key = _present(data, BLOCKER_KEYS, "the blocking user")
    blocked_key = _present(data, BLOCKED_KEYS, "the blocked user")
    blocker = _user(data[blocker_key], f"data.{blocker_key}")
    named = _users(data[blocked_key], f"data.{blocked_key}", MAX_BLOCKED)
    blocked = sorted(set(named) - {blocker})
    if not blocked:
        raise WebhookPayloadError("a block event needs two different users")
    times = [key for key in BLOCK_TIME_KEYS if data.get(key) is not None]
    when = _time(data[times[0]], f"data.{times[0]}") if times else None
    blocking = trigger == "user_blocked"
    targets: list[Target] = []
    for uid in blocked:
        conversation_id = pair_conversation_id(blocker, uid)
        targets.append(Target(blocker, conversation_id, ("blockedByMe", blocking)))
        targets.append(Target(uid, conversation_id, ("hasBlockedMe", blocking)))
    if when is not None:  # a body with its own time names one event for good
        key = dedupe_key(trigger, blocker, blocked, when)
        return Delivery(trigger, key, tuple(targets), occurred_at=_seconds(when))
    # The published body has no time (API.md §7): see the module's docstring.
    return Delivery(
        trigger,
        dedupe_key(trigger, blocker, blocked, digest(data)),
        tuple(targets),
        horizon=RETRY_HORIZON_SECONDS,
        topic=dedupe_key("user_block", blocker),
    )


def _group_delivery(trigger: str, data: Mapping[str, Any]) -> Delivery:
    group = _object(data.get("group"), "data.group")
    guid = _group_guid(group, "data.group")
    members: tuple[str, ...] | None = None
    if trigger != GROUP_DELETED:
        members = tuple(_users(data.get("members"), "data.members", MAX_MEMBERS))
    return Delivery(
        trigger,
        dedupe_key(trigger, guid, members or [], digest(data)),
        group_guid=guid,
        members=members,
        gone=trigger in MEMBER_LOST_TRIGGERS or trigger == GROUP_DELETED,
        horizon=RETRY_HORIZON_SECONDS,
        topic=dedupe_key("group", guid),
    )


# -- keys and ids ------------------------------------------------------------------------------


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


def _targets(conversation_id: str, uids: Iterable[str]) -> tuple[Target, ...]:
    return tuple(Target(uid, conversation_id) for uid in dict.fromkeys(uids))


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WebhookPayloadError(f"{what} must be a JSON object")
    return value


def _object_at(value: Mapping[str, Any], path: Sequence[str]) -> Mapping[str, Any] | None:
    for key in path:
        child = value.get(key)
        if not isinstance(child, Mapping):
            return None
        value = child
    return value


def _first(primary: Mapping[str, Any], secondary: Mapping[str, Any], key: str) -> Any:
    value = primary.get(key)
    return value if value is not None else secondary.get(key)


def _present(data: Mapping[str, Any], keys: Sequence[str], what: str) -> str:
    for key in keys:
        if data.get(key) is not None:
            return key
    raise WebhookPayloadError(f"data names no {what} (looked for {', '.join(keys)})")


def _id(value: Any, what: str, kind: IdKind) -> str:
    if not isinstance(value, str):
        raise WebhookPayloadError(f"{what} must be a {kind} string")
    try:
        return validate_id(value, kind)
    except CometChatInvalidId:
        raise WebhookPayloadError(f"{what} is not a valid {kind}") from None


def _party(value: Any, what: str, kind: IdKind) -> str:
    """A UID or GUID given as a string or as an object (``{"uid"}``, ``{"guid"}``, or an entity
    wrapper ``{"entity": {...}}``)."""
    if isinstance(value, Mapping) and isinstance(value.get("entity"), Mapping):
        value, what = value["entity"], f"{what}.entity"
    if isinstance(value, Mapping):
        name = "guid" if kind == "GUID" else "uid"
        value, what = value.get(name), f"{what}.{name}"
    return _id(value, what, kind)


def _user(value: Any, what: str) -> str:
    return _party(value, what, "UID")


def _is_one_user(value: Mapping[str, Any]) -> bool:
    """A user object (``{"uid": "bob"}``, ``{"entity": {...}}``) rather than users by UID."""
    return isinstance(value.get("uid"), str) or isinstance(value.get("entity"), Mapping)


def _users(value: Any, what: str, limit: int) -> list[str]:
    """The UIDs of 1 to ``limit`` users, sorted, given as an object keyed by UID (CometChat's
    ``users`` and ``members``: each value a user object whose ``uid``, if any, is its key), a
    list of UIDs or user objects, or one UID or user object."""
    if isinstance(value, Mapping) and not _is_one_user(value):
        if not value or len(value) > limit:
            raise WebhookPayloadError(f"{what} must name 1 to {limit} users")
        uids: set[str] = set()
        for key, entry in value.items():
            uid = _id(key, f"{what} (a key)", "UID")
            named = isinstance(entry, Mapping) and entry.get("uid") is not None
            if named and _user(entry, f"{what}.<uid>") != uid:
                raise WebhookPayloadError(f"{what}: a user's uid differs from its key")
            uids.add(uid)
        return sorted(uids)
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > limit:
        raise WebhookPayloadError(f"{what} must name 1 to {limit} users")
    return sorted({_user(entry, what) for entry in values})


def _group_guid(group: Mapping[str, Any], where: str) -> str:
    """A group object's GUID: ``guid``, else its ``group_<guid>`` conversation id."""
    if group.get("guid") is not None:
        return _id(group["guid"], f"{where}.guid", "GUID")
    conversation_id = group.get("conversationId")
    if isinstance(conversation_id, str) and conversation_id.startswith(GROUP_PREFIX):
        return _id(conversation_id[len(GROUP_PREFIX) :], f"{where}.conversationId", "GUID")
    raise WebhookPayloadError(f"{where} names no group (guid or conversationId)")


def _group_of(message: Mapping[str, Any], where: str) -> str:
    """A group message's GUID: its receiver, else its ``group_<guid>`` conversation id."""
    receiver = message.get("receiver")
    if receiver is not None:
        return _party(receiver, f"{where}.receiver", "GUID")
    conversation_id = message.get("conversationId")
    if isinstance(conversation_id, str) and conversation_id.startswith(GROUP_PREFIX):
        return _id(conversation_id[len(GROUP_PREFIX) :], f"{where}.conversationId", "GUID")
    raise WebhookPayloadError(f"{where} names no group (receiver or conversationId)")


def _message_id(value: Any, what: str, *, required: bool) -> str | None:
    """A message id: a string on the wire ("50"), an integer in request bodies."""
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INTEGER:
        value = str(value)
    return _id(value, what, "message id")


def _time(value: Any, what: str) -> int:
    """Epoch seconds (or the milliseconds of legacy webhooks): an integer or a digit string."""
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INTEGER:
        return value
    raise WebhookPayloadError(f"{what} must be a non-negative integer timestamp")


def _seconds(value: int | None) -> float | None:
    """An event time as epoch seconds: legacy webhooks send milliseconds (any value past
    10^11, which as seconds would be the year 5138)."""
    if value is None:
        return None
    return value / 1000 if value >= 10**11 else float(value)


def _first_time(obj: Mapping[str, Any], keys: Sequence[str], where: str) -> int | None:
    for key in keys:
        if obj.get(key) is not None:
            return _time(obj[key], f"{where}.{key}")
    return None
