"""The ModelAdmins: read-only views of the mirror, with refresh and sync actions.

dj-stripe's admin is the model: the stored payload beside a few typed columns, nothing editable,
and actions that re-fetch from the source. Every refresh goes through ``services`` (see
:mod:`.refresh`); nothing here talks to CometChat or writes a row itself.

Built for tables of millions of rows: no ``COUNT(*)`` (:mod:`.pagination`), no filter that lists
values from the database (:mod:`.filters`), a search whose lookups match indexes, sorting only on
indexed columns, no facet counts, and a constant number of queries per page.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin, messages
from django.contrib.admin.filters import FieldListFilter, ListFilter, SimpleListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import flatten_fieldsets, get_fields_from_path
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_permission_codename
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import ngettext

from .. import services
from ..models import Conversation, ConversationSnapshot, SyncRun, UIDBinding, WebhookEvent
from ..types import database_datetime
from .conversation_messages import ConversationMessagesView
from .dates import IndexedDateHierarchy
from .filters import (
    ErrorCodeFilter,
    EventTimeFilter,
    FinishedWithinFilter,
    MissingFilter,
    OwnerUIDFilter,
    ReceivedWithinFilter,
    SnapshotConversationFilter,
    SyncProgressFilter,
    TriggerFilter,
    UnreadFilter,
)
from .inbox import InboxColumns, add_inbox_fields
from .pagination import DEFAULT_COUNT_LIMIT, LargeTablePaginator
from .refresh import BatchOutcome, refresh_conversations, sync_owners
from .rendering import (
    clipped,
    error_code_in,
    last_message_html,
    pretty_json,
    short_summary,
    status_badge,
    truncate,
    with_code,
)

if TYPE_CHECKING:
    from django.core.paginator import Paginator

MAX_MESSAGES = 10  # failure messages shown per action; the rest are summed up
ADMIN_CSS = "django_cometchat/admin.css"  # badges, and long values kept to their columns
DATE_PARTS = ("year", "month", "day")  # the date hierarchy's query parameters


def search_terms(search_term: str) -> list[str]:
    """The words of a search, as Django's admin splits them ("quoted phrases" stay whole)."""
    terms = []
    # A NUL can be in no stored value, and PostgreSQL refuses it in a query: drop it.
    for bit in smart_split(search_term.replace("\x00", "")):
        quoted = bit.startswith(('"', "'")) and bit[0] == bit[-1]
        term = (unescape_string_literal(bit) if quoted else bit).strip()
        if term:
            terms.append(term)
    return terms


class ReadOnly:
    """Nothing is added, changed or deleted, and every field shown is read-only (derived from
    the fieldsets, so a field is never listed twice)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # get_fieldsets() without fields or fieldsets asks the form, which asks this: recursion.
        if not (getattr(self, "fields", None) or getattr(self, "fieldsets", None)):
            return [f.name for f in self.model._meta.fields]  # type: ignore[attr-defined]
        return list(flatten_fieldsets(self.get_fieldsets(request, obj)))  # type: ignore[attr-defined]


class ReadOnlyAdmin(ReadOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    """Nothing is added, edited or deleted here: syncs own the mirror, the webhook its events,
    ``cometchat_rebind`` the UID bindings, ``cometchat_prune`` the history and old events. Staff
    with the view (or change) permission see every page read-only.

    Deleting is off even for superusers: a deleted conversation comes back on the next sync, and
    its history would be lost with it.
    """

    paginator = LargeTablePaginator
    count_limit = DEFAULT_COUNT_LIMIT
    show_full_result_count = False  # no second COUNT(*) of the unfiltered table
    show_facets = admin.ShowFacets.NEVER  # a facet is a COUNT per filter choice

    class Media:
        css: ClassVar[dict[str, tuple[str, ...]]] = {"all": (ADMIN_CSS,)}

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LargeTableChangeList

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        """Only the lookups the page offers: its list filters' parameters and its date
        hierarchy's.

        Django's default admits any lookup on the model's own fields from the URL
        (``?payload__icontains=``, ``?peer_name__iregex=``: a scan of the whole table per page,
        for any staff who may view it) and refuses only some across relations. Here anything
        else is Django's 400 (``DisallowedModelAdminLookup``), for superusers too. The search
        box (``q``) is no lookup: ``get_search_results`` decides what it matches. Nor is a
        raw-id popup's ``limit_choices_to`` (Django admits its pairs): a project that points
        one at these read-only lists adds its pairs in a subclass.
        """
        return lookup in self.offered_lookups(request)

    def offered_lookups(self, request: HttpRequest) -> set[str]:
        """The query parameters the list filters and the date hierarchy read, and the bare
        name of each filtered field (an equality, as its filter's ``__exact``)."""
        offered: set[str] = set()
        item: Any  # a field name, a (field name, filter class) pair or a filter class
        for item in self.get_list_filter(request):
            if isinstance(item, type) and issubclass(item, SimpleListFilter):
                offered.add(str(item.parameter_name))  # no need to build it: no query
                continue
            spec: ListFilter
            if isinstance(item, type) and issubclass(item, ListFilter):
                spec = item(request, {}, self.model, self)
            else:
                field_path, filter_class = (
                    item if isinstance(item, list | tuple) else (item, FieldListFilter.create)
                )
                field = get_fields_from_path(self.model, field_path)[-1]
                spec = filter_class(field, request, {}, self.model, self, field_path=field_path)
                # The bare field (?status=failed): the equality its own __exact link asks for.
                offered.add(field_path)
            offered.update(str(name) for name in spec.expected_parameters() if name)
        if self.date_hierarchy:
            offered.update(f"{self.date_hierarchy}__{part}" for part in DATE_PARTS)
        return offered

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator[Any]:
        return LargeTablePaginator(
            queryset, per_page, orphans, allow_empty_first_page, count_limit=self.count_limit
        )


class ExactUIDSearch:
    """The search box takes UIDs, matched exactly (lowercased, as stored): an index lookup."""

    uid_field = "owner_uid"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        uids = sorted({term.lower() for term in search_terms(search_term)})
        if uids:
            queryset = queryset.filter(**{f"{self.uid_field}__in": uids})
        return queryset, False


class LargeTableChangeList(ChangeList):
    """A changelist whose date hierarchy probes the index instead of sorting every row, and
    refuses a period no database column holds.

    ``admin/django_cometchat/change_list.html`` renders ``indexed_date_hierarchy`` in place of
    Django's ``cl``; see :mod:`.dates`.
    """

    @property
    def indexed_date_hierarchy(self) -> IndexedDateHierarchy:
        return IndexedDateHierarchy(self)

    def get_filters(self, request: HttpRequest) -> Any:
        self._check_period()
        return super().get_filters(request)

    def _check_period(self) -> None:
        """The date hierarchy's ``?updated_at__year=`` (``__month``, ``__day``) as a period
        whose bounds the database holds, by the API's cursor rule (``types.database_datetime``).

        Django computes the period's end itself and answers 500 for year 9999 (its end is in
        year 10000), a year too large for a C integer, or year 1 in a time zone east of UTC
        (its start is in year 0 in UTC); and it applies a month or a day without its year as
        a filter on every year, which no index serves. Here each is Django's answer to a bad
        filter value (``IncorrectLookupParameters``: the list again, unfiltered, ``?e=1``).
        """
        field = self.date_hierarchy
        if not field:
            return
        params = self.get_filters_params()
        year, month, day = (params.get(f"{field}__{part}") for part in DATE_PARTS)
        if year is None and month is None and day is None:
            return
        if year is None or (day is not None and month is None):
            # Django would filter on EXTRACT(month) alone: every row read, no index helps.
            raise IncorrectLookupParameters(f"{field}: a period is a year, a month or a day")
        try:
            start = datetime(
                int(year[-1]), int(month[-1] if month else 1), int(day[-1] if day else 1)
            )
            if day:
                end = start + timedelta(days=1)
            elif month:
                end = (start + timedelta(days=32)).replace(day=1)
            else:
                end = start.replace(year=start.year + 1)
        except (ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc
        zone = connections[self.root_queryset.db].timezone
        for bound in (start, end):
            moment = bound if zone is None else timezone.make_aware(bound)  # as Django does
            if database_datetime(moment, zone) is None:
                raise IncorrectLookupParameters(f"{field}: no such period")


class PayloadDeferredChangeList(LargeTableChangeList):
    """The list never shows the payload, so it is not read (nor decoded) for 100 rows."""

    def get_queryset(
        self, request: HttpRequest, exclude_parameters: list[str | None] | None = None
    ) -> QuerySet[Any]:
        return super().get_queryset(request, exclude_parameters).defer("payload")


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


@admin.register(SyncRun)
class SyncRunAdmin(ExactUIDSearch, ReadOnlyAdmin):
    # The Django user, each count and the error message are on the object page.
    list_display = ("started_at", "owner_column", "trigger", "status_column", "duration", "changes")
    list_select_related = ("owner",)
    # The health page links here with these (admin/health.py).
    list_filter = (
        "status",
        "trigger",
        FinishedWithinFilter,
        ErrorCodeFilter,
        SyncProgressFilter,
    )
    search_fields = ("=owner_uid",)
    search_help_text = "Exact owner UID; several UIDs separated by spaces."
    ordering = ("-started_at", "-id")
    sortable_by = ("started_at",)
    fieldsets = (
        (None, {"fields": ("owner_uid", "owner", "trigger", "status_column", "complete")}),
        ("Times", {"fields": ("started_at", "finished_at", "duration")}),
        (
            "Counts",
            {
                "fields": (
                    "created_count",
                    "updated_count",
                    "unchanged_count",
                    "missing_count",
                    "rechecked_count",
                    "pages",
                    "requests",
                )
            },
        ),
        ("Filters", {"fields": ("filters_pretty",)}),
        ("Error", {"fields": ("error_code", "error_message")}),
    )

    # A status this map does not name (one added later) gets a neutral badge.
    status_tones: ClassVar[dict[str, str]] = {
        SyncRun.Status.QUEUED: "pending",
        SyncRun.Status.RUNNING: "pending",
        SyncRun.Status.SUCCEEDED: "success",
        SyncRun.Status.FAILED: "error",
    }

    @admin.display(description="owner UID")
    def owner_column(self, obj: SyncRun) -> SafeString:
        return clipped(obj.owner_uid)

    @admin.display(description="status")
    def status_column(self, obj: SyncRun) -> SafeString:
        badge = status_badge(obj.status, obj.get_status_display(), self.status_tones)
        return with_code(badge, obj.error_code, obj.error_message)

    @admin.display(description="duration")
    def duration(self, obj: SyncRun) -> str:
        seconds = obj.duration_seconds
        if seconds is None:
            return "running" if obj.status == SyncRun.Status.RUNNING else "-"
        return f"{seconds:.2f} s"

    @admin.display(description="changes")
    def changes(self, obj: SyncRun) -> str:
        """What the run changed, zeros left out: "2 new, 1 updated"; "none" once it ended."""
        counts = (
            (obj.created_count, "new"),
            (obj.updated_count, "updated"),
            (obj.missing_count, "missing"),
        )
        changed = ", ".join(f"{count:,} {what}" for count, what in counts if count)
        return changed or ("none" if obj.finished_at is not None else "-")

    @admin.display(description="filters")
    def filters_pretty(self, obj: SyncRun) -> SafeString:
        return pretty_json(obj.filters)


@admin.register(UIDBinding)
class UIDBindingAdmin(ExactUIDSearch, ReadOnlyAdmin):
    """Which account each CometChat UID belongs to. Read-only: ``cometchat_rebind`` moves a UID
    on purpose, with its rows."""

    list_display = ("uid_column", "user_column", "bound_at")
    list_select_related = ("user",)
    search_fields = ("=uid",)
    search_help_text = "Exact CometChat UID; several UIDs separated by spaces."
    uid_field = "uid"
    ordering = ("uid",)
    sortable_by = ("uid_column",)
    fields = ("uid", "user", "bound_at")

    @admin.display(description="CometChat UID", ordering="uid")
    def uid_column(self, obj: UIDBinding) -> SafeString:
        return clipped(obj.uid)

    @admin.display(description="user")
    def user_column(self, obj: UIDBinding) -> SafeString:
        return clipped(str(obj.user))


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    """CometChat's webhook deliveries as received, newest first. Read-only: CometChat sends them,
    ``process_webhook_event`` processes them."""

    list_display = ("received_at", "trigger_column", "status_column", "error_summary")
    list_filter = (TriggerFilter, "status", ReceivedWithinFilter, EventTimeFilter)
    ordering = ("-received_at", "-id")
    sortable_by = ("received_at",)
    fieldsets = (
        (None, {"fields": ("trigger", "status_column", "owners_list", "error")}),
        ("Times", {"fields": ("event_at", "received_at", "processed_at")}),
        ("Payload (as CometChat sent it)", {"fields": ("payload_pretty", "dedupe_key")}),
    )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return PayloadDeferredChangeList

    # A status this map does not name (one added later) gets a neutral badge.
    status_tones: ClassVar[dict[str, str]] = {
        WebhookEvent.Status.RECEIVED: "pending",
        WebhookEvent.Status.PROCESSING: "pending",
        WebhookEvent.Status.PROCESSED: "success",
        WebhookEvent.Status.IGNORED: "neutral",
        WebhookEvent.Status.FAILED: "error",
        WebhookEvent.Status.DEFERRED: "warning",  # waits for cometchat_refresh_stale
    }

    @admin.display(description="trigger")
    def trigger_column(self, obj: WebhookEvent) -> SafeString:
        return clipped(obj.trigger or "-")

    @admin.display(description="status")
    def status_column(self, obj: WebhookEvent) -> SafeString:
        badge = status_badge(obj.status, obj.get_status_display(), self.status_tones)
        if obj.status != WebhookEvent.Status.FAILED:
            return badge
        return with_code(badge, error_code_in(obj.error), obj.error)

    @admin.display(description="error or reason")
    def error_summary(self, obj: WebhookEvent) -> SafeString:
        return clipped(truncate(obj.error, 200))

    @admin.display(description="refreshed owners")
    def owners_list(self, obj: WebhookEvent) -> str:
        owners = obj.owners if isinstance(obj.owners, list) else []
        return ", ".join(map(str, owners)) or "-"

    @admin.display(description="payload")
    def payload_pretty(self, obj: WebhookEvent) -> SafeString:
        if obj.payload is None:
            return format_html("<em>{}</em>", "Not stored: the delivery was refused.")
        return pretty_json(obj.payload)
