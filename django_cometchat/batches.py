"""Batches of work over many owners or conversations: when one stops, and what it did.

Three adapters run batches: the ``cometchat_sync`` command (a sync per owner), the admin's
actions (a refresh per row, a sync per owner) and the tasks' fan-out (``tasks.enqueue_syncs``,
a task per owner). They share one stop rule, :func:`stops_batch`, and one :class:`Totals`.

The rule, :func:`stops_batch`, reads :attr:`~.exceptions.CometChatError.scope`:

* a failure about one item (not found, not accessible, an invalid id, a malformed answer, a bug
  in one item) is counted and the batch goes on;
* a failure whose cause every later item shares stops the batch at once: a global one (a
  refused key, a plan restriction, a missing or broken setting), CometChat's host out of reach
  (DNS, connection refused, TLS, connect timeout), rate limiting past the retries (CometChat's
  per-app limit or this site's budget), a task queue that refuses, a deadline that covers the
  whole batch (``WEB_DEADLINE``), an interruption (SIGTERM, SIGINT);
* an outage that may be about the item alone (a 5xx, a read timeout or a reset while one
  owner's pages come, that owner's own ``SYNC_DEADLINE``) stops it once ``OUTAGE_LIMIT`` items
  in a row failed that way: a 500 that one user's data provokes must not stop every later user.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .exceptions import (
    CometChatDeadlineExceeded,
    CometChatError,
    CometChatQueueUnavailable,
    CometChatRateLimited,
    CometChatTransportError,
)

OUTAGE_LIMIT = 3
# Transport failures about CometChat's host, not about what was asked of it.
HOST_FAILURES = frozenset({"dns", "refused", "tls", "connect_timeout"})


def shared_by_every_item(error: BaseException) -> bool:
    """Whether every later item of the batch would fail the same way (the rule above)."""
    if isinstance(error, KeyboardInterrupt):
        return True
    if not isinstance(error, CometChatError) or error.scope == "item":
        return False
    if error.scope == "global" or isinstance(
        error, CometChatRateLimited | CometChatQueueUnavailable
    ):
        return True
    if isinstance(error, CometChatDeadlineExceeded):
        return error.setting != "SYNC_DEADLINE"  # each unit of background work has its own
    return isinstance(error, CometChatTransportError) and error.reason in HOST_FAILURES


def stops_batch(error: BaseException, *, outages_in_a_row: int = 1) -> bool:
    """Whether ``error`` ends its batch; ``outages_in_a_row`` counts the items that failed on an
    outage in a row, this one included (:attr:`Totals.outages_in_a_row` keeps it)."""
    if shared_by_every_item(error):
        return True
    is_outage = isinstance(error, CometChatError) and error.scope == "outage"
    return is_outage and outages_in_a_row >= OUTAGE_LIMIT


@dataclass
class SyncCounts:
    """The counters of sync results, summed (a ``services.SyncResult`` has each of them)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    missing: int = 0
    pages: int = 0
    requests: int = 0

    @property
    def kept(self) -> int:
        """Rows left as stored: unchanged, or older than what is stored."""
        return self.unchanged + self.stale

    def add(self, result: Any) -> None:
        """Add the counters of a sync result (anything with these attributes)."""
        for counter in dataclasses.fields(self):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(result, counter.name))


@dataclass
class Totals:
    """What a batch did so far, and what stopped it."""

    succeeded: int = 0
    skipped: int = 0  # nothing tried: no CometChat user, or an owner who cannot act
    already_queued: int = 0  # the same work was already on its way: nothing new queued
    not_attempted: int = 0  # items left untried when the batch stopped (when counted)
    synced: SyncCounts = field(default_factory=SyncCounts)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)
    stopped_by: BaseException | None = None  # the failure that stopped the batch
    stop_reason: str = ""  # its reason, as the batch's failures list shows it
    interrupted: bool = False  # a signal stopped the batch
    outages_in_a_row: int = 0  # items that failed on an outage since the last other outcome
    noun: str = "items"  # what the batch's items are, in its stop reason ("owners")

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def tried(self) -> int:
        return self.succeeded + self.failed

    @property
    def stopped(self) -> bool:
        return self.interrupted or self.stopped_by is not None

    def succeed(self, result: Any = None) -> None:
        """Count an item done; ``result``: its sync result, whose counters are added."""
        self.succeeded += 1
        self.outages_in_a_row = 0
        if result is not None:
            self.synced.add(result)

    def fail(self, item: str, reason: str, error: BaseException, result: Any = None) -> bool:
        """Count a failed item and apply the stop rule: True when the batch stops here (the
        first such failure is kept as ``stopped_by``)."""
        self.failures.append((item, reason))
        if result is not None:
            self.synced.add(result)
        # Only outages in a row add up; an item's own failure or a success breaks the row.
        outage = isinstance(error, CometChatError) and error.scope == "outage"
        self.outages_in_a_row = self.outages_in_a_row + 1 if outage else 0
        if not stops_batch(error, outages_in_a_row=self.outages_in_a_row):
            return False
        if isinstance(error, KeyboardInterrupt):
            self.interrupted = True
        elif self.stopped_by is None:
            self.stopped_by = error
            self.stop_reason = reason
            if not shared_by_every_item(error):
                self.stop_reason = f"{OUTAGE_LIMIT} {self.noun} in a row failed: {reason}"
        return True
