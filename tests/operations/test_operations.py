"""Logs that show and failures that say so: the package's warnings reach stderr on a site with no
``LOGGING`` (a subprocess on a minimal settings module), a sync task that failed ends its task
result failed, and a command names the reason where it once said "see the log".

A real worker's verdict on a failed sync: tests/tasks/test_task_workers.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from io import StringIO

import django
import pytest
from django.core.management import CommandError, call_command

from django_cometchat import tasks
from django_cometchat.models import SyncRun
from tests import ROOT

BACKENDS = "django.tasks.backends" if django.VERSION >= (6, 0) else "django_tasks.backends"

MINIMAL_SETTINGS = """
SECRET_KEY = "minimal-not-secret"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_cometchat"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
# The rate budget's cache is a Redis nobody runs: the budget must say so, not stay silent.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
    }
}
COMETCHAT = {"APP_ID": "minimal", "API_KEY": "minimal-key-not-secret"}
"""

TAKE_A_SLOT = """
import django
django.setup()
from django_cometchat.budget import RateBudget
from django_cometchat.conf import get_settings
RateBudget.for_settings(get_settings()).take("GET /conversations")
print("taken")
"""


def test_a_package_warning_shows_on_stderr_on_a_site_without_logging(tmp_path):
    """No NullHandler on the package's loggers: with no LOGGING setting, Python's last-resort
    handler prints warnings (not infos) on stderr."""
    (tmp_path / "minimal_settings.py").write_text(textwrap.dedent(MINIMAL_SETTINGS))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "minimal_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    env.pop("COMETCHAT_BASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", TAKE_A_SLOT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "taken\n"  # a dead cache lets the request through ...
    assert "The CometChat rate budget's cache failed" in done.stderr  # ... and says so
    assert "Connection refused" in done.stderr or "Error 111" in done.stderr
    assert "minimal-key-not-secret" not in done.stderr


# -- the task result of a failed sync ------------------------------------------------------------


@pytest.fixture
def immediate(settings):
    settings.TASKS = {"default": {"BACKEND": f"{BACKENDS}.immediate.ImmediateBackend"}}
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "UID_RESOLVER": "tests.resolvers.uid_from_username",
        "MAX_RETRIES": 0,
    }


@pytest.mark.django_db
def test_a_failed_sync_ends_its_task_failed_after_recording_the_run(fake, immediate):
    """CometChat answers 500 (API.md §5): the run records the failure, then the task fails."""
    fake.fail_next(1, status=500, path="/v3/conversations")
    result = tasks.sync_owner.enqueue("alice")

    assert result.status.name == "FAILED"
    assert result.errors[-1].exception_class_path.endswith("CometChatServerError")
    run = SyncRun.objects.get()
    assert (run.owner_uid, run.status, run.trigger) == ("alice", "failed", "task")
    assert "HTTP 500" in run.error_message


@pytest.mark.django_db
def test_a_successful_sync_ends_its_task_successful(fake, immediate):
    result = tasks.sync_owner.enqueue("alice")
    assert result.status.name == "SUCCESSFUL"
    run = SyncRun.objects.get()
    assert result.return_value == {"run": run.pk, "status": "succeeded", "error": ""}


@pytest.mark.django_db
def test_an_unknown_owner_fails_the_task_too(cometchat_fake, immediate):
    """An owner CometChat does not know: ERR_UID_NOT_FOUND (API.md §2.10)."""
    result = tasks.sync_owner.enqueue("ghost")
    assert result.status.name == "FAILED"
    assert SyncRun.objects.get().error_code == "ERR_UID_NOT_FOUND"


# -- commands state the reason -------------------------------------------------------------------


@pytest.mark.django_db
def test_owners_that_cannot_be_enqueued_are_named_with_the_reason(
    fake, django_user_model, settings
):
    settings.TASKS = {"default": {"BACKEND": f"{BACKENDS}.dummy.DummyBackend"}}
    settings.COMETCHAT = {**settings.COMETCHAT, "UID_RESOLVER": "tests.resolvers.uid_from_username"}
    django_user_model.objects.create_user(username="alice-django")
    django_user_model.objects.create_user(username="bad uid-django")  # "bad uid": not a UID
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("cometchat_sync", "--all", "--enqueue", stdout=out)
    assert out.getvalue().strip() == "Enqueued 1 sync of 2."
    message = str(raised.value)
    assert message.startswith("1 owner(s) could not be enqueued:\n  bad uid-django: ")
    assert "UID" in message
    assert "log" not in message
    tasks.backend().clear()


def test_no_command_message_sends_the_reader_to_the_log():
    commands = ROOT / "django_cometchat" / "management"
    offenders = [
        f"{path.name}:{number}"
        for path in commands.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "see the log" in line.lower()
    ]
    assert offenders == []


# -- the signals ---------------------------------------------------------------------------------


@pytest.fixture
def heard():
    """What the three signals for metrics deliver, per signal."""
    from django_cometchat.signals import (
        sync_run_finished,
        upstream_request_answered,
        webhook_event_finished,
    )

    got: dict[str, list[dict[str, object]]] = {"request": [], "run": [], "event": []}

    def receiver(name):
        def receive(sender, signal, **kwargs):
            got[name].append({"sender": sender, **kwargs})

        return receive

    receivers = {
        upstream_request_answered: receiver("request"),
        sync_run_finished: receiver("run"),
        webhook_event_finished: receiver("event"),
    }
    for signal, receive in receivers.items():
        signal.connect(receive)
    yield got
    for signal, receive in receivers.items():
        signal.disconnect(receive)


@pytest.mark.django_db(transaction=True)
def test_a_sync_sends_one_request_signal_per_attempt_and_one_run_signal(fake, heard, settings):
    from django_cometchat import services
    from django_cometchat.client import CometChatClient

    settings.COMETCHAT = {**settings.COMETCHAT, "MAX_RETRIES": 1, "BACKOFF_FACTOR": 0.01}
    fake.fail_next(1, status=502)  # retried (API.md §5: 5xx)
    result = services.sync_conversations(services.owner_by_uid("alice"), trigger="command")

    requests = heard["request"]
    assert [(r["sender"], r["endpoint"], r["status"]) for r in requests] == [
        (CometChatClient, "GET /conversations", 502),
        (CometChatClient, "GET /conversations", 200),
    ]
    assert all(0 <= r["seconds"] < 5 for r in requests)
    [run] = heard["run"]
    assert run["sender"] is SyncRun
    assert run["run"] == result.run
    assert (run["outcome"], run["trigger"]) == ("succeeded", "command")
    assert run["seconds"] == result.run.duration_seconds


@pytest.mark.django_db(transaction=True)
def test_a_refresh_names_its_endpoint_template_not_the_ids(fake, heard):
    from django_cometchat import services

    services.fetch_conversation(services.owner_by_uid("alice"), "alice_user_bob")
    assert [(r["endpoint"], r["status"]) for r in heard["request"]] == [
        ("GET /users/{uid}/conversation", 200)
    ]


@pytest.mark.django_db
def test_no_signal_leaves_before_the_commit(fake, heard):
    """Inside a transaction (this test's), nothing is announced: the run may still roll back."""
    from django_cometchat import services

    services.sync_conversations(services.owner_by_uid("alice"))
    assert heard["run"] == []
    assert len(heard["request"]) == 1  # a request is answered whatever the database does


# -- CometChat's event time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "occurred_at"),
    [
        ("message_sent", 1696934912.0),  # data.message.updatedAt (API.md §7 "Messages")
        ("message_read_receipt", 1696934950.0),  # data.body.timestamp
        ("legacy.message_read_receipt", 1696934950.0),  # data.readAt (legacy receipts)
        ("user_blocked", None),  # the published block body has no time
        ("group_member_kicked", None),  # nor has a group event
    ],
)
def test_the_event_time_of_the_published_examples(fixture, occurred_at):
    from django_cometchat.webhook_types import parse_webhook
    from tests.surface import published_webhook

    assert parse_webhook(published_webhook(fixture)).occurred_at == occurred_at


def test_legacy_milliseconds_are_seconds_and_a_block_time_counts():
    from django_cometchat.webhook_types import parse_webhook

    receipt = {
        "trigger": "message_delivery_receipt",
        "data": {
            "messageId": "57",
            "receiptType": "delivery",
            "deliveredAt": 1696934950123,  # milliseconds
            "messageSender": "alice",
            "receiptSender": "bob",
            "receiptReceiver": "alice",
            "receiverType": "user",
        },
    }
    assert parse_webhook(receipt).occurred_at == pytest.approx(1696934950.123)
    block = {
        "trigger": "user_blocked",
        "data": {"by": {"uid": "alice"}, "users": {"bob": {"uid": "bob"}}, "blockedAt": 1700000000},
    }
    assert parse_webhook(block).occurred_at == 1700000000.0
