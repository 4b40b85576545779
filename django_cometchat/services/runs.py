"""Sync-run bookkeeping: start, finish, announce, claim, queue, abandon; refresh claims."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from ..conf import get_settings
from ..conversation_filters import ConversationFilters
from ..exceptions import CometChatError
from ..ids import validate_id
from ..models import Conversation, OwnedQuerySet, QueuedRefresh, SyncRun, UIDBinding
from ..signals import conversation_changed, conversations_synced, sync_run_finished
from ..storage import PageOutcome
from .errors import (
    ABANDONED_CODE,
    ABANDONED_MESSAGE,
    INTERRUPTED_CODE,
    MAX_ERROR_LENGTH,
    operator_message,
    public_message,
)
from .ownership import Owner, OwnerSelection, as_owner, owners_by_uid, unless_no_chat_user

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING)
# Tries of claim_sync_run to create or find the owner's one requested run against a race.
CLAIM_ATTEMPTS = 3


@dataclass
class SyncResult:
    """What one sync did. ``run`` is the saved SyncRun (unsaved on a dry run)."""

    run: SyncRun
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    missing: int = 0
    rechecked: int = 0  # candidates for a missing mark asked for one by one
    pages: int = 0
    requests: int = 0
    error: CometChatError | None = None
    skipped: str = ""  # why this sync did nothing (its queued run was no longer queued)

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


def start_run(
    owner: Owner, filters: ConversationFilters, trigger: str, run: SyncRun | None, *, dry_run: bool
) -> SyncRun:
    """The running ``SyncRun`` of this sync: the queued one it carries out, or a new one.

    A queued run is taken by one conditional update, so that of two deliveries of its task
    (queues deliver at least once) one carries it out; the other gets ``RunNotQueued``."""
    now = timezone.now()
    if run is not None and run.status == SyncRun.Status.QUEUED and not dry_run:
        _take_queued(run, owner.uid, now)
        return run
    if not dry_run:
        mark_abandoned_runs(owner.uid)
    if run is None:
        run = SyncRun(
            owner_id=owner.user_id,
            owner_uid=owner.uid,
            trigger=trigger,
            filters=filters.as_json(),
        )
    run.status = SyncRun.Status.RUNNING
    run.started_at = now
    if not dry_run:
        run.save()
    return run


def _take_queued(run: SyncRun, owner_uid: str, now: datetime) -> None:
    """Take a queued run (status "running", started now) and read it into ``run`` (a task
    may hand over a ``SyncRun`` with only its pk, ``queued_run``); then mark the owner's
    abandoned runs (this one started now, so it is spared). On PostgreSQL all three are one
    statement. ``RunNotQueued`` when another delivery of the task took it first."""
    db = connections[router.db_for_write(SyncRun)]
    if db.vendor != "postgresql":
        taken = SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.QUEUED).update(
            status=SyncRun.Status.RUNNING, started_at=now
        )
        if not taken:
            raise RunNotQueued(run.pk)
        run.refresh_from_db()
        mark_abandoned_runs(owner_uid)
        return
    table = db.ops.quote_name(SyncRun._meta.db_table)
    columns = ", ".join(
        db.ops.quote_name(f.column) for f in SyncRun._meta.concrete_fields if f.column
    )
    mark, values = _abandoned_update(now)
    # The owner's abandoned runs, as mark_abandoned_runs chooses them, once this one is taken.
    abandoned = (
        _abandoned_runs(now)
        .owned_by(owner_uid)
        .exclude(pk=run.pk)
        .filter(RawSQL("EXISTS (SELECT 1 FROM taken)", (), output_field=BooleanField()))
        .order_by()
        .values("id")
    )
    chosen, chosen_params = abandoned.query.get_compiler(using=db.alias).as_sql()
    sql = (
        f"WITH taken AS (UPDATE {table} SET status = %s, started_at = %s "  # noqa: S608
        f"WHERE id = %s AND status = %s RETURNING {columns}), "
        # SKIP LOCKED: the taken row stays locked until the commit, so waiting here for a row a
        # sweep holds (mark_abandoned_runs, which may wait for the taken row) would deadlock;
        # a run skipped is the sweep's to mark.
        f"marked AS (UPDATE {table} SET {mark} WHERE id IN ({chosen} FOR UPDATE SKIP LOCKED) "
        f"RETURNING id) SELECT {columns}, ARRAY(SELECT id FROM marked) AS marked_ids FROM taken"
    )
    params = [
        SyncRun.Status.RUNNING,
        now,
        run.pk,
        SyncRun.Status.QUEUED,
        *values,
        *chosen_params,
    ]
    found = list(SyncRun.objects.raw(sql, params).using(db.alias))
    if not found:
        raise RunNotQueued(run.pk)
    for f in SyncRun._meta.concrete_fields:
        setattr(run, f.attname, getattr(found[0], f.attname))
    run._state.adding, run._state.db = False, db.alias
    _announce_abandoned(found[0].marked_ids)  # type: ignore[attr-defined]  # the raw column


def queued_run(run_id: int) -> SyncRun:
    """A queued run known only by its id, for ``sync_conversations(..., run=...)`` to take and
    read in one statement (``start_run``)."""
    run = SyncRun(pk=run_id, status=SyncRun.Status.QUEUED)
    run._state.adding = False
    return run


class RunNotQueued(Exception):
    """A queued run another delivery of its task (or the abandoned-run sweep) took first."""


def finish_run(
    run: SyncRun, result: SyncResult, exc: BaseException | None, *, dry_run: bool
) -> None:
    run.finished_at = timezone.now()
    run.created_count = result.created
    run.updated_count = result.updated
    run.unchanged_count = result.kept
    run.missing_count = result.missing
    run.rechecked_count = result.rechecked
    run.pages = result.pages
    run.requests = result.requests
    if exc is None:
        run.status = SyncRun.Status.SUCCEEDED
    else:
        record_failure(run, exc)
    if not dry_run:
        run.save()
        transaction.on_commit(lambda: conversations_synced.send(sender=SyncRun, result=result))
        announce_run(run)


def announce_run(run: SyncRun, outcome: str | None = None) -> None:
    """``sync_run_finished`` for a run that ended (saved), once that is committed."""
    seconds = run.duration_seconds or 0.0
    transaction.on_commit(
        lambda: sync_run_finished.send_robust(
            sender=SyncRun,
            run=run,
            outcome=outcome or run.status,
            trigger=run.trigger,
            seconds=seconds,
        )
    )


def record_failure(run: SyncRun, exc: BaseException) -> None:
    """Mark a run failed, with the reason for its operator and for its owner (not saved)."""
    run.status = SyncRun.Status.FAILED
    code = INTERRUPTED_CODE if isinstance(exc, KeyboardInterrupt) else getattr(exc, "code", None)
    run.error_code = str(code or type(exc).__name__)[:100]
    run.error_message = operator_message(exc)[:MAX_ERROR_LENGTH]
    public_length = SyncRun._meta.get_field("public_error_message").max_length
    run.public_error_message = public_message(exc)[:public_length]
    logger.warning("CometChat sync of %s failed: %s", run.owner_uid, run.error_message)


def announce_changes(owner_uid: str, outcome: PageOutcome) -> None:
    """``conversation_changed`` once per created or updated row, after the page commits."""
    if not conversation_changed.has_listeners(Conversation):
        return
    changes = [(True, *c) for c in outcome.created] + [(False, *c) for c in outcome.updated]

    def send() -> None:
        for created, pk, conversation_id in changes:
            conversation_changed.send(
                sender=Conversation,
                owner_uid=owner_uid,
                conversation_id=conversation_id,
                pk=pk,
                created=created,
            )

    transaction.on_commit(send)


def active_run(owner_uid: str) -> SyncRun | None:
    """The owner's sync on its way: queued or running and not abandoned; a requested one
    (``exclusive``) before one a command or code started; the oldest first."""
    runs = SyncRun.objects.owned_by(owner_uid).filter(
        status__in=ACTIVE_STATUSES, started_at__gte=abandoned_before(timezone.now())
    )
    return runs.order_by("-exclusive", "started_at", "id").first()


def claim_sync_run(
    owner: Any, *, trigger: str, filters: ConversationFilters | None = None, queued: bool = True
) -> tuple[SyncRun, bool]:
    """The owner's sync already on its way (``active_run``), or a new requested one: ``(run,
    created)``. A new run is "queued" (for a task to carry out) or, with ``queued=False``,
    "running" (for the caller to carry out now, as ``sync_conversations(..., run=run)``).

    The database decides between concurrent requests: at most one requested run per owner is
    queued or running (a partial unique constraint), so the losers of a race get the winner's
    run. Runs abandoned past ``SYNC_ABANDONED_AFTER`` are marked failed first and never count.
    """
    owner = as_owner(owner)
    mark_abandoned_runs(owner.uid)
    status = SyncRun.Status.QUEUED if queued else SyncRun.Status.RUNNING
    for attempt in range(CLAIM_ATTEMPTS):
        active = active_run(owner.uid)
        if active is not None:
            return active, False
        try:
            with transaction.atomic():  # a savepoint: a lost race must not break the caller's
                run = SyncRun.objects.create(
                    owner_id=owner.user_id,
                    owner_uid=owner.uid,
                    trigger=trigger,
                    status=status,
                    filters=(filters or ConversationFilters()).as_json(),
                    started_at=timezone.now(),
                    exclusive=True,
                )
        except IntegrityError:
            # Another request's run won. Read it; it may have finished since: then try again.
            if attempt == CLAIM_ATTEMPTS - 1:
                raise
            continue
        return run, True
    raise AssertionError("unreachable")  # pragma: no cover


def claim_sync_runs(owners: Sequence[Owner], *, trigger: str) -> list[tuple[SyncRun, bool]]:
    """``claim_sync_run`` (queued, no filters) for a batch of owners, in three statements
    whatever its size: their abandoned runs marked, their active runs read, the new runs
    inserted together. ``(run, created)`` per owner, in order; an owner listed twice gets the
    first one's run.

    Run it in a transaction (a savepoint) and replay the batch one owner at a time with
    ``claim_sync_run`` if it raises: a request that claimed one of these owners meanwhile
    makes the insert raise ``IntegrityError`` (the partial unique constraint), and the batch
    cannot tell whose. A database that cannot return the inserted ids claims one by one."""
    if not connections[router.db_for_write(SyncRun)].features.can_return_rows_from_bulk_insert:
        return [claim_sync_run(owner, trigger=trigger) for owner in owners]
    uids = {owner.uid for owner in owners}
    mark_abandoned_runs(owner_uids=uids)
    now = timezone.now()
    runs = SyncRun.objects.filter(
        owner_uid__in=uids, status__in=ACTIVE_STATUSES, started_at__gte=abandoned_before(now)
    )
    active: dict[str, SyncRun] = {}
    for run in runs.order_by("owner_uid", "-exclusive", "started_at", "id"):  # active_run's
        active.setdefault(run.owner_uid, run)
    created: dict[str, SyncRun] = {}
    # Inserted in UID order: two batches over the same owners wait for each other's rows in one
    # order, so the later one fails on the constraint (and falls back), never deadlocks.
    for owner in sorted(owners, key=lambda owner: owner.uid):
        if owner.uid not in active and owner.uid not in created:
            created[owner.uid] = SyncRun(
                owner_id=owner.user_id,
                owner_uid=owner.uid,
                trigger=trigger,
                status=SyncRun.Status.QUEUED,
                filters=ConversationFilters().as_json(),
                started_at=now,
                exclusive=True,
            )
    SyncRun.objects.bulk_create(created.values())
    claims = []
    for owner in owners:
        if owner.uid in created:
            active[owner.uid] = created.pop(owner.uid)  # a second listing gets this run
            claims.append((active[owner.uid], True))
        else:
            claims.append((active[owner.uid], False))
    return claims


def queue_sync_run(
    owner: Any, *, trigger: str, filters: ConversationFilters | None = None
) -> SyncRun:
    """A ``SyncRun`` in state "queued", for a background task to carry out, or the owner's sync
    already on its way (see ``claim_sync_run``, which also says which): the caller can point a
    person at it (``sync-runs/<id>/``) at once."""
    return claim_sync_run(owner, trigger=trigger, filters=filters)[0]


def claim_refresh(owner_uid: str, conversation_id: str) -> bool:
    """Whether a refresh of this conversation may be queued now: False when one is already
    queued for the owner (and not abandoned). The database decides between concurrent
    requests (unique owner and conversation). ``release_refresh`` gives the claim back."""
    validate_id(conversation_id, "conversation id")
    now = timezone.now()
    claims = QueuedRefresh.objects.filter(owner_uid=owner_uid, conversation_id=conversation_id)
    claims.filter(queued_at__lt=abandoned_before(now)).delete()  # never taken by a worker
    try:
        with transaction.atomic():
            QueuedRefresh.objects.create(
                owner_uid=owner_uid, conversation_id=conversation_id, queued_at=now
            )
    except IntegrityError:
        return False
    return True


def release_refresh(owner_uid: str, conversation_id: str) -> None:
    """The refresh's task started (or the queue refused it): the next request queues anew."""
    QueuedRefresh.objects.filter(owner_uid=owner_uid, conversation_id=conversation_id).delete()


def fail_queued_run(run: SyncRun, exc: BaseException) -> bool:
    """A claimed run that never started (the queue refused its task, no client could be
    built): failed at once, with the reason, so that it stops answering requests. Only if it
    is still as claimed (queued, or running for an inline sync): a worker that took it
    meanwhile (a queue outside the database may hand out a task a moment before refusing the
    next) keeps it, and a run this process failed already (an interrupt fails it where its
    task was queued, then again with its group) is not failed, nor announced, twice. Returns
    whether it was failed."""
    claimed_as = run.status
    if claimed_as not in ACTIVE_STATUSES:
        return False
    run.finished_at = timezone.now()
    record_failure(run, exc)
    fields = ("status", "finished_at", "error_code", "error_message", "public_error_message")
    failed = SyncRun.objects.filter(pk=run.pk, status=claimed_as).update(
        **{name: getattr(run, name) for name in fields}
    )
    if failed:
        announce_run(run)
    return bool(failed)


def mark_abandoned_runs(
    owner_uid: str | None = None, *, owner_uids: Collection[str] | None = None
) -> int:
    """Runs "running" or "queued" for longer than ``SYNC_ABANDONED_AFTER``: their worker died
    (or never came). They are marked failed, so they stop looking busy; the owner's next sync
    proceeds either way. Every owner's, one owner's, or (``owner_uids``) a batch's. Returns
    how many were marked."""
    now = timezone.now()
    runs = _abandoned_runs(now)
    if owner_uid is not None:
        runs = runs.owned_by(owner_uid)
    if owner_uids is not None:
        runs = runs.filter(owner_uid__in=owner_uids)
    marked = int(runs.update(**_ABANDONED, finished_at=now))
    if marked and sync_run_finished.has_listeners(SyncRun):
        # The rows just marked: this call's finished_at, to the microsecond.
        for run in SyncRun.objects.filter(finished_at=now, error_code=ABANDONED_CODE):
            announce_run(run, "abandoned")
    return marked


def _abandoned_runs(now: datetime) -> OwnedQuerySet[SyncRun]:
    """The runs abandoned at ``now``: queued or running, started before ``abandoned_before``."""
    return SyncRun.objects.filter(
        status__in=(SyncRun.Status.RUNNING, SyncRun.Status.QUEUED),
        started_at__lt=abandoned_before(now),
    )


# What marks a run abandoned, but its finished_at (now).
_ABANDONED = {
    "status": SyncRun.Status.FAILED,
    "error_code": ABANDONED_CODE,
    "error_message": "Abandoned: no sync finished this run (its worker stopped, or no worker "
    'took it) within COMETCHAT["SYNC_ABANDONED_AFTER"] seconds.',
    "public_error_message": ABANDONED_MESSAGE,
}


def _abandoned_update(now: datetime) -> tuple[str, list[Any]]:
    """``_ABANDONED`` and finished_at, as an UPDATE's SET clause and its parameters."""
    fields = {**_ABANDONED, "finished_at": now}
    column_of = {f.name: f.column for f in SyncRun._meta.concrete_fields}
    sets = ", ".join(f"{column_of[name]} = %s" for name in fields)
    return sets, list(fields.values())


def _announce_abandoned(run_ids: list[int]) -> None:
    if run_ids and sync_run_finished.has_listeners(SyncRun):
        for run in SyncRun.objects.filter(pk__in=run_ids).order_by("pk"):
            announce_run(run, "abandoned")


def abandoned_before(now: datetime) -> datetime:
    """A queued or running run that started before this has been abandoned."""
    return now - timedelta(seconds=get_settings().sync_abandoned_after)


def stale_owners(older_than: timedelta) -> OwnerSelection:
    """Owners whose last successful sync finished before ``now - older_than``, or who never
    had one, and who have no sync queued or running (those are counted in ``already_queued``):
    every UID bound to an account or holding stored conversations."""
    now = timezone.now()
    cutoff = now - older_than
    fresh = set(
        SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED, finished_at__gte=cutoff)
        .values_list("owner_uid", flat=True)
        .distinct()
    )
    # A sync still queued or running (and not abandoned) is on its way: not enqueued again.
    on_their_way = set(
        SyncRun.objects.filter(
            status__in=(SyncRun.Status.QUEUED, SyncRun.Status.RUNNING),
            started_at__gte=abandoned_before(now),
        )
        .values_list("owner_uid", flat=True)
        .distinct()
    )
    known = set(UIDBinding.objects.values_list("uid", flat=True)) | set(
        Conversation.objects.order_by().values_list("owner_uid", flat=True).distinct()
    )
    stale = known - fresh
    uids = sorted(stale - on_their_way)
    found = owners_by_uid(uids)
    return OwnerSelection(
        len(uids),
        iter([unless_no_chat_user(found[uid]) for uid in uids]),
        already_queued=len(stale & on_their_way),
    )
