"""Background work through Django's Tasks framework: thin adapters over ``services``.

Defined with ``django.tasks`` on Django 6.x and with the ``django-tasks`` backport on 5.2, so
whichever backend the host configures in ``TASKS`` runs them (``django-tasks-db``'s database
worker, ``django-tasks-rq`` on Redis, …). Arguments are plain JSON (UIDs, ids, strings), never
model instances: real backends serialise them. Each task runs within ``SYNC_DEADLINE``
(``services.background``), the whole of it: one sync, one refresh, one webhook event with all
its refreshes (an inline webhook too).

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
from typing import Any

from django.db import transaction

from . import services
from .batches import Totals
from .exceptions import CometChatError, CometChatQueueUnavailable, CometChatRateLimited
from .filters import ConversationFilters
from .models import Conversation, SyncRun
from .webhook_types import Target

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

# An event affecting at most this many owners refreshes them within its own task.
INLINE_REFRESHES = 2


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
    """Sync one owner by UID (with the Django user bound to it); carry out a queued run.

    A sync that fails is recorded on its run first, then raised: the task ends failed, so the
    worker and the task's result say so (never "SUCCESSFUL" for a failed sync)."""
    run = SyncRun.objects.filter(pk=run_id).first() if run_id is not None else None
    if run is not None and run.status != SyncRun.Status.QUEUED:
        return {"run": run.pk, "status": run.status, "skipped": "not queued any more"}
    with services.background():
        result = services.sync_conversations(
            services.owner_by_uid(uid),
            filters=ConversationFilters.from_kwargs(**(filters or {})),
            trigger=trigger,
            raise_errors=False,
            run=run,
        )
    if result.error is not None:
        raise result.error
    return {"run": result.run.pk, "status": result.run.status, "error": result.run.error_code}


@task()
def refresh_conversation(
    uid: str, conversation_id: str, peer_flag: list[Any] | None = None, expect_gone: bool = False
) -> dict[str, Any]:
    """Fetch one conversation of one owner (by UID) and store it; ``peer_flag`` is a block
    event's ``[flag, value]`` for the peer (``Target.peer_flag``); ``expect_gone``: the event
    said the owner lost it, and CometChat's confirmation marks it missing
    (``services.refresh_target``)."""
    services.release_refresh(uid, conversation_id)  # started: a later request queues anew
    flag = (str(peer_flag[0]), peer_flag[1]) if peer_flag else None
    target = Target(uid, conversation_id, flag, expect_gone=expect_gone)
    with services.background():
        outcome = _refresh(services.owner_by_uid(uid), target)
    if isinstance(outcome, CometChatError):
        return {"status": "failed", "error": outcome.code or type(outcome).__name__}
    if outcome is None:
        return {"status": "missing", "conversation": conversation_id}
    return {"status": "succeeded", "conversation": outcome.pk}


def refresh_arguments(target: Target) -> tuple[list[Any], dict[str, Any]]:
    """``refresh_conversation``'s arguments for a target (positional, keyword), as JSON a queue
    can carry."""
    flag = [list(target.peer_flag)] if target.peer_flag is not None else []
    keywords = {"expect_gone": True} if target.expect_gone else {}
    return [target.uid, target.conversation_id, *flag], keywords


def _refresh(
    owner: services.Owner, target: Target, client: services.Client | None = None
) -> Conversation | CometChatError | None:
    """The stored row, None when CometChat confirmed it gone as the event said (marked
    missing), or the CometChat failure (logged): one refresh never fails a batch."""
    try:
        return services.refresh_target(owner, target, client=client)
    except CometChatError as exc:
        logger.warning(
            "CometChat refresh of %s for %s failed: %s", target.conversation_id, owner.uid, exc
        )
        return exc


@task()
def process_webhook_event(event_id: int) -> dict[str, Any]:
    """One ``refresh_conversation`` per owner a webhook event affects, each on that owner's
    behalf (run here for up to ``INLINE_REFRESHES`` owners, else enqueued); mark the event
    processed (or failed) and send ``webhook_processed``. A refresh that CometChat answers
    with "gone", for an owner the event said lost the conversation, marks the copy missing and
    counts as done, not failed. A refresh refused for the rate budget (or a 429 past the
    retries) marks the event deferred instead, for ``cometchat_refresh_stale``.

    The event is claimed first, so a task delivered twice refreshes nothing twice. The whole
    event, every refresh in it, runs within ``SYNC_DEADLINE``.
    """
    with services.background():
        return _process(event_id)


def _process(event_id: int) -> dict[str, Any]:
    event = services.claim_webhook_event(event_id)
    if event is None:
        return {"event": event_id, "status": "skipped", "reason": "not waiting to be processed"}
    try:
        targets = services.webhook_targets(event)
    except Exception as exc:  # claimed events never stay half-done: say why on the event
        services.finish_webhook_event(event, error=exc)
        if not isinstance(exc, CometChatError):
            raise
        return {"event": event_id, "status": "failed", "error": type(exc).__name__}
    done: list[str] = []
    failures: list[CometChatError] = []
    try:
        # With no worker (the immediate backend) a fan-out would run inline anyway, each
        # refresh on its own connection, its failures lost to the event.
        if len(targets) <= INLINE_REFRESHES or not queues():
            failures = _refresh_here(targets, done)
        else:
            for target in targets:
                args, keywords = refresh_arguments(target)
                refresh_conversation.enqueue(*args, **keywords)
                done.append(target.uid)
    except BaseException as exc:  # the queue refused, the database, a signal: say so, re-raise
        services.finish_webhook_event(event, owners=done, error=exc)
        raise
    # The rate budget had no slot without waiting (an inline webhook), or CometChat's window
    # was spent: the event waits for cometchat_refresh_stale, which processes it all again.
    limited = next((exc for exc in failures if isinstance(exc, CometChatRateLimited)), None)
    failed = limited or (failures[0] if failures else None)
    services.finish_webhook_event(event, owners=done, error=failed, deferred=limited is not None)
    status = "deferred" if limited else "processed" if failed is None else "failed"
    return {"event": event_id, "status": status, "owners": sorted(set(done))}


def _refresh_here(targets: list[Target], done: list[str]) -> list[CometChatError]:
    """A webhook event's few refreshes (a direct message, a receipt, a block: two owners at
    most), run in the event's own task over one connection: a trip through the queue costs a
    worker more than the refresh itself, and adds its wait. A group's holders fan out as
    ``refresh_conversation`` tasks instead when a worker runs tasks, so that a big group
    spreads over the workers.

    Adds to ``done`` the owners refreshed; returns the failures (each is logged)."""
    owners = services.owners_by_uid(target.uid for target in targets)
    failures: list[CometChatError] = []
    with services.new_client() as client:
        for target in targets:
            outcome = _refresh(owners[target.uid], target, client)
            if isinstance(outcome, CometChatError):
                failures.append(outcome)
            else:
                done.append(target.uid)
    return failures


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
    client: services.Client | None = None,
) -> SyncRun | Queued:
    """Sync an owner on demand: enqueued when a worker runs tasks (a queued ``SyncRun`` to
    follow), else inline within ``WEB_DEADLINE`` (the finished ``SyncRun``). A sync of the owner
    already queued or running is returned instead (``already_queued``)."""
    owner = services.as_owner(owner)
    if queues():
        return _enqueue_sync(owner, trigger=trigger, filters=filters)
    run = services.request_sync(owner, trigger=trigger, filters=filters, client=client)
    if run.status in services.ACTIVE_STATUSES:  # another request's, still on its way
        return Queued(None, run, already_queued=True)
    return run


def request_refresh(
    owner: Any, conversation_id: str, *, client: services.Client | None = None
) -> Conversation | Queued:
    """Refresh one conversation on demand: enqueued when a worker runs tasks, else inline. A
    refresh of it already queued for the owner is answered instead (``already_queued``)."""
    if not queues():
        return services.request_refresh(owner, conversation_id, client=client)
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
    that owner's run failed."""
    totals = Totals()
    for owner in owners:
        if owner.problem is not None:
            reason = owner.problem.describe()
            logger.warning("Not enqueuing %s: %s", owner.label, reason)
            if skipped is not None:
                skipped(owner, reason)
            totals.skipped += 1
            continue
        try:
            queued = _enqueue_sync(owner, trigger=trigger)
        except CometChatError as exc:
            if totals.fail(owner.label, exc.describe(), exc):
                raise
            continue
        if queued.already_queued:
            totals.already_queued += 1
        else:
            totals.succeed()
    return totals


def _enqueue_sync(
    owner: services.Owner, *, trigger: str, filters: ConversationFilters | None = None
) -> Queued:
    """A queued ``SyncRun`` and the ``sync_owner`` task that carries it out, or the owner's sync
    already on its way. A queue that refuses the task fails the run at once, with the reason:
    left "queued", it would keep every request for that owner answering a run that never
    comes, until it counted as abandoned."""
    run, created = services.claim_sync_run(owner, trigger=trigger, filters=filters)
    if not created:
        return Queued(None, run, already_queued=True)
    try:
        result = _enqueue(
            sync_owner,
            owner.uid,
            trigger=trigger,
            run_id=run.pk,
            filters=(filters or ConversationFilters()).as_json(),
        )
    except CometChatQueueUnavailable as exc:
        services.fail_queued_run(run, exc)
        raise
    return Queued(str(result.id), run)


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
