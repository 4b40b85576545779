"""Use cases: the ONLY place the client and the models meet.

One function per use case, keyword-only options, no request-bound assumptions: the API, the
admin, the commands, tasks and webhooks all call these. Transactions and signals live here.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import OuterRef, Subquery
from django.db.models.expressions import Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from .client import CometChatClient
from .conf import get_settings
from .exceptions import CometChatBadRequest, CometChatError, CometChatResponseError
from .ids import validate_id
from .models import Conversation, ConversationSnapshot, SyncRun
from .signals import conversation_changed, conversations_synced
from .storage import (
    PageOutcome,
    SeenSet,
    clear_missing,
    content_hash,
    row_from,
    store_page,
    stored_hashes,
)
from .types import Conversation as RemoteConversation
from .types import PayloadShapeError, parse_conversation, updated_at_of

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .client import Page

logger = logging.getLogger(__name__)

FILTER_NAMES = frozenset(
    {"conversation_type", "unread", "search_key", "tags", "with_tags", "with_user_and_group_tags"}
)


class CometChatUserError(CometChatBadRequest):
    """The Django user cannot act in CometChat: anonymous, or the resolver gave no valid UID."""


def resolve_uid(user: Any) -> str:
    """The CometChat UID for a Django user, through ``UID_RESOLVER``; lowercased and validated."""
    if user is None or not getattr(user, "is_authenticated", False):
        raise CometChatUserError(
            "An anonymous user has no CometChat UID; sign in first", code="ERR_NO_UID"
        )
    raw = get_settings().uid_resolver()(user)
    if not raw:
        raise CometChatUserError(
            f"UID_RESOLVER returned no UID for user pk={user.pk}", code="ERR_NO_UID"
        )
    try:
        return validate_id(str(raw), "UID")
    except CometChatBadRequest as exc:
        raise CometChatUserError(
            f"UID_RESOLVER returned an invalid CometChat UID for user pk={user.pk}: "
            f"{exc.api_message}",
            code="ERR_INVALID_ID",
        ) from exc


@dataclass
class SyncResult:
    """What one sync did. ``run`` is the saved SyncRun (unsaved on a dry run)."""

    run: SyncRun
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    missing: int = 0
    pages: int = 0
    requests: int = 0
    error: CometChatError | None = None

    @property
    def kept(self) -> int:
        """Rows left as stored: unchanged, or older than what is stored."""
        return self.unchanged + self.stale

    @property
    def ok(self) -> bool:
        return self.error is None and self.run.status != SyncRun.Status.FAILED

    def add(self, page: PageOutcome) -> None:
        self.created += len(page.created)
        self.updated += len(page.updated)
        self.unchanged += page.unchanged
        self.stale += page.stale


def _owner_and_uid(user: Any, uid: str | None) -> tuple[Any, str]:
    if uid is not None:
        return user, validate_id(uid, "UID")
    return user, resolve_uid(user)


def sync_conversations(
    user: Any = None,
    *,
    uid: str | None = None,
    client: CometChatClient | None = None,
    trigger: str = SyncRun.Trigger.CODE,
    dry_run: bool = False,
    raise_errors: bool = True,
    **filters: Any,
) -> SyncResult:
    """Fetch every page of the owner's conversations on their behalf and store them.

    The owner is ``user`` (its UID from ``UID_RESOLVER``) or a bare ``uid``. Each page is written
    in its own transaction; a failure part-way leaves what was stored before untouched, marks
    nothing missing, and records the failed ``SyncRun`` with the reason. After a complete,
    unfiltered sync, stored conversations it did not return get ``missing_since``.

    With ``raise_errors=False`` a CometChat failure is returned in ``result.error`` instead.
    """
    unknown = set(filters) - FILTER_NAMES
    if unknown:
        raise TypeError(f"unknown sync filter(s): {', '.join(sorted(unknown))}")
    owner, owner_uid = _owner_and_uid(user, uid)
    active_filters = {k: v for k, v in filters.items() if v not in (None, False, "", ())}
    run = SyncRun(
        owner_id=owner.pk if owner is not None else None,
        owner_uid=owner_uid,
        trigger=trigger,
        filters=_jsonable(active_filters),
        started_at=timezone.now(),
    )
    if not dry_run:
        run.save()
    result = SyncResult(run=run)
    own_client = client is None
    client = client or CometChatClient()
    requests_before = client.request_count
    try:
        complete = not active_filters and not dry_run
        with SeenSet() if complete else nullcontext() as seen:
            _Walk(client, run, result, seen, dry_run=dry_run).run(filters)
    except BaseException as exc:  # Ctrl-C too: the run is recorded as failed, then re-raised
        result.requests = client.request_count - requests_before
        _finish(run, result, exc, dry_run=dry_run)
        if raise_errors or not isinstance(exc, CometChatError):
            raise
        result.error = exc
        return result
    finally:
        if own_client:
            client.close()
    result.requests = client.request_count - requests_before
    _finish(run, result, None, dry_run=dry_run)
    return result


CATCH_UP_MAX_PAGES = 10


class _Walk:
    """One sync's walk over the owner's pages: store each, catch up, then mark what is missing."""

    def __init__(
        self,
        client: CometChatClient,
        run: SyncRun,
        result: SyncResult,
        seen: SeenSet | None,
        *,
        dry_run: bool,
    ) -> None:
        self.client = client
        self.run_record = run
        self.owner_uid = run.owner_uid
        self.result = result
        self.seen = seen
        self.dry_run = dry_run
        self.repeats = 0  # ids seen twice: the list shifted under the walk

    def run(self, filters: dict[str, Any]) -> None:
        top_at_start: int | None = None
        pages = self.client.iter_raw_conversation_pages(
            on_behalf_of=self.owner_uid, prefetch=True, **filters
        )
        for page in pages:
            if top_at_start is None:
                top_at_start = updated_at_of(page.items[0].get("updatedAt"))
            self.store(page)
        if self.seen is None:
            return
        self.run_record.complete = True
        if self.repeats and top_at_start is not None:
            self.catch_up(top_at_start)
            logger.info(
                "Conversations of %s moved during the sync; missing marks wait for a quiet sync",
                self.owner_uid,
            )
            return
        self.result.missing = self.seen.mark_missing(
            self.owner_uid, started_at=self.run_record.started_at, now=timezone.now()
        )

    def store(self, page: Page[Mapping[str, Any]], *, count_unchanged: bool = True) -> None:
        """Store one page. Rows whose content is already stored are neither parsed nor written.

        The catch-up re-reads rows the walk already counted: it counts only what it writes.
        """
        self.result.pages += 1
        fetched_at = timezone.now()
        digests = [(raw["conversationId"], content_hash(raw), raw) for raw in page.items]
        ids = [cid for cid, _, _ in digests]
        known = stored_hashes(self.owner_uid, ids)
        changed = [(cid, d, raw) for cid, d, raw in digests if known.get(cid, ("",))[0] != d]
        back = [cid for cid, d, _ in digests if cid in known and known[cid] == (d, True)]
        if count_unchanged:
            self.result.unchanged += len(digests) - len(changed)
        # Parse before writing anything: one malformed row fails the page untouched.
        rows = [row_from(self._parse(raw), digest=d) for _, d, raw in changed]
        if self.dry_run:  # count what a real sync would write
            created = sum(1 for row in rows if row.conversation_id not in known)
            self.result.created += created
            self.result.updated += len(rows) - created
            return
        if self.seen is not None:
            self.repeats += self.seen.add(ids)
        if rows:
            outcome = store_page(
                owner_id=self.run_record.owner_id,
                owner_uid=self.owner_uid,
                rows=rows,
                fetched_at=fetched_at,
            )
            self.result.add(outcome)
            _announce_changes(self.owner_uid, outcome)
        if back:
            clear_missing(self.owner_uid, back)

    def _parse(self, raw: Mapping[str, Any]) -> RemoteConversation:
        try:
            return parse_conversation(raw)
        except PayloadShapeError as exc:
            raise CometChatResponseError(str(exc), endpoint="GET /conversations") from exc

    def catch_up(self, top_at_start: int) -> None:
        """Store what moved to the top of the list while the walk was under way.

        Offset paging over a list sorted by ``updatedAt`` skips a conversation that changes
        while the walk is under way: it jumps to page 1, which was already read, and the rows
        behind it shift by one, so the next page repeats a row already seen. That repeat is the
        sign. Everything that moved sits above the walk's first row, so re-reading pages until
        one reaches rows that old stores it. Missing marks then wait for a walk without repeats.
        """
        pages = self.client.iter_raw_conversation_pages(on_behalf_of=self.owner_uid)
        for number, page in enumerate(pages, start=1):
            self.store(page, count_unchanged=False)
            oldest = updated_at_of(page.items[-1].get("updatedAt"))
            if oldest < top_at_start or number >= CATCH_UP_MAX_PAGES:
                break


def _finish(run: SyncRun, result: SyncResult, exc: BaseException | None, *, dry_run: bool) -> None:
    run.finished_at = timezone.now()
    run.created_count = result.created
    run.updated_count = result.updated
    run.unchanged_count = result.kept
    run.missing_count = result.missing
    run.pages = result.pages
    run.requests = result.requests
    if exc is None:
        run.status = SyncRun.Status.SUCCEEDED
    else:
        run.status = SyncRun.Status.FAILED
        run.error_code = str(getattr(exc, "code", None) or type(exc).__name__)[:100]
        run.error_message = str(exc)[:2000] or type(exc).__name__
        logger.warning("CometChat sync of %s failed: %s", run.owner_uid, run.error_message)
    if not dry_run:
        run.save()
        conversations_synced.send(sender=SyncRun, result=result)


def _announce_changes(owner_uid: str, outcome: PageOutcome) -> None:
    if not conversation_changed.has_listeners(Conversation):
        return
    for created, changes in ((True, outcome.created), (False, outcome.updated)):
        for pk, conversation_id in changes:
            conversation_changed.send(
                sender=Conversation,
                owner_uid=owner_uid,
                conversation_id=conversation_id,
                pk=pk,
                created=created,
            )


def _jsonable(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple | list) else v for k, v in filters.items()}


def fetch_conversation(
    user: Any = None,
    conversation_id: str = "",
    *,
    uid: str | None = None,
    client: CometChatClient | None = None,
) -> Conversation:
    """Fetch one conversation live (through the supported endpoint its id maps to) and store it.

    An invalid id raises ``CometChatBadRequest`` before anything is sent. Returns the stored row,
    which stays the newer one if CometChat answered with an older payload.
    """
    owner, owner_uid = _owner_and_uid(user, uid)
    validate_id(conversation_id, "conversation id")
    own_client = client is None
    client = client or CometChatClient()
    try:
        remote = client.get_conversation(conversation_id, on_behalf_of=owner_uid)
    finally:
        if own_client:
            client.close()
    outcome = store_page(
        owner_id=owner.pk if owner is not None else None,
        owner_uid=owner_uid,
        rows=[row_from(remote)],
        fetched_at=timezone.now(),
    )
    _announce_changes(owner_uid, outcome)
    return Conversation.objects.get(owner_uid=owner_uid, conversation_id=remote.conversation_id)


def web_client() -> CometChatClient:
    """A client for on-demand work a person waits for: retries within ``WEB_RETRY_BUDGET``."""
    return CometChatClient(retry_budget=get_settings().web_retry_budget)


def request_sync(
    user: Any = None,
    *,
    uid: str | None = None,
    trigger: str,
    client: CometChatClient | None = None,
) -> SyncRun:
    """Refresh an owner's conversations on demand (the API, the admin) and return the SyncRun.

    The one seam for on-demand refreshes: today it syncs inline with a ``web_client()`` so a
    waiting person gets an answer fast; a background task can take its place without callers
    changing. A CometChat failure is recorded on the run and raised. Pass ``client`` to share
    one connection across a batch.
    """
    with _on_demand(client) as active:
        return sync_conversations(user, uid=uid, client=active, trigger=trigger).run


def request_refresh(
    user: Any = None,
    conversation_id: str = "",
    *,
    uid: str | None = None,
    client: CometChatClient | None = None,
) -> Conversation:
    """Fetch one conversation live, on demand, within ``WEB_RETRY_BUDGET``, and store it."""
    with _on_demand(client) as active:
        return fetch_conversation(user, conversation_id, uid=uid, client=active)


def _on_demand(client: CometChatClient | None) -> AbstractContextManager[CometChatClient]:
    return nullcontext(client) if client is not None else web_client()


def prune_history(
    *,
    max_age_days: int | None = None,
    keep_per_conversation: int | None = None,
    dry_run: bool = False,
) -> int:
    """Delete old snapshots; each conversation's latest snapshot is always kept.

    Defaults come from ``HISTORY_MAX_AGE_DAYS`` and ``HISTORY_KEEP_PER_CONVERSATION``. Returns
    how many snapshots were (or, on a dry run, would be) deleted.
    """
    settings = get_settings()
    max_age_days = settings.history_max_age_days if max_age_days is None else max_age_days
    keep = (
        settings.history_keep_per_conversation
        if keep_per_conversation is None
        else keep_per_conversation
    )
    if max_age_days is None and keep is None:
        return 0
    ranked = ConversationSnapshot.objects.annotate(
        rank=Window(RowNumber(), partition_by="conversation_id", order_by=("-fetched_at", "-id"))
    )
    doomed: set[int] = set()
    if keep is not None:
        doomed.update(ranked.filter(rank__gt=keep).values_list("id", flat=True))
    if max_age_days is not None:
        cutoff = timezone.now() - timedelta(days=max_age_days)
        # Not ranked.filter(fetched_at__lt=...): that WHERE would run before the window ranks.
        latest = (
            ConversationSnapshot.objects.filter(conversation=OuterRef("conversation"))
            .order_by("-fetched_at", "-id")
            .values("id")[:1]
        )
        doomed.update(
            ConversationSnapshot.objects.filter(fetched_at__lt=cutoff)
            .exclude(id=Subquery(latest))
            .values_list("id", flat=True)
        )
    if not dry_run:
        ids = sorted(doomed)
        for start in range(0, len(ids), 5000):
            ConversationSnapshot.objects.filter(id__in=ids[start : start + 5000]).delete()
    return len(doomed)
