"""The one stop rule and the one Totals every batch shares (the cometchat_sync command, the
admin's actions, tasks.enqueue_syncs): django_cometchat.batches."""

from __future__ import annotations

import pytest

from django_cometchat import services
from django_cometchat.batches import OUTAGE_LIMIT, SyncCounts, Totals, stops_batch
from django_cometchat.exceptions import (
    CometChatAuthError,
    CometChatBudgetExhausted,
    CometChatConfigurationError,
    CometChatDeadlineExceeded,
    CometChatForbidden,
    CometChatNotFound,
    CometChatQueueUnavailable,
    CometChatRateLimited,
    CometChatResponseError,
    CometChatServerError,
    CometChatTimeout,
    CometChatTransportError,
)
from django_cometchat.models import SyncRun

NEVER, AT_ONCE, IN_A_ROW = "never", "at once", "in a row"


@pytest.mark.parametrize(
    ("error", "stops"),
    [
        # About one item: the batch goes on.
        (CometChatNotFound("gone", status=404, code="ERR_CONVERSATION_NOT_FOUND"), NEVER),
        (CometChatForbidden("pinned", status=403, code="ERR_PIN_LIMIT"), NEVER),
        (CometChatResponseError("not JSON"), NEVER),
        (ValueError("a bug in one item"), NEVER),
        # Shared by every item: the batch stops at once.
        (CometChatAuthError("no key", status=401, code="AUTH_ERR_APIKEY_NOT_FOUND"), AT_ONCE),
        (CometChatForbidden("plan", status=403, code="ERR_PLAN_RESTRICTION"), AT_ONCE),
        (CometChatConfigurationError('COMETCHAT["API_KEY"] is not set'), AT_ONCE),
        (CometChatTransportError(reason="refused"), AT_ONCE),
        (CometChatTransportError(reason="dns"), AT_ONCE),
        (CometChatTimeout(reason="connect_timeout"), AT_ONCE),
        (CometChatRateLimited("slow down", status=429, retry_after=30.0), AT_ONCE),
        (CometChatBudgetExhausted("budget spent"), AT_ONCE),
        (CometChatQueueUnavailable("sync_owner", ConnectionError("broker down")), AT_ONCE),
        (CometChatDeadlineExceeded(seconds=8.0, setting="WEB_DEADLINE"), AT_ONCE),
        (KeyboardInterrupt(), AT_ONCE),
        # Maybe about the item alone: OUTAGE_LIMIT in a row stop it.
        (CometChatServerError("oops", status=500, code="ERR_MISSION_FAILED"), IN_A_ROW),
        (CometChatTimeout(reason="read_timeout"), IN_A_ROW),
        (CometChatTransportError(reason="reset"), IN_A_ROW),
        (CometChatDeadlineExceeded(seconds=900.0, setting="SYNC_DEADLINE"), IN_A_ROW),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value,
)
def test_the_stop_rule(error, stops):
    assert stops_batch(error, outages_in_a_row=1) is (stops == AT_ONCE)
    assert stops_batch(error, outages_in_a_row=OUTAGE_LIMIT) is (stops != NEVER)


def outage(text: str = "down") -> CometChatServerError:
    return CometChatServerError(text, status=503, code="ERR_SERVICE_UNAVAILABLE")


def test_only_outages_in_a_row_add_up_and_the_stop_names_its_cause():
    totals = Totals(noun="owners")
    item = CometChatNotFound("no such user", status=404, code="ERR_UID_NOT_FOUND")
    assert not totals.fail("a", "503", outage())
    assert not totals.fail("b", "404", item)  # an item's own failure breaks the row
    assert not totals.fail("c", "503", outage())
    totals.succeed()  # so does a success
    assert not totals.fail("d", "503", outage())
    assert not totals.fail("e", "503", outage())
    assert not totals.stopped
    assert totals.fail("f", "503 again", outage())
    assert totals.stopped_by is not None
    assert totals.stop_reason == "3 owners in a row failed: 503 again"
    assert (totals.tried, totals.succeeded, totals.failed) == (7, 1, 6)
    assert [label for label, _ in totals.failures] == ["a", "b", "c", "d", "e", "f"]


def test_the_first_stopping_failure_is_kept_and_an_interruption_is_not_a_failure_cause():
    totals = Totals()
    key = CometChatAuthError("bad key", status=401, code="AUTH_ERR_APIKEY_NOT_FOUND")
    assert totals.fail("a", "bad key", key)
    assert totals.fail("b", "refused", CometChatTransportError(reason="refused"))
    assert (totals.stopped_by, totals.stop_reason) == (key, "bad key")
    interrupted = Totals()
    assert interrupted.fail("a", "interrupted", KeyboardInterrupt())
    assert interrupted.interrupted
    assert interrupted.stopped
    assert interrupted.stopped_by is None


def test_sync_counts_sum_every_counter_of_a_sync_result():
    """Totals add a SyncResult's counters by name: each SyncCounts field is one of them."""
    result = services.SyncResult(
        run=SyncRun(owner_uid="alice"),
        created=1,
        updated=2,
        unchanged=3,
        stale=4,
        missing=5,
        pages=6,
        requests=7,
    )
    totals = Totals()
    totals.succeed(result)
    assert not totals.fail("bob", "503", outage(), result)  # a failed sync's pages count too
    assert totals.synced == SyncCounts(2, 4, 6, 8, 10, 12, 14)
    assert totals.synced.kept == result.kept * 2
