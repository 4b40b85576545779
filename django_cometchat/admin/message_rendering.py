"""How a message of the admin's Messages view reads: who sent it and when, its text, its
attachments as links, edits and deletions marked, action and call messages in words.

Everything is escaped by ``format_html`` (a message is what any user of the chat typed), and a
link is made only of an absolute http(s) URL (``messages_types`` refuses other attachment URLs;
:func:`.inbox.web_image_url` checks again where a link is written).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ..messages_types import Message
from .inbox import web_image_url
from .rendering import epoch_datetime, format_moment

# An action message (API.md §4.3: data.action) as a verb between its actor and its object.
ACTION_VERBS = {
    "joined": "joined",
    "left": "left",
    "kicked": "removed",
    "banned": "banned",
    "unbanned": "unbanned",
    "added": "added",
    "scopeChanged": "changed the role of",
    "edited": "edited a message",
    "deleted": "deleted a message",
}
ALONE = ("joined", "left", "edited", "deleted")  # verbs without an object


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _entity_name(data: Mapping[str, Any], role: str) -> str:
    """The name of ``data.entities.<role>.entity`` (a user or group), or its id; "" if none."""
    entity = _object(_object(_object(data.get("entities")).get(role)).get("entity"))
    for key in ("name", "uid", "guid"):
        value = entity.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def action_words(message: Message) -> str:
    """An action message in words: "Alice added Bob", "Bob left", "Alice edited a message"."""
    data = message.data
    action = message.action or ""
    by = _entity_name(data, "by") or message.sender
    on = _entity_name(data, "on")
    verb = ACTION_VERBS.get(action, action or "did something")
    if action in ALONE or not on or on == by:
        return f"{by} {verb}"
    return f"{by} {verb} {on}"


def call_words(message: Message) -> str:
    status = message.data.get("action")
    kind = "Video call" if message.type == "video" else "Audio call"
    return f"{kind}: {status}" if isinstance(status, str) and status else kind


@dataclass(frozen=True)
class ShownMessage:
    """One message as the Messages view's template shows it."""

    id: str
    sender: str
    by_owner: bool
    sent: str
    sent_iso: str
    body: SafeString
    marks: SafeString
    kind: str  # "message", "action", "call", "deleted", "other": a CSS class


def sender_label(message: Message) -> str:
    name = _entity_name(message.data, "sender")
    if name and name != message.sender:
        return f"{name} ({message.sender})"
    return message.sender


def _attachments(message: Message) -> SafeString:
    links = []
    for attachment in message.attachments:
        url = web_image_url(attachment.url)
        label = attachment.name or attachment.url
        if url is None:
            links.append((format_html("{} (no web link)", label),))
            continue
        links.append(
            (
                format_html(
                    '<a href="{}" rel="noopener noreferrer nofollow" target="_blank">{}</a>',
                    url,
                    label,
                ),
            )
        )
    if not links:
        return SafeString("")
    return format_html(
        '<ul class="cometchat-attachments">{}</ul>', format_html_join("", "<li>{}</li>", links)
    )


def _body(message: Message) -> tuple[SafeString, str]:
    if message.is_deleted:
        return format_html("<em>{}</em>", "This message was deleted."), "deleted"
    if message.category == "action":
        return format_html("<em>{}</em>", action_words(message)), "action"
    if message.category == "call":
        return format_html("<em>{}</em>", call_words(message)), "call"
    text = format_html('<div class="cometchat-text">{}</div>', message.text) if message.text else ""
    attachments = _attachments(message)
    if not text and not str(attachments):
        what = f"{message.category} message ({message.type})"
        return format_html("<em>{}</em>", what[:1].upper() + what[1:]), "other"
    kind = "message" if message.category == "message" else "other"
    return format_html("{}{}", text, attachments), kind


def _marks(message: Message) -> SafeString:
    marks = []
    if message.is_deleted:
        when = format_moment(epoch_datetime(message.deleted_at))
        by = f" by {message.deleted_by}" if message.deleted_by else ""
        marks.append(("deleted", f"deleted {when}{by}"))
    if message.is_edited:
        when = format_moment(epoch_datetime(message.edited_at))
        by = f" by {message.edited_by}" if message.edited_by else ""
        marks.append(("edited", f"edited {when}{by}"))
    return format_html_join(
        " ",
        '<span class="cometchat-badge cometchat-tone-{}" title="{}">{}</span>',
        (("warning" if mark == "deleted" else "neutral", title, mark) for mark, title in marks),
    )


def shown_message(message: Message, owner_uid: str) -> ShownMessage:
    sent = epoch_datetime(message.sent_at)
    body, kind = _body(message)
    return ShownMessage(
        id=message.id,
        sender=sender_label(message),
        by_owner=message.sender == owner_uid,
        sent=format_moment(sent),
        sent_iso=sent.isoformat() if sent else "",
        body=body,
        marks=_marks(message),
        kind=kind,
    )
