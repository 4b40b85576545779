"""A webhook event's life as rows: recorded (deduplicated), marked as the one a task is queued
for, taken for processing (once), finished; and the events left waiting, taken up again. What a
task does with an event it took is :mod:`.webhook_processing`."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..conf import get_settings
from ..exceptions import CometChatError
from ..models import WebhookEvent
from ..redaction import redact
from ..signals import webhook_event_finished, webhook_processed
from ..webhook_types import Delivery, foreign_app, parse_webhook
from .errors import MAX_ERROR_LENGTH, operator_message
from .runs import abandoned_before

logger = logging.getLogger(__name__)


# An event arriving while an earlier one still waits for the task queued for it is left to
# that task (which processes the events waiting behind its own): the queue's own work, a few
# statements and a worker's wake-up, cost as much as an event's refreshes. Only a task queued
# this recently counts; an older one may be lost (a worker killed, a queue flushed), and the
# event then queues a task of its own.
COALESCE_WITHIN = timedelta(seconds=5)
# An event a task was queued for is left to that task this long by the tasks processing the
# events behind theirs; past that, every worker was busy, and the first of those tasks free
# takes it (its own task then finds it taken and goes on with the events after it). Left for
# as long as COALESCE_WITHIN, such events waited for a busy worker while younger events were
# processed: at 80 events a second on two workers, the lag's maximum was 2.7-5 s.
LEFT_TO_ITS_TASK = timedelta(seconds=0.5)
# Attempts of record_webhook to settle one key against concurrent deliveries of it.
RECORD_ATTEMPTS = 3

# The two rules of a received event, as SQL on the events table (each one home): the webhook
# counts on its task (``needs_task``: a task was queued for it since the second parameter), or a
# task may take it (``claim_next_webhook_event``: none was, or only before the second
# parameter). The first parameter is the status "received". Written out, not built by the ORM:
# building and compiling them on every delivery and every event taken was most of the webhook
# view's CPU and a third of a worker's (docs/benchmarks.md, seventh round). Each reads a partial
# index (``cometchat_hook_queued_for``, ``cometchat_hook_waiting``): the bare ``task_queued`` is
# what lets SQLite match the first one's condition (``task_queued = true`` would not).
WAITS_FOR_ITS_TASK = "status = %s AND task_queued AND COALESCE(attempted_at, received_at) >= %s"
BEHIND_A_TASK = "status = %s AND (NOT task_queued OR COALESCE(attempted_at, received_at) < %s)"


def record_webhook(delivery: Delivery) -> WebhookEvent | None:
    """Record a parsed webhook delivery, and return the event to act on; None when it is a
    duplicate (CometChat retried it, or a second webhook delivered it too): the caller then
    does nothing more.

    * A delivery for another CometChat app (``webhook_types.foreign_app``) is recorded as
      ignored, with the reason and without a dedupe key: its ids are not this app's.
    * A trigger this app does not act on is recorded as ignored; any other waits, as received,
      for ``process_webhook_event``.
    * The key recorded already: a duplicate while that event is received, processing,
      processed or ignored. A failed one is taken over, back to received, and returned: the
      redelivery is processed again (one conditional UPDATE, so that of two concurrent
      redeliveries one takes it). A key with a ``horizon`` holds only that long after its event
      arrived, and only while no newer event of its ``topic`` arrived: past that, the old event
      gives its key up (again one conditional UPDATE) and the delivery is a new event.
    """
    now = timezone.now()
    settings = get_settings()
    # The region says which app it is only when it picks CometChat's host (BASE_URL unset).
    region = None if settings.base_url_override else settings.region
    reason = foreign_app(delivery, app_id=settings.app_id, region=region)
    if reason is not None:
        logger.info("CometChat webhook %s ignored: %s", delivery.trigger, reason)
        event = WebhookEvent.objects.create(
            trigger=delivery.trigger,
            received_at=now,
            status=WebhookEvent.Status.IGNORED,
            error=reason,
            payload=dict(delivery.raw),
            event_at=delivery.occurred_moment,
        )
        _announce_event(event, delivery.occurred_at, now)
        return event
    status = WebhookEvent.Status.RECEIVED if delivery.handled else WebhookEvent.Status.IGNORED
    key = delivery.dedupe_key
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                event = WebhookEvent.objects.create(
                    trigger=delivery.trigger,
                    received_at=now,
                    dedupe_key=key,
                    status=status,
                    payload=dict(delivery.raw),
                    topic=delivery.topic or "",
                    event_at=delivery.occurred_moment,
                )
        except IntegrityError as exc:  # the unique key: a concurrent or earlier delivery has it
            refused = exc
        else:
            if status == WebhookEvent.Status.IGNORED:  # it ends here
                _announce_event(event, delivery.occurred_at, now)
            return event
        existing = WebhookEvent.objects.filter(dedupe_key=key).values("pk", "status").first()
        if existing is None:  # it gave its key up (or was pruned) meanwhile: record anew
            if attempt == RECORD_ATTEMPTS:
                raise refused  # not the key after all
            continue
        pk = existing["pk"]
        if _outlived(delivery, pk, now):
            WebhookEvent.objects.filter(pk=pk, dedupe_key=key).update(dedupe_key=None)
            continue
        if existing["status"] != WebhookEvent.Status.FAILED:
            return None
        taken = WebhookEvent.objects.filter(
            pk=pk, dedupe_key=key, status=WebhookEvent.Status.FAILED
        ).update(
            status=status,
            received_at=now,
            processed_at=None,
            error="",
            owners=[],
            payload=dict(delivery.raw),
            event_at=delivery.occurred_moment,
            task_queued=False,
        )
        if taken:
            logger.info("CometChat webhook event %s delivered again after failing: retried", pk)
            return WebhookEvent.objects.get(pk=pk)
    logger.warning(
        "CometChat webhook %s: its key stayed contended; answered as a duplicate", delivery.trigger
    )
    return None


def _outlived(delivery: Delivery, pk: int, now: datetime) -> bool:
    """Whether the recorded event ``pk`` with the delivery's key can no longer have been what
    CometChat retried: past the key's horizon, or followed by newer news of the same topic."""
    if delivery.horizon is None:
        return False
    recorded = WebhookEvent.objects.filter(pk=pk)
    if recorded.filter(received_at__lt=now - timedelta(seconds=delivery.horizon)).exists():
        return True
    return bool(
        delivery.topic and WebhookEvent.objects.filter(topic=delivery.topic, pk__gt=pk).exists()
    )


def record_refused_webhook(*, trigger: str, error: str) -> WebhookEvent:
    """Record a delivery refused as malformed (too large, not JSON, not the contract): failed,
    with the reason, and without its payload (nothing of what was refused is stored)."""
    event = WebhookEvent.objects.create(
        trigger=trigger,
        received_at=timezone.now(),
        status=WebhookEvent.Status.FAILED,
        error=redact(error)[:MAX_ERROR_LENGTH],
    )
    _announce_event(event, None, event.received_at)
    return event


def claim_webhook_event(event_id: int) -> WebhookEvent | None:
    """Take a received event for processing, once: a task delivered twice (queues deliver at
    least once) finds it taken and does nothing. None when it is not there to take."""
    db, _ = _events_table()
    alias = db.alias
    if db.vendor == "postgresql":  # the take and the read in one statement
        return _take_returning("%s", [event_id])
    waiting = WebhookEvent.objects.using(alias).filter(
        pk=event_id, status=WebhookEvent.Status.RECEIVED
    )
    claimed = waiting.update(status=WebhookEvent.Status.PROCESSING, attempted_at=timezone.now())
    return WebhookEvent.objects.using(alias).filter(pk=event_id).first() if claimed else None


def _take_returning(which: str, params: list[Any]) -> WebhookEvent | None:
    """Take the received event ``which`` (SQL for its id, with ``params``) for processing and
    read it, in one ``UPDATE … RETURNING`` (PostgreSQL)."""
    db, table = _events_table()
    columns = ", ".join(
        db.ops.quote_name(f.column) for f in WebhookEvent._meta.concrete_fields if f.column
    )
    sql = (
        f"UPDATE {table} SET status = %s, attempted_at = %s "  # noqa: S608
        f"WHERE id = ({which}) AND status = %s RETURNING {columns}"
    )
    received = WebhookEvent.Status.RECEIVED
    values = [WebhookEvent.Status.PROCESSING, timezone.now(), *params, received]
    taken = list(WebhookEvent.objects.raw(sql, values).using(db.alias))
    return taken[0] if taken else None


def needs_task(event: WebhookEvent) -> bool:
    """Whether the webhook must queue a task for an event it just recorded: not when an earlier
    event still waits for a task queued for it within ``COALESCE_WITHIN``, as that task
    processes this one after its own (``process_webhook_event_in_background``'s followers), or
    another task's run of followers does, past ``LEFT_TO_ITS_TASK``. Otherwise the event is
    marked as the one a task is queued for (``task_queued``).

    Where the database lets an ``UPDATE`` read its own table (not MySQL), the look and the mark
    are one conditional statement: a round trip and a compiled query fewer on every delivery
    (about 30% of the webhook view's CPU was this function as two). That statement is written
    out rather than built by the ORM: building and compiling it was still 43% of the view's
    CPU, for a shape that never changes (docs/benchmarks.md, seventh round)."""
    db, table = _events_table()
    received, since = WebhookEvent.Status.RECEIVED, timezone.now() - COALESCE_WITHIN
    look = [received, db.ops.adapt_datetimefield_value(since), event.pk]
    with db.cursor() as cursor:
        if db.features.update_can_self_select:
            cursor.execute(
                f"UPDATE {table} SET task_queued = %s WHERE id = %s AND NOT EXISTS ("  # noqa: S608
                f"SELECT 1 FROM {table} ahead WHERE {WAITS_FOR_ITS_TASK} AND id < %s)",
                [True, event.pk, *look],
            )
            return bool(cursor.rowcount > 0)
        cursor.execute(
            f"SELECT 1 FROM {table} WHERE {WAITS_FOR_ITS_TASK} AND id < %s LIMIT 1",  # noqa: S608
            look,
        )
        if cursor.fetchone() is not None:
            return False
        cursor.execute(f"UPDATE {table} SET task_queued = %s WHERE id = %s", [True, event.pk])  # noqa: S608
    return True


def claim_next_webhook_event() -> WebhookEvent | None:
    """Take the oldest event waiting behind a task for processing, as ``claim_webhook_event``
    does; None when none waits. An event a task was queued for within ``LEFT_TO_ITS_TASK`` is
    left to that task; one queued before has waited for a busy worker (or its task was lost),
    so it is taken too. Two concurrent callers never take the same one."""
    db, table = _events_table()
    behind = _behind_a_task_params(db)
    oldest = f"SELECT id FROM {table} WHERE {BEHIND_A_TASK} ORDER BY id LIMIT 1"  # noqa: S608
    if db.vendor == "postgresql":  # the pick, the take and the read in one statement
        return _take_returning(f"{oldest} FOR UPDATE SKIP LOCKED", behind)
    for _ in range(RECORD_ATTEMPTS):  # another worker may take the one picked first
        with db.cursor() as cursor:
            cursor.execute(oldest, behind)
            row = cursor.fetchone()
        if row is None:
            return None
        event = claim_webhook_event(row[0])
        if event is not None:
            return event
    return None


@dataclass(frozen=True)
class TakenEvents:
    """Webhook events ``take_waiting_webhook_events`` took, by why they were waiting."""

    deferred: list[int] = field(default_factory=list)
    stuck: list[int] = field(default_factory=list)  # received or processing, left by a worker

    @property
    def ids(self) -> list[int]:
        return sorted([*self.deferred, *self.stuck])


def take_waiting_webhook_events() -> TakenEvents:
    """Take back, for processing again, the webhook events left waiting: those the rate budget
    deferred, and those received or processing for longer than ``SYNC_ABANDONED_AFTER`` (the
    worker died, or the queue lost the task). Each goes back to received (``attempted_at``
    now), ready for ``process_webhook_event``; each is taken with one conditional UPDATE, so
    of two concurrent callers one takes it and the other skips it."""
    now = timezone.now()
    before = abandoned_before(now)
    deferred = Q(status=WebhookEvent.Status.DEFERRED)
    stuck = Q(
        status__in=(WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING),
        last_attempt__lt=before,
    )
    waiting = WebhookEvent.objects.alias(last_attempt=Coalesce("attempted_at", "received_at"))
    taken = TakenEvents()
    for pk, status in waiting.filter(deferred | stuck).order_by("pk").values_list("pk", "status"):
        if status == WebhookEvent.Status.DEFERRED:
            still = deferred
        else:
            still = Q(status=status, last_attempt__lt=before)
        claimed = waiting.filter(still, pk=pk).update(
            # cometchat_refresh_stale queues a task for each: other tasks leave it to its own
            status=WebhookEvent.Status.RECEIVED,
            attempted_at=now,
            error="",
            task_queued=True,
        )
        if claimed:
            (taken.deferred if status == WebhookEvent.Status.DEFERRED else taken.stuck).append(pk)
    if taken.stuck:
        logger.warning(
            "CometChat webhook events left waiting by a worker, taken up again: %s", taken.stuck
        )
    return taken


def finish_webhook_event(
    event: WebhookEvent,
    *,
    owners: Iterable[str] = (),
    error: BaseException | None = None,
    deferred: bool = False,
) -> None:
    """Mark an event processed (its refreshes handed over), failed (with the reason), or
    ``deferred`` (the rate budget had no slot for it now, ``error`` says so: it waits for
    ``cometchat_refresh_stale``); a processed or failed one sends ``webhook_processed`` once
    that is committed."""
    if deferred:  # not finished: no processing time, no signal; it is processed all again
        event.status = WebhookEvent.Status.DEFERRED
        event.error = operator_message(error)[:MAX_ERROR_LENGTH] if error is not None else ""
        event.save(update_fields=["status", "error"])
        logger.info("CometChat webhook event %s deferred: %s", event.pk, event.error)
        return
    event.processed_at = ended = timezone.now()
    event.owners = sorted(set(owners))
    if error is None:
        event.status = WebhookEvent.Status.PROCESSED
    else:
        event.status = WebhookEvent.Status.FAILED
        event.error = operator_message(error)[:MAX_ERROR_LENGTH]
        logger.warning("CometChat webhook event %s failed: %s", event.pk, event.error)
    event.save(update_fields=["status", "processed_at", "error", "owners"])
    refreshed = list(event.owners)
    transaction.on_commit(
        lambda: webhook_processed.send(sender=WebhookEvent, event=event, owners=refreshed),
        using=events_database(),
    )
    if webhook_event_finished.has_listeners(WebhookEvent):  # else the payload is not re-read
        _announce_event(event, _event_time(event), ended)


def _event_time(event: WebhookEvent) -> float | None:
    """CometChat's time of a recorded event (``Delivery.occurred_at``), if it has one."""
    try:
        return parse_webhook(event.payload).occurred_at
    except CometChatError:  # a payload that no longer parses has no time to tell
        return None


def _announce_event(event: WebhookEvent, occurred_at: float | None, ended: datetime) -> None:
    """``webhook_event_finished`` for an event that reached its end, once that is committed."""
    lag = None if occurred_at is None else ended.timestamp() - occurred_at
    status, trigger = str(event.status), event.trigger
    transaction.on_commit(
        lambda: webhook_event_finished.send_robust(
            sender=WebhookEvent, event=event, trigger=trigger, status=status, lag=lag
        ),
        using=events_database(),
    )


def oldest_waiting_event() -> int | None:
    """The id of the oldest event waiting behind a task (``claim_next_webhook_event``'s rule),
    one with no task of its own before one whose task is only late: the event a task queued to
    help with a backlog is queued for."""
    db, table = _events_table()
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE {BEHIND_A_TASK} "  # noqa: S608
            "ORDER BY task_queued, id LIMIT 1",  # one with no task of its own first: none comes
            _behind_a_task_params(db),
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def events_database() -> str:
    """The alias of the database the event rows are written to."""
    return str(router.db_for_write(WebhookEvent))


def _events_table() -> tuple[Any, str]:
    """The connection the event rows are written through, and their table's quoted name."""
    db = connections[events_database()]
    return db, db.ops.quote_name(WebhookEvent._meta.db_table)


def _behind_a_task_params(db: Any) -> list[Any]:
    """``BEHIND_A_TASK``'s parameters now: received, and ``LEFT_TO_ITS_TASK`` ago."""
    return [
        WebhookEvent.Status.RECEIVED,
        db.ops.adapt_datetimefield_value(timezone.now() - LEFT_TO_ITS_TASK),
    ]
