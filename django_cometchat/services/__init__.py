"""Use cases: the ONLY place the client and the models meet.

One function per use case, keyword-only options, no request-bound assumptions: the API, the
admin, the commands, tasks and webhooks all call these, each task a single call
(``sync_in_background``, ``refresh_in_background``, ``process_webhook_event_in_background``).
Owners, client creation, transactions and signals live here, one module per job, lowest first:

* :mod:`.errors`: the operator's and the owner's text of a failure;
* :mod:`.ownership`: owners, UID binding, owners chosen in bulk;
* :mod:`.clients`: clients, and the limits of on-demand and background work;
* :mod:`.runs`: sync-run bookkeeping, claims of syncs and refreshes, abandoned runs;
* :mod:`.refresh`: one conversation fetched live;
* :mod:`.sync`: the sync engine;
* :mod:`.webhook_events`: a webhook event's life as rows: recorded, taken, finished;
* :mod:`.webhook_processing`: what a task does with an event: its targets refreshed;
* :mod:`.retention`: pruning history, runs and events.

Every public name is importable from here (``from django_cometchat.services import X``).
"""

from __future__ import annotations

import warnings
from typing import Any

from ..exceptions import CometChatUserError
from .clients import background, new_client, on_demand, rate_budget_usage, without_waiting
from .errors import (
    ABANDONED_MESSAGE,
    FAILED_MESSAGE,
    INTERRUPTED_MESSAGE,
    MAX_ERROR_LENGTH,
    operator_message,
    public_message,
)
from .messages import page_cursors, read_messages
from .ownership import (
    Owner,
    OwnerSelection,
    as_owner,
    has_no_chat_user,
    owner_by_uid,
    owner_for,
    owners,
    owners_by_uid,
    rebind_uid,
    release_uid,
    resolve_uid,
    users_by_name,
)
from .refresh import (
    GONE_CODES,
    RefreshOutcome,
    fetch_conversation,
    proves_gone,
    refresh_in_background,
    refresh_on_demand,
    refresh_target,
)
from .retention import (
    DELETE_BATCH,
    prune_history,
    prune_message_access,
    prune_sync_runs,
    prune_webhook_events,
)
from .runs import (
    ACTIVE_STATUSES,
    SyncResult,
    abandoned_before,
    active_run,
    claim_refresh,
    claim_sync_run,
    claim_sync_runs,
    fail_queued_run,
    mark_abandoned_runs,
    queue_sync_run,
    release_refresh,
    stale_owners,
)
from .sync import (
    CATCH_UP_MAX_PAGES,
    RECHECK_MAX,
    sync_conversations,
    sync_in_background,
    sync_on_demand,
)
from .webhook_events import (
    TakenEvents,
    claim_next_webhook_event,
    claim_webhook_event,
    finish_webhook_event,
    needs_task,
    oldest_waiting_event,
    record_refused_webhook,
    record_webhook,
    take_waiting_webhook_events,
)
from .webhook_processing import (
    INLINE_REFRESHES,
    EventOutcome,
    process_webhook_event_in_background,
    webhook_targets,
)

__all__ = [  # noqa: RUF022 - grouped by use case
    "CometChatUserError",  # re-exported: it lived here before exceptions.py
    "Owner",
    "OwnerSelection",
    "SyncResult",
    "as_owner",
    "new_client",
    "on_demand",
    "without_waiting",
    "rate_budget_usage",
    "owner_by_uid",
    "owner_for",
    "owners",
    "owners_by_uid",
    "mark_abandoned_runs",
    "fail_queued_run",
    "queue_sync_run",
    "claim_sync_run",
    "claim_sync_runs",
    "abandoned_before",
    "page_cursors",
    "prune_message_access",
    "read_messages",
    "active_run",
    "claim_refresh",
    "release_refresh",
    "stale_owners",
    "rebind_uid",
    "users_by_name",
    "release_uid",
    "resolve_uid",
    "has_no_chat_user",
    "sync_conversations",
    "fetch_conversation",
    "sync_on_demand",
    "refresh_on_demand",
    "sync_in_background",
    "refresh_in_background",
    "process_webhook_event_in_background",
    "RefreshOutcome",
    "EventOutcome",
    "prune_history",
    "prune_sync_runs",
    "prune_webhook_events",
    "record_webhook",
    "record_refused_webhook",
    "needs_task",
    "oldest_waiting_event",
    "claim_webhook_event",
    "claim_next_webhook_event",
    "take_waiting_webhook_events",
    "webhook_targets",
    "refresh_target",
    "proves_gone",
    "finish_webhook_event",
    # public names of the modules, importable from here as before the split
    "background",
    "operator_message",
    "public_message",
    "MAX_ERROR_LENGTH",
    "INTERRUPTED_MESSAGE",
    "FAILED_MESSAGE",
    "ABANDONED_MESSAGE",
    "ACTIVE_STATUSES",
    "GONE_CODES",
    "RECHECK_MAX",
    "CATCH_UP_MAX_PAGES",
    "DELETE_BATCH",
    "TakenEvents",
    "INLINE_REFRESHES",
    # deprecated (module __getattr__ below)
    "request_sync",
    "request_refresh",
]

# Old names of the on-demand seams: ``tasks.request_sync`` / ``tasks.request_refresh`` (enqueue
# or run) share them, so the services' ones (always run now) say so in their new names.
_DEPRECATED = {"request_sync": sync_on_demand, "request_refresh": refresh_on_demand}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        new = _DEPRECATED[name]
        warnings.warn(
            f"django_cometchat.services.{name} is deprecated; use {new.__name__}",
            DeprecationWarning,
            stacklevel=2,
        )
        return new
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
