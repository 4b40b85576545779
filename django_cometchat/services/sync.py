"""The sync engine: every page of an owner's conversations, stored; missing proven."""

from __future__ import annotations

import logging
from contextlib import closing, nullcontext, suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from .. import deadline
from ..client import CometChatClient
from ..conversation_filters import ConversationFilters
from ..conversation_types import Conversation as RemoteConversation
from ..conversation_types import (
    PayloadShapeError,
    conversation_id_of,
    parse_conversation,
    updated_at_of,
)
from ..exceptions import (
    CometChatDeadlineExceeded,
    CometChatError,
    CometChatResponseError,
    CometChatUnknownOwner,
)
from ..models import Conversation, SyncRun
from ..storage import (
    PageOutcome,
    Row,
    SeenSet,
    StoredHash,
    clear_missing,
    content_hash,
    mark_gone,
    page_transaction,
    row_from,
    store_page,
    stored_hashes,
    with_list_only_fields,
)
from .clients import background, kept_client, on_demand
from .ownership import as_owner, explain_unknown_owner, owner_by_uid
from .refresh import proves_gone
from .runs import (
    RunNotQueued,
    SyncResult,
    announce_changes,
    claim_sync_run,
    fail_queued_run,
    finish_run,
    queued_run,
    start_run,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..client import Page

logger = logging.getLogger(__name__)


CATCH_UP_MAX_PAGES = 10
# Up to this many candidates (or as many as the walk had pages, if more) are re-checked one GET
# each before a missing mark; more than that take a second walk over the pages first.
RECHECK_MAX = 25


def sync_conversations(
    owner: Any,
    *,
    filters: ConversationFilters | None = None,
    client: CometChatClient | None = None,
    trigger: str = SyncRun.Trigger.CODE,
    dry_run: bool = False,
    raise_errors: bool = True,
    run: SyncRun | None = None,
) -> SyncResult:
    """Fetch every page of the owner's conversations on their behalf and store them.

    ``owner`` is a Django user (its UID from ``UID_RESOLVER``, bound to it on first use) or an
    :class:`Owner`. Each page is written in its own transaction; a failure part-way leaves what
    was stored before untouched, marks nothing missing, and records the failed ``SyncRun`` with
    the reason. After a complete sync not narrowed by ``filters``, stored conversations it did not
    return are re-checked, and those CometChat confirms gone get ``missing_since``.

    With ``raise_errors=False`` a CometChat failure is returned in ``result.error`` instead.
    ``run`` is a queued ``SyncRun`` (``queue_sync_run``) that this sync carries out.
    """
    owner = as_owner(owner)
    filters = filters or ConversationFilters()
    run = start_run(owner, filters, trigger, run, dry_run=dry_run)
    result = SyncResult(run=run)
    try:
        # Inside the try: a missing setting is recorded on the run like any other failure.
        with nullcontext(client) if client is not None else kept_client() as active:
            requests_before = active.request_count
            try:
                complete = not filters.narrows and not dry_run
                with SeenSet() if complete else nullcontext() as seen:
                    _Walk(active, run, result, seen, dry_run=dry_run).run(filters)
            finally:
                result.requests = active.request_count - requests_before
    except BaseException as exc:  # Ctrl-C too: the run is recorded as failed, then re-raised
        # A process being stopped (a command's SIGTERM) fails its runs with that, whatever
        # the interrupted request made of it (a timeout, an answer cut off).
        stopped = deadline.interruption()
        if stopped is not None:
            finish_run(run, result, stopped, dry_run=dry_run)
            raise stopped from exc
        explain_unknown_owner(exc, owner)
        finish_run(run, result, exc, dry_run=dry_run)
        if raise_errors or not isinstance(exc, CometChatError):
            raise
        result.error = exc
        return result
    finish_run(run, result, None, dry_run=dry_run)
    return result


class _Walk:
    """One sync's walk over the owner's pages: store each, catch up, then prove what is missing."""

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
        # The candidates for a missing mark, read with the lock of a walk's only page.
        self.only_page_unseen: list[str] | None = None

    def run(self, filters: ConversationFilters) -> None:
        top_at_start: int | None = None
        pages = self.client.iter_raw_conversation_pages(
            on_behalf_of=self.owner_uid, filters=filters, prefetch=True
        )
        with closing(pages):  # a failure part-way stops the prefetching worker at once
            for page in pages:
                if top_at_start is None:
                    top_at_start = updated_at_of(page.items[0].get("updatedAt"))
                self.store(page)
        if self.seen is None:
            return
        self.run_record.complete = True
        if self.repeats and top_at_start is not None:
            self.catch_up(top_at_start)
        self.prove_missing(self.seen)

    def store(self, page: Page[Mapping[str, Any]], *, count_unchanged: bool = True) -> None:
        """Store one page. Rows whose content is already stored are neither parsed nor written.

        The catch-up and a second pass re-read rows the walk already counted: they count only
        what they write.
        """
        self.result.pages += 1
        digests = [(conversation_id_of(raw), content_hash(raw), raw) for raw in page.items]
        ids = [cid for cid, _, _ in digests]
        if self.dry_run:
            self.store_known(page, digests, stored_hashes(self.owner_uid, ids), count_unchanged)
            return
        # One transaction per page, the owner's lock taken with the read of the stored hashes
        # (and, for a walk of one page, of the rows it did not return: prove_missing's).
        unseen = None
        if self.seen is not None and count_unchanged and page.number == 1 and page.last:
            unseen = self.seen.only_page_unseen(
                self.owner_uid,
                ids,
                before=self.run_record.started_at,
                limit=self.recheck_limit() + 1,
            )
        with page_transaction(self.owner_uid, ids, unseen=unseen) as read:
            self.store_known(page, digests, read.hashes, count_unchanged)
        self.only_page_unseen = read.unseen

    def store_known(
        self,
        page: Page[Mapping[str, Any]],
        digests: list[tuple[str, str, Mapping[str, Any]]],
        known: dict[str, StoredHash],
        count_unchanged: bool,
    ) -> None:
        """``store`` once the stored hashes of the page's ids are known."""
        ids = [cid for cid, _, _ in digests]
        changed = [
            (cid, d, raw)
            for cid, d, raw in digests
            if cid not in known or known[cid].content_hash != d
        ]
        back = [
            cid for cid, d, _ in digests if cid in known and known[cid].unchanged_but_missing(d)
        ]
        if count_unchanged:
            self.result.unchanged += len(digests) - len(changed)
        # Parse (and check every value) before writing anything: one bad row fails the page.
        try:
            rows = [row_from(parse_conversation(raw), digest=d) for _, d, raw in changed]
        except PayloadShapeError as exc:
            raise CometChatResponseError(
                f"page {page.number}: {exc.describe()}", endpoint="GET /conversations"
            ) from exc
        if self.dry_run:  # count what a real sync would write
            created = sum(1 for row in rows if row.conversation_id not in known)
            self.result.created += created
            self.result.updated += len(rows) - created
            return
        if self.seen is not None:
            self.repeats += self.seen.add(ids)
        if rows:
            # Ordered by when the page's request left, not by when it is stored.
            self.write(rows, page.sent_at, locked=True)
        if back:
            clear_missing(self.owner_uid, back, before=page.sent_at)

    def write(self, rows: list[Row], sent_at: datetime, *, locked: bool = False) -> PageOutcome:
        outcome = store_page(
            owner_id=self.run_record.owner_id,
            owner_uid=self.owner_uid,
            rows=rows,
            fetched_at=sent_at,
            locked=locked,
        )
        self.result.add(outcome)
        announce_changes(self.owner_uid, outcome)
        return outcome

    def catch_up(self, top_at_start: int) -> None:
        """Store what moved to the top of the list while the walk was under way.

        Offset paging over a list sorted by ``updatedAt`` skips a conversation that changes
        while the walk is under way: it jumps to page 1, which was already read, and the rows
        behind it shift by one, so the next page repeats a row already seen. That repeat is the
        sign. Everything that moved sits above the walk's first row, so re-reading pages until
        one reaches rows that old stores it (a conversation new since the walk began too, which
        no re-check would find: it is not stored yet).
        """
        pages = self.client.iter_raw_conversation_pages(on_behalf_of=self.owner_uid)
        with closing(pages):
            for number, page in enumerate(pages, start=1):
                self.store(page, count_unchanged=False)
                oldest = updated_at_of(page.items[-1].get("updatedAt"))
                if oldest < top_at_start or number >= CATCH_UP_MAX_PAGES:
                    break

    def prove_missing(self, seen: SeenSet) -> None:
        """Mark missing only what CometChat confirms is gone.

        A stored row the walk did not see is only a candidate: a conversation that left above
        the current page between two page requests shifts the rows below it up by one, and one
        of them is never served. Each candidate is asked for on its own (a GET on the owner's
        behalf): found, it is stored; gone (``GONE_CODES``), it is marked; anything else leaves
        it as it is. When there are more candidates than ``RECHECK_MAX`` (and than the walk had
        pages), a second walk over the pages comes first; if that still leaves too many, what
        both walks left out is marked.
        """
        started = self.run_record.started_at
        limit = self.recheck_limit()
        candidates = self.only_page_unseen
        if candidates is None or self.repeats:  # several pages, or a catch-up stored more
            candidates = seen.unseen(self.owner_uid, before=started, limit=limit + 1)
        if len(candidates) > limit:
            logger.info(
                "More than %s conversations of %s were not seen; walking the pages again",
                limit,
                self.owner_uid,
            )
            second_started = timezone.now()
            pages = self.client.iter_raw_conversation_pages(
                on_behalf_of=self.owner_uid, prefetch=True
            )
            with closing(pages):
                for page in pages:
                    self.store(page, count_unchanged=False)
            candidates = seen.unseen(self.owner_uid, before=started, limit=limit + 1)
            if len(candidates) > limit:
                self.result.missing += seen.mark_missing(
                    self.owner_uid, before=started, proven_at=second_started
                )
                return
        if candidates:
            self.recheck(candidates)

    def recheck_limit(self) -> int:
        """How many candidates are re-checked one by one; one more read says "too many"."""
        return max(RECHECK_MAX, self.result.pages)

    def recheck(self, candidates: list[str]) -> None:
        """One GET per candidate; mark those CometChat confirms gone, in one statement at the
        end (a failure before it marks nothing, as a failed walk does)."""
        # When the first re-check left, or earlier: the proof's time (conservative, as any
        # request sent after it that stored one of these rows keeps it).
        proven_at = timezone.now()
        gone: list[str] = []
        unproven = 0
        for index, conversation_id in enumerate(candidates):
            self.result.rechecked += 1
            try:
                fetched = self.client.get_conversation_timed(
                    conversation_id, on_behalf_of=self.owner_uid
                )
            except CometChatError as exc:
                if proves_gone(exc):
                    gone.append(conversation_id)
                    continue
                if isinstance(exc, CometChatUnknownOwner | CometChatDeadlineExceeded):
                    raise
                if exc.scope == "global":  # the key, the plan: nothing else will work either
                    raise
                unproven += 1
                if exc.scope == "outage":  # CometChat is struggling: ask it nothing more now
                    unproven += len(candidates) - index - 1
                    logger.warning(
                        "Re-checking conversations of %s stopped (%s); %s stay as they are",
                        self.owner_uid,
                        exc.code,
                        len(candidates) - index,
                    )
                    break
                logger.info(
                    "Re-check of %s for %s proved nothing (%s); it stays as it is",
                    conversation_id,
                    self.owner_uid,
                    exc.code,
                )
                continue
            self.write([self.single_row(fetched.value)], fetched.sent_at)
        if gone:
            self.result.missing += mark_gone(self.owner_uid, gone, proven_at=proven_at)
        logger.info(
            "Re-checked %s conversations of %s not seen by the sync: %s gone, %s live, %s unproven",
            self.result.rechecked,
            self.owner_uid,
            len(gone),
            len(candidates) - len(gone) - unproven,
            unproven,
        )

    def single_row(self, remote: RemoteConversation) -> Row:
        """The row for a single GET's answer, with the stored block flags (as
        ``fetch_conversation`` keeps them)."""
        payload = remote.raw
        if remote.conversation_type == "user":
            stored = Conversation.objects.owned_by(self.owner_uid).filter(
                conversation_id=remote.conversation_id
            )
            payload = with_list_only_fields(
                payload, stored.values_list("payload", flat=True).first()
            )
        return row_from(remote, payload=payload)


def sync_on_demand(
    owner: Any,
    *,
    trigger: str,
    filters: ConversationFilters | None = None,
    client: CometChatClient | None = None,
) -> SyncRun:
    """Refresh an owner's conversations on demand (the API, the admin) and return the SyncRun.

    The one seam for on-demand refreshes: it syncs inline within ``WEB_DEADLINE`` so a waiting
    person gets an answer fast. A CometChat failure is recorded on the run and raised. Pass
    ``client`` to share one connection across a batch (inside the caller's ``on_demand()``).

    When a sync of the owner is already queued or running (``active_run``), nothing is fetched:
    that run is returned, its status still "queued" or "running" (a sync done here returns
    "succeeded"), so concurrent requests cost one walk over CometChat's pages.
    """
    owner = as_owner(owner)
    run, created = claim_sync_run(owner, trigger=trigger, filters=filters, queued=False)
    if not created:
        return run
    try:
        with on_demand(client) as active:
            return sync_conversations(
                owner, filters=filters, client=active, trigger=trigger, run=run
            ).run
    except BaseException as exc:
        if run.finished_at is None:  # failed before the sync took it over (no client, say)
            fail_queued_run(run, exc)
        raise


def sync_in_background(
    uid: str,
    *,
    trigger: str = SyncRun.Trigger.TASK,
    run_id: int | None = None,
    filters: ConversationFilters | None = None,
) -> SyncResult:
    """A sync task carried out (``sync_owner``): the owner by UID, with the Django user bound to
    it, synced within ``SYNC_DEADLINE``; ``run_id`` is the queued ``SyncRun`` it carries out.

    A queued run that is no longer queued (a queue that delivered the task twice, a run marked
    abandoned) is left alone: ``skipped`` says so. A CometChat failure is recorded on the run
    and returned in ``error``, not raised."""
    # Known by its id only: the sync's take reads it (one statement on PostgreSQL).
    run = queued_run(run_id) if run_id is not None else None
    try:
        with background():
            return sync_conversations(
                owner_by_uid(uid), filters=filters, trigger=trigger, raise_errors=False, run=run
            )
    except RunNotQueued:  # not queued any more: another delivery of the task took it, or
        assert run is not None  # the abandoned-run sweep marked it, or it was deleted
        with suppress(SyncRun.DoesNotExist):
            run.refresh_from_db()
        return SyncResult(run=run, skipped="not queued any more")
