"""CometChat webhook deliveries (API.md §7): the envelope parsed into what to refresh.

Stdlib only, the same layer as :mod:`.types`, and the same kind of boundary: a delivery comes from
the network, so every id in it is held to the rules of the ids we send (``ids.validate_id``)
before anything is stored or used, and the envelope must be JSON every supported database stores
(``types.check_storable``). Anything else raises :class:`WebhookPayloadError`, a
:class:`~django_cometchat.exceptions.CometChatResponseError`, whose text never repeats the value
it refused (a hostile id is neither stored nor used, not even in an error message).

:func:`parse_webhook` returns a frozen :class:`Delivery`: the trigger, the dedupe key, and what to
refresh: (owner UID, conversation id) pairs, or a group whose stored conversations fan out to
every owner holding one. Which owners this site knows is the services' business, not this one's.

The shapes accepted, defensively (CometChat's docs show only ``message_sent``'s body as valid
JSON, and none of a block event's):

* ``message_sent`` / ``message_edited`` / ``message_deleted``: ``data.message`` is a message
  object; an edit or deletion arrives as an action message whose edited or deleted message sits in
  ``data.message.data.entities.on.entity``. Legacy ``after_message`` carries the message as
  ``data`` itself.
* ``message_delivery_receipt`` / ``message_read_receipt``: ``data.{receiver, receiverType, sender,
  messageSender, body: {action, messageId, user, timestamp}}``; the legacy shape's fields sit in
  ``data`` itself. A user may be a UID or a user object (``{"uid": …}``, or an entity wrapper
  ``{"entity": {"uid": …}}``).
* ``user_blocked`` / ``user_unblocked``: the blocker under one of ``BLOCKER_KEYS``, the blocked
  user (or a list of at most ``MAX_BLOCKED``) under one of ``BLOCKED_KEYS``.

Dedupe keys (CometChat sends no event id and retries after 10 s and 30 s): the SHA-256 of

* message events: the trigger, the message's id and ``updatedAt`` (``sentAt`` when absent), and
  for an edit or deletion also the id and ``updatedAt`` (else ``editedAt``/``deletedAt``) of the
  message it acts on;
* receipts: the trigger, ``messageId``, the receipt's user and its ``timestamp`` (else
  ``readAt``/``deliveredAt``);
* block events: the trigger, both UIDs, and a timestamp when the body has one, else the hash of
  the raw ``data``;
* any other trigger: the trigger and the hash of the raw ``data``.

The webhook's own id (``webhook``) is left out on purpose: two webhooks pointed at the same URL
(say, while credentials rotate) deliver the same event once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .exceptions import CometChatInvalidId
from .ids import GROUP_PREFIX, USER_SEPARATOR, IdKind, validate_id
from .types import MAX_INTEGER, PayloadShapeError, check_storable

# -- triggers ----------------------------------------------------------------------------------

MESSAGE_TRIGGERS = ("message_sent", "message_edited", "message_deleted")
ACTION_TRIGGERS = ("message_edited", "message_deleted")  # an action message about another one
LEGACY_MESSAGE_TRIGGERS = ("after_message",)  # legacy webhooks: ``data`` is the message
RECEIPT_TRIGGERS = ("message_delivery_receipt", "message_read_receipt")
BLOCK_TRIGGERS = ("user_blocked", "user_unblocked")
HANDLED_TRIGGERS = (
    *MESSAGE_TRIGGERS,
    *LEGACY_MESSAGE_TRIGGERS,
    *RECEIPT_TRIGGERS,
    *BLOCK_TRIGGERS,
)
# Every trigger CometChat documents (API.md §7), for the admin's filter: a constant list, never a
# query of the values stored. A trigger not listed here is still recorded (and ignored).
KNOWN_TRIGGERS: tuple[str, ...] = (
    *MESSAGE_TRIGGERS,
    *RECEIPT_TRIGGERS,
    "message_reaction_added",
    "message_reaction_removed",
    "user_mentioned",
    *BLOCK_TRIGGERS,
    "user_connection_status_changed",
    "group_created",
    "group_updated",
    "group_deleted",
    "group_member_added",
    "group_member_removed",
    "group_member_banned",
    "group_member_unbanned",
    "group_member_joined",
    "group_member_left",
    "group_member_kicked",
    "group_member_scope_changed",
    "group_owner_transferred",
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
    "moderation_engine_approved",
    "moderation_engine_blocked",
    "moderation_manual_approved",
    "before_message",
    *LEGACY_MESSAGE_TRIGGERS,
    "user_connection_status_change",
)
# What a trigger may look like to be stored at all (CometChat's are lowercase snake case).
MAX_TRIGGER_LENGTH = 64
_TRIGGER_RE = re.compile(rf"[a-z][a-z0-9_]{{0,{MAX_TRIGGER_LENGTH - 1}}}")
_INTEGER_TEXT = re.compile(r"[0-9]{1,19}")

BLOCKER_KEYS = ("user", "blockedBy", "blocker", "by", "uid", "sender")
BLOCKED_KEYS = ("blockedUser", "blocked", "blockee", "on", "blockedUid", "blockedUids", "receiver")
BLOCK_TIME_KEYS = ("blockedAt", "unblockedAt", "timestamp", "updatedAt", "createdAt", "at")
MAX_BLOCKED = 25  # users one block event may name; each is two refreshes


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


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery, parsed.

    ``targets`` are the (owner, conversation) pairs the event names; ``group_guid`` is set
    instead for a group message: every owner holding a snapshot of ``group_<guid>`` is affected.
    Both are empty for a trigger this app does not act on (``handled`` is False).
    """

    trigger: str
    dedupe_key: str
    targets: tuple[Target, ...] = ()
    group_guid: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def handled(self) -> bool:
        return self.trigger in HANDLED_TRIGGERS

    @property
    def group_conversation_id(self) -> str | None:
        return None if self.group_guid is None else GROUP_PREFIX + self.group_guid


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
        return _message_delivery(trigger, _object(data, "data"), envelope)
    if trigger in RECEIPT_TRIGGERS:
        return _receipt_delivery(trigger, _object(data, "data"), envelope)
    if trigger in BLOCK_TRIGGERS:
        return _block_delivery(trigger, _object(data, "data"), envelope)
    return Delivery(trigger, dedupe_key(trigger, digest(data)), raw=envelope)


# -- the events --------------------------------------------------------------------------------


def _message_delivery(trigger: str, data: Mapping[str, Any], raw: Mapping[str, Any]) -> Delivery:
    where = "data" if trigger in LEGACY_MESSAGE_TRIGGERS else "data.message"
    message = _object(data if where == "data" else data.get("message"), where)
    parts: list[Any] = [
        _message_id(message.get("id"), f"{where}.id", required=True),
        _first_time(message, ("updatedAt", "sentAt"), where),
    ]
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
    receiver_type = subject.get("receiverType")
    if receiver_type == "group":
        guid = _group_of(subject, subject_where)
        return Delivery(trigger, key, group_guid=guid, raw=raw)
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
    return Delivery(trigger, key, _targets(conversation_id, (sender, receiver)), raw=raw)


def _receipt_delivery(trigger: str, data: Mapping[str, Any], raw: Mapping[str, Any]) -> Delivery:
    # Current webhooks nest the receipt in data.body; legacy ones put its fields in data.
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
    receiver_type = _first(data, receipt, "receiverType")
    if receiver_type == "group":
        guid = _party(_first(data, receipt, "receiver"), "data.receiver", "GUID")
        return Delivery(trigger, key, (Target(reader, GROUP_PREFIX + guid),), raw=raw)
    if receiver_type != "user":
        raise WebhookPayloadError("data.receiverType must be 'user' or 'group'")
    # The other party: the sender of the message that was read, to whom the receipt goes.
    other_value = _first(data, receipt, "messageSender")
    other = (
        _user(other_value, "data.messageSender")
        if other_value is not None
        else _user(_first(data, receipt, "receiver"), "data.receiver")
    )
    if other == reader:
        raise WebhookPayloadError("a user receipt needs two different users")
    return Delivery(
        trigger, key, _targets(pair_conversation_id(reader, other), (reader, other)), raw=raw
    )


def _block_delivery(trigger: str, data: Mapping[str, Any], raw: Mapping[str, Any]) -> Delivery:
    blocker_key = _present(data, BLOCKER_KEYS, "the blocking user")
    blocked_key = _present(data, BLOCKED_KEYS, "the blocked user")
    blocker = _user(data[blocker_key], f"data.{blocker_key}")
    named = data[blocked_key]
    values = named if isinstance(named, list) else [named]
    if not values or len(values) > MAX_BLOCKED:
        raise WebhookPayloadError(f"data.{blocked_key} must name 1 to {MAX_BLOCKED} users")
    blocked = sorted({_user(value, f"data.{blocked_key}") for value in values} - {blocker})
    if not blocked:
        raise WebhookPayloadError("a block event needs two different users")
    times = [key for key in BLOCK_TIME_KEYS if data.get(key) is not None]
    when = _time(data[times[0]], f"data.{times[0]}") if times else None
    key = dedupe_key(trigger, blocker, blocked, when if when is not None else digest(data))
    blocking = trigger == "user_blocked"
    targets: list[Target] = []
    for uid in blocked:
        conversation_id = pair_conversation_id(blocker, uid)
        targets.append(Target(blocker, conversation_id, ("blockedByMe", blocking)))
        targets.append(Target(uid, conversation_id, ("hasBlockedMe", blocking)))
    return Delivery(trigger, key, tuple(targets), raw=raw)


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


def _first_time(obj: Mapping[str, Any], keys: Sequence[str], where: str) -> int | None:
    for key in keys:
        if obj.get(key) is not None:
            return _time(obj[key], f"{where}.{key}")
    return None
