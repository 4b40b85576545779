"""Never wrong under races: stored rows ordered by when their request left, and "missing" only
when CometChat confirms it. Through the fake CometChat, on SQLite and PostgreSQL.

The fake builds an answer when the request arrives; ``hold_next`` keeps it until the test
releases it, and ``after_next`` changes CometChat's data between two page requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from django_cometchat import storage
from django_cometchat.exceptions import CometChatUnknownOwner
from django_cometchat.models import Conversation, ConversationSnapshot, SyncRun
from django_cometchat.services import (
    RECHECK_MAX,
    fetch_conversation,
    owner_by_uid,
    owner_for,
    sync_conversations,
)
from django_cometchat.storage.portable import PortableDialect
from django_cometchat.testing import FakeCometChat, Fault
from tests.services.test_sync import make_row

pytestmark = pytest.mark.django_db

FAST = {"BACKOFF_FACTOR": 0.01, "BACKOFF_MAX": 0.05, "MAX_RETRIES": 1}
BOB = "alice_user_bob"


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        **FAST,
        "UID_RESOLVER": "tests.resolvers.uid_from_username",
    }


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``work`` on its own thread (and database connection); its result or error lands in
    the returned list."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # the test asserts on it
            outcome.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def unread_history(owner_uid: str, conversation_id: str) -> list[int]:
    """The unread counts history holds for one conversation, in the order they were written.
    (``unreadMessageCount`` is a string in CometChat's examples, API.md §8.1.)"""
    return [
        int(s.payload["unreadMessageCount"])
        for s in ConversationSnapshot.objects.filter(
            conversation__owner_uid=owner_uid, conversation__conversation_id=conversation_id
        ).order_by("pk")
    ]


def bob_writes_four_more(fake: FakeCometChat) -> None:
    for n in range(4):
        fake.send_message("bob", to_user="alice", text=f"more {n}")
    assert fake.unread_count("alice", BOB) == 5


# -- order: when the request left, not when the answer landed -----------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_held_page_never_overwrites_a_refresh_sent_after_it(fake, alice):
    owner = owner_for(alice)
    sync_conversations(owner)  # bob's conversation stored with 1 unread
    bob_writes_four_more(fake)
    hold = fake.hold_next(path="/conversations", timeout=10)

    worker, outcome = in_thread(lambda: sync_conversations(owner))
    assert hold.held.wait(5)  # the sync's page is built, with 5 unread, and waits
    fake.mark_read("alice", BOB)  # the user reads it (a read-receipt webhook would refresh)
    refreshed = fetch_conversation(owner, BOB)
    assert refreshed.unread_message_count == 0
    hold.release.set()
    worker.join(10)

    [result] = outcome
    assert result.ok, result
    assert result.stale == 1  # the page's copy of bob's conversation was older: not written
    row = Conversation.objects.get(owner_uid="alice", conversation_id=BOB)
    assert row.unread_message_count == 0
    assert row.fetched_at == refreshed.fetched_at
    # History in write order: no stale row written after the newer one.
    assert unread_history("alice", BOB) == [1, 0]
    # Each row carries when its request left: the page's (held) request before the refresh's,
    # and both before the fake received the refresh.
    pages, single = (
        [r for r in fake.requests if r.path == "/v3/conversations"],
        [r for r in fake.requests if r.path == "/v3/users/bob/conversation"],
    )
    assert row.fetched_at.timestamp() <= single[-1].at
    assert pages[-1].at < row.fetched_at.timestamp()


@pytest.mark.django_db(transaction=True)
def test_of_two_refreshes_the_one_sent_last_wins_whichever_lands_last(fake, alice):
    owner = owner_for(alice)
    sync_conversations(owner)
    bob_writes_four_more(fake)
    hold = fake.hold_next(path="/users/bob/conversation", timeout=10)

    worker, outcome = in_thread(lambda: fetch_conversation(owner, BOB))
    assert hold.held.wait(5)  # the first refresh's answer says 5 unread, and waits
    fake.mark_read("alice", BOB)
    second = fetch_conversation(owner, BOB)
    assert second.unread_message_count == 0
    hold.release.set()
    worker.join(10)

    [first] = outcome
    assert isinstance(first, Conversation), first
    assert first.unread_message_count == 0  # it returns the stored row: the newer one
    assert Conversation.objects.get(owner_uid="alice", conversation_id=BOB).fetched_at == (
        second.fetched_at
    )
    assert unread_history("alice", BOB) == [1, 0]


@pytest.mark.django_db(transaction=True)
def test_a_page_sent_before_a_proof_of_gone_does_not_bring_the_row_back(fake, alice):
    """Two syncs of one owner: the one whose page left first lands last. A missing mark proven
    by a request sent after that page stays."""
    owner = owner_for(alice)
    sync_conversations(owner)
    hold = fake.hold_next(path="/conversations", timeout=10)
    worker, outcome = in_thread(lambda: sync_conversations(owner))
    assert hold.held.wait(5)  # this page still lists the book club
    leave_group(fake, "book-club", "alice")
    second = sync_conversations(owner)  # its re-check proves the book club gone
    assert (second.missing, second.rechecked) == (1, 1)
    hold.release.set()
    worker.join(10)
    [first] = outcome
    assert first.ok, first
    club = Conversation.objects.get(owner_uid="alice", conversation_id="group_book-club")
    assert club.missing_since is not None


# -- missing: only when CometChat confirms it ----------------------------------------------------


def leave_group(fake: FakeCometChat, guid: str, uid: str) -> None:
    """``uid`` leaves the group: its conversation drops out of their list, and the group's
    conversation endpoint answers ERR_CONVERSATION_NOT_ACCESSIBLE (API.md §2.10, §5.3). The fake
    has no endpoint for it, so its records are edited directly (then ``changed()``)."""
    with fake.state.lock:
        del fake.state.groups[guid].members[uid]
        fake.state.changed()


def delete_user(fake: FakeCometChat, uid: str) -> None:
    """A deleted user: their conversations drop out of every list and GETs about them answer
    ERR_UID_NOT_FOUND (API.md §5.3). The fake can only deactivate a user (which answers the
    same), so the conversations are taken out of its records directly."""
    with fake.state.lock:
        fake.deactivate_user(uid)
        for ids in fake.state.by_owner.values():
            ids.difference_update(
                [cid for cid in ids if uid in fake.state.conversations[cid].peer_ids]
            )
        fake.state.changed()


@pytest.fixture
def six(cometchat_fake, settings):
    """ "owner" with six conversations, newest first: the group "club", then peer-5 … peer-1;
    pages of two: [club, peer-5] [peer-4, peer-3] [peer-2, peer-1]. All stored by a first sync."""
    fake = cometchat_fake
    settings.COMETCHAT = {**settings.COMETCHAT, "PAGE_SIZE": 2}
    fake.add_user("owner", "Owner")
    for i in range(1, 6):
        fake.add_user(f"peer-{i}", f"Peer {i}")
        fake.send_message(f"peer-{i}", to_user="owner", text=f"m{i}")
    fake.add_group("club", "Club", members=["owner", "peer-1"])
    fake.send_message("peer-1", to_group="club", text="newest")
    first = sync_conversations(owner_by_uid("owner"))
    assert first.created == 6
    fake.clear_requests()
    return fake


def marks(owner_uid: str = "owner") -> dict[str, bool]:
    return {
        c.conversation_id: c.missing_since is not None
        for c in Conversation.objects.filter(owner_uid=owner_uid)
    }


def test_a_conversation_leaving_above_the_page_mid_sync_leaves_no_live_row_missing(six):
    fake = six
    # After page 1 is built (with the club on it), the owner leaves the club: the rows below
    # shift up by one, so page 2 is [peer-3, peer-2] and peer-4 is never served.
    fake.after_next(lambda: leave_group(fake, "club", "owner"), query={"page": "1"})
    result = sync_conversations(owner_by_uid("owner"))
    assert result.ok
    assert (result.missing, result.rechecked) == (0, 1)
    assert not any(marks().values())  # peer-4 is live: its re-check found it
    # Three pages, then one GET for the one candidate on the owner's behalf (API.md §2.4).
    paths = [(r.path, r.headers.get("onbehalfof")) for r in fake.requests]
    assert paths == [
        ("/v3/conversations", "owner"),
        ("/v3/conversations", "owner"),
        ("/v3/conversations", "owner"),
        ("/v3/users/peer-4/conversation", "owner"),
    ]
    run = SyncRun.objects.latest("started_at")
    assert (run.status, run.complete, run.missing_count, run.rechecked_count) == (
        "succeeded",
        True,
        0,
        1,
    )
    assert result.unchanged == 6  # peer-4, found by its re-check, is unchanged too
    assert result.requests == 4

    # The club was on page 1 of that walk; the next sync does not see it, and its re-check
    # (ERR_CONVERSATION_NOT_ACCESSIBLE, API.md §2.10, §5.3) proves it gone.
    fake.clear_requests()
    quiet = sync_conversations(owner_by_uid("owner"))
    assert (quiet.missing, quiet.rechecked) == (1, 1)
    assert [cid for cid, gone in marks().items() if gone] == ["group_club"]
    assert fake.requests[-1].path == "/v3/groups/club/conversation"


def test_a_recheck_that_finds_a_changed_conversation_stores_it(six):
    fake = six

    def leave_and_write() -> None:
        leave_group(fake, "club", "owner")
        fake.mark_read("owner", "owner_user_peer-4")  # the unread count drops; updatedAt stays

    fake.after_next(leave_and_write, query={"page": "1"})
    result = sync_conversations(owner_by_uid("owner"))
    assert (result.missing, result.rechecked, result.updated) == (0, 1, 1)
    peer_4 = Conversation.objects.get(owner_uid="owner", conversation_id="owner_user_peer-4")
    assert (peer_4.unread_message_count, peer_4.missing_since) == (0, None)


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("status", {"status": 500}),
        ("status", {"status": 503, "body": {"error": {"code": "ERR_MISSION_FAILED"}}}),
        # API.md §5.4: a 429; Retry-After 0 so the shared budget pauses no later test.
        ("status", {"status": 429, "headers": {"Retry-After": "0"}}),
        ("drop", {}),
        ("html", {}),
        # A 404 about the endpoint (API.md §5.2), not about the conversation.
        ("status", {"status": 404, "body": {"error": {"code": "ERR_API_NOT_FOUND"}}}),
        ("status", {"status": 404, "body": "<h1>Not Found</h1>"}),
    ],
    ids=["500", "503-mission-failed", "429", "dropped", "html", "404-endpoint", "404-bare"],
)
def test_a_recheck_that_proves_nothing_leaves_the_rows_as_they_are(six, kind, options):
    fake = six
    leave_group(fake, "club", "owner")
    fake.inject(Fault(kind, times=10, path="/groups/club/conversation", **options))
    result = sync_conversations(owner_by_uid("owner"))
    assert result.ok  # the list was read in full: the sync succeeded, it just proved nothing
    assert (result.missing, result.rechecked) == (0, 1)
    assert not any(marks().values())
    fake.clear_faults()
    quiet = sync_conversations(owner_by_uid("owner"))  # CometChat answers again: now proven
    assert (quiet.missing, quiet.rechecked) == (1, 1)
    assert marks()["group_club"]


def test_an_outage_stops_the_rechecks_and_marks_nothing(six):
    fake = six
    leave_group(fake, "club", "owner")
    delete_user(fake, "peer-3")  # and peer-3 goes too
    fake.inject(Fault("status", status=500, times=10, path="/groups/club/conversation"))
    result = sync_conversations(owner_by_uid("owner"))
    # Candidates in id order: the group first; its 500 ends the re-checks, peer-3 is not asked.
    assert (result.missing, result.rechecked) == (0, 1)
    assert not any(marks().values())
    assert not [r for r in fake.requests if r.path == "/v3/users/peer-3/conversation"]


def test_a_deleted_peer_is_confirmed_gone_by_its_uid_not_found(six):
    fake = six
    delete_user(fake, "peer-3")
    result = sync_conversations(owner_by_uid("owner"))
    assert (result.missing, result.rechecked) == (1, 1)
    assert [cid for cid, gone in marks().items() if gone] == ["owner_user_peer-3"]


def test_an_owner_gone_during_the_recheck_fails_the_run_and_marks_nothing(six):
    fake = six
    leave_group(fake, "club", "owner")
    # API.md §5.3: ERR_UID_NOT_FOUND about the onBehalfOf UID itself (the fake's wording).
    fake.inject(
        Fault(
            "status",
            status=404,
            path="/groups/club/conversation",
            body={
                "error": {
                    "code": "ERR_UID_NOT_FOUND",
                    "message": "The UID owner does not exist, please make sure you have "
                    "created a user with UID owner.",
                }
            },
        )
    )
    result = sync_conversations(owner_by_uid("owner"), raise_errors=False)
    assert isinstance(result.error, CometChatUnknownOwner)
    assert result.run.status == SyncRun.Status.FAILED
    assert not any(marks().values())


def test_more_candidates_than_a_recheck_takes_walk_the_pages_again(cometchat_fake):
    """Left more groups than RECHECK_MAX (and than the walk had pages): a second walk over the
    pages, then what both walks left out is marked, without one GET per conversation."""
    fake = cometchat_fake
    fake.add_user("owner", "Owner")
    fake.add_user("friend", "Friend")
    groups = [f"g{i:02d}" for i in range(RECHECK_MAX + 3)]
    for guid in groups:
        fake.add_group(guid, members=["owner", "friend"])
        fake.send_message("friend", to_group=guid, text="hi")
    fake.send_message("friend", to_user="owner", text="stay")
    owner = owner_by_uid("owner")
    assert sync_conversations(owner).created == len(groups) + 1
    for guid in groups:
        leave_group(fake, guid, "owner")
    fake.clear_requests()

    result = sync_conversations(owner)
    assert (result.missing, result.rechecked) == (len(groups), 0)
    assert [r.path for r in fake.requests] == ["/v3/conversations", "/v3/conversations"]
    assert sorted(cid for cid, gone in marks().items() if gone) == [
        f"group_{guid}" for guid in groups
    ]
    assert not marks()["friend_user_owner"]


def test_a_missing_row_that_comes_back_is_cleared_and_counted_once(six):
    fake = six
    leave_group(fake, "club", "owner")
    assert sync_conversations(owner_by_uid("owner")).missing == 1
    # A later sync does not re-check rows already marked.
    fake.clear_requests()
    again = sync_conversations(owner_by_uid("owner"))
    assert (again.missing, again.rechecked, again.requests) == (0, 0, 3)
    fake.add_member("club", "owner")
    back = sync_conversations(owner_by_uid("owner"))
    assert not marks()["group_club"]
    assert back.missing == 0


# -- the write path's order, in every dialect ---------------------------------------------------


@pytest.fixture(params=["native", "portable"])
def write_path(request, monkeypatch):
    """The database's own dialect, and the ORM one other databases get (no database here needs
    it, so it is swapped in: ``storage.dialect()`` is the one place that picks)."""
    if request.param == "portable":
        monkeypatch.setattr(storage, "dialect", PortableDialect)
    return request.param


def test_the_guard_orders_by_send_time_and_keeps_a_later_proof(write_path):
    now = timezone.now()

    def write(unread: int, *, at: timedelta, updated: int = 100):
        return storage.store_page(
            owner_id=None,
            owner_uid="alice",
            rows=[make_row(updated=updated, unread=unread)],
            fetched_at=now + at,
        )

    write(3, at=timedelta(0))
    assert write(5, at=timedelta(seconds=-1)).stale == 1  # sent earlier, landed later
    assert len(write(0, at=timedelta(seconds=1)).updated) == 1
    row = Conversation.objects.get()
    assert (row.unread_message_count, row.fetched_at) == (0, now + timedelta(seconds=1))

    # CometChat proved it gone by a request sent at +10 s.
    proof = now + timedelta(seconds=10)
    assert storage.mark_gone("alice", [row.conversation_id], proven_at=proof) == 1
    # Newer content from a page sent before the proof is written, but the mark stays; a clear
    # by such a page does nothing either.
    assert len(write(2, at=timedelta(seconds=5), updated=200).updated) == 1
    assert storage.clear_missing("alice", [row.conversation_id], before=proof) == 0
    assert Conversation.objects.get().missing_since == proof
    # A page sent after the proof brings it back.
    assert len(write(1, at=timedelta(seconds=11), updated=300).updated) == 1
    assert Conversation.objects.get().missing_since is None
    # A row stored from a request sent after a proof is never marked by it.
    assert storage.mark_gone("alice", [row.conversation_id], proven_at=proof) == 0
    history = [
        (s.payload["updatedAt"], s.payload["unread"])
        for s in ConversationSnapshot.objects.order_by("pk")
    ]
    assert history == [(100, 3), (100, 0), (200, 2), (300, 1)]


def test_owners_stored_together_are_locked_at_once_in_uid_order(fake, client_for):
    """A webhook event's refreshes store their owners in one transaction: every owner's lock
    taken first (on PostgreSQL in one statement, its locks held to the end), in UID order
    whatever order they come in, so two such transactions never wait on each other in a
    cycle. Outcomes come back in the order given; a group's conversation's owner is locked
    too."""
    client = client_for()
    wanted = [("carol", "alice_user_carol"), ("bob", "group_book-club"), ("alice", BOB)]
    fetched = [
        storage.FetchedConversation(None, uid, answer.value, answer.sent_at, None)
        for uid, cid in wanted
        for answer in [client.get_conversation_timed(cid, on_behalf_of=uid)]
    ]
    locked: list[list[str]] = []
    sql = storage.dialect()
    lock = type(sql).lock_owners

    def watching(self: Any, uids: Any) -> Any:
        locked.append(list(uids))
        return lock(self, uids)

    with transaction.atomic():
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(type(sql), "lock_owners", watching)
            outcomes = storage.store_fetched_together(fetched)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND granted"
                )
                assert cursor.fetchone() == (3,)
    assert locked == [["alice", "bob", "carol"]]
    assert [o.created[0][1] for o in outcomes] == [cid for _, cid in wanted]
    for uid, cid in wanted:
        assert Conversation.objects.filter(owner_uid=uid, conversation_id=cid).exists()


@pytest.mark.django_db(transaction=True)
def test_a_block_flag_committed_while_the_store_waits_for_the_lock_is_kept(fake, client_for):
    """The stored peer's block flags (which only the list carries) are read once the owner's
    lock is held, in a statement of its own: a sync that committed a flag while this store
    waited for the lock is seen, not overwritten by the older copy read before the wait."""
    if connection.vendor != "postgresql":
        pytest.skip("the owner's lock is PostgreSQL's")
    sync_conversations(owner_by_uid("alice"))
    answer = client_for().get_conversation_timed(BOB, on_behalf_of="alice")
    holding, stored = (
        threading.Event(),
        Conversation.objects.get(owner_uid="alice", conversation_id=BOB),
    )
    assert stored.payload["conversationWith"].get("blockedByMe") is False  # as the list says

    def sync_sets_the_flag() -> None:  # a list page's transaction, holding alice's lock
        try:
            with transaction.atomic():
                storage.dialect().lock_owner("alice")
                payload = {**stored.payload}
                payload["conversationWith"] = {**payload["conversationWith"], "blockedByMe": True}
                Conversation.objects.filter(pk=stored.pk).update(
                    payload=payload, content_hash=storage.content_hash(payload)
                )
                holding.set()
                time.sleep(0.5)  # the store below is waiting for the lock meanwhile
        finally:
            connections.close_all()

    writer = threading.Thread(target=sync_sets_the_flag)
    writer.start()
    assert holding.wait(10)
    storage.store_fetched(
        owner_id=None, owner_uid="alice", remote=answer.value, fetched_at=answer.sent_at
    )
    writer.join()
    row = Conversation.objects.get(pk=stored.pk)
    assert row.payload["conversationWith"]["blockedByMe"] is True


def wait_for_a_waiter_on_an_advisory_lock(timeout: float = 10.0) -> None:
    """Until another connection waits for an advisory lock (pg_locks, not granted)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("no connection waited for the owner's lock")


@pytest.mark.django_db(transaction=True)
def test_a_row_committed_while_a_one_page_sync_waits_for_the_lock_is_the_next_syncs_candidate(
    fake, alice
):
    """A walk of one page reads the rows it did not see in its page's lock statement, with a
    snapshot from before the wait: a row another writer committed meanwhile is left out, as if
    it had committed just after the check, and the next sync re-checks it (CometChat has no
    such conversation: API.md §8.2's ERR_UID_NOT_FOUND proves it gone). Nothing live is
    re-checked or marked."""
    if connection.vendor != "postgresql":
        pytest.skip("the owner's lock is PostgreSQL's")
    sync_conversations(alice)
    live = set(Conversation.objects.values_list("conversation_id", flat=True))
    holding = threading.Event()

    def writer() -> None:  # another writer's page of alice's, holding her lock
        try:
            with transaction.atomic():
                storage.dialect().lock_owner("alice")
                storage.store_page(
                    owner_id=alice.pk,
                    owner_uid="alice",
                    rows=[make_row("alice_user_ghost")],
                    fetched_at=timezone.now() - timedelta(hours=1),
                    locked=True,
                )
                holding.set()
                wait_for_a_waiter_on_an_advisory_lock()  # the sync below, at its page
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    assert holding.wait(10)
    first = sync_conversations(alice)
    thread.join()
    assert (first.pages, first.rechecked, first.missing) == (1, 0, 0)
    assert Conversation.objects.get(conversation_id="alice_user_ghost").missing_since is None

    second = sync_conversations(alice)
    assert (second.rechecked, second.missing) == (1, 1)
    assert (
        set(
            Conversation.objects.filter(missing_since__isnull=True).values_list(
                "conversation_id", flat=True
            )
        )
        == live
    )
