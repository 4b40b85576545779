"""How long history, sync runs and webhook events are kept: the prune functions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.expressions import Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from ..conf import get_settings
from ..models import ConversationSnapshot, MessageAccess, SyncRun, WebhookEvent

DELETE_BATCH = 5000  # rows per DELETE statement of the prune functions


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
        for start in range(0, len(ids), DELETE_BATCH):
            ConversationSnapshot.objects.filter(id__in=ids[start : start + DELETE_BATCH]).delete()
    return len(doomed)


def prune_sync_runs(
    *, max_age_days: int | None = None, dry_run: bool = False, batch_size: int = DELETE_BATCH
) -> int:
    """Delete finished sync runs started more than ``max_age_days`` ago (default
    ``SYNC_RUNS_MAX_AGE_DAYS``; None keeps them all), a batch at a time. Each owner's latest
    finished run (its last outcome: what the admin and ``stale_owners`` read) and every run
    still queued or running are kept whatever their age. Returns how many were (or, on a dry
    run, would be) deleted."""
    if max_age_days is None:
        max_age_days = get_settings().sync_runs_max_age_days
    if max_age_days is None:
        return 0
    finished = (SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED)
    latest = (
        SyncRun.objects.filter(owner_uid=OuterRef("owner_uid"), status__in=finished)
        .order_by("-started_at", "-id")
        .values("id")[:1]
    )
    # Both filters walk an index: (status, -started_at) for the old finished runs, and
    # (owner_uid, -started_at) for each one's owner's latest.
    old = SyncRun.objects.filter(
        status__in=finished, started_at__lt=timezone.now() - timedelta(days=max_age_days)
    ).exclude(id=Subquery(latest))
    # An owner's latest finished run is never in a batch, so deleting one never changes it.
    return delete_in_batches(old, dry_run=dry_run, batch_size=batch_size)


def prune_webhook_events(
    *, max_age_days: int | None = None, dry_run: bool = False, batch_size: int = DELETE_BATCH
) -> int:
    """Delete webhook events received more than ``max_age_days`` ago (default
    ``WEBHOOK_EVENTS_MAX_AGE_DAYS``; None keeps them all), a batch at a time so that no
    statement holds many rows; an event still waiting for a worker is kept whatever its age.
    Returns how many were (or, on a dry run, would be) deleted."""
    if max_age_days is None:
        max_age_days = get_settings().webhook_events_max_age_days
    if max_age_days is None:
        return 0
    cutoff = timezone.now() - timedelta(days=max_age_days)
    old = WebhookEvent.objects.filter(received_at__lt=cutoff).exclude(
        status__in=(WebhookEvent.Status.RECEIVED, WebhookEvent.Status.DEFERRED)
    )
    return delete_in_batches(old, dry_run=dry_run, batch_size=batch_size)


def prune_message_access(
    *, max_age_days: int | None = None, dry_run: bool = False, batch_size: int = DELETE_BATCH
) -> int:
    """Delete ``MessageAccess`` rows older than ``max_age_days`` (default
    ``MESSAGE_ACCESS_MAX_AGE_DAYS``; None, its default, keeps the audit record for good), a
    batch at a time. Returns how many were (or, on a dry run, would be) deleted."""
    if max_age_days is None:
        max_age_days = get_settings().message_access_max_age_days
    if max_age_days is None:
        return 0
    cutoff = timezone.now() - timedelta(days=max_age_days)
    old = MessageAccess.objects.filter(accessed_at__lt=cutoff)
    return delete_in_batches(old, dry_run=dry_run, batch_size=batch_size)


def delete_in_batches(rows: QuerySet[Any], *, dry_run: bool, batch_size: int) -> int:
    """Delete ``rows`` ``batch_size`` at a time, so that no statement holds many rows; how many
    were (or, on a dry run, would be) deleted."""
    if dry_run:
        return rows.count()
    deleted = 0
    while batch := list(rows.order_by().values_list("pk", flat=True)[:batch_size]):
        deleted += rows.model.objects.filter(pk__in=batch).delete()[0]
    return deleted
