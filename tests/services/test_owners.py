"""One CometChat UID belongs to at most one Django account; rows never change owner by a sync."""

from __future__ import annotations

import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_cometchat import services
from django_cometchat.exceptions import CometChatOwnerConflict
from django_cometchat.migrations import __name__ as migrations_package
from django_cometchat.models import Conversation, SyncRun, UIDBinding
from django_cometchat.storage import Row, store_page

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _uid_is_username(settings):
    # "alice" and "ALICE" are two accounts; CometChat lowercases UIDs, so both map to "alice".
    settings.COMETCHAT = {**settings.COMETCHAT, "UID_RESOLVER": "tests.resolvers.by_username"}


@pytest.fixture
def accounts(django_user_model):
    return (
        django_user_model.objects.create_user(username="alice"),
        django_user_model.objects.create_user(username="ALICE"),
    )


def test_the_first_account_to_act_binds_the_uid(accounts):
    alice, _ = accounts
    assert services.owner_for(alice) == services.Owner("alice")
    assert services.owner_for(alice).user == alice  # again: the same binding
    assert list(UIDBinding.objects.values_list("uid", "user")) == [("alice", alice.pk)]


def test_a_second_account_with_the_same_uid_is_refused_and_logged(accounts, caplog):
    alice, impostor = accounts
    services.owner_for(alice)
    with caplog.at_level(logging.WARNING), pytest.raises(CometChatOwnerConflict) as info:
        services.owner_for(impostor)
    assert info.value.code == "ERR_UID_TAKEN"
    assert info.value.bound_user_id == alice.pk
    # The operator's log and message name both accounts by username; the end user's neither.
    for text in (caplog.text, str(info.value)):
        assert f"Django user {impostor.get_username()!r} (pk={impostor.pk})" in text
        assert f"bound to Django user {alice.get_username()!r} (pk={alice.pk})" in text
    assert "cometchat_rebind" in caplog.text
    assert str(alice.pk) not in info.value.public_message


def test_the_impostor_gets_409_and_none_of_alices_rows(fake, accounts, client):
    alice, impostor = accounts
    services.sync_conversations(alice)
    assert Conversation.objects.count() == 3
    client.force_login(impostor)
    for response in (
        client.get("/cometchat/conversations/"),
        client.get("/cometchat/conversations/alice_user_bob/"),
        client.get("/cometchat/sync-runs/"),
        client.post("/cometchat/conversations/refresh/"),
        client.post("/cometchat/conversations/alice_user_bob/refresh/"),
    ):
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "ERR_UID_TAKEN"
        assert b"alice_user_bob" not in response.content
    assert set(Conversation.objects.values_list("owner", flat=True)) == {alice.pk}
    assert SyncRun.objects.count() == 1


def test_a_sync_never_reassigns_a_rows_owner(fake, accounts):
    alice, other = accounts
    services.sync_conversations(alice)
    row = Conversation.objects.get(conversation_id="alice_user_bob")
    changed = Row(
        conversation_id=row.conversation_id,
        conversation_type=row.conversation_type,
        unread_message_count=9,
        created_at=row.created_at,
        updated_at=row.updated_at + timedelta(seconds=5),
        peer_uid=row.peer_uid,
        peer_guid="",
        peer_name=row.peer_name,
        payload={**row.payload, "unreadMessageCount": "9"},
        content_hash="changed",
    )
    store_page(owner_id=other.pk, owner_uid="alice", rows=[changed], fetched_at=timezone.now())
    row.refresh_from_db()
    assert row.unread_message_count == 9  # the content is updated…
    assert row.owner_id == alice.pk  # …but the owner is not


def test_rows_stored_by_uid_get_their_owner_when_the_uid_is_bound(fake, accounts):
    alice, _ = accounts
    services.sync_conversations(services.owner_by_uid("alice"))
    assert set(Conversation.objects.values_list("owner", flat=True)) == {None}
    services.owner_for(alice)
    fake.send_message("bob", to_user="alice", text="again")
    services.sync_conversations(services.owner_by_uid("alice"))  # the binding names the user
    assert Conversation.objects.get(conversation_id="alice_user_bob").owner_id == alice.pk


def test_rebind_moves_the_uid_and_its_rows_on_purpose(fake, accounts):
    alice, newcomer = accounts
    services.sync_conversations(alice)
    out = StringIO()
    call_command("cometchat_rebind", "ALICE", "--user", "ALICE", stdout=out)
    assert "Bound 'alice' to 'ALICE'; 3 stored conversation(s)" in out.getvalue()
    assert set(Conversation.objects.values_list("owner", flat=True)) == {newcomer.pk}
    assert set(SyncRun.objects.values_list("owner", flat=True)) == {newcomer.pk}
    assert services.owner_for(newcomer).uid == "alice"
    with pytest.raises(CometChatOwnerConflict):
        services.owner_for(alice)


def test_release_lets_the_next_account_bind(fake, accounts):
    alice, newcomer = accounts
    services.owner_for(alice)
    out = StringIO()
    call_command("cometchat_rebind", "alice", "--release", stdout=out)
    assert out.getvalue().strip() == "Released 'alice'."
    assert services.owner_for(newcomer).user == newcomer
    with pytest.raises(CommandError, match="No Django user with username 'nobody'"):
        call_command("cometchat_rebind", "alice", "--user", "nobody", stdout=StringIO())


def test_the_migration_binds_existing_owners_first_come_first_served(fake, accounts):
    alice, impostor = accounts
    services.sync_conversations(alice)
    # Rows from before the binding existed, when the impostor's refresh took one row over.
    Conversation.objects.filter(conversation_id="group_book-club").update(owner=impostor)
    UIDBinding.objects.all().delete()
    migration = __import__(f"{migrations_package}.0003_uid_binding", fromlist=["x"])
    migration.bind_existing_owners(apps, None)
    assert list(UIDBinding.objects.values_list("uid", "user")) == [("alice", alice.pk)]
