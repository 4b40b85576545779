"""The admin's "Messages" view of a stored conversation: its messages read live from CometChat
on the owner's behalf, a page at a time, for staff with ``view_conversation_messages``.

``admin/django_cometchat/conversation/<pk>/messages/`` (URL name
``admin:django_cometchat_conversation_messages``). Reading someone's private messages is the
most sensitive thing the package does, so:

* the view needs ``django_cometchat.view_conversation_messages`` on top of the view permission
  of conversations; without it the answer is 403 before anything is asked of CometChat;
* every page shown is recorded (``read_messages(reader=request.user)``: one ``MessageAccess``
  row and the ``conversation_messages_read`` signal);
* the page's position travels in the query string as a cursor signed with ``SECRET_KEY``
  (``django.core.signing``) and bound to the conversation: a cursor changed by hand, or taken
  from another conversation, is a 400 page, and nothing is sent upstream;
* an upstream failure is a page that says what went wrong (502), never a server error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from ..exceptions import CometChatError
from ..messages_types import AFFIXES, MessageCursor, MessagePage
from ..models import Conversation
from ..services.messages import DIRECTIONS, Direction, page_cursors, read_messages
from .message_rendering import shown_message

if TYPE_CHECKING:
    from django.urls import URLPattern

PERMISSION = "django_cometchat.view_conversation_messages"
CURSOR_SALT = "django_cometchat.admin.messages.cursor"
TEMPLATE = "admin/django_cometchat/conversation/messages.html"


class BadCursor(Exception):
    """The ``cursor`` parameter is not one this site signed for this conversation."""


@dataclass(frozen=True)
class Position:
    """Where a page starts: a cursor (None: the newest page) and the direction read from it."""

    cursor: MessageCursor | None
    direction: Direction


def sign_cursor(conversation: Conversation, cursor: MessageCursor, direction: Direction) -> str:
    """An opaque, signed token for the query string: the cursor, its direction and the
    conversation it belongs to."""
    data = {"c": conversation.pk, "i": cursor.id, "a": cursor.affix, "s": cursor.sent_at}
    return signing.dumps({**data, "d": direction}, salt=CURSOR_SALT, compress=True)


def read_position(conversation: Conversation, token: str | None) -> Position:
    """The position a signed ``token`` names; the newest page without one. ``BadCursor`` for a
    token that does not verify, is of another conversation, or holds what no cursor holds."""
    if not token:
        return Position(None, "older")
    try:
        data = signing.loads(token, salt=CURSOR_SALT)
    except signing.BadSignature as exc:
        raise BadCursor("the cursor was changed or is not from this site") from exc
    if not isinstance(data, dict) or data.get("c") != conversation.pk:
        raise BadCursor("the cursor is of another conversation")
    message_id, affix, sent_at, direction = (data.get(key) for key in ("i", "a", "s", "d"))
    if (
        not isinstance(message_id, str)
        or not message_id.isdigit()
        or affix not in AFFIXES
        or direction not in DIRECTIONS
        or not (sent_at is None or isinstance(sent_at, int))
    ):
        raise BadCursor("the cursor holds no position")
    return Position(MessageCursor(affix=affix, id=message_id, sent_at=sent_at), direction)


def what_to_do(exc: CometChatError) -> str:
    """What staff can do about an upstream failure, beside its (redacted) description."""
    if exc.scope == "global":
        return "Every read fails the same way until that is fixed; check the settings."
    return "Try again in a moment; if it keeps failing, see the sync runs and the logs."


class ConversationMessagesView:
    """The Messages view of ``ConversationAdmin`` (a mixin of it)."""

    messages_page_size = 50  # messages per page of the Messages view

    admin_site: Any
    opts: Any

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/messages/",
                self.admin_site.admin_view(self.messages_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_messages",
            )
        ]
        theirs: list[URLPattern] = super().get_urls()  # type: ignore[misc]
        return own + theirs

    def has_view_messages_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(
            self.has_view_permission(request, obj)  # type: ignore[attr-defined]
            and request.user.has_perm(PERMISSION)
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        """The conversation's page links to its messages for staff who may read them."""
        fieldsets = list(super().get_fieldsets(request, obj))  # type: ignore[misc]
        if obj is not None and self.has_view_messages_permission(request, obj):
            fieldsets.insert(1, ("Messages", {"fields": ("messages_link",)}))
        return fieldsets

    @staticmethod
    def messages_url(conversation: Conversation, query: dict[str, str] | None = None) -> str:
        url = reverse("admin:django_cometchat_conversation_messages", args=(conversation.pk,))
        return f"{url}?{urlencode(query)}" if query else url

    @admin.display(description="messages")
    def messages_link(self, obj: Conversation) -> SafeString:
        return format_html(
            '<a class="cometchat-messages-link" href="{}">{}</a> {}',
            self.messages_url(obj),
            "Read the messages",
            "(read live from CometChat; each page you read is recorded under Message accesses)",
        )

    def messages_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_view_messages_permission(request):
            raise PermissionDenied
        conversation = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if conversation is None:
            raise Http404("No such conversation.")
        context = self._context(request, conversation)
        try:
            position = read_position(conversation, request.GET.get("cursor"))
        except BadCursor as exc:
            context["error"] = f"This page link is not valid: {exc}. Start from the newest page."
            return TemplateResponse(request, TEMPLATE, context, status=400)
        try:
            # The read's record and the page it shows commit together: a page that fails to
            # render records no read.
            with transaction.atomic():
                page = read_messages(
                    conversation,
                    page_size=self.messages_page_size,
                    cursor=position.cursor,
                    direction=position.direction,
                    reader=request.user,
                )
                return self._messages_page(request, conversation, context, page, position)
        except CometChatError as exc:
            context["error"] = f"CometChat did not answer with the messages: {exc.describe()}"
            context["advice"] = what_to_do(exc)
            return TemplateResponse(request, TEMPLATE, context, status=502)

    def _messages_page(
        self,
        request: HttpRequest,
        conversation: Conversation,
        context: dict[str, Any],
        page: MessagePage,
        position: Position,
    ) -> HttpResponse:
        edges = page_cursors(page, cursor=position.cursor, direction=position.direction)
        links = {}
        for direction, cursor in (("older", edges.older), ("newer", edges.newer)):
            if cursor is not None:
                token = sign_cursor(conversation, cursor, direction)  # type: ignore[arg-type]
                links[direction] = self.messages_url(conversation, {"cursor": token})
        context.update(
            shown=[shown_message(m, conversation.owner_uid) for m in page.messages],
            older_url=links.get("older"),
            newer_url=links.get("newer"),
            newest_url=self.messages_url(conversation) if position.cursor is not None else None,
        )
        return TemplateResponse(request, TEMPLATE, context).render()

    def _context(self, request: HttpRequest, conversation: Conversation) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": conversation,
            "title": f"Messages: {conversation.peer_name or conversation.peer_id}",
            "subtitle": None,
            "conversation": conversation,
            "change_url": reverse(
                "admin:django_cometchat_conversation_change", args=(conversation.pk,)
            ),
            "media": self.media,  # type: ignore[attr-defined]
            "error": None,
            "advice": None,
            "shown": [],
        }
