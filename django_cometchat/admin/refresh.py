"""What the admin's actions do: refresh rows and sync owners through the on-demand seams, in bounds.

A thin adapter: every fetch goes through ``tasks.request_refresh`` / ``tasks.request_sync``, on
behalf of the owner the row's UID is bound to. With a task worker configured they only enqueue
(and the action says so); else the whole action runs inline inside one ``services.on_demand()``
block: a person is waiting, so one deadline covers every row.

An error about one row (``scope == "item"``: not found, not accessible, an invalid id) is reported
and the batch goes on; any other (CometChat unreachable, a bad key, rate limited, a 5xx, the
deadline, a broken or missing setting, a task queue that refuses) stops the batch, so a person
is not kept waiting for a hundred identical failures (the stop rule of every batch:
:func:`..batches.stops_batch`). Every failure becomes its ``describe()`` text: the CometChat
code and status, never the API key, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from .. import services, tasks
from ..batches import Totals
from ..exceptions import (
    CometChatAuthError,
    CometChatConfigurationError,
    CometChatError,
    CometChatQueueUnavailable,
)
from ..models import Conversation, SyncRun

if TYPE_CHECKING:  # annotations only: services create and use the client
    from ..client import CometChatClient

T = TypeVar("T")


@dataclass
class BatchOutcome(Totals):
    """A batch's :class:`Totals` (``failures``: (item, reason); ``not_attempted``: items never
    tried; ``stopped_by``: the failure that left them untried), with a line per item ``done``
    and whether the work was handed to a task worker rather than done."""

    done: list[str] = field(default_factory=list)
    queued: bool = False

    @property
    def what_to_do(self) -> str:
        """What a person can do about the failure that stopped the batch."""
        exc = self.stopped_by
        if isinstance(exc, CometChatAuthError):
            return (
                'CometChat refused the API key: check COMETCHAT["API_KEY"] (a REST API key of '
                "this app with fullAccess scope), then try again."
            )
        if isinstance(exc, CometChatConfigurationError):
            return "Fix that setting, then try again."
        if isinstance(exc, CometChatQueueUnavailable):
            return "Try again once the task queue takes work."
        if isinstance(exc, CometChatError) and exc.scope == "global":
            return "Every other one would fail the same way; fix that first."
        return "Try again once CometChat answers."


def _run_batch(
    items: Sequence[T], label: Callable[[T], str], act: Callable[[T, CometChatClient | None], str]
) -> BatchOutcome:
    outcome = BatchOutcome(queued=tasks.queues())
    try:
        # Enqueuing needs no client: a web host may leave CometChat's key to its workers.
        with nullcontext(None) if outcome.queued else services.on_demand() as client:
            for index, item in enumerate(items):
                try:
                    outcome.done.append(act(item, client))
                except CometChatError as exc:
                    if outcome.fail(label(item), exc.describe(), exc):
                        outcome.not_attempted = len(items) - index - 1
                        break
                else:
                    outcome.succeed()
    except CometChatError as exc:  # no client at all: a missing or broken setting
        outcome.fail("CometChat", exc.describe(), exc)
        outcome.not_attempted = len(items)
    return outcome


def refresh_conversations(rows: Sequence[Conversation]) -> BatchOutcome:
    """Fetch each row live from CometChat, on behalf of its owner, and store it."""
    owners = services.owners_by_uid({row.owner_uid for row in rows})

    def label(row: Conversation) -> str:
        return f"{row.conversation_id} (owner {row.owner_uid})"

    def act(row: Conversation, client: CometChatClient | None) -> str:
        outcome = tasks.request_refresh(owners[row.owner_uid], row.conversation_id, client=client)
        if isinstance(outcome, tasks.Queued) and outcome.already_queued:
            return f"{label(row)} (already queued)"
        return label(row)

    return _run_batch(rows, label, act)


def sync_owners(owners: Sequence[services.Owner]) -> BatchOutcome:
    """One complete sync per owner; each is a SyncRun, trigger admin."""

    def act(owner: services.Owner, client: CometChatClient | None) -> str:
        run = tasks.request_sync(owner, trigger=SyncRun.Trigger.ADMIN, client=client)
        if isinstance(run, tasks.Queued):
            if run.already_queued and run.run is not None:  # nothing new: that run is the sync
                return f"{owner.uid} (already {run.run.status}: sync run {run.run.pk})"
            return owner.uid
        return (
            f"{owner.uid} ({run.created_count} new, {run.updated_count} updated, "
            f"{run.unchanged_count} unchanged, {run.missing_count} missing)"
        )

    return _run_batch(owners, lambda owner: owner.uid, act)
