"""The conversation list as an inbox: who the conversation is with (avatar and name), the last
message (sender, a one-line preview, how long ago) and the unread count.

Every value comes from the stored payload, but the list never reads (nor decodes) the whole of
it: :func:`add_inbox_fields` asks the database for the few JSON keys the page's rows show, the
text cut to :data:`PREVIEW_CHARS`, so a page of 100 rows costs the same whatever their messages
hold.
An avatar is shown only from an absolute http(s) URL, escaped, at a fixed size and loaded lazily;
anything else is the peer's initial.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.contrib import admin
from django.db.models import QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Substr
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

from ..models import Conversation
from .rendering import badge, describe_message, epoch_datetime, format_moment, truncate

PREVIEW_CHARS = 200  # of the last message's text read from the database per row
PREVIEW_SHOWN = 120  # of the one-line preview written in the page
AVATAR_PX = 32
MAX_AVATAR_URL = 3000  # API.md §6: avatar / link URLs are at most 3,000 characters
_SPACES = re.compile(r"\s+")

# Annotation name -> the key path inside ``payload``: all a row of the inbox shows.
_LAST = "payload__lastMessage__"
INBOX_KEYS = {
    "inbox_avatar": "payload__conversationWith__avatar",
    "inbox_icon": "payload__conversationWith__icon",
    "inbox_id": f"{_LAST}id",
    "inbox_sender": f"{_LAST}sender",
    "inbox_sender_name": f"{_LAST}data__entities__sender__entity__name",
    "inbox_category": f"{_LAST}category",
    "inbox_type": f"{_LAST}type",
    "inbox_sent_at": f"{_LAST}sentAt",
    "inbox_deleted_at": f"{_LAST}deletedAt",
    "inbox_action": f"{_LAST}data__action",
    "inbox_attachment": f"{_LAST}data__attachments__0__name",
    "inbox_by": f"{_LAST}data__entities__by__entity__name",
    "inbox_on": f"{_LAST}data__entities__on__entity__name",
}


def with_inbox_fields(queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """``queryset`` with the JSON keys the inbox shows as text columns (and the text cut)."""
    text = Substr(KT(f"{_LAST}data__text"), 1, PREVIEW_CHARS)
    return queryset.annotate(**{name: KT(path) for name, path in INBOX_KEYS.items()}).annotate(
        inbox_text=text
    )


def add_inbox_fields(rows: Iterable[Conversation]) -> None:
    """Set the inbox's values on ``rows`` (a page of the list), in one query by primary key.

    A query of its own rather than annotations of the list's query: PostgreSQL computes a
    query's columns for every row an ``OFFSET`` skips, so page 100 would read the keys of
    10,000 payloads to show 100.
    """
    rows = list(rows)
    if not rows:
        return
    names = [*INBOX_KEYS, "inbox_text"]
    found = {
        values["pk"]: values
        for values in with_inbox_fields(Conversation.objects.filter(pk__in=[r.pk for r in rows]))
        .order_by()
        .values("pk", *names)
    }
    for row in rows:
        values = found.get(row.pk, {})
        for name in names:
            setattr(row, name, values.get(name))


def web_image_url(value: Any) -> str | None:
    """``value`` if it is an absolute http(s) URL fit for an ``<img src>``, else None
    (``javascript:``, ``data:``, relative paths and control characters are refused)."""
    if not isinstance(value, str) or not value or len(value) > MAX_AVATAR_URL:
        return None
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return value


def avatar_html(url: Any, name: str) -> SafeString:
    """A fixed-size, lazily loaded avatar; the name's initial when there is no usable URL."""
    src = web_image_url(url)
    if src is None:
        initial = (name.strip()[:1] or "?").upper()
        return format_html(
            '<span class="cometchat-avatar cometchat-avatar-initial" aria-hidden="true">{}</span>',
            initial,
        )
    return format_html(
        '<img class="cometchat-avatar" src="{}" alt="" width="{}" height="{}" loading="lazy" '
        'decoding="async" referrerpolicy="no-referrer">',
        src,
        AVATAR_PX,
        AVATAR_PX,
    )


def _row_message(obj: Any) -> dict[str, Any] | None:
    """The parts of the last message the annotations read, shaped as CometChat's message (what
    :func:`describe_message` reads). None when there is no last message."""
    if getattr(obj, "inbox_id", None) is None and getattr(obj, "inbox_sender", None) is None:
        return None
    entity = {"name": obj.inbox_sender_name} if obj.inbox_sender_name else {}
    data: dict[str, Any] = {
        "text": obj.inbox_text,
        "action": obj.inbox_action,
        "entities": {
            "sender": {"entity": entity},
            "by": {"entity": {"name": obj.inbox_by} if obj.inbox_by else {}},
            "on": {"entity": {"name": obj.inbox_on} if obj.inbox_on else {}},
        },
    }
    if obj.inbox_attachment:
        data["attachments"] = [{"name": obj.inbox_attachment}]
    return {
        "sender": obj.inbox_sender,
        "category": obj.inbox_category,
        "type": obj.inbox_type,
        "sentAt": obj.inbox_sent_at,
        "deletedAt": obj.inbox_deleted_at,
        "data": data,
    }


def one_line(text: str, limit: int = PREVIEW_SHOWN) -> str:
    """``text`` on one line (runs of spaces and line breaks made one space), cut to ``limit``."""
    return truncate(_SPACES.sub(" ", text).strip(), limit)


def how_long_ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return ""
    now = now or timezone.now()
    if (now - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment, now, depth=1)} ago"


class InboxColumns:
    """The inbox's columns of ``ConversationAdmin``; rows come from :func:`with_inbox_fields`."""

    @admin.display(description="conversation", ordering="peer_name")
    def inbox_peer(self, obj: Conversation) -> SafeString:
        """Avatar and name of the peer (a user or a group), and a badge when it is missing."""
        name = obj.peer_name or obj.peer_id or "(no name)"
        url = getattr(obj, "inbox_avatar", None) or getattr(obj, "inbox_icon", None)
        missing = ""
        if obj.missing_since is not None:
            since = f"Missing from CometChat since {format_moment(obj.missing_since)}"
            missing = badge("missing", "warning", title=since)
        kind = "group" if obj.conversation_type == "group" else ""
        return format_html(
            '<span class="cometchat-peer">{}<span class="cometchat-peer-text">'
            '<span class="cometchat-clip" title="{}">{}</span>{}{}</span></span>',
            avatar_html(url, name),
            f"{name} ({obj.peer_id})" if obj.peer_id else name,
            name,
            format_html(' <small class="cometchat-kind">{}</small>', kind) if kind else "",
            missing,
        )

    @admin.display(description="last message", ordering="updated_at")
    def inbox_last_message(self, obj: Conversation) -> SafeString:
        message = _row_message(obj)
        if message is None:
            return format_html(
                '<span class="cometchat-preview cometchat-muted">{}</span>', "No last message"
            )
        sender_uid = message["sender"] or ""
        if sender_uid and sender_uid == obj.owner_uid:
            sender = "Owner"
        else:
            sender = obj.inbox_sender_name or sender_uid or "unknown sender"  # type: ignore[attr-defined]
        sent = epoch_datetime(message["sentAt"]) or obj.updated_at
        preview = one_line(describe_message(message))
        return format_html(
            # How long ago first: a long sender name is what gets cut, never the time.
            '<span class="cometchat-preview" title="{}">{}</span>'
            '<span class="cometchat-preview cometchat-muted"><time datetime="{}" title="{}">{}'
            '</time> · <span class="cometchat-sender">{}</span></span>',
            preview,
            preview,
            sent.isoformat(),
            format_moment(sent),
            how_long_ago(sent),
            one_line(sender, 60),
        )

    @admin.display(description="unread")
    def inbox_unread(self, obj: Conversation) -> SafeString:
        count = obj.unread_message_count
        if not count:
            return format_html('<span class="cometchat-muted">{}</span>', 0)
        return format_html(
            '<span class="cometchat-unread" title="{} unread">{}</span>', count, f"{count:,}"
        )
