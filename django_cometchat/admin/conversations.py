"""Conversations (an inbox, with refresh and sync actions, and a Messages view of each) and
their snapshots.

dj-stripe's admin is the model: the stored payload beside a few typed columns, nothing editable,
and actions that re-fetch from the source. Every refresh goes through ``services`` (see
:mod:`.refresh`); nothing here talks to CometChat or writes a row itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_permission_codename
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import ngettext

from .. import services
from ..models import Conversation, ConversationSnapshot
from .base import (
    PayloadDeferredChangeList,
    ReadOnly,
    ReadOnlyAdmin,
    search_terms,
)
from .conversation_messages import ConversationMessagesView
from .filters import (
    MissingFilter,
    OwnerUIDFilter,
    SnapshotConversationFilter,
    UnreadFilter,
)
from .inbox import InboxColumns, add_inbox_fields
from .refresh import BatchOutcome, refresh_conversations, sync_owners
from .rendering import (
    clipped,
    last_message_html,
    pretty_json,
    short_summary,
)

if TYPE_CHECKING:
    pass


MAX_MESSAGES = 10  # failure messages shown per action; the rest are summed up


class InboxChangeList(PayloadDeferredChangeList):
    """The payload stays unread; the few keys the inbox shows come for the page's rows in one
    more query (see .inbox)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        add_inbox_fields(self.result_list)  # evaluates the page once; the template reuses it


class PayloadColumns:
    """Columns shown for a stored payload, by conversations and snapshots alike."""

    @admin.display(description="unread and last message")
    def summary(self, obj: Conversation | ConversationSnapshot) -> SafeString:
        return clipped(short_summary(obj.payload))

    @admin.display(description="last message")
    def last_message_text(self, obj: Conversation | ConversationSnapshot) -> SafeString:
        return last_message_html(obj.last_message)

    @admin.display(description="payload (as CometChat sent it)")
    def payload_pretty(self, obj: Conversation | ConversationSnapshot) -> SafeString:
        return pretty_json(obj.payload)


class SnapshotInline(ReadOnly, PayloadColumns, admin.TabularInline):  # type: ignore[type-arg]
    """The newest snapshots of a conversation (see ``ConversationAdmin.history_limit``)."""

    model = ConversationSnapshot
    fields = ("fetched_at", "summary", "content_hash")
    ordering = ("-fetched_at", "-id")
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "history (newest first)"


@admin.register(Conversation)
class ConversationAdmin(ConversationMessagesView, InboxColumns, PayloadColumns, ReadOnlyAdmin):
    # An inbox: who, whose, the last message and the unread count fit a 1280-pixel window beside
    # the navigation and filter sidebars; the conversation id, the type, the owner's Django user
    # and the times are on the object page (see .inbox).
    list_display = ("inbox_peer", "owner_column", "inbox_last_message", "inbox_unread")
    list_select_related = ("owner",)
    list_filter = ("conversation_type", UnreadFilter, MissingFilter, OwnerUIDFilter)
    # Declared for the search box; get_search_results implements them with index-friendly
    # lookups (Django's "=" and "^" mean iexact/istartswith, i.e. UPPER(column), which no plain
    # index serves).
    search_fields = ("=conversation_id", "^peer_name", "=owner_uid")
    search_help_text = (
        "Exact conversation id or owner UID, or the start of the peer name "
        '(quote a name with spaces: "Bob Stone").'
    )
    date_hierarchy = "updated_at"
    ordering = ("-updated_at", "-id")
    # Only orders an index serves; sorting 1,000,000 rows by an unindexed column takes seconds.
    sortable_by = ("inbox_peer", "inbox_last_message")
    actions = ("refresh_from_cometchat", "sync_owners")
    inlines = (SnapshotInline,)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "conversation_id",
                    "conversation_type",
                    "owner_detail",
                    "peer_detail",
                    "unread_message_count",
                )
            },
        ),
        ("Last message", {"fields": ("last_message_text",)}),
        (
            "Times",
            {"fields": ("created_at", "updated_at", "fetched_at", "missing_since")},
        ),
        ("Payload (as CometChat sent it)", {"fields": ("payload_pretty", "content_hash")}),
        ("History", {"fields": ("history_link",)}),
    )
    history_limit = 50  # snapshots listed on a conversation's page
    refresh_limit = 100  # rows one "Refresh from CometChat" may fetch
    sync_owner_limit = 20  # owners one "Sync these owners" may sync

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).select_related("owner")

    # Outside ATOMIC_REQUESTS' transaction, where the actions run: a queued run (a refresh's
    # claim) commits before its task is queued, for a worker in another process takes a task
    # at once (RQ's, from Redis) and would find no run to take.
    @transaction.non_atomic_requests
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(request, extra_context)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return InboxChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Each word: the exact conversation id or owner UID, or a peer name prefix.

        CometChat lowercases UIDs and GUIDs (and so the conversation ids made of them), so ids
        match exactly on the lowercased word: plain b-tree lookups. The name prefix is
        ``UPPER(peer_name) LIKE 'WORD%'``, served on PostgreSQL by a ``text_pattern_ops``
        expression index (migration 0002). Words are ANDed, as in Django's own search.
        """
        for term in search_terms(search_term):
            queryset = queryset.filter(
                Q(conversation_id__in=sorted({term, term.lower()}))
                | Q(owner_uid=term.lower())
                | Q(peer_name__istartswith=term)
            )
        return queryset, False

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Conversation, inline: Any, prefix: str
    ) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, SnapshotInline) and obj.pk is not None:
            newest = list(
                ConversationSnapshot.objects.filter(conversation=obj)
                .order_by("-fetched_at", "-id")
                .values_list("pk", flat=True)[: self.history_limit]
            )
            kwargs["queryset"] = kwargs["queryset"].filter(pk__in=newest)
        return kwargs

    # -- columns and fields -------------------------------------------------------------------

    @admin.display(description="owner UID")
    def owner_column(self, obj: Conversation) -> SafeString:
        return clipped(obj.owner_uid)

    @admin.display(description="owner")
    def owner_detail(self, obj: Conversation) -> SafeString:
        user = str(obj.owner) if obj.owner is not None else "no Django user"
        conversations = reverse("admin:django_cometchat_conversation_changelist")
        runs = reverse("admin:django_cometchat_syncrun_changelist")
        return format_html(
            '{} ({}) · <a href="{}?{}">all conversations</a> · <a href="{}?{}">sync runs</a>',
            obj.owner_uid,
            user,
            conversations,
            urlencode({"owner_uid": obj.owner_uid}),
            runs,
            urlencode({"q": obj.owner_uid}),
        )

    @admin.display(description="peer")
    def peer_detail(self, obj: Conversation) -> str:
        kind = "GUID" if obj.peer_guid else "UID"
        text = f"{obj.peer_name or '(no name)'} ({kind} {obj.peer_id})"
        peer = obj.conversation_with
        blocks = [
            words
            for key, words in (
                ("blockedByMe", "blocked by the owner"),
                ("hasBlockedMe", "has blocked the owner"),
            )
            if peer.get(key) is True
        ]
        return f"{text}; {' and '.join(blocks)}" if blocks else text

    @admin.display(description="snapshots")
    def history_link(self, obj: Conversation) -> SafeString:
        total = obj.snapshots.count()
        url = reverse("admin:django_cometchat_conversationsnapshot_changelist")
        if total <= self.history_limit:
            listed = "all listed below"
        else:
            listed = f"the newest {self.history_limit} are listed below"
        return format_html(
            '{} stored, {}. <a href="{}?conversation={}">Open the full history</a>',
            total,
            listed,
            url,
            obj.pk,
        )

    # -- actions --------------------------------------------------------------------------------

    def has_refresh_permission(self, request: HttpRequest) -> bool:
        """Re-fetching from CometChat rewrites the mirror: it needs the *change* permission,
        although no form here ever edits a row."""
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.action(description="Refresh from CometChat", permissions=["refresh"])
    def refresh_from_cometchat(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> None:
        limit = self.refresh_limit
        rows = list(queryset.select_related("owner").order_by("-updated_at", "-id")[: limit + 1])
        if len(rows) > limit:
            self.message_user(
                request,
                f"Select at most {limit} conversations to refresh at once; nothing was "
                "refreshed. For more, use “Sync these owners” or the cometchat_sync command.",
                messages.ERROR,
            )
            return
        outcome = refresh_conversations(rows)
        if outcome.done:
            self.message_user(
                request,
                ngettext(
                    "%(verb)s %(count)d conversation from CometChat.",
                    "%(verb)s %(count)d conversations from CometChat.",
                    len(outcome.done),
                )
                % {
                    "verb": "Queued a refresh of" if outcome.queued else "Refreshed",
                    "count": len(outcome.done),
                },
                messages.SUCCESS,
            )
        self._report_failures(request, outcome, "Could not refresh", "conversation")

    @admin.action(description="Sync these owners", permissions=["refresh"])
    def sync_owners(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        limit = self.sync_owner_limit
        uids = list(
            queryset.order_by("owner_uid")
            .values_list("owner_uid", flat=True)
            .distinct()[: limit + 1]
        )
        if len(uids) > limit:
            self.message_user(
                request,
                f"Select the conversations of at most {limit} owners to sync at once; nothing "
                "was synced. For more, use the cometchat_sync command.",
                messages.ERROR,
            )
            return
        found = services.owners_by_uid(uids)
        owners = [found[uid] for uid in uids]
        outcome = sync_owners(owners)
        if outcome.done:
            self.message_user(
                request,
                ngettext(
                    "%(verb)s %(count)d owner from CometChat: %(owners)s.",
                    "%(verb)s %(count)d owners from CometChat: %(owners)s.",
                    len(outcome.done),
                )
                % {
                    "verb": "Queued a sync of" if outcome.queued else "Synced",
                    "count": len(outcome.done),
                    "owners": "; ".join(outcome.done),
                },
                messages.SUCCESS,
            )
        self._report_failures(request, outcome, "Could not sync", "owner")

    def _report_failures(
        self, request: HttpRequest, outcome: BatchOutcome, verb: str, noun: str
    ) -> None:
        for item, reason in outcome.failures[:MAX_MESSAGES]:
            self.message_user(request, f"{verb} {item}: {reason}", messages.ERROR)
        hidden = outcome.failed - MAX_MESSAGES
        if hidden > 0:
            self.message_user(
                request, f"… and {hidden} more {noun} failures like these.", messages.ERROR
            )
        if outcome.not_attempted:
            self.message_user(
                request,
                f"Stopped after that error: {outcome.not_attempted} more {noun}(s) were not "
                f"tried. {outcome.what_to_do}",
                messages.WARNING,
            )


@admin.register(ConversationSnapshot)
class ConversationSnapshotAdmin(PayloadColumns, ReadOnlyAdmin):
    list_display = ("fetched_at", "conversation_column", "owner_column", "summary")
    list_select_related = ("conversation",)
    list_filter = (SnapshotConversationFilter,)
    ordering = ("-fetched_at", "-id")
    sortable_by = ("fetched_at",)
    fields = (
        "conversation_link",
        "fetched_at",
        "content_hash",
        "last_message_text",
        "payload_pretty",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConversationSnapshot]:
        return super().get_queryset(request).select_related("conversation")

    @admin.display(description="conversation id")
    def conversation_column(self, obj: ConversationSnapshot) -> SafeString:
        return clipped(obj.conversation.conversation_id)

    @admin.display(description="owner UID")
    def owner_column(self, obj: ConversationSnapshot) -> SafeString:
        return clipped(obj.conversation.owner_uid)

    @admin.display(description="conversation")
    def conversation_link(self, obj: ConversationSnapshot) -> SafeString:
        url = reverse("admin:django_cometchat_conversation_change", args=(obj.conversation.pk,))
        return format_html('<a href="{}">{}</a>', url, obj.conversation)
