"""``GET conversations/<conversation_id>/messages/``: the signed-in owner's messages, read live.

The conversation must be one of the user's stored rows (``owned_conversation``): another user's
is a 404 before anything is sent to CometChat. The owner reading their own messages is not a
staff read, so no ``MessageAccess`` row is written.

Links carry an opaque cursor signed with ``django.core.signing`` (salted with the conversation
id, so one conversation's cursor is refused on another): the direction and the message id a
page starts past. A cursor that does not verify is a 400 in the API's error shape.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.core import signing
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from ..messages_types import Message, MessageCursor
from ..services.messages import AFFIX_OF, Direction, page_cursors, read_messages
from .schema import CONVERSATION_ID, TAG, error_responses
from .views import CometChatAPIView

DIRECTION_OF: dict[str, Direction] = {"o": "older", "n": "newer"}
RECEIVER_TYPES = ("user", "group")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
CURSOR_SALT = "django_cometchat.api.messages"
INVALID_CURSOR = "Invalid cursor: use the next and previous links as given."
MESSAGE_ERRORS = (400, 401, 403, 404, 409, 502, 503, 504)
# Keys a deleted message's data never shows, whatever CometChat left in it.
DELETED_KEYS = frozenset({"text", "attachments"})


@extend_schema_field(OpenApiTypes.OBJECT)
class _DataField(serializers.JSONField):
    pass


@extend_schema_serializer(component_name="CometChatMessage")
class MessageSerializer(serializers.Serializer[Any]):
    """One message, as CometChat sent it (read live, never stored)."""

    # Documents the schema only: the view builds the same keys itself (``message_json``),
    # ten times faster than a serializer would.

    id = serializers.CharField(help_text="CometChat's message id (decimal digits).")
    sender = serializers.CharField(help_text="The sender's UID (app_system for the system).")
    receiver = serializers.CharField(help_text="The receiving user's UID or the group's GUID.")
    receiver_type = serializers.ChoiceField(choices=RECEIVER_TYPES)
    category = serializers.CharField(help_text="message, custom, action, call or interactive.")
    type = serializers.CharField(help_text="text, image, file, … ; groupMember or message.")
    text = serializers.CharField(
        allow_null=True,
        help_text="The text; null for a deleted message, an action message and one without text.",
    )
    sent_at = serializers.DateTimeField()
    edited_at = serializers.DateTimeField(allow_null=True)
    deleted_at = serializers.DateTimeField(
        allow_null=True, help_text="Set for a deleted message, which shows no text."
    )
    # Shadows Serializer.data: this class only documents the schema, it never serializes.
    data = _DataField(  # type: ignore[assignment]
        help_text="CometChat's data object as sent (text, attachments, entities, metadata, "
        "action); a deleted message's has no text and no attachments."
    )


@extend_schema_serializer(component_name="CometChatMessagePage")
class MessagePageSerializer(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True, help_text="The page of older messages.")
    previous = serializers.URLField(allow_null=True, help_text="The page of newer messages.")
    results = MessageSerializer(many=True, help_text="Newest first.")


PARAMETERS = [
    CONVERSATION_ID,
    OpenApiParameter(
        "cursor",
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        description="The pagination cursor value (from the next and previous links).",
    ),
    OpenApiParameter(
        "page_size",
        OpenApiTypes.INT,
        OpenApiParameter.QUERY,
        description=f"Messages per page: default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE} "
        "(larger values are capped).",
    ),
]


class ConversationMessagesView(CometChatAPIView):
    @extend_schema(
        operation_id="cometchat_conversations_messages",
        tags=[TAG],
        parameters=PARAMETERS,
        responses={200: MessagePageSerializer, **error_responses(*MESSAGE_ERRORS)},
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        """The messages of one stored conversation of the signed-in user, read live from
        CometChat on the user's behalf (nothing is stored), newest first.

        `next` leads to older messages, `previous` to newer ones (null on the newest page).
        Another user's conversation, or one never stored, is a 404 and nothing is asked of
        CometChat. CometChat's failures answer in the error shape (502, 503, 504).
        """
        conversation = self.owned_conversation(
            "owner_uid", "conversation_id", "conversation_type", "peer_uid", "peer_guid"
        )
        page_size = _page_size(request.query_params.get("page_size"))
        cursor, direction = _decode(request.query_params.get("cursor"), conversation_id)
        page = read_messages(conversation, page_size=page_size, cursor=cursor, direction=direction)
        around = page_cursors(page, cursor=cursor, direction=direction)
        link = _Links(request, conversation_id, page_size)
        moment = _Moments()
        return Response(
            {
                "next": link.to(around.older, "older"),
                "previous": link.to(around.newer, "newer"),
                "results": [message_json(message, moment) for message in page.messages],
            }
        )


def _page_size(raw: str | None) -> int:
    """As the API's other lists: a missing, non-numeric or non-positive value is the default,
    a larger one is capped."""
    try:
        value = int(raw) if raw is not None else DEFAULT_PAGE_SIZE
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return DEFAULT_PAGE_SIZE if value < 1 else min(value, MAX_PAGE_SIZE)


def _decode(raw: str | None, conversation_id: str) -> tuple[MessageCursor | None, Direction]:
    if not raw:
        return None, "older"
    try:
        value = signing.loads(raw, salt=f"{CURSOR_SALT}:{conversation_id}")
        direction = DIRECTION_OF[value["d"]]
        message_id = value["i"]
        if not (isinstance(message_id, str) and message_id.isascii() and message_id.isdigit()):
            raise ValueError(message_id)
    except (signing.BadSignature, ValueError, KeyError, TypeError):
        raise ValidationError({"cursor": [INVALID_CURSOR]}) from None
    return MessageCursor(affix=AFFIX_OF[direction], id=message_id, sent_at=None), direction


class _Links:
    def __init__(self, request: Request, conversation_id: str, page_size: int) -> None:
        self.base = request.build_absolute_uri(request.path)
        self.salt = f"{CURSOR_SALT}:{conversation_id}"
        self.page_size = page_size

    def to(self, cursor: MessageCursor | None, direction: Direction) -> str | None:
        if cursor is None:
            return None
        token = signing.dumps({"d": direction[0], "i": cursor.id}, salt=self.salt)
        query: dict[str, Any] = {"cursor": token}
        if self.page_size != DEFAULT_PAGE_SIZE:
            query["page_size"] = self.page_size
        return f"{self.base}?{urlencode(query)}"


def message_json(message: Message, moment: _Moments) -> dict[str, Any]:
    data = message.data
    if message.is_deleted and DELETED_KEYS & data.keys():
        data = {key: value for key, value in data.items() if key not in DELETED_KEYS}
    return {
        "id": message.id,
        "sender": message.sender,
        "receiver": message.receiver,
        "receiver_type": message.receiver_type,
        "category": message.category,
        "type": message.type,
        "text": message.text,
        "sent_at": moment(message.sent_at),
        "edited_at": moment(message.edited_at),
        "deleted_at": moment(message.deleted_at),
        "data": data,
    }


class _Moments:
    """Unix seconds written as the API's other times are (DRF's ``DateTimeField``: the
    current time zone, ISO 8601)."""

    def __init__(self) -> None:
        # The current time zone looked up once a page, not once a value (DRF asks for it each
        # time: about a third of the page's rendering).
        field = serializers.DateTimeField()
        self.field = serializers.DateTimeField(default_timezone=field.default_timezone())

    def __call__(self, seconds: int | None) -> str | None:
        if seconds is None:
            return None
        return self.field.to_representation(datetime.fromtimestamp(seconds, UTC))
