"""How stored CometChat payloads and statuses read to a person: pretty JSON, the last message as
text, status badges, long values kept to two lines.

Everything goes through ``format_html``, so whatever CometChat (or a user writing a message) put
in a payload is escaped. The classes used here are styled by
``static/django_cometchat/admin.css`` (every ModelAdmin of the package loads it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
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


# A badge's tone: its colour, from the admin's own theme variables (light and dark alike). The
# status itself is always written in the badge: the colour only helps the eye.
TONES = ("success", "pending", "warning", "error", "neutral")
ERROR_CODE = re.compile(r"\b(?:AUTH_)?ERR_[A-Z0-9_]+\b")


def badge(label: str, tone: str, *, title: str = "") -> SafeString:
    """``label`` in a badge of ``tone`` (one of ``TONES``, else neutral)."""
    if tone not in TONES:
        tone = "neutral"
    if title:
        return format_html(
            '<span class="cometchat-badge cometchat-tone-{}" title="{}">{}</span>',
            tone,
            title,
            label,
        )
    return format_html('<span class="cometchat-badge cometchat-tone-{}">{}</span>', tone, label)


def status_badge(value: str, label: str, tones: Mapping[str, str]) -> SafeString:
    """A status's ``label`` in a badge of the tone ``tones`` gives its ``value``: a status that
    ``tones`` does not know (one added later) is neutral, so it still reads, in grey."""
    return badge(label, tones.get(value, "neutral"))


def error_code_in(text: str) -> str:
    """The first CometChat error code (``ERR_…``, ``AUTH_ERR_…``) a stored error text names,
    or "" (a refused delivery's reason, for one, names none)."""
    found = ERROR_CODE.search(text)
    return found.group(0) if found else ""


def with_code(status: SafeString, code: str, detail: str = "") -> SafeString:
    """A status badge with the error code beside it; ``detail`` (the start of the message)
    shows on hover, and in full on the object page."""
    if not code:
        return status
    return format_html(
        '{} <code class="cometchat-code" title="{}">{}</code>', status, truncate(detail, 300), code
    )


def clipped(text: str) -> SafeString:
    """``text`` kept to two lines of its column (an ellipsis marks what is cut); all of it on
    hover and on the object page. A long id breaks after its underscores (``<wbr>``) and its
    hyphens first, anywhere else only when a piece is wider than the column."""
    head, *rest = text.split("_")
    breakable = format_html("{}{}", head, format_html_join("", "_<wbr>{}", ((p,) for p in rest)))
    return format_html('<span class="cometchat-clip" title="{}">{}</span>', text, breakable)
