"""Snapshot models: the latest view of each conversation per owner, its history, and sync runs.

Models never import the client; ``services`` is the only place the two meet.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import Q

_M = TypeVar("_M", bound=models.Model)


class OwnedQuerySet(models.QuerySet[_M]):
    """Rows of one owner. The one home of owner scoping: the API and the admin both use it."""

    owner_path = "owner_uid"

    def owned_by(self, owner_uid: str) -> OwnedQuerySet[_M]:
        return self.filter(**{self.owner_path: owner_uid})

    def owned_while_bound(self, owner_uid: str, user_id: Any) -> OwnedQuerySet[_M]:
        """``owned_by``, and nothing unless ``owner_uid`` is bound to ``user_id``: the binding
        is checked in the same statement as the rows (an uncorrelated EXISTS, evaluated once),
        so a read that finds rows needs no query of its own to check it."""
        bound = UIDBinding.objects.filter(uid=owner_uid, user_id=user_id)
        return self.owned_by(owner_uid).filter(models.Exists(bound))


class SnapshotQuerySet(OwnedQuerySet["ConversationSnapshot"]):
    owner_path = "conversation__owner_uid"


class PayloadParts:
    """The parts of a stored CometChat payload that pages show (one rule for both models)."""

    payload: Any

    @property
    def conversation_with(self) -> dict[str, Any]:
        value = self.payload.get("conversationWith") if isinstance(self.payload, dict) else None
        return value if isinstance(value, dict) else {}

    @property
    def last_message(self) -> dict[str, Any] | None:
        value = self.payload.get("lastMessage") if isinstance(self.payload, dict) else None
        return value if isinstance(value, dict) else None


class UIDBinding(models.Model):
    """Which Django user a CometChat UID belongs to: one UID, at most one account.

    Made the first time a user acts (a sync, a refresh, an API read); a second account whose
    ``UID_RESOLVER`` result is the same UID is refused. ``cometchat_rebind`` moves a UID to
    another account on purpose.
    """

    uid = models.CharField("CometChat UID", max_length=100, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="cometchat_uid_bindings",
    )
    bound_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "UID binding"
        ordering = ("uid",)

    def __str__(self) -> str:
        return f"{self.uid} (Django user {self.user_id})"


class ConversationType(models.TextChoices):
    USER = "user", "One-to-one"
    GROUP = "group", "Group"


class Conversation(PayloadParts, models.Model):
    """The latest snapshot of one conversation as one owner sees it.

    ``created_at``/``updated_at`` are CometChat's ``createdAt``/``updatedAt``, not our row's
    timestamps; ``fetched_at`` is when the request that fetched the stored content left (it
    moves only when the content changes; writes are ordered by it, see ``storage``).
    ``missing_since`` is set when CometChat confirmed that the owner no longer has it: after a
    complete sync no longer returned it, or after a webhook event said the owner lost it (kicked,
    left, banned, the group deleted). Rows are never hard-deleted by either.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="cometchat_conversations",
    )
    owner_uid = models.CharField("owner UID", max_length=100)
    conversation_id = models.CharField("conversation id", max_length=210)
    conversation_type = models.CharField("type", max_length=5, choices=ConversationType.choices)
    unread_message_count = models.PositiveIntegerField("unread", default=0)
    created_at = models.DateTimeField("created (CometChat)", null=True, blank=True)
    updated_at = models.DateTimeField("updated (CometChat)")
    peer_uid = models.CharField("peer UID", max_length=100, blank=True, default="")
    peer_guid = models.CharField("peer GUID", max_length=100, blank=True, default="")
    peer_name = models.CharField("peer name", max_length=255, blank=True, default="")
    payload = models.JSONField("CometChat payload")
    content_hash = models.CharField(max_length=64)
    fetched_at = models.DateTimeField(
        "fetched",
        help_text="When the request that fetched this content left (this site's clock).",
    )
    missing_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When CometChat confirmed the owner no longer has it (the proving request).",
    )

    objects = OwnedQuerySet["Conversation"].as_manager()

    class Meta:
        verbose_name = "conversation"
        ordering = ("-updated_at", "-id")
        # Beyond view_conversation: reading what was said is the most sensitive thing the package
        # does, so it is a right of its own (the admin's Messages view asks for it).
        permissions = (("view_conversation_messages", "Can read conversation messages"),)
        constraints = (
            models.UniqueConstraint(
                fields=("owner_uid", "conversation_id"),
                name="cometchat_conversation_owner_uid_conversation_id_uniq",
            ),
        )
        indexes = (
            # The API lists one owner's rows newest first, optionally filtered.
            models.Index(fields=("owner_uid", "-updated_at"), name="cometchat_conv_owner_updated"),
            models.Index(fields=("owner", "-updated_at"), name="cometchat_conv_ownerfk_updated"),
            # The admin changelist: default ordering and its filters.
            models.Index(fields=("-updated_at", "-id"), name="cometchat_conv_updated"),
            models.Index(
                fields=("conversation_type", "-updated_at"), name="cometchat_conv_type_updated"
            ),
            models.Index(fields=("missing_since",), name="cometchat_conv_missing"),
            models.Index(fields=("peer_name",), name="cometchat_conv_peer_name"),
            # The admin's search: an exact conversation id across owners. (Its peer name prefix
            # search is served on PostgreSQL by UPPER(peer_name) text_pattern_ops, created by
            # migration 0002 outside the model state: no portable Index can express it.)
            models.Index(fields=("conversation_id",), name="cometchat_conv_conv_id"),
        )

    def __str__(self) -> str:
        return f"{self.owner_uid}: {self.conversation_id}"

    @property
    def peer_id(self) -> str:
        return self.peer_uid or self.peer_guid


class ConversationSnapshot(PayloadParts, models.Model):
    """Append-only history: one row each time a conversation's payload changed."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="snapshots"
    )
    payload = models.JSONField()
    content_hash = models.CharField(max_length=64)
    fetched_at = models.DateTimeField()

    objects = SnapshotQuerySet.as_manager()

    class Meta:
        verbose_name = "conversation snapshot"
        ordering = ("-fetched_at", "-id")
        indexes = (
            models.Index(
                fields=("conversation", "-fetched_at"), name="cometchat_snap_conv_fetched"
            ),
            models.Index(fields=("fetched_at",), name="cometchat_snap_fetched"),
        )

    def __str__(self) -> str:
        # CometChat's id, not conversation_id (the local key of the Conversation row).
        return f"{self.conversation.conversation_id} @ {self.fetched_at:%Y-%m-%d %H:%M:%S}"


class SyncRun(models.Model):
    """One sync attempt: who, why, how it went, what it changed and why it failed."""

    class Trigger(models.TextChoices):
        COMMAND = "command", "Command"
        API = "api", "API"
        ADMIN = "admin", "Admin"
        TASK = "task", "Task"
        WEBHOOK = "webhook", "Webhook"
        CODE = "code", "Code"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"  # enqueued for a task worker, not started yet
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="cometchat_sync_runs",
    )
    owner_uid = models.CharField("owner UID", max_length=100)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.CODE)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    filters = models.JSONField(default=dict, blank=True)
    complete = models.BooleanField(
        default=False, help_text="An unfiltered sync that walked every page."
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    created_count = models.PositiveIntegerField("created", default=0)
    updated_count = models.PositiveIntegerField("updated", default=0)
    unchanged_count = models.PositiveIntegerField("unchanged", default=0)
    missing_count = models.PositiveIntegerField("missing", default=0)
    rechecked_count = models.PositiveIntegerField(
        "re-checked",
        default=0,
        help_text="Conversations the complete sync did not see, asked for one by one before "
        "any was marked missing.",
    )
    pages = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=100, blank=True, default="")
    error_message = models.TextField(
        blank=True, default="", help_text="The operator's text (describe()): admin and log only."
    )
    public_error_message = models.CharField(
        max_length=300,
        blank=True,
        default="",
        help_text="What the owner may read (public_message): the API shows this one.",
    )
    exclusive = models.BooleanField(
        default=False,
        editable=False,
        help_text="Requested through the API, the admin or the queue: while it is queued or "
        "running, a new request for the owner answers this run instead of starting another.",
    )

    objects = OwnedQuerySet["SyncRun"].as_manager()

    class Meta:
        verbose_name = "sync run"
        ordering = ("-started_at", "-id")
        constraints = (
            # One requested sync per owner on its way: the database decides between concurrent
            # requests (services.claim_sync_run). Commands and code sync beside it, unchecked.
            models.UniqueConstraint(
                fields=("owner_uid",),
                condition=Q(exclusive=True, status__in=("queued", "running")),
                name="cometchat_run_one_requested",
            ),
        )
        indexes = (
            models.Index(fields=("owner_uid", "-started_at"), name="cometchat_run_owner_started"),
            models.Index(fields=("owner", "-started_at"), name="cometchat_run_ownerfk_started"),
            models.Index(fields=("status", "-started_at"), name="cometchat_run_status_started"),
            # The health page: owners synced (or runs failed) within the last hour or day.
            models.Index(fields=("status", "-finished_at"), name="cometchat_run_status_finished"),
            # The admin's sync run list, newest first.
            models.Index(fields=("-started_at", "-id"), name="cometchat_run_started"),
        )

    def __str__(self) -> str:
        return f"sync {self.owner_uid} {self.status} @ {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class QueuedRefresh(models.Model):
    """A conversation refresh waiting in the task queue: one per owner and conversation, so that
    a request for the same refresh answers "already queued" instead of queueing another. The
    task deletes the row as it starts (a request after that queues a new refresh: the running
    one may have asked CometChat too early); a row older than ``SYNC_ABANDONED_AFTER`` was never
    taken and no longer counts."""

    owner_uid = models.CharField("owner UID", max_length=100)
    conversation_id = models.CharField("conversation id", max_length=210)
    queued_at = models.DateTimeField()

    class Meta:
        verbose_name = "queued refresh"
        constraints = (
            models.UniqueConstraint(
                fields=("owner_uid", "conversation_id"), name="cometchat_refresh_one_queued"
            ),
        )

    def __str__(self) -> str:
        return f"refresh {self.conversation_id} of {self.owner_uid} queued @ {self.queued_at}"


class WebhookEvent(models.Model):
    """One delivery of a CometChat webhook, as received (a retried one is not stored twice).

    ``dedupe_key`` identifies the event across CometChat's retries (``webhook_types``). It is
    empty (NULL) for a delivery refused as malformed (recorded without its payload), for one
    meant for another CometChat app, and for an event whose key a later delivery took over (a
    body without an event time, delivered again after the retry horizon or after newer news
    about its ``topic``). ``topic`` (a hash, empty for most triggers) names what such an event
    is about: a blocker, a group. ``payload`` is the body as CometChat sent it, for operators;
    never a header or credential.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"  # recorded; its processing is queued
        PROCESSING = "processing", "Processing"  # a worker took it (stays so if that worker died)
        PROCESSED = "processed", "Processed"  # its refreshes ran, or were enqueued (a group)
        IGNORED = "ignored", "Ignored"  # a trigger this app does not act on
        FAILED = "failed", "Failed"  # refused as malformed, or its processing failed
        # Processed inline, and the rate budget had no slot for it without waiting:
        # cometchat_refresh_stale takes it up.
        DEFERRED = "deferred", "Deferred"

    trigger = models.CharField(max_length=64, blank=True, default="")
    received_at = models.DateTimeField()
    # NULL, not "", for a refused delivery: a unique column holds any number of NULLs.
    dedupe_key = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    processed_at = models.DateTimeField(null=True, blank=True)
    event_at = models.DateTimeField(
        "event time (CometChat)",
        null=True,
        blank=True,
        editable=False,
        help_text="When the event happened, by the time its body carries (none for some "
        "triggers): the health page's lag is processed_at minus this.",
    )
    # When processing last started, or cometchat_refresh_stale queued it again: an event
    # received or processing since longer than SYNC_ABANDONED_AFTER was left by a dead worker.
    attempted_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The webhook queued a task for this event; events arriving while it still waits are left
    # to that task (services.webhook_events.needs_task) instead of queueing one each.
    task_queued = models.BooleanField(default=False, editable=False)
    error = models.TextField(blank=True, default="")
    owners = models.JSONField(
        "refreshed owners",
        default=list,
        blank=True,
        help_text="UIDs whose conversations it refreshed.",
    )
    payload = models.JSONField("CometChat payload", null=True, blank=True)
    topic = models.CharField(max_length=64, blank=True, default="", editable=False)

    class Meta:
        verbose_name = "webhook event"
        ordering = ("-received_at", "-id")
        constraints = (
            # NULLs (refused deliveries) never collide, on any supported database.
            models.UniqueConstraint(
                fields=("dedupe_key",), name="cometchat_webhook_dedupe_key_uniq"
            ),
        )
        indexes = (
            # The admin's changelist: default ordering and its two filters.
            models.Index(fields=("-received_at", "-id"), name="cometchat_hook_received"),
            models.Index(fields=("trigger", "-received_at"), name="cometchat_hook_trigger"),
            models.Index(fields=("status", "-received_at"), name="cometchat_hook_status"),
            models.Index(fields=("-event_at",), name="cometchat_hook_event_at"),
            # The events waiting for a worker, oldest first (services.claim_next_webhook_event),
            # and those a task was queued for (services.needs_task): a few rows, even when the
            # table holds millions.
            models.Index(
                fields=("id",), name="cometchat_hook_waiting", condition=Q(status="received")
            ),
            models.Index(
                fields=("id",),
                name="cometchat_hook_queued_for",
                condition=Q(status="received", task_queued=True),
            ),
            # "Anything newer about this topic?" (services.record_webhook); most rows have none.
            models.Index(
                fields=("topic", "id"), name="cometchat_hook_topic", condition=~Q(topic="")
            ),
        )

    def __str__(self) -> str:
        return f"{self.trigger or 'webhook'} @ {self.received_at:%Y-%m-%d %H:%M:%S}"


class NoRows(models.Manager["Health"]):
    def get_queryset(self) -> models.QuerySet[Health]:
        return super().get_queryset().none()  # no table to ask: never a query


class Health(models.Model):
    """No table: the admin's "Sync health" page (``admin/django_cometchat/health/``) listed in
    the app's index. It has no rows (its manager never queries); ``django_cometchat.health``
    gathers the figures."""

    objects = NoRows()

    class Meta:
        managed = False
        default_permissions = ()  # the page asks for view permission on sync runs
        verbose_name = "sync health"
        verbose_name_plural = "sync health"

    def __str__(self) -> str:
        return "sync health"


class MessageAccess(models.Model):
    """One page of a conversation's messages read by someone other than its owner (staff).

    The audit record of who read what and when: written for each page read with a ``reader``
    (``services.read_messages``), never for the owner reading their own messages. Rows keep the
    reader's username when the account is deleted; they hold no message body. Pruned only by
    ``cometchat_prune --message-access-days`` (``MESSAGE_ACCESS_MAX_AGE_DAYS``).
    """

    class Direction(models.TextChoices):
        OLDER = "older", "Older"
        NEWER = "newer", "Newer"

    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="cometchat_message_accesses",
    )
    staff_username = models.CharField("staff username", max_length=150)
    owner_uid = models.CharField("owner UID", max_length=100)
    conversation_id = models.CharField("conversation id", max_length=210)
    accessed_at = models.DateTimeField("read at", db_index=True)
    message_count = models.PositiveIntegerField("messages")
    cursor = models.TextField(
        blank=True,
        default="",
        help_text="The page's cursor (empty: the newest page).",
    )
    direction = models.CharField(max_length=5, choices=Direction.choices, default=Direction.OLDER)

    class Meta:
        verbose_name = "message access"
        verbose_name_plural = "message accesses"
        ordering = ("-accessed_at", "-id")
        indexes = (
            # The admin's changelist filters: by staff user, by owner.
            models.Index(fields=("staff_user", "-accessed_at"), name="cometchat_access_staff_read"),
            models.Index(fields=("owner_uid", "-accessed_at"), name="cometchat_access_owner_read"),
        )

    def __str__(self) -> str:
        return (
            f"{self.staff_username} read {self.conversation_id} of {self.owner_uid}"
            f" @ {self.accessed_at:%Y-%m-%d %H:%M:%S}"
        )
