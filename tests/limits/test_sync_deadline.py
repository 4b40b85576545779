"""SYNC_DEADLINE and the bounds under it: background work (a command, a task, an inline webhook)
ends within its deadline whatever CometChat does, every socket read is clipped to what is left
of the deadline (a body, or a status line and headers, trickled a byte at a time, plain or
gzip), and a retry drains an error body only so far.

The answers are the fake's normal ones (API.md §2.1 "List conversations", §2.4 "Get user
conversation", §4.2 "Get user"; the 429 of §5.4), slowed by its "trickle" fault; API.md says
nothing of how fast CometChat sends its bytes, nor how long its error bodies are.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from django_cometchat import deadline, services, tasks
from django_cometchat.exceptions import CometChatDeadlineExceeded
from django_cometchat.models import Conversation, SyncRun, WebhookEvent
from django_cometchat.retry import DRAIN_MAX
from django_cometchat.testing import Fault
from tests.webhooks.test_webhooks import message_event, post

pytestmark = pytest.mark.django_db

MARGIN = 0.6  # seconds past the deadline an answer may take to be given up


def slow(**options: Any) -> Fault:
    """A byte every 0.25 s: each read far inside any read timeout, the answer endless."""
    return Fault("trickle", chunk_size=1, pause=0.25, **options)


# -- the client: every socket read -----------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("head", [False, True], ids=["body", "head"])
def test_a_trickle_never_outlasts_the_deadline(chat, client_for, compress, head):
    chat.inject(slow(compress=compress, head=head))
    client = client_for(TIMEOUT=(3.0, 15.0))
    started = time.monotonic()
    with deadline.deadline(1.0, setting="SYNC_DEADLINE"):
        with pytest.raises(CometChatDeadlineExceeded) as info:
            client.get_user("bob")
    assert 1.0 <= time.monotonic() - started < 1.0 + MARGIN
    assert "GET /users/bob: gave up on CometChat: SYNC_DEADLINE (1 s) passed" in str(info.value)
    assert info.value.code == "ERR_DEADLINE"


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_a_trickle_within_the_deadline_is_read_whole(chat, client_for, compress):
    chat.inject(Fault("trickle", compress=compress, chunk_size=8, pause=0.01))
    with deadline.deadline(30):
        assert client_for().get_user("bob").name == "Bob Stone"


def test_a_gzip_trickle_really_is_gzip(chat):
    import requests

    chat.inject(Fault("trickle", compress=True, chunk_size=64, pause=0))
    answer = requests.get(
        f"{chat.base_url}/users/bob",
        headers={"apikey": chat.api_key, "Accept-Encoding": "gzip"},
        timeout=5,
    )
    assert answer.headers["Content-Encoding"] == "gzip"
    assert answer.json()["data"]["uid"] == "bob"


@pytest.mark.parametrize(("size", "connections"), [(1000, 1), (DRAIN_MAX * 4, 2)])
def test_a_retry_drains_an_error_body_only_so_far(chat, client_for, size, connections):
    chat.inject(
        Fault("status", status=503, body=b"x" * size, headers={"Retry-After": "0"}, times=1)
    )
    client = client_for()
    before = chat.connections_opened
    assert client.get_user("bob").name == "Bob Stone"  # the retry is answered
    # A short body is drained and its connection serves the retry; a long one is not read to
    # its end: its connection is closed, and the retry opens another.
    assert chat.connections_opened - before == connections


def test_a_retry_does_not_wait_on_a_trickled_error_body_past_the_deadline(chat, client_for):
    # The fake's rate limit makes the normal answer a 429 (API.md §5.4), and the trickle sends
    # it a byte at a time: the drain before the retry stops at the deadline as every read does.
    chat.configure(rate_limit_per_minute=1, rate_limit_window=30)
    client = client_for(TIMEOUT=(3.0, 15.0), RETRY_AFTER_MAX=0.0, REQUESTS_PER_MINUTE=None)
    client.get_user("bob")  # spends the window
    chat.inject(slow())
    started = time.monotonic()
    with deadline.deadline(1.0), pytest.raises(CometChatDeadlineExceeded):
        client.get_user("bob")
    assert time.monotonic() - started < 1.0 + MARGIN
    assert [r.status for r in chat.requests][1] == 429


# -- SYNC_DEADLINE: a command, a task, a webhook event ---------------------------------------


@pytest.fixture
def owner(cometchat_fake, settings):
    """An owner with 12 conversations over 3 pages, all stored by a first sync; then
    SYNC_DEADLINE 1 s and a trickle on page 2 of the next walk."""
    settings.COMETCHAT = {**settings.COMETCHAT, "PAGE_SIZE": 5, "TIMEOUT": (3.0, 15.0)}
    cometchat_fake.bulk_conversations("owner", 12)
    services.sync_conversations(services.owner_by_uid("owner"))
    assert Conversation.objects.filter(owner_uid="owner", missing_since=None).count() == 12
    settings.COMETCHAT = {**settings.COMETCHAT, "SYNC_DEADLINE": 1}
    cometchat_fake.inject(slow(query={"page": "2"}))
    return "owner"


def check_cut_short(run: SyncRun, seconds: float) -> None:
    assert seconds < 1.0 + MARGIN
    assert run.status == SyncRun.Status.FAILED
    assert run.error_code == "ERR_DEADLINE"
    assert "SYNC_DEADLINE (1 s) passed" in run.error_message
    assert not run.complete
    # Nothing is marked missing by a walk cut short.
    assert Conversation.objects.filter(owner_uid="owner", missing_since=None).count() == 12


def test_a_command_sync_ends_at_the_deadline(owner):
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with pytest.raises(CommandError) as info:
        call_command("cometchat_sync", "--uid", owner, stdout=out, stderr=err)
    seconds = time.monotonic() - started
    check_cut_short(SyncRun.objects.latest("pk"), seconds)
    assert "SYNC_DEADLINE (1 s) passed" in str(info.value)


@pytest.mark.django_db(transaction=True)
def test_a_command_sync_on_threads_ends_at_the_deadline(owner, cometchat_fake):
    if connection.vendor != "postgresql":
        pytest.skip("threads need a shared database; run with COMETCHAT_TEST_DB=postgres")
    cometchat_fake.bulk_conversations("other", 3)
    started = time.monotonic()
    with pytest.raises(CommandError):
        call_command(
            "cometchat_sync", "--uid", owner, "--uid", "other", "--concurrency", "2",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    check_cut_short(
        SyncRun.objects.get(owner_uid=owner, status="failed"), time.monotonic() - started
    )
    assert SyncRun.objects.get(owner_uid="other").status == SyncRun.Status.SUCCEEDED


def test_a_task_sync_ends_at_the_deadline(owner):
    started = time.monotonic()
    result: Any = tasks.sync_owner.enqueue(owner)  # the immediate backend runs it here
    seconds = time.monotonic() - started
    assert result.status == "FAILED"  # a failed sync fails its task: no worker says SUCCESSFUL
    run = SyncRun.objects.get(owner_uid=owner, status="failed")
    assert run.error_code == "ERR_DEADLINE"
    check_cut_short(run, seconds)


def test_no_deadline_when_the_setting_is_none(owner, settings, cometchat_fake):
    settings.COMETCHAT = {**settings.COMETCHAT, "SYNC_DEADLINE": None}
    cometchat_fake.clear_faults()
    cometchat_fake.inject(Fault("trickle", query={"page": "2"}, chunk_size=256, pause=0.3))
    result: Any = tasks.sync_owner.enqueue(owner)
    assert result.return_value["status"] == SyncRun.Status.SUCCEEDED  # slow, but no limit


def test_on_demand_work_keeps_the_web_deadline(owner, settings):
    # SYNC_DEADLINE is for background work: an on-demand refresh stays under WEB_DEADLINE.
    settings.COMETCHAT = {**settings.COMETCHAT, "WEB_DEADLINE": 0.8, "SYNC_DEADLINE": 60}
    with pytest.raises(CometChatDeadlineExceeded):
        services.sync_on_demand(services.owner_by_uid(owner), trigger=SyncRun.Trigger.API)
    run = SyncRun.objects.latest("pk")
    assert run.error_code == "ERR_DEADLINE"
    assert "WEB_DEADLINE (0.8 s) passed" in run.error_message


def test_an_inline_webhook_event_ends_at_the_deadline(client, fake, alice, settings):
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "UID_RESOLVER": "tests.resolvers.uid_from_username",
        "TIMEOUT": (3.0, 15.0),
    }
    services.sync_conversations(services.owner_by_uid("alice"))
    services.sync_conversations(services.owner_by_uid("bob"))
    settings.COMETCHAT = {**settings.COMETCHAT, "SYNC_DEADLINE": 1}
    fake.inject(slow(times=2))  # both owners' refreshes
    started = time.monotonic()
    answer = post(client, message_event(fake.send_message("bob", to_user="alice", text="hi")))
    assert time.monotonic() - started < 1.0 + MARGIN
    assert answer.json() == {"status": "accepted"}
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED
    assert "SYNC_DEADLINE (1 s) passed" in event.error
