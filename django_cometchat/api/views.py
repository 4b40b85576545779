"""HTTP in, service call or owner-scoped query out; CometChat errors mapped by ``errors``.

Every view serves only the requesting user's rows: the user's owner (``services.owner_for``, which
refuses a UID bound to another account) scopes every query through ``owned_by``, so another
user's row is a plain 404. The conversation list checks the binding inside its page query
instead (``owned_while_bound``) and asks ``owner_for`` only when the page is empty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import Model, QuerySet
from django.urls import reverse
from django.utils.decorators import method_decorator
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.filters import BaseFilterBackend
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from .. import services, tasks
from ..conversation_filters import ConversationFilters
from ..ids import validate_id
from ..models import Conversation, ConversationSnapshot, SyncRun
from .errors import exception_handler
from .filters import ConversationFilter, FilterBackend
from .pagination import ConversationPagination, SnapshotPagination, SyncRunPagination
from .schema import (
    CONVERSATION_ID,
    READ_ERRORS,
    REFRESH_ERRORS,
    SYNC_FILTERS,
    TAG,
    error_responses,
)
from .serializers import (
    LIST_FIELDS,
    NAMESPACE,
    ConversationDetailSerializer,
    ConversationSerializer,
    QueuedRefreshSerializer,
    QueuedSyncRunSerializer,
    SnapshotSerializer,
    SyncRunSerializer,
)
from .throttling import RefreshRateThrottle


class CometChatAPIView(APIView):
    """Signed-in users only; errors in the documented shape whatever the host's handler."""

    permission_classes: Sequence[type[BasePermission]] = (IsAuthenticated,)

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return exception_handler

    @cached_property
    def owner(self) -> services.Owner:
        # 400 ERR_NO_UID when UID_RESOLVER cannot map the user; 409 ERR_UID_TAKEN when its UID
        # belongs to another account.
        return services.owner_for(self.request.user)

    def conversation_id(self) -> str:
        # Validated before any lookup or upstream call: 400 ERR_INVALID_ID otherwise.
        return validate_id(self.kwargs["conversation_id"], "conversation id")

    def owned_conversation(self, *fields: str) -> Conversation:
        conversation_id = self.conversation_id()
        rows = Conversation.objects.owned_by(self.owner.uid).filter(conversation_id=conversation_id)
        try:
            return (rows.only(*fields) if fields else rows).get()
        except Conversation.DoesNotExist:
            raise NotFound("No such conversation.") from None


_M = TypeVar("_M", bound=Model)


class NotFoundView(CometChatAPIView):
    """Any path under the API that no route matches: a 404 in the API's error shape."""

    permission_classes = ()
    schema = None  # not an operation of the published schema

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        raise NotFound("No such API endpoint.")


class OwnedRowsView(CometChatAPIView, generics.GenericAPIView[_M]):
    """Reads of stored rows.

    Subclasses keep a class-level ``queryset`` only so drf-spectacular finds the model;
    ``get_queryset`` always narrows to the owner. Hermetic: a host's DEFAULT_FILTER_BACKENDS
    (an OrderingFilter, which CursorPagination would obey) must not reorder or filter these.
    """

    filter_backends: Sequence[type[BaseFilterBackend]] = ()


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class RefreshView(CometChatAPIView):
    """A refresh calls CometChat on the user's behalf: the cometchat_refresh throttle applies.

    Outside ``ATOMIC_REQUESTS``' transaction: the services commit a queued run (a refresh's
    claim) before its task is queued, for a worker in another process takes a task at once
    (RQ's, from Redis) and would find no run to take; an inline sync commits page by page."""

    def get_throttles(self) -> list[BaseThrottle]:
        # Added to the host's default throttles rather than replacing them.
        return [*super().get_throttles(), RefreshRateThrottle()]


@extend_schema_view(
    get=extend_schema(
        operation_id="cometchat_conversations_list",
        tags=[TAG],
        responses={200: ConversationSerializer(many=True), **error_responses(*READ_ERRORS)},
    )
)
class ConversationListView(OwnedRowsView[Conversation], generics.ListAPIView[Conversation]):
    """The signed-in user's stored conversations, most recently updated first."""

    queryset = Conversation.objects.all()
    serializer_class = ConversationSerializer
    pagination_class = ConversationPagination
    filter_backends = (FilterBackend,)
    filterset_class = ConversationFilter

    def get_queryset(self) -> QuerySet[Conversation]:
        user = self.request.user
        rows = Conversation.objects.owned_while_bound(services.resolve_uid(user), user.pk)
        return rows.only(*LIST_FIELDS)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The page query checks the UID's binding itself (the list is the busiest read). Only
        # an empty page needs ``owner``: it binds the UID on first use, or refuses with 409
        # when it belongs to another account. Bound just now, the page is read again.
        response = super().list(request, *args, **kwargs)
        if response.data["results"] or not self.owner.bound_now:
            return response
        return super().list(request, *args, **kwargs)


@extend_schema_view(
    get=extend_schema(
        operation_id="cometchat_conversations_retrieve",
        tags=[TAG],
        parameters=[CONVERSATION_ID],
        responses={200: ConversationDetailSerializer, **error_responses(*READ_ERRORS)},
    )
)
class ConversationDetailView(OwnedRowsView[Conversation], generics.RetrieveAPIView[Conversation]):
    """One stored conversation of the signed-in user, with its whole CometChat payload."""

    queryset = Conversation.objects.all()
    serializer_class = ConversationDetailSerializer

    def get_object(self) -> Conversation:
        return self.owned_conversation()


@extend_schema_view(
    get=extend_schema(
        operation_id="cometchat_conversations_history",
        tags=[TAG],
        parameters=[CONVERSATION_ID],
        responses={200: SnapshotSerializer(many=True), **error_responses(*READ_ERRORS)},
    )
)
class ConversationHistoryView(
    OwnedRowsView[ConversationSnapshot], generics.ListAPIView[ConversationSnapshot]
):
    """Every stored version of one conversation (one per change), newest first."""

    queryset = ConversationSnapshot.objects.all()
    serializer_class = SnapshotSerializer
    pagination_class = SnapshotPagination

    def get_queryset(self) -> QuerySet[ConversationSnapshot]:
        return ConversationSnapshot.objects.filter(conversation=self.owned_conversation("id"))


class SyncFiltersSerializer(serializers.Serializer[Any]):
    """Optional query parameters of a sync: each narrows it (and so marks nothing missing)."""

    conversation_type = serializers.ChoiceField(choices=("user", "group"), required=False)
    user_tags = serializers.CharField(required=False, max_length=2600)
    group_tags = serializers.CharField(required=False, max_length=2600)

    def filters(self) -> ConversationFilters:
        return ConversationFilters.from_kwargs(**self.validated_data)


class SyncView(RefreshView):
    @extend_schema(
        operation_id="cometchat_conversations_sync",
        tags=[TAG],
        request=None,
        parameters=SYNC_FILTERS,
        responses={
            201: SyncRunSerializer,
            202: QueuedSyncRunSerializer,
            **error_responses(*REFRESH_ERRORS),
        },
    )
    def post(self, request: Request) -> Response:
        """Sync the signed-in user's conversations from CometChat; answers the sync run.

        201: synced now (no task worker is configured). 202: handed to a task worker; the run
        is "queued" and Location (its URL) shows how it goes. Also 202, with already_queued
        true, when a sync of the user is already queued or running: that run, and nothing new.
        A failed sync answers the mapped error; its run is still recorded (see sync-runs). 503
        ERR_QUEUE_UNAVAILABLE: the task queue refused the sync (the run is recorded failed).
        """
        params = SyncFiltersSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        outcome = tasks.request_sync(
            self.owner, trigger=SyncRun.Trigger.API, filters=params.filters()
        )
        context = {"request": request}
        code: int
        if isinstance(outcome, tasks.Queued):
            data = QueuedSyncRunSerializer(outcome.run, context=context).data
            data["task_id"] = outcome.task_id
            data["already_queued"] = outcome.already_queued
            code = status.HTTP_202_ACCEPTED
        else:
            data = SyncRunSerializer(outcome, context=context).data
            code = status.HTTP_201_CREATED
        # str(): DRF's Hyperlink is a str subclass, and WSGI servers accept only str itself.
        return Response(data, status=code, headers={"Location": str(data["url"])})


class ConversationRefreshView(RefreshView):
    @extend_schema(
        operation_id="cometchat_conversations_refresh",
        tags=[TAG],
        parameters=[CONVERSATION_ID],
        request=None,
        responses={
            200: ConversationDetailSerializer,
            202: QueuedRefreshSerializer,
            **error_responses(*REFRESH_ERRORS),
        },
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        """Fetch one conversation of the signed-in user from CometChat and store it.

        200: refreshed now (no task worker is configured). 202: handed to a task worker;
        Location is the conversation's URL, which shows the stored copy once it is done. Also
        202, with already_queued true, when a refresh of it is already queued for the user.
        503 ERR_QUEUE_UNAVAILABLE: the task queue refused the refresh.
        """
        conversation_id = self.conversation_id()
        outcome = tasks.request_refresh(self.owner, conversation_id)
        if isinstance(outcome, tasks.Queued):
            url = request.build_absolute_uri(
                reverse(
                    f"{NAMESPACE}:conversation-detail",
                    kwargs={"conversation_id": conversation_id},
                )
            )
            data = {
                "task_id": outcome.task_id,
                "conversation": url,
                "already_queued": outcome.already_queued,
            }
            return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": url})
        return Response(ConversationDetailSerializer(outcome, context={"request": request}).data)


@extend_schema_view(
    get=extend_schema(
        operation_id="cometchat_sync_runs_list",
        tags=[TAG],
        responses={200: SyncRunSerializer(many=True), **error_responses(*READ_ERRORS)},
    )
)
class SyncRunListView(OwnedRowsView[SyncRun], generics.ListAPIView[SyncRun]):
    """The signed-in user's sync attempts, newest first, with counts and failure reasons."""

    queryset = SyncRun.objects.all()
    serializer_class = SyncRunSerializer
    pagination_class = SyncRunPagination

    def get_queryset(self) -> QuerySet[SyncRun]:
        return SyncRun.objects.owned_by(self.owner.uid)


@extend_schema_view(
    get=extend_schema(
        operation_id="cometchat_sync_runs_retrieve",
        tags=[TAG],
        responses={200: SyncRunSerializer, **error_responses(*READ_ERRORS)},
    )
)
class SyncRunDetailView(OwnedRowsView[SyncRun], generics.RetrieveAPIView[SyncRun]):
    """One sync attempt of the signed-in user."""

    queryset = SyncRun.objects.all()
    serializer_class = SyncRunSerializer

    def get_queryset(self) -> QuerySet[SyncRun]:
        return SyncRun.objects.owned_by(self.owner.uid)
