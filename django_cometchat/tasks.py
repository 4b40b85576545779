"""Background work through Django's Tasks framework: thin adapters over ``services``.

Defined with ``django.tasks`` on Django 6.x and with the ``django-tasks`` backport on 5.2, so
whichever backend the host configures in ``TASKS`` runs them (``django-tasks-db``'s database
worker, ``django-tasks-rq`` on Redis, …). Arguments are plain JSON (UIDs, ids, strings), never
model instances: real backends serialise them.

* :func:`sync_owner`: one owner's complete sync (or a queued ``SyncRun``'s);
* :func:`refresh_conversation`: one conversation of one owner;
* :func:`process_webhook_event`: a recorded CometChat webhook event, one
  ``refresh_conversation`` per affected owner (run within it for one or two owners, enqueued
  for a group's holders; the event task is enqueued by the webhook view, which answers
  CometChat at once when a worker runs the tasks);
* :func:`request_sync` / :func:`request_refresh`: the seams the API and the admin call. With a
  backend that queues, they enqueue and return at once (the API answers 202); with the
  immediate backend (Django's default when ``TASKS`` is not set) they run inline within the
  on-demand deadline, as before tasks existed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import services
from .exceptions import CometChatError
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
    flag = (str(peer_flag[0]), peer_flag[1]) if peer_flag else None
    target = Target(uid, conversation_id, flag, expect_gone=expect_gone)
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
    counts as done, not failed.

    The event is claimed first, so a task delivered twice refreshes nothing twice.
    """
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
    failed: CometChatError | None = None
    try:
        if len(targets) <= INLINE_REFRESHES:
            failed = _refresh_here(targets, done)
        else:
            for target in targets:
                args, keywords = refresh_arguments(target)
                refresh_conversation.enqueue(*args, **keywords)
                done.append(target.uid)
    except Exception as exc:  # the queue refused, or the database: say so, then fail the task
        services.finish_webhook_event(event, owners=done, error=exc)
        raise
    services.finish_webhook_event(event, owners=done, error=failed)
    status = "processed" if failed is None else "failed"
    return {"event": event_id, "status": status, "owners": sorted(set(done))}


def _refresh_here(targets: list[Target], done: list[str]) -> CometChatError | None:
    """A webhook event's few refreshes (a direct message, a receipt, a block: two owners at
    most), run in the event's own task over one connection: a trip through the queue costs a
    worker more than the refresh itself, and adds its wait. A group's holders fan out as
    ``refresh_conversation`` tasks instead, so that a big group spreads over the workers.

    Adds to ``done`` the owners refreshed; returns the first failure, if any (each is logged)."""
    owners = services.owners_by_uid(target.uid for target in targets)
    failed: CometChatError | None = None
    with services.new_client() as client:
        for target in targets:
            outcome = _refresh(owners[target.uid], target, client)
            if isinstance(outcome, CometChatError):
                failed = failed or outcome
            else:
                done.append(target.uid)
    return failed


# -- the seams of on-demand work --------------------------------------------------------------


@dataclass(frozen=True)
class Queued:
    """Work handed to the task queue: its result id, and (for a sync) the run to follow."""

    task_id: str
    run: SyncRun | None = None


def request_sync(
    owner: Any,
    *,
    trigger: str,
    filters: ConversationFilters | None = None,
    client: services.Client | None = None,
) -> SyncRun | Queued:
    """Sync an owner on demand: enqueued when a worker runs tasks (a queued ``SyncRun`` to
    follow), else inline within ``WEB_DEADLINE`` (the finished ``SyncRun``)."""
    if not queues():
        return services.request_sync(owner, trigger=trigger, filters=filters, client=client)
    return _enqueue_sync(services.as_owner(owner), trigger=trigger, filters=filters)


def request_refresh(
    owner: Any, conversation_id: str, *, client: services.Client | None = None
) -> Conversation | Queued:
    """Refresh one conversation on demand: enqueued when a worker runs tasks, else inline."""
    if not queues():
        return services.request_refresh(owner, conversation_id, client=client)
    owner = services.as_owner(owner)
    result = refresh_conversation.enqueue(owner.uid, conversation_id)
    return Queued(str(result.id))


def enqueue_syncs(
    owners: Any,
    *,
    trigger: str = SyncRun.Trigger.TASK,
    skipped: Callable[[services.Owner, str], None] | None = None,
) -> int:
    """One ``sync_owner`` task per owner (an ``OwnerSelection`` or any iterable of ``Owner``),
    each with its queued ``SyncRun`` (so a waiting sync shows, is not enqueued twice by
    ``cometchat_refresh_stale``, and is marked abandoned if no worker ever takes it); returns
    how many were enqueued. Owners who cannot act (``problem``) are skipped: logged, and
    passed to ``skipped(owner, reason)`` when given (a command prints the reasons)."""
    count = 0
    for owner in owners:
        if owner.problem is not None:
            reason = owner.problem.describe()
            logger.warning("Not enqueuing %s: %s", owner.label, reason)
            if skipped is not None:
                skipped(owner, reason)
            continue
        _enqueue_sync(owner, trigger=trigger)
        count += 1
    return count


def _enqueue_sync(
    owner: services.Owner, *, trigger: str, filters: ConversationFilters | None = None
) -> Queued:
    """A queued ``SyncRun`` and the ``sync_owner`` task that carries it out. A queue that
    refuses the task fails the run at once: left "queued", it would keep
    ``cometchat_refresh_stale`` off that owner until it counted as abandoned."""
    run = services.queue_sync_run(owner, trigger=trigger, filters=filters)
    try:
        result = sync_owner.enqueue(
            owner.uid,
            trigger=trigger,
            run_id=run.pk,
            filters=(filters or ConversationFilters()).as_json(),
        )
    except Exception as exc:
        services.fail_queued_run(run, exc)
        raise
    return Queued(str(result.id), run)
