"""Reading one field of a webhook body: an object, an id, a user or users, a time.

Every id is held to the rules of the ids we send (``ids.validate_id``); anything else raises
:class:`.delivery.WebhookPayloadError`, whose text names the field (``what``), never the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..conversation_types import MAX_INTEGER
from ..exceptions import CometChatInvalidId
from ..ids import GROUP_PREFIX, IdKind, validate_id
from .delivery import WebhookPayloadError

_INTEGER_TEXT = re.compile(r"[0-9]{1,19}")


def json_object(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` when it is a JSON object."""
    if not isinstance(value, Mapping):
        raise WebhookPayloadError(f"{what} must be a JSON object")
    return value


def object_at(value: Mapping[str, Any], path: Sequence[str]) -> Mapping[str, Any] | None:
    """The object at ``path`` inside ``value``, or None where the path breaks off."""
    for key in path:
        child = value.get(key)
        if not isinstance(child, Mapping):
            return None
        value = child
    return value


def first_given(primary: Mapping[str, Any], secondary: Mapping[str, Any], key: str) -> Any:
    """``key`` of ``primary``, else of ``secondary`` (a field either level of a body may hold)."""
    value = primary.get(key)
    return value if value is not None else secondary.get(key)


def present_key(data: Mapping[str, Any], keys: Sequence[str], what: str) -> str:
    """The first of ``keys`` that ``data`` gives a value; ``what`` names the missing thing."""
    for key in keys:
        if data.get(key) is not None:
            return key
    raise WebhookPayloadError(f"data names no {what} (looked for {', '.join(keys)})")


def checked_id(value: Any, what: str, kind: IdKind) -> str:
    """``value``, an id of ``kind`` (``ids.validate_id``)."""
    if not isinstance(value, str):
        raise WebhookPayloadError(f"{what} must be a {kind} string")
    try:
        return validate_id(value, kind)
    except CometChatInvalidId:
        raise WebhookPayloadError(f"{what} is not a valid {kind}") from None


def party_id(value: Any, what: str, kind: IdKind) -> str:
    """A UID or GUID given as a string or as an object (``{"uid"}``, ``{"guid"}``, or an entity
    wrapper ``{"entity": {...}}``)."""
    if isinstance(value, Mapping) and isinstance(value.get("entity"), Mapping):
        value, what = value["entity"], f"{what}.entity"
    if isinstance(value, Mapping):
        name = "guid" if kind == "GUID" else "uid"
        value, what = value.get(name), f"{what}.{name}"
    return checked_id(value, what, kind)


def user_id(value: Any, what: str) -> str:
    return party_id(value, what, "UID")


def _is_one_user(value: Mapping[str, Any]) -> bool:
    """A user object (``{"uid": "bob"}``, ``{"entity": {...}}``) rather than users by UID."""
    return isinstance(value.get("uid"), str) or isinstance(value.get("entity"), Mapping)


def user_ids(value: Any, what: str, limit: int) -> list[str]:
    """The UIDs of 1 to ``limit`` users, sorted, given as an object keyed by UID (CometChat's
    ``users`` and ``members``: each value a user object whose ``uid``, if any, is its key), a
    list of UIDs or user objects, or one UID or user object."""
    if isinstance(value, Mapping) and not _is_one_user(value):
        if not value or len(value) > limit:
            raise WebhookPayloadError(f"{what} must name 1 to {limit} users")
        uids: set[str] = set()
        for key, entry in value.items():
            uid = checked_id(key, f"{what} (a key)", "UID")
            named = isinstance(entry, Mapping) and entry.get("uid") is not None
            if named and user_id(entry, f"{what}.<uid>") != uid:
                raise WebhookPayloadError(f"{what}: a user's uid differs from its key")
            uids.add(uid)
        return sorted(uids)
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > limit:
        raise WebhookPayloadError(f"{what} must name 1 to {limit} users")
    return sorted({user_id(entry, what) for entry in values})


def group_object_guid(group: Mapping[str, Any], where: str) -> str:
    """A group object's GUID: ``guid``, else its ``group_<guid>`` conversation id."""
    if group.get("guid") is not None:
        return checked_id(group["guid"], f"{where}.guid", "GUID")
    conversation_id = group.get("conversationId")
    if isinstance(conversation_id, str) and conversation_id.startswith(GROUP_PREFIX):
        return checked_id(conversation_id[len(GROUP_PREFIX) :], f"{where}.conversationId", "GUID")
    raise WebhookPayloadError(f"{where} names no group (guid or conversationId)")


def message_group_guid(message: Mapping[str, Any], where: str) -> str:
    """A group message's GUID: its receiver, else its ``group_<guid>`` conversation id."""
    receiver = message.get("receiver")
    if receiver is not None:
        return party_id(receiver, f"{where}.receiver", "GUID")
    conversation_id = message.get("conversationId")
    if isinstance(conversation_id, str) and conversation_id.startswith(GROUP_PREFIX):
        return checked_id(conversation_id[len(GROUP_PREFIX) :], f"{where}.conversationId", "GUID")
    raise WebhookPayloadError(f"{where} names no group (receiver or conversationId)")


def message_id_of(value: Any, what: str, *, required: bool) -> str | None:
    """A message id: a string on the wire ("50"), an integer in request bodies."""
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INTEGER:
        value = str(value)
    return checked_id(value, what, "message id")


def timestamp_of(value: Any, what: str) -> int:
    """Epoch seconds (or the milliseconds of legacy webhooks): an integer or a digit string."""
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INTEGER:
        return value
    raise WebhookPayloadError(f"{what} must be a non-negative integer timestamp")


def epoch_seconds(value: int | None) -> float | None:
    """An event time as epoch seconds: legacy webhooks send milliseconds (any value past
    10^11, which as seconds would be the year 5138)."""
    if value is None:
        return None
    return value / 1000 if value >= 10**11 else float(value)


def first_timestamp(obj: Mapping[str, Any], keys: Sequence[str], where: str) -> int | None:
    for key in keys:
        if obj.get(key) is not None:
            return timestamp_of(obj[key], f"{where}.{key}")
    return None
