"""The background client a thread keeps between syncs and refreshes (``services.kept_client``).

Conversations and answers follow the fake's renderings of API.md §2.1 (the list) and §2.2 (a
single conversation); the cookie is a load balancer's, which API.md does not mention (CometChat
sets none we know of): the test only proves none is ever sent back.
"""

from __future__ import annotations

import threading

import pytest

from django_cometchat.services import fetch_conversation, owner_by_uid, sync_conversations
from django_cometchat.services.clients import drop_kept_client, kept_client
from django_cometchat.testing import Fault

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "BACKOFF_FACTOR": 0.01, "MAX_RETRIES": 1}


def test_syncs_in_a_row_share_one_connection(fake):
    before = fake.connections_opened
    for uid in ("alice", "bob", "carol", "alice"):
        assert sync_conversations(owner_by_uid(uid)).run.status == "succeeded"
    fetch_conversation(owner_by_uid("alice"), "group_book-club")
    assert fake.connections_opened - before == 1


def test_a_failed_call_drops_the_client_and_the_next_one_connects_anew(fake):
    with kept_client() as first:
        pass
    fake.inject(Fault("reset", times=2))  # the try and its one retry: the sync fails
    result = sync_conversations(owner_by_uid("alice"), raise_errors=False)
    assert result.error is not None
    with kept_client() as second:
        assert second is not first
    before = fake.connections_opened
    assert sync_conversations(owner_by_uid("alice")).run.status == "succeeded"
    assert fake.connections_opened - before == 1


def test_new_settings_build_a_new_client(fake, settings):
    with kept_client() as first:
        pass
    settings.COMETCHAT = {**settings.COMETCHAT, "MAX_RETRIES": 2}
    with kept_client() as second:
        assert second is not first
        assert second.settings.max_retries == 2


def test_each_thread_keeps_its_own(fake):
    with kept_client() as mine:
        pass
    theirs = []

    def work():
        with kept_client() as client:
            theirs.append(client)
        drop_kept_client()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert len(theirs) == 1
    assert theirs[0] is not mine


def test_a_cookie_one_owner_was_sent_never_goes_out_for_another(fake):
    fake.inject(
        Fault(
            "transform",
            transform=lambda body: body,
            headers={"Set-Cookie": "AWSALB=owner-alice; Path=/"},
        )
    )
    sync_conversations(owner_by_uid("alice"))
    sync_conversations(owner_by_uid("bob"))
    sent = [r for r in fake.requests if r.path.startswith("/v3/conversations")]
    assert len(sent) == 2
    assert all("cookie" not in r.headers for r in sent)
    with kept_client() as client:
        assert len(client.session.cookies) == 0
