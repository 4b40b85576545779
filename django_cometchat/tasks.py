"""Background work through Django's Tasks framework: thin adapters over ``services``.

Defined with ``django.tasks`` on Django 6.x and with the ``django-tasks`` backport on 5.2, so
whichever backend the host configures in ``TASKS`` runs them (``django-tasks-db``'s database
worker, ``django-tasks-rq`` on Redis, …). Arguments are plain JSON (UIDs, ids, strings), never
model instances: real backends serialise them. Each task turns its arguments into one call of
a service (``sync_in_background``, ``refresh_in_background``,
``process_webhook_event_in_background``), which runs the whole of it within ``SYNC_DEADLINE``:
one sync, one refresh, one webhook event with all its refreshes (an inline webhook too).

* :func:`sync_owner`: one owner's complete sync (or a queued ``SyncRun``'s);
* :func:`refresh_conversation`: one conversation of one owner;
* :func:`process_webhook_event`: a recorded CometChat webhook event, one
  ``refresh_conversation`` per affected owner (run within it for one or two owners, enqueued
  for a group's holders; the event task is enqueued by the webhook view, which answers
  CometChat at once when a worker runs the tasks);
* :func:`request_sync` / :func:`request_refresh`: the seams the API and the admin call. With a
  backend that queues, they enqueue and return at once (the API answers 202); with the
  immediate backend (Django's default when ``TASKS`` is not set) they run inline within the
  on-demand deadline, as before tasks existed. A sync already queued or running for the owner
  (a refresh already queued for the owner and conversation) is answered instead of queueing
  another (``Queued.already_queued``).

Every enqueue goes through :func:`_enqueue`: a backend that refuses (its broker down, its table
missing) raises :class:`~.exceptions.CometChatQueueUnavailable`, whatever it raised itself, so
that each caller maps one error (the API: 503 ``ERR_QUEUE_UNAVAILABLE``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction

from . import services
from .batches import Totals
from .conversation_filters import ConversationFilters
from .exceptions import CometChatQueueUnavailable
from .models import Conversation, SyncRun
from .webhook_types import Target

if TYPE_CHECKING:  # annotations only: the client is created and used in services
    from .client import CometChatClient

try:  # Django 6.x
    from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, task, task_backends
    from django.tasks.backends.immediate import ImmediateBackend
except ImportError:  # Django 5.2: the django-tasks backport
    # Its receiver forgets the backends when TASKS changes (an app the host may not install).
    import django_tasks.signals  # noqa: F401
    from django_tasks import (  # type: ignore[assignment,no-redef,unused-ignore]
        DEFAULT_TASK_BACKEND_ALIAS,
        task,
        task_backends,
    )
    from django_tasks.backends.immediate import (  # type: ignore[assignment,no-redef,unused-ignore]
        ImmediateBackend,
    )

logger = logging.getLogger(__name__)


def backend() -> Any:
    """The task backend these tasks use (``TASKS["default"]``)."""
    return task_backends[DEFAULT_TASK_BACKEND_ALIAS]


def queues() -> bool:
    """Whether the configured backend runs tasks elsewhere (a worker), not inline."""
    return not isinstance(backend(), ImmediateBackend)


# -- the tasks ----------------------------------------------------------------------------------


@task()
def sync_owner(
    uid: str,
    trigger: str = SyncRun.Trigger.TASK,
    run_id: int | None = None,
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Sync one owner by UID (with the Django user bound to it); carry out a queued run
    (``services.sync_in_background``).

    A sync that fails is recorded on its run first, then raised: the task ends failed, so the
    worker and the task's result say so (never "SUCCESSFUL" for a failed sync)."""
    result = services.sync_in_background(
        uid,
        trigger=trigger,
        run_id=run_id,
        filters=ConversationFilters.from_kwargs(**(filters or {})),
    )
    if result.skipped:
        return {"run": result.run.pk, "status": str(result.run.status), "skipped": result.skipped}
    if result.error is not None:
        raise result.error
    # str(): the plain value either way (a run read back is a str, one just saved an enum member)
    return {"run": result.run.pk, "status": str(result.run.status), "error": result.run.error_code}


@task()
def refresh_conversation(
    uid: str, conversation_id: str, peer_flag: list[Any] | None = None, expect_gone: bool = False
) -> dict[str, Any]:
    """Fetch one conversation of one owner (by UID) and store it; ``peer_flag`` is a block
    event's ``[flag, value]`` for the peer (``Target.peer_flag``); ``expect_gone``: the event
    said the owner lost it, and CometChat's confirmation marks it missing
    (``services.refresh_in_background``).

    A refresh that fails (CometChat does not have the conversation, say) is logged with its
    reason, then raised: the task ends failed, its result carrying the error."""
    flag = (str(peer_flag[0]), peer_flag[1]) if peer_flag else None
    outcome = services.refresh_in_background(
        Target(uid, conversation_id, flag, expect_gone=expect_gone)
    )
    if outcome.error is not None:  # the one place a failed refresh ends the task
        raise outcome.error
    if outcome.row is None:
        return {"status": "missing", "conversation": conversation_id}
    return {"status": "succeeded", "conversation": outcome.row.pk}


def refresh_arguments(target: Target) -> tuple[list[Any], dict[str, Any]]:
    """``refresh_conversation``'s arguments for a target (positional, keyword), as JSON a queue
    can carry."""
    flag = [list(target.peer_flag)] if target.peer_flag is not None else []
    keywords = {"expect_gone": True} if target.expect_gone else {}
    return [target.uid, target.conversation_id, *flag], keywords


def _enqueue_refresh(target: Target) -> None:
    args, keywords = refresh_arguments(target)
    refresh_conversation.enqueue(*args, **keywords)


@task()
def process_webhook_event(event_id: int) -> dict[str, Any]:
    """Process a recorded webhook event (``services.process_webhook_event_in_background``):
    its owners' conversations refreshed here for up to ``INLINE_REFRESHES`` owners, else one
    ``refresh_conversation`` task each when a worker runs tasks; the event marked processed,
    failed or deferred, and ``webhook_processed`` sent. When a worker runs tasks, the events
    that arrived while this task waited (the webhook queued none for them) are processed next
    (``followers``: how many, by status). An event that failed is recorded failed first, then
    its (first) error is raised: the task ends failed too. A deferred event is not a failure:
    it waits for ``cometchat_refresh_stale``."""
    queued = queues()
    outcome = services.process_webhook_event_in_background(
        event_id,
        fan_out=_enqueue_refresh if queued else None,
        queue_next=_enqueue_event if queued else None,
    )
    if outcome.status == "skipped":
        return {
            "event": event_id,
            "status": "skipped",
            "reason": outcome.reason,
            "followers": outcome.followers,
        }
    if outcome.status == "failed" and outcome.error is not None:
        raise outcome.error  # the one place a failed event ends the task
    return {
        "event": event_id,
        "status": outcome.status,
        "owners": outcome.owners,
        "followers": outcome.followers,
    }


def _enqueue_event(event_id: int) -> None:
    process_webhook_event.enqueue(event_id)


# -- the seams of on-demand work --------------------------------------------------------------


@dataclass(frozen=True)
class Queued:
    """Work handed to the task queue: its result id, and (for a sync) the run to follow.

    ``already_queued``: the same work was already on its way (a sync of the owner queued or
    running, a refresh of the conversation queued); nothing new was queued, and ``task_id`` is
    None (only the request that queued a task learns its id)."""

    task_id: str | None
    run: SyncRun | None = None
    already_queued: bool = False


def request_sync(
    owner: Any,
    *,
    trigger: str,
    filters: ConversationFilters | None = None,
    client: CometChatClient | None = None,
) -> SyncRun | Queued:
    """Sync an owner on demand: enqueued when a worker runs tasks (a queued ``SyncRun`` to
    follow), else inline within ``WEB_DEADLINE`` (the finished ``SyncRun``). A sync of the owner
    already queued or running is returned instead (``already_queued``)."""
    owner = services.as_owner(owner)
    if queues():
        return _enqueue_sync(owner, trigger=trigger, filters=filters)
    run = services.sync_on_demand(owner, trigger=trigger, filters=filters, client=client)
    if run.status in services.ACTIVE_STATUSES:  # another request's, still on its way
        return Queued(None, run, already_queued=True)
    return run


def request_refresh(
    owner: Any, conversation_id: str, *, client: CometChatClient | None = None
) -> Conversation | Queued:
    """Refresh one conversation on demand: enqueued when a worker runs tasks, else inline. A
    refresh of it already queued for the owner is answered instead (``already_queued``)."""
    if not queues():
        return services.refresh_on_demand(owner, conversation_id, client=client)
    owner = services.as_owner(owner)
    if not services.claim_refresh(owner.uid, conversation_id):
        return Queued(None, already_queued=True)
    try:
        result = _enqueue(refresh_conversation, owner.uid, conversation_id)
    except CometChatQueueUnavailable:
        services.release_refresh(owner.uid, conversation_id)
        raise
    return Queued(str(result.id))


# What ``enqueue_syncs`` did; the name it had before it shared the batches' Totals.
Enqueued = Totals


# Owners whose runs ``enqueue_syncs`` claims together, in one transaction.
ENQUEUE_BATCH = 100


def enqueue_syncs(
    owners: Any,
    *,
    trigger: str = SyncRun.Trigger.TASK,
    skipped: Callable[[services.Owner, str], None] | None = None,
) -> Totals:
    """One ``sync_owner`` task per owner (an ``OwnerSelection`` or any iterable of ``Owner``),
    each with its queued ``SyncRun`` (so a waiting sync shows, is not enqueued twice, and is
    marked abandoned if no worker ever takes it). Returns the batch's ``Totals``: syncs
    enqueued (``succeeded``), owners whose sync was already queued or running
    (``already_queued``: they get no second one) and owners who cannot act (``skipped``:
    logged, and passed to ``skipped(owner, reason)`` when given, for a command to print). A
    failure that stops a batch (``batches.stops_batch``: a queue that refuses) is raised, with
    that owner's run failed, and the runs already claimed for the owners after it (their group,
    ``_enqueue_group``) failed with the same reason.

    Owners are claimed ``ENQUEUE_BATCH`` at a time (``_enqueue_group``)."""
    totals = Totals()
    group: list[services.Owner] = []
    for owner in owners:
        if owner.problem is not None:
            reason = owner.problem.describe()
            logger.warning("Not enqueuing %s: %s", owner.label, reason)
            if skipped is not None:
                skipped(owner, reason)
            totals.skipped += 1
            continue
        group.append(owner)
        if len(group) == ENQUEUE_BATCH:
            _enqueue_group(group, totals, trigger=trigger)
            group = []
    if group:
        _enqueue_group(group, totals, trigger=trigger)
    return totals


def _enqueue_group(owners: list[services.Owner], totals: Totals, *, trigger: str) -> None:
    """The owners' runs claimed together (``_claim_group``), then their tasks queued together
    (``_queue_together``): a few statements and two commits for the group, where one owner at
    a time costs eight statements. The runs commit before their tasks are queued (unless the
    caller holds a transaction), so a worker never takes a task whose run it cannot see yet,
    whatever the backend keeps tasks in.

    If the queue refuses any task of the group, the group's tasks are queued again one at a
    time, so that each owner gets its own outcome (``_enqueue_claimed``). Whatever stops the
    group then (a refusal that stops the batch, an interrupt), the claimed runs still without a
    task are failed with it, so none waits for a task that will never come. If the group
    cannot be claimed together, or there is no queue (the immediate backend runs each sync as
    it is "queued"), each owner is claimed and queued in turn (``_enqueue_one``)."""
    claims = _claim_group(owners, trigger) if queues() else None
    if claims is None:
        for owner in owners:
            _enqueue_one(owner, totals, trigger=trigger)
        return
    new: list[tuple[services.Owner, SyncRun]] = []
    for owner, (run, created) in zip(owners, claims, strict=True):
        if created:
            new.append((owner, run))
        else:
            totals.already_queued += 1
    queued = 0  # of ``new``, those whose task is queued
    try:
        if len(new) > 1 and _queue_together(new, trigger):
            queued = len(new)
            for _ in new:
                totals.succeed()
            return
        for owner, run in new:
            _enqueue_claimed(owner, run, totals, trigger=trigger)
            queued += 1
    except BaseException as exc:
        for _, left in new[queued:]:  # a run a worker took meanwhile is kept
            services.fail_queued_run(left, exc)
        raise


def _enqueue_one(owner: services.Owner, totals: Totals, *, trigger: str) -> None:
    run, created = services.claim_sync_run(owner, trigger=trigger)
    if created:
        _enqueue_claimed(owner, run, totals, trigger=trigger)
    else:
        totals.already_queued += 1


def _enqueue_claimed(owner: services.Owner, run: SyncRun, totals: Totals, *, trigger: str) -> None:
    """The task of a claimed run (``_enqueue_run``), counted in ``totals``; a refusal is raised
    when it stops the batch."""
    try:
        _enqueue_run(owner, run, trigger=trigger)
    except CometChatQueueUnavailable as exc:
        if totals.fail(owner.label, exc.describe(), exc):
            raise
        return
    totals.succeed()


def _enqueue_run(owner: services.Owner, run: SyncRun, *, trigger: str) -> Any:
    """The ``sync_owner`` task that carries out a claimed run, and its result. Whatever stops
    it (a queue that refuses, an interrupt) fails the run at once, with the reason, and is
    raised: left "queued", the run would keep answering every request for that owner with a
    sync that never comes, until it counted as abandoned. An error raised after the broker
    kept the task (a reply that timed out) fails the run all the same; the task, delivered,
    then finds it no longer queued and ends skipped."""
    try:
        return _enqueue(sync_owner, owner.uid, trigger=trigger, run_id=run.pk, filters=run.filters)
    except BaseException as exc:
        services.fail_queued_run(run, exc)
        raise


def _queue_together(new: list[tuple[services.Owner, SyncRun]], trigger: str) -> bool:
    """Queue the group's tasks in one transaction. False if the backend refused any (whatever
    it raised, logged): the caller then queues them one at a time. A queue outside this
    database (Redis) keeps the tasks queued before the refusal; queued again, each run is
    taken by one of its two tasks, and the other ends skipped (``sync_in_background``)."""
    try:
        with transaction.atomic():
            for owner, run in new:
                sync_owner.enqueue(owner.uid, trigger=trigger, run_id=run.pk, filters=run.filters)
    except Exception as exc:
        reason = CometChatQueueUnavailable(sync_owner.name, exc).describe()
        logger.warning("Queuing %d syncs together failed, so one at a time: %s", len(new), reason)
        return False
    return True


def _claim_group(owners: list[services.Owner], trigger: str) -> list[tuple[SyncRun, bool]] | None:
    """``services.claim_sync_runs`` in a transaction of its own; None when the database
    refused it (a request claimed one of these owners meanwhile, a user deleted while the
    owners were read): nothing of it stays, and the caller claims the owners one at a time."""
    try:
        with transaction.atomic():
            return services.claim_sync_runs(owners, trigger=trigger)
    except IntegrityError:
        return None


def _enqueue_sync(
    owner: services.Owner, *, trigger: str, filters: ConversationFilters | None = None
) -> Queued:
    """A queued ``SyncRun`` and the ``sync_owner`` task that carries it out (``_enqueue_run``),
    or the owner's sync already on its way."""
    run, created = services.claim_sync_run(owner, trigger=trigger, filters=filters)
    if not created:
        return Queued(None, run, already_queued=True)
    return Queued(str(_enqueue_run(owner, run, trigger=trigger).id), run)


def _enqueue(work: Any, *args: Any, **kwargs: Any) -> Any:
    """``work.enqueue(...)``, with any refusal of the backend as ``CometChatQueueUnavailable``.

    The backend's error can be anything (a Redis ``ConnectionError``, a database error for a
    missing table), hence the broad catch, here only. Inside a savepoint, so that a database
    backend's failed statement leaves the caller's transaction usable (``ATOMIC_REQUESTS``).
    The immediate backend runs the work here and now: not in a savepoint, which would hold one
    transaction open over the whole sync and keep its run's progress from other processes."""
    if not queues():
        return work.enqueue(*args, **kwargs)
    try:
        with transaction.atomic():
            return work.enqueue(*args, **kwargs)
    except Exception as exc:
        error = CometChatQueueUnavailable(work.name, exc)
        logger.warning("%s", error.describe())
        raise error from exc
