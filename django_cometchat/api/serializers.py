"""Read-only representations of the stored rows, in snake_case.

The list serializer reads only columns the list query loads (see ``LIST_FIELDS``), so a page
costs one query whatever its size.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from ..models import Conversation, ConversationSnapshot, SyncRun

NAMESPACE = "django_cometchat"

# Columns the list query loads (Conversation.objects.only(...)); the serializer needs no more.
LIST_FIELDS = (
    "id",
    "conversation_id",
    "conversation_type",
    "unread_message_count",
    "created_at",
    "updated_at",
    "payload",
    "fetched_at",
    "missing_since",
)


@extend_schema_field(OpenApiTypes.OBJECT)
class PayloadField(serializers.JSONField):
    """CometChat's JSON object, as sent (documented as an object, not "any")."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)


@extend_schema_field(OpenApiTypes.OBJECT)
class StoredObjectField(serializers.ReadOnlyField):
    """A JSON object from the stored payload, passed through as it is: a ``DictField`` would
    rebuild every dict key by key for nothing (the payload is JSON already)."""


class FastIdentityURLField(serializers.HyperlinkedIdentityField):
    """``HyperlinkedIdentityField`` that reverses the route once per request, not per row.

    The first row's URL is built with ``reverse()`` on a placeholder id; every row then fills
    in its own id. Safe because conversation ids are checked to be letters, digits, ``-`` and
    ``_`` before they are stored, so they never need quoting.
    """

    PLACEHOLDER = "cometchat-placeholder-id"

    def get_url(self, obj: Any, view_name: str, request: Any, format: str | None) -> str | None:
        cache = cast(dict[str, Any], self.context).setdefault("_url_templates", {})
        key = (view_name, format)
        template = cache.get(key)
        if template is None:
            kwargs = {self.lookup_url_kwarg: self.PLACEHOLDER}
            template = self.reverse(view_name, kwargs=kwargs, request=request, format=format)
            cache[key] = template
        return str(template).replace(self.PLACEHOLDER, getattr(obj, self.lookup_field))


@extend_schema_serializer(component_name="CometChatConversation")
class ConversationSerializer(serializers.ModelSerializer[Conversation]):
    url = FastIdentityURLField(
        view_name=f"{NAMESPACE}:conversation-detail", lookup_field="conversation_id"
    )
    conversation_with = StoredObjectField(
        help_text="The other user or the group, as CometChat sent it (payload.conversationWith), "
        "with blockedByMe / hasBlockedMe for a user the owner blocked or who blocked the owner.",
    )
    last_message = StoredObjectField(
        allow_null=True,
        help_text="The latest message as CometChat sent it (payload.lastMessage), or null.",
    )

    class Meta:
        model = Conversation
        fields: tuple[str, ...] = (
            "url",
            "conversation_id",
            "conversation_type",
            "unread_message_count",
            "created_at",
            "updated_at",
            "conversation_with",
            "last_message",
            "fetched_at",
            "missing_since",
        )
        read_only_fields = fields
        extra_kwargs: ClassVar[dict[str, dict[str, Any]]] = {
            "created_at": {"help_text": "CometChat's createdAt."},
            "updated_at": {"help_text": "CometChat's updatedAt; the list is sorted on it."},
            "fetched_at": {
                "help_text": "When the stored content was fetched (moves only when it changes)."
            },
            "missing_since": {
                "help_text": "Set when a complete sync no longer returned it; null while present."
            },
        }


@extend_schema_serializer(component_name="CometChatConversationDetail")
class ConversationDetailSerializer(ConversationSerializer):
    history = serializers.HyperlinkedIdentityField(
        view_name=f"{NAMESPACE}:conversation-history", lookup_field="conversation_id"
    )
    payload = PayloadField(help_text="The whole CometChat conversation object, as sent.")

    class Meta(ConversationSerializer.Meta):
        fields = (*ConversationSerializer.Meta.fields, "payload", "history")
        read_only_fields = fields


@extend_schema_serializer(component_name="CometChatConversationSnapshot")
class SnapshotSerializer(serializers.ModelSerializer[ConversationSnapshot]):
    payload = PayloadField(help_text="The CometChat conversation object as it was fetched then.")

    class Meta:
        model = ConversationSnapshot
        fields = ("fetched_at", "content_hash", "payload")
        read_only_fields = fields


@extend_schema_serializer(component_name="CometChatSyncRun")
class SyncRunSerializer(serializers.ModelSerializer[SyncRun]):
    url = serializers.HyperlinkedIdentityField(view_name=f"{NAMESPACE}:syncrun-detail")
    # The owner's text, never the operator's (which may name settings, pks, CometChat's words).
    error_message = serializers.CharField(
        source="public_error_message",
        read_only=True,
        help_text="Why it failed, in words for the account's user; empty unless it failed.",
    )

    class Meta:
        model = SyncRun
        fields: tuple[str, ...] = (
            "url",
            "id",
            "status",
            "trigger",
            "complete",
            "started_at",
            "finished_at",
            "created_count",
            "updated_count",
            "unchanged_count",
            "missing_count",
            "pages",
            "requests",
            "error_code",
            "error_message",
        )
        read_only_fields = fields


@extend_schema_serializer(component_name="CometChatQueuedSyncRun")
class QueuedSyncRunSerializer(SyncRunSerializer):
    """A sync handed to a task worker: the run (status "queued") and the task's id; or the
    owner's sync already queued or running, answered instead of queueing another."""

    task_id = serializers.CharField(
        read_only=True,
        allow_null=True,
        default=None,
        help_text="The task result id the queue gave the sync; null when already_queued.",
    )
    already_queued = serializers.BooleanField(
        read_only=True,
        default=False,
        help_text="True: a sync of the user was already queued or running, and this is that "
        "run; nothing new was queued.",
    )

    class Meta(SyncRunSerializer.Meta):
        fields = (*SyncRunSerializer.Meta.fields, "task_id", "already_queued")
        read_only_fields = fields


@extend_schema_serializer(component_name="CometChatQueuedRefresh")
class QueuedRefreshSerializer(serializers.Serializer[Any]):
    """A refresh handed to a task worker, or one of the same conversation already queued."""

    task_id = serializers.CharField(
        allow_null=True,
        help_text="The task result id the queue gave the refresh; null when already_queued.",
    )
    conversation = serializers.URLField(
        help_text="The conversation's URL: its stored copy, once the worker is done (404 until "
        "it was stored a first time)."
    )
    already_queued = serializers.BooleanField(
        help_text="True: a refresh of this conversation was already queued for the user; "
        "nothing new was queued."
    )


@extend_schema_serializer(component_name="CometChatErrorDetail")
class ErrorDetailSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(
        help_text="This API's error code (e.g. ERR_INVALID_ID, ERR_NOT_FOUND, ERR_UID_TAKEN, "
        "ERR_TOO_MANY_REQUESTS, ERR_UPSTREAM_SERVER_ERROR); CometChat's own codes stay in the "
        "site's logs and sync runs."
    )
    message = serializers.CharField(help_text="What happened, for people. Never holds the key.")
    status = serializers.IntegerField(help_text="The HTTP status of this response.")
    retry_after = serializers.IntegerField(
        required=False, help_text="Seconds to wait before retrying (also the Retry-After header)."
    )
    details = serializers.JSONField(
        required=False, help_text="Per-parameter messages of an ERR_INVALID_REQUEST."
    )


@extend_schema_serializer(component_name="CometChatError")
class ErrorSerializer(serializers.Serializer[Any]):
    error = ErrorDetailSerializer()
