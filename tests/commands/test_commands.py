"""cometchat_sync and cometchat_prune, end to end against the fake CometChat."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cometchat import services
from django_cometchat.batches import Totals
from django_cometchat.exceptions import CometChatError, CometChatTransportError
from django_cometchat.management.batch import BatchRunner
from django_cometchat.management.commands import cometchat_sync
from django_cometchat.management.reporting import Outcome
from django_cometchat.models import Conversation, ConversationSnapshot, SyncRun, WebhookEvent
from django_cometchat.storage import Row, content_hash, store_page
from django_cometchat.testing import Fault

pytestmark = pytest.mark.django_db

ALICE_CONVERSATIONS = {"alice_user_bob", "alice_user_carol", "group_book-club"}


@pytest.fixture(autouse=True)
def _fast_and_uid_is_username(settings):
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "UID_RESOLVER": "tests.resolvers.uid_from_username",
        "BACKOFF_FACTOR": 0.01,
        "BACKOFF_MAX": 0.05,
        "MAX_RETRIES": 1,
    }


@pytest.fixture
def make_user(django_user_model):
    def make(uid, **extra):
        return django_user_model.objects.create_user(username=f"{uid}-django", **extra)

    return make


class Run:
    def __init__(self, out: str, err: str, error: CommandError | None = None) -> None:
        self.out = out
        self.err = err
        self.error = error

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def everything(self) -> str:
        return self.out + self.err + (str(self.error) if self.error else "")

    def summary(self) -> dict[str, Any]:
        """The summary table as {column: value}."""
        header_at = next(i for i, line in enumerate(self.lines) if line.split()[:1] == ["users"])
        names = self.lines[header_at].split()
        values = self.lines[header_at + 1].split()
        return {n: (v if n == "elapsed" else int(v)) for n, v in zip(names, values, strict=True)}


def run(
    command: str, *args: str, expect_error: bool = False, stdout: StringIO | None = None
) -> Run:
    out, err = stdout or StringIO(), StringIO()
    error = None
    try:
        call_command(command, *args, stdout=out, stderr=err)
    except CommandError as exc:
        if not expect_error:
            raise
        error = exc
    else:
        assert not expect_error, "expected a CommandError"
    return Run(out.getvalue(), err.getvalue(), error)


def stored(owner_uid: str) -> set[str]:
    return set(
        Conversation.objects.filter(owner_uid=owner_uid).values_list("conversation_id", flat=True)
    )


LINE = re.compile(
    r"^(?P<label>.+?): created (?P<created>\d+), updated (?P<updated>\d+), "
    r"unchanged (?P<unchanged>\d+), missing (?P<missing>\d+) "
    r"\((?P<pages>\d+) pages?, (?P<requests>\d+) requests?\) in \d+\.\d\ds$"
)


def counts(result: Run, label: str) -> tuple[int, ...]:
    for line in result.lines:
        match = LINE.match(line)
        if match and match["label"] == label:
            return tuple(int(match[k]) for k in ("created", "updated", "unchanged", "missing"))
    raise AssertionError(f"no line for {label!r} in:\n{result.out}")


# -- --user / --uid -----------------------------------------------------------------------------


def test_user_syncs_and_prints_a_line_and_a_summary(fake, make_user):
    alice = make_user("alice")
    result = run("cometchat_sync", "--user", "alice-django")
    line = next(line for line in result.lines if line.startswith("alice-django"))
    assert LINE.match(line), line
    assert line.startswith(
        "alice-django (uid alice): created 3, updated 0, unchanged 0, missing 0 "
        "(1 page, 1 request) in "
    )
    summary = result.summary()
    assert summary == {
        "users": 1,
        "succeeded": 1,
        "failed": 0,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "missing": 0,
        "pages": 1,
        "requests": 1,
        "elapsed": summary["elapsed"],
    }
    assert re.fullmatch(r"\d+\.\d\ds", summary["elapsed"])
    assert stored("alice") == ALICE_CONVERSATIONS
    assert set(Conversation.objects.values_list("owner", flat=True)) == {alice.pk}
    run_row = SyncRun.objects.get()
    assert (run_row.trigger, run_row.status, run_row.owner_id) == ("command", "succeeded", alice.pk)
    assert run_row.complete

    again = run("cometchat_sync", "--user", "alice-django")
    assert counts(again, "alice-django (uid alice)") == (0, 0, 3, 0)


def test_several_users(fake, make_user):
    make_user("alice")
    make_user("bob")
    result = run("cometchat_sync", "--user", "alice-django", "--user", "bob-django")
    assert counts(result, "alice-django (uid alice)") == (3, 0, 0, 0)
    assert counts(result, "bob-django (uid bob)") == (2, 0, 0, 0)
    assert stored("bob") == {"alice_user_bob", "group_book-club"}
    assert result.summary()["users"] == 2
    assert result.summary()["created"] == 5
    assert SyncRun.objects.filter(status="succeeded").count() == 2


def test_unknown_username_is_an_error_naming_it(fake, make_user):
    make_user("alice")
    result = run("cometchat_sync", "--user", "alice-django", "--user", "nobody", expect_error=True)
    assert "'nobody'" in str(result.error)
    assert "alice" not in str(result.error)
    assert SyncRun.objects.count() == 0  # checked before anything is synced
    assert fake.requests == []


def test_uid_syncs_without_a_django_user(fake):
    result = run("cometchat_sync", "--uid", "Bob", "--uid", "carol")
    assert counts(result, "bob") == (2, 0, 0, 0)
    assert counts(result, "carol") == (2, 0, 0, 0)
    assert stored("bob") == {"alice_user_bob", "group_book-club"}
    assert set(Conversation.objects.values_list("owner", flat=True)) == {None}


def test_invalid_uid_is_refused_before_anything_is_sent(fake):
    result = run("cometchat_sync", "--uid", "../users", expect_error=True)
    assert str(result.error) == (
        "Nothing was synced: Invalid UID '../users': use 1-100 letters, digits, '-' or '_'"
    )
    assert fake.requests == []


@pytest.mark.parametrize(
    "args",
    [(), ("--all", "--uid", "bob"), ("--uid", "bob", "--concurrency", "0")],
)
def test_usage_errors(fake, args):
    with pytest.raises(CommandError):
        call_command("cometchat_sync", *args, stdout=StringIO(), stderr=StringIO())
    assert fake.requests == []


# -- --all --------------------------------------------------------------------------------------


def test_all_streams_active_users_in_batches(fake, make_user, monkeypatch):
    uids = [f"user{i}" for i in range(5)]
    for uid in uids:
        fake.add_user(uid)
        fake.send_message("alice", to_user=uid, text=f"hi {uid}")
        make_user(uid)
    make_user("bob", is_active=False)  # skipped by --all
    monkeypatch.setattr(cometchat_sync.Command, "batch_size", 2)

    def user_batches(queries: CaptureQueriesContext) -> list[str]:
        return [
            q["sql"] for q in queries.captured_queries if 'FROM "AUTH_USER"' in q["sql"].upper()
        ]

    real_sync = services.sync_conversations
    batches_seen_at_each_sync = []

    def spy(*args, **kwargs):
        batches_seen_at_each_sync.append(len(user_batches(queries)))
        return real_sync(*args, **kwargs)

    monkeypatch.setattr(services, "sync_conversations", spy)
    with CaptureQueriesContext(connection) as queries:
        result = run("cometchat_sync", "--all")

    for uid in uids:
        assert counts(result, f"{uid}-django (uid {uid})") == (1, 0, 0, 0)
        assert stored(uid) == {f"alice_user_{uid}"}
    assert "bob-django" not in result.out
    assert result.summary()["users"] == 5
    assert set(SyncRun.objects.values_list("owner_uid", flat=True)) == set(uids)
    # One count, then 2 + 2 + 1 users fetched by keyset pagination, interleaved with syncing:
    # the second batch is only read once the first two users are done.
    batches = user_batches(queries)
    assert len(batches) == 4
    assert "COUNT(" in batches[0].upper()
    assert all(re.search(r"LIMIT 2\b", sql) for sql in batches[1:])
    assert batches_seen_at_each_sync == [2, 2, 3, 3, 4]


def test_all_with_no_users_syncs_nothing(fake):
    result = run("cometchat_sync", "--all")
    assert result.summary()["users"] == 0
    assert fake.requests == []


# -- failures -----------------------------------------------------------------------------------


def test_failed_user_fails_the_command_and_the_others_still_sync(fake, make_user):
    make_user("alice")
    make_user("ghost")  # no such CometChat user: GET /conversations answers 404
    make_user("bob")
    result = run(
        "cometchat_sync",
        "--user",
        "alice-django",
        "--user",
        "ghost-django",
        "--user",
        "bob-django",
        expect_error=True,
    )
    failed_line = next(line for line in result.lines if line.startswith("ghost-django"))
    # Where the UID came from, so the operator knows what to change.
    assert failed_line.startswith(
        "ghost-django (uid ghost): FAILED ERR_UID_NOT_FOUND CometChat has no user with UID "
        "'ghost'. That UID is the one COMETCHAT[\"UID_RESOLVER\"] = "
        "'tests.resolvers.uid_from_username' gives Django user 'ghost-django' (pk "
    )
    assert "[ERR_UID_NOT_FOUND (HTTP 404) on GET /conversations: The UID ghost" in failed_line
    assert counts(result, "alice-django (uid alice)") == (3, 0, 0, 0)
    assert counts(result, "bob-django (uid bob)") == (2, 0, 0, 0)
    summary = result.summary()
    assert (summary["users"], summary["succeeded"], summary["failed"]) == (3, 2, 1)
    message = str(result.error)
    assert message.startswith("1 of 3 users failed:")
    assert "ghost-django (uid ghost): ERR_UID_NOT_FOUND" in message
    ghost_run = SyncRun.objects.get(owner_uid="ghost")
    assert ghost_run.status == SyncRun.Status.FAILED
    assert ghost_run.error_code == "ERR_UID_NOT_FOUND"
    assert ghost_run.trigger == "command"
    assert set(SyncRun.objects.filter(status="succeeded").values_list("owner_uid", flat=True)) == {
        "alice",
        "bob",
    }
    assert stored("ghost") == set()


def test_injected_server_error_and_unmappable_user_are_failures(fake, make_user):
    make_user("alice")
    make_user("has space")  # the resolver gives an invalid UID: no request is made for it
    fake.inject(Fault("status", status=503, times=5))
    result = run(
        "cometchat_sync", "--user", "alice-django", "--user", "has space-django", expect_error=True
    )
    assert "alice-django (uid alice): FAILED ERR_MISSION_FAILED (HTTP 503)" in result.out
    assert (
        'has space-django: FAILED ERR_INVALID_ID COMETCHAT["UID_RESOLVER"] = '
        "'tests.resolvers.uid_from_username' returned an invalid CometChat UID" in result.out
    )
    assert str(result.error).startswith("2 of 2 users failed:")
    assert SyncRun.objects.get().status == SyncRun.Status.FAILED  # no run for the unmappable one
    assert Conversation.objects.count() == 0


def test_output_never_contains_the_api_key(fake, make_user, settings, caplog):
    api_key = settings.COMETCHAT["API_KEY"]
    assert api_key
    make_user("alice")
    make_user("ghost")
    fake.inject(Fault("status", status=401, path="/conversations"))
    result = run(
        "cometchat_sync",
        "--user",
        "alice-django",
        "--user",
        "ghost-django",
        "--verbosity",
        "3",
        expect_error=True,
    )
    assert "AUTH_ERR_APIKEY_NOT_FOUND" in result.out
    assert "ghost" not in result.out  # a refused key stops the run: ghost was never tried
    assert api_key not in result.everything
    assert "CometChat sync of alice failed" in caplog.text
    assert api_key not in caplog.text
    assert not any(api_key in r.error_message for r in SyncRun.objects.all())


def test_a_refused_key_stops_every_user_at_once_with_one_message(fake, make_user):
    for uid in ("alice", "bob", "carol", "dave"):
        make_user(uid)
    fake.inject(Fault("status", status=401, times=10))
    result = run("cometchat_sync", "--all", expect_error=True)
    assert len(fake.requests) == 1
    assert str(result.error).startswith(
        "Stopped after 1 of 4 users: AUTH_ERR_APIKEY_NOT_FOUND (HTTP 401) on GET /conversations"
    )
    assert "Every other user would fail the same way" in str(result.error)
    assert str(result.error).lower().count("run the command again") == 1  # one call to action
    assert result.summary()["users"] == 1


@pytest.mark.parametrize("concurrency", ["1", "3"])
@pytest.mark.django_db(transaction=True)
def test_an_unreachable_host_stops_the_run_at_the_first_owner(make_user, settings, concurrency):
    if concurrency != "1":
        _require_postgresql()
    for n in range(30):
        make_user(f"user{n}")
    with socket.socket() as closed:  # a port nothing listens on: connection refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.COMETCHAT = {**settings.COMETCHAT, "BASE_URL": f"http://127.0.0.1:{port}/v3"}
    started = time.monotonic()
    result = run("cometchat_sync", "--all", "--concurrency", concurrency, expect_error=True)
    assert time.monotonic() - started < 10
    message = str(result.error)
    assert message.startswith("Stopped after ")
    assert (
        ": ERR_CONNECTION_REFUSED GET /conversations: could not reach CometChat at 127.0.0.1: "
        "the connection was refused\nEvery other user would fail the same way" in message
    )
    # Inline, the first refused owner stops the run; on threads, those already in flight end.
    limit = 1 if concurrency == "1" else 2 * int(concurrency)
    assert 1 <= result.summary()["users"] <= limit


@pytest.mark.parametrize(
    ("scopes", "tried", "stopped"),
    [
        # Outages interrupted by an owner-level failure or a success never add up to three.
        (["outage", "outage", "item", "outage", "outage", "ok"], 6, ""),
        (["outage", "ok", "outage", "outage", "ok"], 5, ""),
        (["outage", "outage", "outage", "ok", "ok"], 3, "3 owners in a row failed: down"),
        (["item", "global", "ok"], 2, "down"),
        (["ok", "unreachable", "ok"], 2, "down"),  # the host itself: every owner would fail
    ],
)
def test_the_runner_stops_only_on_failures_every_owner_would_hit(scopes, tried, stopped):
    owners = [services.Owner(f"u{n}") for n in range(len(scopes))]
    seen: list[Outcome] = []

    def job(owner, client):
        scope = scopes[int(owner.uid[1:])]
        if scope == "ok":
            return Outcome(owner, None, "", 0.0)
        if scope == "unreachable":
            error: CometChatError = CometChatTransportError("down", reason="refused")
        else:
            error = CometChatError("down")
            error.scope = scope
        return Outcome(owner, None, "down", 0.0, error)

    totals = BatchRunner(
        job, concurrency=1, report=seen.append, note=print, totals=Totals(noun="owners")
    ).run(owners)
    assert len(seen) == totals.tried == tried
    assert totals.stop_reason == stopped
    assert totals.failed == sum(scope != "ok" for scope in scopes[:tried])


def test_a_failure_prints_its_reason_and_one_log_line(cometchat_fake):
    """With no logging configured (a fresh startproject site), the command's own message
    states the reason, and the service's warning shows too (Python's last-resort handler:
    the package has no NullHandler), once, without a traceback."""
    script = (
        "import django; django.setup();"
        "from django.core.management import call_command;"
        "call_command('migrate', verbosity=0);"
        "call_command('cometchat_sync', '--uid', 'ghost')"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "COMETCHAT_TEST_DB": "sqlite",
        "COMETCHAT_BASE_URL": cometchat_fake.base_url,
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    reason = "CometChat has no user with UID 'ghost'"
    lines = done.stderr.splitlines()
    logged = [line for line in lines if line.startswith("CometChat sync of ghost failed: ")]
    assert len(logged) == 1, done.stderr
    assert reason in logged[0]
    said = "\n".join(line for line in lines if line not in logged)
    assert said.count(reason) == 1, done.stderr
    assert "Traceback" not in done.stderr or "CommandError" in done.stderr


def test_missing_credentials_are_a_command_error_naming_the_key(settings, monkeypatch):
    settings.COMETCHAT = {**settings.COMETCHAT, "API_KEY": None}
    monkeypatch.delenv("COMETCHAT_API_KEY", raising=False)
    result = run("cometchat_sync", "--uid", "alice", expect_error=True)
    assert 'COMETCHAT["API_KEY"] is not set' in str(result.error)


# -- options ------------------------------------------------------------------------------------


def test_dry_run_writes_nothing(fake, make_user):
    make_user("alice")
    result = run("cometchat_sync", "--user", "alice-django", "--dry-run")
    assert "Dry run: nothing will be written." in result.lines
    assert (
        "alice-django (uid alice): would create 3, would update 0, unchanged 0 "
        "(1 page, 1 request) in "
    ) in result.out
    assert "Summary (dry run: nothing was written)" in result.out
    assert result.summary()["created"] == 3
    assert Conversation.objects.count() == 0
    assert SyncRun.objects.count() == 0


def test_conversation_type_group_only_stores_groups(fake, make_user):
    make_user("alice")
    result = run("cometchat_sync", "--user", "alice-django", "--conversation-type", "group")
    assert counts(result, "alice-django (uid alice)") == (1, 0, 0, 0)
    assert stored("alice") == {"group_book-club"}
    assert fake.requests[-1].query["conversationType"] == "group"
    sync_run = SyncRun.objects.get()
    assert sync_run.filters == {"conversation_type": "group"}
    assert not sync_run.complete


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar_and_failures(fake, make_user):
    make_user("alice")
    make_user("ghost")
    result = run(
        "cometchat_sync",
        "--user",
        "alice-django",
        "--user",
        "ghost-django",
        stdout=Terminal(),
        expect_error=True,
    )
    assert "\r[###############...............] 1/2 users, 0 failed" in result.out
    assert "\r[##############################] 2/2 users, 1 failed" in result.out
    assert "ghost-django (uid ghost): FAILED ERR_UID_NOT_FOUND" in result.out
    assert "created 3" not in result.out  # successes only move the bar
    assert result.summary()["created"] == 3

    verbose = run("cometchat_sync", "--user", "alice-django", "-v", "2", stdout=Terminal())
    assert counts(verbose, "alice-django (uid alice)") == (0, 0, 3, 0)
    assert "\r[##############################] 1/1 users, 0 failed" in verbose.out


# -- Ctrl-C -------------------------------------------------------------------------------------


def test_ctrl_c_stops_records_the_run_and_keeps_what_was_stored(fake, make_user, monkeypatch):
    for uid in ("alice", "bob", "carol"):
        make_user(uid)
    real_sync = services.sync_conversations
    calls = []

    def interrupt_second_user(*args, **kwargs):
        calls.append(args[0].label)
        if len(calls) == 2:  # Ctrl-C while the service is storing bob's first page

            def pressed_ctrl_c(**_):
                raise KeyboardInterrupt

            monkeypatch.setattr(services.sync, "store_page", pressed_ctrl_c)
        return real_sync(*args, **kwargs)

    monkeypatch.setattr(services, "sync_conversations", interrupt_second_user)
    result = run(
        "cometchat_sync",
        "--user",
        "alice-django",
        "--user",
        "bob-django",
        "--user",
        "carol-django",
        expect_error=True,
    )
    assert calls == ["alice-django (uid alice)", "bob-django (uid bob)"]  # carol never started
    message = str(result.error)
    assert message.startswith(
        "Interrupted after 2 of 3 users (1 failed); pages already stored are kept. "
        "Run the command again to sync the rest."
    )
    assert "bob-django (uid bob): interrupted" in message
    assert "bob-django (uid bob): INTERRUPTED" in result.out
    assert counts(result, "alice-django (uid alice)") == (3, 0, 0, 0)
    summary = result.summary()
    assert (summary["users"], summary["succeeded"], summary["failed"]) == (2, 1, 1)
    assert stored("alice") == ALICE_CONVERSATIONS
    assert stored("bob") == set()
    runs = dict(SyncRun.objects.values_list("owner_uid", "status"))
    assert runs == {"alice": "succeeded", "bob": "failed"}
    bob = SyncRun.objects.get(owner_uid="bob")
    assert (bob.error_code, bob.error_message) == ("ERR_INTERRUPTED", "interrupted")


# -- concurrency (PostgreSQL: SQLite's :memory: test database is not shared across threads) -----


def _require_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("threads need a shared database; run with COMETCHAT_TEST_DB=postgres")


def _snapshot_of_db() -> dict[str, Any]:
    return {
        "conversations": set(
            Conversation.objects.values_list(
                "owner_id", "owner_uid", "conversation_id", "content_hash", "unread_message_count"
            )
        ),
        "snapshots": ConversationSnapshot.objects.count(),
        "runs": sorted(
            SyncRun.objects.values_list(
                "owner_uid", "status", "trigger", "created_count", "pages", "requests", "complete"
            )
        ),
    }


def _other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.django_db(transaction=True)
def test_concurrency_3_gives_the_same_results_as_1(fake, make_user):
    _require_postgresql()
    uids = [f"user{i}" for i in range(7)]
    for i, uid in enumerate(uids):
        fake.add_user(uid)
        fake.bulk_conversations(uid, i + 1, prefix=f"{uid}-peer")
        make_user(uid)
    make_user("ghost")  # fails in both runs

    serial = run("cometchat_sync", "--all", expect_error=True)
    expected = _snapshot_of_db()
    Conversation.objects.all().delete()
    SyncRun.objects.all().delete()
    backends_before = _other_backends()

    threaded = run("cometchat_sync", "--all", "--concurrency", "3", expect_error=True)
    assert _snapshot_of_db() == expected
    assert len(expected["conversations"]) == sum(range(1, 8))
    for uid in uids:
        label = f"{uid}-django (uid {uid})"
        assert counts(threaded, label) == counts(serial, label)
    assert "ghost-django (uid ghost): FAILED ERR_UID_NOT_FOUND" in threaded.out
    for result in (serial, threaded):
        summary = result.summary()
        assert (summary["users"], summary["succeeded"], summary["failed"]) == (8, 7, 1)
    # Each worker closed its database connection when it finished.
    deadline = time.monotonic() + 2
    while _other_backends() > backends_before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _other_backends() <= backends_before


def run_interrupted(*args: str) -> Run:
    """``run()`` for a command that a signal stops: it exits with 128 + the signal's number."""
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as stopped:
        call_command(*args, stdout=out, stderr=err)
    assert stopped.value.code == 130  # SIGINT
    return Run(out.getvalue(), err.getvalue(), None)


@pytest.mark.django_db(transaction=True)
def test_ctrl_c_with_threads_interrupts_running_users_and_skips_the_rest(
    fake, make_user, monkeypatch
):
    _require_postgresql()
    uids = [f"user{i}" for i in range(12)]
    for uid in uids:
        fake.add_user(uid)
        fake.send_message("alice", to_user=uid, text="hi")
        make_user(uid)
    real_sync = services.sync_conversations
    calls = []

    def press_ctrl_c_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # a real SIGINT: Python runs its handler in the main thread
            os.kill(os.getpid(), signal.SIGINT)
        return real_sync(*args, **kwargs)

    monkeypatch.setattr(services, "sync_conversations", press_ctrl_c_once)
    result = run_interrupted("cometchat_sync", "--all", "--concurrency", "3")

    assert "CommandError: Interrupted after " in result.err
    assert "Interrupted (SIGINT): stopping the users in progress" in result.err
    runs = list(SyncRun.objects.values_list("owner_uid", "status", "error_code"))
    # At most 3 running + 3 queued + 1 being handed over when the signal arrived.
    assert 2 <= len(runs) <= 7
    # Users that finished before the signal succeeded; those it caught are recorded failed.
    assert {(status, code) for _, status, code in runs} <= {
        ("succeeded", ""),
        ("failed", "ERR_INTERRUPTED"),
    }, (runs, result.out)
    assert ("failed", "ERR_INTERRUPTED") in {(status, code) for _, status, code in runs}
    assert not SyncRun.objects.filter(status="running").exists()
    assert result.summary()["users"] == len(runs)


@pytest.mark.django_db(transaction=True)
def test_ctrl_c_after_everything_was_queued_still_reports_every_user(fake, make_user, monkeypatch):
    _require_postgresql()
    uids = ["alice", "bob", "carol"]
    for uid in uids:
        make_user(uid)
    real_sync = services.sync_conversations
    calls = []
    lock = threading.Lock()

    def press_ctrl_c_while_the_main_thread_waits(*args, **kwargs):
        with lock:
            calls.append(1)
            last = len(calls) == len(uids)
        if last:  # every user has been handed to a worker: the main thread is only waiting
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)
        return real_sync(*args, **kwargs)

    monkeypatch.setattr(services, "sync_conversations", press_ctrl_c_while_the_main_thread_waits)
    result = run_interrupted("cometchat_sync", "--all", "--concurrency", "3")

    assert "CommandError: Interrupted after 3 of 3 users" in result.err, result.err
    assert "Interrupted (SIGINT): stopping the users in progress" in result.err
    summary = result.summary()
    assert summary["users"] == 3  # every user reported, finished or interrupted
    statuses = dict(SyncRun.objects.values_list("owner_uid", "status"))
    assert set(statuses) == set(uids)
    assert "running" not in statuses.values()
    # The last user started after its signal: it was interrupted at its first request.
    last = SyncRun.objects.order_by("started_at").last()
    assert last is not None
    assert (last.status, last.error_code) == ("failed", "ERR_INTERRUPTED")


# -- cometchat_prune ----------------------------------------------------------------------------


def make_row(conversation_id: str, *, updated: int) -> Row:
    payload = {"conversationId": conversation_id, "updatedAt": updated}
    return Row(
        conversation_id=conversation_id,
        conversation_type="user",
        unread_message_count=0,
        created_at=None,
        updated_at=datetime.fromtimestamp(updated, tz=timezone.get_current_timezone()),
        peer_uid="bob",
        peer_guid="",
        peer_name="Bob",
        payload=payload,
        content_hash=content_hash(payload),
    )


@pytest.fixture
def history():
    """alice_user_bob: 5 snapshots fetched 10, 8, 6, 4 and 2 days ago.
    group_old: 1 snapshot fetched 30 days ago (its latest, so never pruned)."""
    now = timezone.now()
    for n in range(5):
        store_page(
            owner_id=None,
            owner_uid="alice",
            rows=[make_row("alice_user_bob", updated=100 + n)],
            fetched_at=now - timedelta(days=10 - 2 * n),
        )
    store_page(
        owner_id=None,
        owner_uid="alice",
        rows=[make_row("group_old", updated=100)],
        fetched_at=now - timedelta(days=30),
    )
    assert ConversationSnapshot.objects.count() == 6


def remaining() -> list[tuple[str, int]]:
    return sorted(
        (s.conversation.conversation_id, s.payload["updatedAt"])
        for s in ConversationSnapshot.objects.select_related("conversation")
    )


@pytest.mark.usefixtures("history")
def test_prune_max_age_days_keeps_each_latest():
    result = run("cometchat_prune", "--max-age-days", "7")
    assert result.out.startswith("Deleted 2 snapshots (older than 7 days;")
    assert remaining() == [
        ("alice_user_bob", 102),
        ("alice_user_bob", 103),
        ("alice_user_bob", 104),
        ("group_old", 100),
    ]


@pytest.mark.usefixtures("history")
def test_prune_keep():
    result = run("cometchat_prune", "--keep", "1")
    assert result.out.startswith("Deleted 4 snapshots (beyond the newest 1 per conversation;")
    assert remaining() == [("alice_user_bob", 104), ("group_old", 100)]


@pytest.mark.usefixtures("history")
def test_prune_both_rules_and_dry_run():
    result = run("cometchat_prune", "--max-age-days", "5", "--keep", "4", "--dry-run")
    assert result.out.startswith("Would delete 3 snapshots (older than 5 days or beyond")
    assert ConversationSnapshot.objects.count() == 6
    result = run("cometchat_prune", "--max-age-days", "5", "--keep", "4")
    assert result.out.startswith("Deleted 3 snapshots")
    assert remaining() == [("alice_user_bob", 103), ("alice_user_bob", 104), ("group_old", 100)]


@pytest.mark.usefixtures("history")
def test_prune_defaults_come_from_settings_and_flags_override_them(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "HISTORY_KEEP_PER_CONVERSATION": 4}
    assert run("cometchat_prune").out.startswith("Deleted 1 snapshot (beyond the newest 4")
    assert run("cometchat_prune", "--keep", "2").out.startswith("Deleted 2 snapshots")
    settings.COMETCHAT = {**settings.COMETCHAT, "HISTORY_MAX_AGE_DAYS": 0}
    assert run("cometchat_prune").out.startswith("Deleted 1 snapshot (older than 0 days")
    assert remaining() == [("alice_user_bob", 104), ("group_old", 100)]


@pytest.mark.usefixtures("history")
def test_prune_without_retention_says_so_and_deletes_nothing():
    result = run("cometchat_prune")
    assert result.out.startswith("No snapshot retention is configured")
    assert "HISTORY_MAX_AGE_DAYS" in result.out
    assert ConversationSnapshot.objects.count() == 6


@pytest.mark.parametrize("args", [("--keep", "0"), ("--max-age-days", "-1"), ("--keep", "x")])
def test_prune_rejects_bad_numbers(args):
    with pytest.raises(CommandError):
        call_command("cometchat_prune", *args, stdout=StringIO(), stderr=StringIO())


@pytest.fixture
def webhook_events():
    """Webhook events 40, 20 and 1 days old, processed; and one 40 days old still waiting."""
    now = timezone.now()
    for n, (days, status) in enumerate(
        [(40, "processed"), (20, "ignored"), (1, "processed"), (40, "received")]
    ):
        WebhookEvent.objects.create(
            trigger="message_sent",
            received_at=now - timedelta(days=days),
            dedupe_key=f"{n:064d}",
            status=status,
            payload={},
        )


def events_left() -> list[tuple[int, str]]:
    now = timezone.now()
    return sorted(((now - e.received_at).days, e.status) for e in WebhookEvent.objects.all())


@pytest.mark.usefixtures("webhook_events")
def test_prune_deletes_webhook_events_older_than_the_setting_but_never_a_waiting_one(settings):
    result = run("cometchat_prune")  # WEBHOOK_EVENTS_MAX_AGE_DAYS: 30 by default
    assert "Deleted 1 webhook event (received more than 30 days ago;" in result.out
    assert events_left() == [(1, "processed"), (20, "ignored"), (40, "received")]
    settings.COMETCHAT = {**settings.COMETCHAT, "WEBHOOK_EVENTS_MAX_AGE_DAYS": 10}
    assert "Deleted 1 webhook event (received more than 10 days" in run("cometchat_prune").out
    assert events_left() == [(1, "processed"), (40, "received")]


@pytest.mark.usefixtures("webhook_events")
def test_prune_webhook_events_flag_dry_run_and_keeping_them_all(settings):
    result = run("cometchat_prune", "--webhook-events-days", "0", "--dry-run")
    assert "Would delete 3 webhook events (received more than 0 days ago;" in result.out
    assert WebhookEvent.objects.count() == 4
    settings.COMETCHAT = {**settings.COMETCHAT, "WEBHOOK_EVENTS_MAX_AGE_DAYS": None}
    assert "Webhook events are kept" in run("cometchat_prune").out
    assert WebhookEvent.objects.count() == 4
    assert services.prune_webhook_events(max_age_days=0, batch_size=1) == 3
    assert events_left() == [(40, "received")]


def make_run(uid: str, days_ago: float, status: str) -> SyncRun:
    started = timezone.now() - timedelta(days=days_ago)
    finished = None if status in ("queued", "running") else started + timedelta(seconds=5)
    return SyncRun.objects.create(
        owner_uid=uid, status=status, started_at=started, finished_at=finished
    )


@pytest.fixture
def sync_runs():
    """alice: finished runs 60, 50 and 40 days old (the 40-day one her latest finished) and a
    run queued 45 days ago; bob: one failed run 90 days old (his latest) and a run running for
    70 days; carol: runs 5 and 35 days old."""
    runs = {
        "alice_60": make_run("alice", 60, "succeeded"),
        "alice_50": make_run("alice", 50, "failed"),
        "alice_45_queued": make_run("alice", 45, "queued"),
        "alice_40": make_run("alice", 40, "succeeded"),
        "bob_90": make_run("bob", 90, "failed"),
        "bob_70_running": make_run("bob", 70, "running"),
        "carol_35": make_run("carol", 35, "succeeded"),
        "carol_5": make_run("carol", 5, "succeeded"),
    }
    return {pk: name for name, pk in ((n, r.pk) for n, r in runs.items())}


def runs_left(names: dict[int, str]) -> list[str]:
    return sorted(names[pk] for pk in SyncRun.objects.values_list("pk", flat=True))


def test_prune_sync_runs_keeps_each_owners_latest_and_every_unfinished_run(sync_runs):
    result = run("cometchat_prune")  # SYNC_RUNS_MAX_AGE_DAYS: 30 by default
    assert "Deleted 3 sync runs (finished, started more than 30 days ago;" in result.out
    assert runs_left(sync_runs) == [
        "alice_40",  # alice's latest finished run, though older than 30 days
        "alice_45_queued",
        "bob_70_running",
        "bob_90",  # bob's only finished run
        "carol_5",
    ]


def test_prune_sync_runs_flag_dry_run_setting_and_batches(settings, sync_runs):
    result = run("cometchat_prune", "--sync-runs-days", "55", "--dry-run")
    assert "Would delete 1 sync run (finished, started more than 55 days ago;" in result.out
    assert SyncRun.objects.count() == 8
    settings.COMETCHAT = {**settings.COMETCHAT, "SYNC_RUNS_MAX_AGE_DAYS": None}
    assert "Sync runs are kept: SYNC_RUNS_MAX_AGE_DAYS is None." in run("cometchat_prune").out
    assert SyncRun.objects.count() == 8
    assert services.prune_sync_runs(max_age_days=0, batch_size=1) == 3  # a run per batch
    assert runs_left(sync_runs) == [
        "alice_40",
        "alice_45_queued",
        "bob_70_running",
        "bob_90",
        "carol_5",
    ]
    # A newer finished run of alice's takes over as her latest: the 40-day one may go now.
    sync_runs[make_run("alice", 1, "failed").pk] = "alice_1"
    assert "Deleted 1 sync run (" in run("cometchat_prune", "--sync-runs-days", "0").out
    assert runs_left(sync_runs) == [
        "alice_1",
        "alice_45_queued",
        "bob_70_running",
        "bob_90",
        "carol_5",
    ]


@pytest.mark.parametrize("value", [-1, "30", 1.5])
def test_sync_runs_max_age_days_must_be_a_whole_number(settings, value):
    settings.COMETCHAT = {**settings.COMETCHAT, "SYNC_RUNS_MAX_AGE_DAYS": value}
    result = run("cometchat_prune", expect_error=True)
    assert 'COMETCHAT["SYNC_RUNS_MAX_AGE_DAYS"] must be an integer >= 0' in str(result.error)
