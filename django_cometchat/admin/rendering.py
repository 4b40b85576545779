"""How stored CometChat payloads read to a person: pretty JSON and the last message as text.

Everything goes through ``format_html``, so whatever CometChat (or a user writing a message) put
in a payload is escaped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

MEDIA_TYPES = ("image", "video", "audio", "file")
PRE_STYLE = (
    "margin: 0; white-space: pre-wrap; word-break: break-word; max-height: 40em; overflow: auto;"
)


def pretty_json(value: Any) -> SafeString:
    """``value`` as indented JSON with sorted keys, escaped, in a ``<pre>``."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="cometchat-json" style="{}">{}</pre>', PRE_STYLE, text)


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _entity_name(data: Mapping[str, Any], role: str) -> str:
    """The name of ``data.entities.<role>.entity`` (a user or group), or its id."""
    entity = _object(_object(_object(data.get("entities")).get(role)).get("entity"))
    return _text(entity.get("name")) or _text(entity.get("uid")) or _text(entity.get("guid"))


def epoch_datetime(value: Any) -> datetime | None:
    """CometChat's epoch seconds (an integer or a digit string) as an aware datetime."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=dt_timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def describe_message(message: Mapping[str, Any]) -> str:
    """One line a person can read: the text of a text message, else what kind of message it is.

    ``[image] cat.png``, ``[action] Alice added Bob``, ``[video call: ended]``,
    ``[custom: location]``, ``[deleted message]``.
    """
    category = _text(message.get("category"))
    kind = _text(message.get("type"))
    data = _object(message.get("data"))
    text = _text(data.get("text"))
    if message.get("deletedAt"):
        described = "[deleted message]"
    elif category in ("", "message") and kind in ("", "text"):
        described = text or "[empty message]"
    elif category in ("", "message") and kind in MEDIA_TYPES:
        described = f"[{kind}] {_attachment_name(data)}".rstrip()
    elif category == "action":
        described = _describe_action(kind, data)
    elif category == "call":
        status = _text(data.get("action"))
        described = f"[{kind or 'audio'} call" + (f": {status}]" if status else "]")
    elif text:
        described = text
    else:
        described = f"[{category}: {kind}]" if category and kind else f"[{category or kind}]"
    return described


def _attachment_name(data: Mapping[str, Any]) -> str:
    attachments = data.get("attachments")
    first = _object(attachments[0]) if isinstance(attachments, list) and attachments else {}
    return _text(first.get("name")) or _text(_object(data.get("attachment")).get("name"))


def _describe_action(kind: str, data: Mapping[str, Any]) -> str:
    action = _text(data.get("action")) or kind or "action"
    by, on = _entity_name(data, "by"), _entity_name(data, "on")
    if kind == "message":  # an action on a message: edited, deleted
        return f"[action] message {action}" + (f" by {by}" if by else "")
    if on == by:  # "Alice joined", not "Alice joined Alice"
        on = ""
    return "[action] " + " ".join(part for part in (by, action, on) if part)


def sender_name(message: Mapping[str, Any]) -> str:
    data = _object(message.get("data"))
    name = _entity_name(data, "sender")
    uid = _text(message.get("sender"))
    if name and uid and name != uid:
        return f"{name} ({uid})"
    return name or uid or "unknown sender"


def format_moment(value: datetime | None) -> str:
    if value is None:
        return "unknown time"
    return formats.date_format(timezone.localtime(value), "DATETIME_FORMAT")


def last_message_html(message: Mapping[str, Any] | None) -> SafeString:
    """The last message as a person reads it: who, when, and what (escaped)."""
    if not message:
        return format_html(
            "<em>{}</em>", "No last message (it was deleted, or nobody has written yet)."
        )
    return format_html(
        '<div class="cometchat-last-message"><strong>{}</strong>, {}'
        '<p style="white-space: pre-wrap; margin: 4px 0 0;">{}</p></div>',
        sender_name(message),
        format_moment(epoch_datetime(message.get("sentAt"))),
        describe_message(message),
    )


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_summary(payload: Any, *, limit: int = 80) -> str:
    """Unread count and the last message, in one short line (snapshot lists)."""
    data = _object(payload)
    message = _object(data.get("lastMessage"))
    text = truncate(describe_message(message) if message else "(no last message)", limit)
    unread = data.get("unreadMessageCount", 0)
    return f"unread {unread} · {text}"
