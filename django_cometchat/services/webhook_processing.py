"""What a task does with a webhook event: read its targets (the owners it concerns), refresh
them, finish it; then the events waiting behind it. ``process_webhook_event_in_background`` is
all of it, for the ``process_webhook_event`` task. The event rows' own life (recorded, taken,
finished) is :mod:`.webhook_events`."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from django.db import transaction

from ..exceptions import CometChatError, CometChatRateLimited
from ..models import Conversation, WebhookEvent
from ..webhook_types import Target, parse_webhook
from .clients import background, kept_client
from .ownership import Owner, has_no_chat_user, owners_by_uid
from .refresh import FetchedTarget, fetch_target, refresh_one, store_targets
from .webhook_events import (
    claim_next_webhook_event,
    claim_webhook_event,
    events_database,
    finish_webhook_event,
    oldest_waiting_event,
)

logger = logging.getLogger(__name__)


# An event affecting at most this many owners refreshes them within its own task.
INLINE_REFRESHES = 2
# Waiting events one task processes after its own, at most; past that, it queues a task for
# the oldest one still waiting, so no task runs without end under a steady stream.
FOLLOWERS_PER_TASK = 100


def webhook_targets(event: WebhookEvent) -> list[Target]:
    """The conversations an event asks to refresh, one per affected owner this site knows.

    A group event: the owners holding a snapshot of that group's conversation, all of them (a
    group message; ``group_deleted``, whose copies not yet marked missing) or those among its
    members (a membership change). Otherwise the owners the event names (both parties of a
    message, a receipt or a block), kept only when they are known here (a UID bound to an
    account, or stored rows): webhook traffic never creates owners. An owner bound to an
    account ``UID_RESOLVER`` now says has no CometChat user is left out. Raises
    ``WebhookPayloadError`` if the stored payload does not parse.
    """
    return _targets_and_owners(event)[0]


def _targets_and_owners(event: WebhookEvent) -> tuple[list[Target], dict[str, Owner]]:
    """``webhook_targets``, with the targets' owners read in the same query."""
    delivery = parse_webhook(event.payload)
    group = delivery.group_conversation_id
    if group is not None:
        # One row per owner (unique on owner_uid, conversation_id), found by the conversation
        # id index.
        holders = Conversation.objects.filter(conversation_id=group)
        if delivery.members is not None:
            holders = holders.filter(owner_uid__in=delivery.members)
        if delivery.gone:  # marked already: nothing left to confirm
            holders = holders.filter(missing_since__isnull=True)
        holding = list(holders.order_by("owner_uid").values_list("owner_uid", flat=True))
        owners = _chat_owners(holding)
        targets = [Target(uid, group, expect_gone=delivery.gone) for uid in holding]
        return [target for target in targets if target.uid in owners], owners
    named = _chat_owners(target.uid for target in delivery.targets)
    unbound = {uid for uid, owner in named.items() if owner.user is None}
    with_rows = set(
        Conversation.objects.filter(owner_uid__in=unbound)
        .order_by()
        .values_list("owner_uid", flat=True)
        .distinct()
    )
    owners = {uid: o for uid, o in named.items() if o.user is not None or uid in with_rows}
    return [target for target in delivery.targets if target.uid in owners], owners


def _chat_owners(uids: Iterable[str]) -> dict[str, Owner]:
    """``owners_by_uid``, less the owners bound to an account with no CometChat user now."""
    return {
        uid: owner for uid, owner in owners_by_uid(uids).items() if not has_no_chat_user(owner.user)
    }


@dataclass(frozen=True)
class EventOutcome:
    """What processing a webhook event did. ``status``: "skipped" (not waiting to be processed:
    ``reason``), "processed", "failed" (``error``) or "deferred" (the rate budget). ``owners``:
    those refreshed (or handed to a refresh task); None when the event's targets could not be
    read. ``followers``: how many of the events waiting behind it were processed after it, by
    their status."""

    event_id: int
    status: str
    owners: list[str] | None = None
    error: BaseException | None = None
    reason: str = ""
    followers: dict[str, int] = field(default_factory=dict)


def process_webhook_event_in_background(
    event_id: int,
    *,
    fan_out: Callable[[Target], None] | None = None,
    queue_next: Callable[[int], None] | None = None,
) -> EventOutcome:
    """Process a recorded event, within ``SYNC_DEADLINE``: claim it (a task delivered twice
    refreshes nothing twice), read its targets, refresh them, and finish it (processed,
    failed, or deferred for ``cometchat_refresh_stale`` when the rate budget had no slot).

    Up to ``INLINE_REFRESHES`` targets are refreshed here over one connection; more are each
    handed to ``fan_out`` (which enqueues a refresh task) when it is given. A refresh that
    CometChat answers with "gone", for an owner the event said lost the conversation, marks
    the copy missing and counts as done, not failed.

    With ``queue_next`` (given when a worker runs tasks), the events waiting behind this one
    (those ``needs_task`` queued no task for) are processed next, oldest first, each within
    its own deadline, up to ``FOLLOWERS_PER_TASK``, even when this one failed; if some still
    wait after that, ``queue_next`` queues a task for the oldest."""
    try:
        with background():
            outcome = _process(event_id, fan_out)
    except Exception:
        if queue_next is not None:  # the ones waiting behind it have no task of their own
            _process_followers(fan_out, queue_next)
        raise
    if queue_next is None:
        return outcome
    return replace(outcome, followers=_process_followers(fan_out, queue_next))


def _process_followers(
    fan_out: Callable[[Target], None] | None, queue_next: Callable[[int], None]
) -> dict[str, int]:
    """Process waiting events, oldest first, until none waits or ``FOLLOWERS_PER_TASK`` are
    done; then queue a task for the oldest still waiting, if any. Counts by status.

    With its first follower taken, when yet another event waits, a task is queued for that one
    too (``_queue_oldest_waiting``): a backlog then spreads over the free workers, each new
    task asking for one more while events still wait, instead of running on this one alone."""
    counts: Counter[str] = Counter()
    for done in range(FOLLOWERS_PER_TASK):
        with background():
            event = claim_next_webhook_event()
            if event is None:
                return dict(counts)
            if done == 0:
                _queue_oldest_waiting(queue_next)
            try:
                counts[_process_claimed(event, fan_out).status] += 1
            except Exception:  # recorded on the event already; the others still run
                logger.exception("CometChat webhook event %s failed", event.pk)
                counts["failed"] += 1
    _queue_oldest_waiting(queue_next)
    return dict(counts)


def _queue_oldest_waiting(queue_next: Callable[[int], None]) -> None:
    """Queue a task for the oldest event waiting behind a task, if one waits
    (``oldest_waiting_event``). The event is not marked as one a task is queued for: any task
    may take it meanwhile (the new one then finds it taken and goes on with the events after
    it), so it never waits for a busy queue."""
    oldest = oldest_waiting_event()
    if oldest is not None:
        queue_next(oldest)


def _process(event_id: int, fan_out: Callable[[Target], None] | None) -> EventOutcome:
    event = claim_webhook_event(event_id)
    if event is None:
        return EventOutcome(event_id, "skipped", reason="not waiting to be processed")
    return _process_claimed(event, fan_out)


def _process_claimed(event: WebhookEvent, fan_out: Callable[[Target], None] | None) -> EventOutcome:
    try:
        targets, owners = _targets_and_owners(event)
    except Exception as exc:  # claimed events never stay half-done: say why on the event
        finish_webhook_event(event, error=exc)
        if not isinstance(exc, CometChatError):
            raise
        return EventOutcome(event.pk, "failed", error=exc)
    if len(targets) <= INLINE_REFRESHES:
        return _refresh_and_finish_here(event, targets, owners)
    done: list[str] = []
    failures: list[CometChatError] = []
    try:
        # With no worker (the immediate backend) a fan-out would run inline anyway, each
        # refresh on its own connection, its failures lost to the event.
        if fan_out is None:
            failures = _refresh_one_by_one(targets, owners, done)
        else:
            for target in targets:
                fan_out(target)
                done.append(target.uid)
    except BaseException as exc:  # the queue refused, the database, a signal: say so, re-raise
        finish_webhook_event(event, owners=done, error=exc)
        raise
    return _finish(event, done, failures)


def _refresh_and_finish_here(
    event: WebhookEvent, targets: list[Target], owners: dict[str, Owner]
) -> EventOutcome:
    """A webhook event's few refreshes (a direct message, a receipt, a block: two owners at
    most), run in the event's own task over one connection: a trip through the queue costs a
    worker more than the refresh itself, and adds its wait. A group's holders fan out as
    refresh tasks instead when a worker runs tasks, so that a big group spreads over the
    workers.

    Each target is fetched in turn; then all are stored, and the event finished, in one
    transaction (``store_targets``: every owner's lock first, in UID order, so two events
    never deadlock): two round trips fewer a target after the first, and the event is
    processed exactly when its refreshes are stored. A database error rolls it all back and
    fails the event, as it did one refresh at a time."""
    fetched: list[FetchedTarget] = []
    committed: list[bool] = []
    events = events_database()
    try:
        with kept_client() as client:
            for target in targets:
                fetched.append(fetch_target(owners[target.uid], target, client=client))
        # The events' table may sit in another database: their transaction is the outer one,
        # so the refreshes commit before the event says they did.
        with transaction.atomic(using=events):
            # First of the callbacks: a receiver of the finish's signals that raises after the
            # commit must not turn the processed event into a failed one.
            transaction.on_commit(lambda: committed.append(True), using=events)
            outcomes = store_targets(fetched, savepoint=False)
            done = [o.target.uid for o in outcomes if o.error is None]
            failures = [o.error for o in outcomes if o.error is not None]
            return _finish(event, done, failures)
    except BaseException as exc:  # the database, a signal: nothing was stored; say so, re-raise
        if not committed:
            finish_webhook_event(event, error=exc)
        raise


def _finish(event: WebhookEvent, done: list[str], failures: list[CometChatError]) -> EventOutcome:
    """Finish a processed event: deferred when the rate budget had no slot without waiting (an
    inline webhook), or CometChat's window was spent (it waits for cometchat_refresh_stale,
    which processes it all again); failed with its first failure; processed otherwise."""
    limited = next((exc for exc in failures if isinstance(exc, CometChatRateLimited)), None)
    failed = limited or (failures[0] if failures else None)
    finish_webhook_event(event, owners=done, error=failed, deferred=limited is not None)
    status = "deferred" if limited else "processed" if failed is None else "failed"
    return EventOutcome(event.pk, status, owners=sorted(set(done)), error=failed)


def _refresh_one_by_one(
    targets: list[Target], owners: dict[str, Owner], done: list[str]
) -> list[CometChatError]:
    """An event's many refreshes with no worker to fan them out to (the immediate backend):
    one after the other over one connection, each stored in its own transaction (one holding
    every owner's lock would hold them all for the whole event). Adds to ``done`` the owners
    refreshed; returns the failures (each is logged)."""
    failures: list[CometChatError] = []
    with kept_client() as client:
        for target in targets:
            outcome = refresh_one(owners[target.uid], target, client=client, read_back=False)
            if outcome.error is not None:
                failures.append(outcome.error)
            else:
                done.append(target.uid)
    return failures
