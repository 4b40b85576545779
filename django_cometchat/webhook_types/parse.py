"""A webhook body (API.md §7) parsed into a :class:`.delivery.Delivery`, one trigger family
at a time.

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
delivery for another app is recorded without a key (:func:`.delivery.foreign_app`), so it
never makes one of this app's events a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..conversation_types import PayloadShapeError, check_storable
from ..ids import GROUP_PREFIX
from .delivery import (
    RETRY_HORIZON_SECONDS,
    Delivery,
    Target,
    WebhookPayloadError,
    conversation_targets,
    dedupe_key,
    digest,
    pair_conversation_id,
)
from .fields import (
    checked_id,
    epoch_seconds,
    first_given,
    first_timestamp,
    group_object_guid,
    json_object,
    message_group_guid,
    message_id_of,
    object_at,
    party_id,
    present_key,
    timestamp_of,
    user_id,
    user_ids,
)
from .triggers import (
    ACTION_TRIGGERS,
    BLOCK_TRIGGERS,
    GROUP_DELETED,
    GROUP_TRIGGERS,
    LEGACY_MESSAGE_TRIGGERS,
    MAX_TRIGGER_LENGTH,
    MEMBER_LOST_TRIGGERS,
    MESSAGE_TRIGGERS,
    RECEIPT_TRIGGERS,
    is_trigger,
)

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


def parse_webhook(body: Any) -> Delivery:
    """A decoded webhook body as a :class:`Delivery`, or :class:`WebhookPayloadError`."""
    envelope = json_object(body, "the webhook body")
    try:
        check_storable(envelope, "the webhook body")
    except PayloadShapeError as exc:
        raise WebhookPayloadError(str(exc)) from None
    trigger = envelope.get("trigger")
    if not is_trigger(trigger):
        raise WebhookPayloadError(
            f"trigger must be a lowercase event name of at most {MAX_TRIGGER_LENGTH} characters"
        )
    data = envelope.get("data")
    if trigger in MESSAGE_TRIGGERS or trigger in LEGACY_MESSAGE_TRIGGERS:
        delivery = _message_delivery(trigger, json_object(data, "data"))
    elif trigger in RECEIPT_TRIGGERS:
        delivery = _receipt_delivery(trigger, json_object(data, "data"))
    elif trigger in BLOCK_TRIGGERS:
        delivery = _block_delivery(trigger, json_object(data, "data"))
    elif trigger in GROUP_TRIGGERS:
        delivery = _group_delivery(trigger, json_object(data, "data"))
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
    message = json_object(data if where == "data" else data.get("message"), where)
    sent = first_timestamp(message, ("updatedAt", "sentAt"), where)
    parts: list[Any] = [message_id_of(message.get("id"), f"{where}.id", required=True), sent]
    subject, subject_where = message, where
    if trigger in ACTION_TRIGGERS:
        on = object_at(message, ("data", "entities", "on", "entity"))
        if on is not None:
            inner = f"{where}.data.entities.on.entity"
            parts += [
                message_id_of(on.get("id"), f"{inner}.id", required=False),
                first_timestamp(on, ("updatedAt", "editedAt", "deletedAt"), inner),
            ]
            if on.get("receiverType") is not None:  # the acted-on message names the parties
                subject, subject_where = on, inner
    key = dedupe_key(trigger, *parts)
    when = epoch_seconds(sent)
    receiver_type = subject.get("receiverType")
    if receiver_type == "group":
        guid = message_group_guid(subject, subject_where)
        return Delivery(trigger, key, group_guid=guid, occurred_at=when)
    if receiver_type != "user":
        raise WebhookPayloadError(f"{subject_where}.receiverType must be 'user' or 'group'")
    sender = checked_id(subject.get("sender"), f"{subject_where}.sender", "UID")
    receiver = checked_id(subject.get("receiver"), f"{subject_where}.receiver", "UID")
    given = subject.get("conversationId")
    conversation_id = (
        pair_conversation_id(sender, receiver)
        if given is None
        else checked_id(given, f"{subject_where}.conversationId", "conversation id")
    )
    return Delivery(
        trigger, key, conversation_targets(conversation_id, (sender, receiver)), occurred_at=when
    )


def _receipt_delivery(trigger: str, data: Mapping[str, Any]) -> Delivery:
    """The reader's copy (its unread count changed) and, for a one-to-one receipt, the copy of
    the message's sender (its receipts changed)."""
    if data.get("receiptSender") is not None:  # legacy: API.md §7 "Legacy receipts"
        return _legacy_receipt_delivery(trigger, data)
    # Current webhooks nest the receipt in data.body; older variants put its fields in data.
    body = data.get("body")
    receipt = json_object(body, "data.body") if body is not None else data
    where = "data.body" if body is not None else "data"
    message_id = message_id_of(
        first_given(receipt, data, "messageId"), f"{where}.messageId", required=True
    )
    user_value = receipt.get("user")
    reader = (
        user_id(user_value, f"{where}.user")
        if user_value is not None
        else user_id(data.get("sender"), "data.sender")
    )
    timestamp = first_timestamp(receipt, ("timestamp", "readAt", "deliveredAt"), where)
    key = dedupe_key(trigger, message_id, reader, timestamp)
    when = epoch_seconds(timestamp)
    receiver_type = first_given(data, receipt, "receiverType")
    if receiver_type == "group":
        guid = party_id(first_given(data, receipt, "receiver"), "data.receiver", "GUID")
        return Delivery(trigger, key, (Target(reader, GROUP_PREFIX + guid),), occurred_at=when)
    if receiver_type != "user":
        raise WebhookPayloadError("data.receiverType must be 'user' or 'group'")
    # The other party: the sender of the message that was read, to whom the receipt goes.
    other_value = first_given(data, receipt, "messageSender")
    other = (
        user_id(other_value, "data.messageSender")
        if other_value is not None
        else user_id(first_given(data, receipt, "receiver"), "data.receiver")
    )
    return _pair_receipt(trigger, key, reader, other, when)


def _legacy_receipt_delivery(trigger: str, data: Mapping[str, Any]) -> Delivery:
    """``receiptSender`` read (received) the message ``messageSender`` wrote; a group receipt
    names the group in ``receiptReceiver``."""
    message_id = message_id_of(data.get("messageId"), "data.messageId", required=True)
    reader = user_id(data["receiptSender"], "data.receiptSender")
    timestamp = first_timestamp(data, ("readAt", "deliveredAt", "timestamp"), "data")
    key = dedupe_key(trigger, message_id, reader, timestamp)
    when = epoch_seconds(timestamp)
    receiver_type = data.get("receiverType")
    if receiver_type == "group":
        guid = party_id(data.get("receiptReceiver"), "data.receiptReceiver", "GUID")
        return Delivery(trigger, key, (Target(reader, GROUP_PREFIX + guid),), occurred_at=when)
    if receiver_type != "user":
        raise WebhookPayloadError("data.receiverType must be 'user' or 'group'")
    other = user_id(data.get("messageSender"), "data.messageSender")
    return _pair_receipt(trigger, key, reader, other, when)


def _pair_receipt(trigger: str, key: str, reader: str, other: str, when: float | None) -> Delivery:
    if other == reader:
        raise WebhookPayloadError("a user receipt needs two different users")
    targets = conversation_targets(pair_conversation_id(reader, other), (reader, other))
    return Delivery(trigger, key, targets, occurred_at=when)


def _block_delivery(trigger: str, data: Mapping[str, Any]) -> Delivery:
    blocker_key = present_key(data, BLOCKER_KEYS, "the blocking user")
    blocked_key = present_key(data, BLOCKED_KEYS, "the blocked user")
    blocker = user_id(data[blocker_key], f"data.{blocker_key}")
    named = user_ids(data[blocked_key], f"data.{blocked_key}", MAX_BLOCKED)
    blocked = sorted(set(named) - {blocker})
    if not blocked:
        raise WebhookPayloadError("a block event needs two different users")
    times = [key for key in BLOCK_TIME_KEYS if data.get(key) is not None]
    when = timestamp_of(data[times[0]], f"data.{times[0]}") if times else None
    blocking = trigger == "user_blocked"
    targets: list[Target] = []
    for uid in blocked:
        conversation_id = pair_conversation_id(blocker, uid)
        targets.append(Target(blocker, conversation_id, ("blockedByMe", blocking)))
        targets.append(Target(uid, conversation_id, ("hasBlockedMe", blocking)))
    if when is not None:  # a body with its own time names one event for good
        key = dedupe_key(trigger, blocker, blocked, when)
        return Delivery(trigger, key, tuple(targets), occurred_at=epoch_seconds(when))
    # The published body has no time (API.md §7): see the module's docstring.
    return Delivery(
        trigger,
        dedupe_key(trigger, blocker, blocked, digest(data)),
        tuple(targets),
        horizon=RETRY_HORIZON_SECONDS,
        topic=dedupe_key("user_block", blocker),
    )


def _group_delivery(trigger: str, data: Mapping[str, Any]) -> Delivery:
    group = json_object(data.get("group"), "data.group")
    guid = group_object_guid(group, "data.group")
    members: tuple[str, ...] | None = None
    if trigger != GROUP_DELETED:
        members = tuple(user_ids(data.get("members"), "data.members", MAX_MEMBERS))
    return Delivery(
        trigger,
        dedupe_key(trigger, guid, members or [], digest(data)),
        group_guid=guid,
        members=members,
        gone=trigger in MEMBER_LOST_TRIGGERS or trigger == GROUP_DELETED,
        horizon=RETRY_HORIZON_SECONDS,
        topic=dedupe_key("group", guid),
    )
