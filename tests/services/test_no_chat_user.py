"""Accounts without a CometChat user: a ``UID_RESOLVER`` that returns None (staff, service
accounts). ``cometchat_sync --all``, ``cometchat_refresh_stale`` and webhooks skip them: no run,
no request, exit 0; the API answers them with the 400 ERR_NO_UID it gives any unmapped user."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import django
import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from django_cometchat import services, tasks
from django_cometchat.models import SyncRun, UIDBinding, WebhookEvent
from tests.surface import basic_authorization

pytestmark = pytest.mark.django_db

BACKENDS = "django.tasks.backends" if django.VERSION >= (6, 0) else "django_tasks.backends"


@pytest.fixture(autouse=True)
def _none_for_staff(settings):
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "UID_RESOLVER": "tests.resolvers.none_for_staff",
        "MAX_RETRIES": 0,
    }


@pytest.fixture
def accounts(django_user_model, alice):
    """alice-django (CometChat user alice), a staff account and a service account."""
    staff = django_user_model.objects.create_user(username="admin", is_staff=True)
    django_user_model.objects.create_user(username="svc-backup")
    return {"alice": alice, "staff": staff}


@pytest.fixture
def queue(settings):
    settings.TASKS = {"default": {"BACKEND": f"{BACKENDS}.dummy.DummyBackend"}}
    backend: Any = tasks.backend()
    yield backend
    backend.clear()


def sync_command(*args: str) -> str:
    out = StringIO()
    call_command("cometchat_sync", *args, stdout=out, stderr=StringIO())  # no CommandError: 0
    return out.getvalue()


def asked_for(fake) -> set[str]:
    return {r.headers.get("onbehalfof", "") for r in fake.requests}


@pytest.mark.usefixtures("accounts")
def test_sync_all_skips_accounts_without_a_chat_user_and_exits_0(fake):
    out = sync_command("--all")
    assert "Skipped 2 (no CometChat user)." in out
    assert "admin" not in out.replace("Skipped", "")  # no line, no failure for them
    assert asked_for(fake) == {"alice"}
    assert list(SyncRun.objects.values_list("owner_uid", "status")) == [("alice", "succeeded")]
    assert not UIDBinding.objects.exclude(uid="alice").exists()


@pytest.mark.usefixtures("accounts")
def test_verbosity_2_names_each_skipped_account(fake):
    out = sync_command("--all", "--verbosity", "2")
    assert "admin: skipped (no CometChat user)" in out
    assert "svc-backup: skipped (no CometChat user)" in out


@pytest.mark.usefixtures("accounts")
def test_a_named_account_without_a_chat_user_is_skipped_too(fake):
    out = sync_command("--user", "admin")
    assert "Skipped 1 (no CometChat user)." in out
    assert fake.requests == []
    assert not SyncRun.objects.exists()


@pytest.mark.usefixtures("accounts")
def test_sync_all_enqueue_skips_them_and_exits_0(fake, queue):
    out = sync_command("--all", "--enqueue")
    assert "Enqueued 1 sync of 3" in out
    assert "Skipped 2 (no CometChat user)." in out
    assert [r.args for r in queue.results] == [["alice"]]
    assert list(SyncRun.objects.values_list("owner_uid", "status")) == [("alice", "queued")]


def test_refresh_stale_skips_a_uid_bound_to_an_account_that_has_none_now(fake, accounts, queue):
    # bob's UID was bound to the staff account before the resolver said it has no chat user.
    UIDBinding.objects.create(uid="bob", user=accounts["staff"])
    services.sync_conversations(accounts["alice"])
    services.sync_conversations(services.owner_by_uid("bob"))
    SyncRun.objects.update(finished_at=timezone.now() - timedelta(hours=1))
    runs_before = SyncRun.objects.count()
    fake.clear_requests()
    out = StringIO()
    call_command("cometchat_refresh_stale", "--older-than", "15m", stdout=out)
    assert "Enqueued 1 sync(s) of stale owners" in out.getvalue()
    assert "Skipped 1 (no CometChat user)." in out.getvalue()
    assert [r.args for r in queue.results] == [["alice"]]
    assert SyncRun.objects.count() == runs_before + 1  # alice's queued run only
    assert fake.requests == []


def test_a_webhook_skips_a_uid_bound_to_an_account_without_a_chat_user(client, fake, accounts):
    """A message_sent (API.md §7) from bob to alice: bob's UID is bound to the staff account,
    so only alice's copy is refreshed (the immediate backend runs it inline)."""
    UIDBinding.objects.create(uid="bob", user=accounts["staff"])
    services.sync_conversations(accounts["alice"])
    services.sync_conversations(services.owner_by_uid("bob"))
    fake.clear_requests()
    message = fake.send_message("bob", to_user="alice", text="news")
    body = {
        "trigger": "message_sent",
        "data": {"message": message},
        "appId": "testapp",
        "region": "us",
        "webhook": "w1",
    }
    response = client.post(
        "/cometchat/webhook/",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_authorization(),
    )
    assert response.json() == {"status": "accepted"}
    assert asked_for(fake) == {"alice"}
    event = WebhookEvent.objects.get()
    assert (event.status, event.owners) == ("processed", ["alice"])


def test_the_api_still_answers_such_an_account_400_err_no_uid(fake, accounts):
    client = Client()
    client.force_login(accounts["staff"])
    for response in (
        client.get("/cometchat/conversations/"),
        client.post("/cometchat/conversations/refresh/"),
    ):
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "ERR_NO_UID"
        assert error["message"] == "Your account is not linked to a CometChat user."
    assert fake.requests == []
    assert not SyncRun.objects.exists()


def test_the_operators_message_names_the_account_and_the_none(accounts):
    with pytest.raises(services.CometChatUserError) as info:
        services.owner_for(accounts["staff"])
    assert "returned None for Django user 'admin'" in str(info.value)
    assert "has no CometChat user" in str(info.value)
