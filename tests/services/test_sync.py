"""sync_conversations / fetch_conversation against the fake CometChat, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cometchat import storage
from django_cometchat.conversation_filters import ConversationFilters
from django_cometchat.exceptions import (
    CometChatBadRequest,
    CometChatRateLimited,
    CometChatResponseError,
    CometChatServerError,
)
from django_cometchat.models import Conversation, ConversationSnapshot, SyncRun
from django_cometchat.services import (
    CometChatUserError,
    fetch_conversation,
    owner_by_uid,
    prune_history,
    refresh_on_demand,
    resolve_uid,
    sync_conversations,
    sync_on_demand,
)
from django_cometchat.signals import conversation_changed, conversations_synced
from django_cometchat.storage import Row, content_hash, store_page
from django_cometchat.testing import Fault

pytestmark = pytest.mark.django_db

FAST = {"BACKOFF_FACTOR": 0.01, "BACKOFF_MAX": 0.05, "MAX_RETRIES": 1}


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        **FAST,
        "UID_RESOLVER": "tests.resolvers.uid_from_username",
    }


def stored(owner_uid="alice"):
    return {c.conversation_id: c for c in Conversation.objects.filter(owner_uid=owner_uid)}


# -- resolve_uid --------------------------------------------------------------------------------


def test_resolve_uid_lowercases_and_validates(django_user_model, settings):
    user = django_user_model.objects.create_user(username="Bob-django")
    assert resolve_uid(user) == "bob"
    settings.COMETCHAT = {**settings.COMETCHAT, "UID_RESOLVER": None}
    assert resolve_uid(user) == str(user.pk)


def test_resolve_uid_refuses_anonymous_and_unmappable(django_user_model):
    from django.contrib.auth.models import AnonymousUser

    with pytest.raises(CometChatUserError, match="anonymous"):
        resolve_uid(AnonymousUser())
    bad = django_user_model.objects.create_user(username="has space-django")
    with pytest.raises(CometChatUserError, match="invalid CometChat UID"):
        resolve_uid(bad)


# -- first sync, re-sync, changes ---------------------------------------------------------------


def test_first_sync_creates_rows_and_a_succeeded_run(fake, alice):
    result = sync_conversations(alice, trigger=SyncRun.Trigger.COMMAND)
    assert (result.created, result.updated, result.unchanged, result.missing) == (3, 0, 0, 0)
    assert result.pages == 1
    assert result.requests == 1
    rows = stored()
    assert set(rows) == {"alice_user_bob", "alice_user_carol", "group_book-club"}
    bob = rows["alice_user_bob"]
    assert bob.owner == alice
    assert bob.conversation_type == "user"
    assert bob.peer_uid == "bob"
    assert bob.peer_guid == ""
    assert bob.peer_name == "Bob Stone"
    assert bob.unread_message_count == 1
    assert bob.last_message["data"]["text"] == "hi alice"
    assert bob.payload["unreadMessageCount"] == "1"  # the raw payload is kept as sent
    assert bob.updated_at.tzinfo is not None
    assert bob.missing_since is None
    group = rows["group_book-club"]
    assert (group.peer_guid, group.peer_uid, group.peer_name) == ("book-club", "", "Book Club")
    run = result.run
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.trigger == "command"
    assert (run.created_count, run.pages, run.requests) == (3, 1, 1)
    assert run.complete
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at
    assert ConversationSnapshot.objects.count() == 3


def test_resync_without_change_writes_no_history(fake, alice):
    sync_conversations(alice)
    fetched_before = {c.conversation_id: c.fetched_at for c in stored().values()}
    with CaptureQueriesContext(connection) as queries:
        result = sync_conversations(alice)
    assert (result.created, result.updated, result.unchanged) == (0, 0, 3)
    assert ConversationSnapshot.objects.count() == 3
    # Nothing about the conversations is written: fetched_at is when the content was fetched.
    assert {c.conversation_id: c.fetched_at for c in stored().values()} == fetched_before
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        and "django_cometchat_conversation" in q["sql"].split("WHERE")[0]
    ]
    # Not one: the missing check only looks for candidates (stored rows not seen): none.
    assert writes == []
    assert not Conversation.objects.filter(missing_since__isnull=False).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's page statement")
def test_a_page_travels_beside_its_statement_not_inside_it(fake, alice):
    """psycopg 3 binds the page on the server: the statement is logged (so counted) with a
    placeholder, and neither the payloads nor the Python escaping of 1.5 MB are in its text."""
    with CaptureQueriesContext(connection) as queries:
        sync_conversations(alice)
    (page,) = [q["sql"] for q in queries.captured_queries if "jsonb_to_recordset" in q["sql"]]
    assert "jsonb_to_recordset($1::jsonb)" in page
    assert "alice_user_bob" not in page
    assert Conversation.objects.filter(owner_uid="alice").count() == 3


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's lock statement")
@pytest.mark.parametrize("page_size", [50, 2], ids=["one page", "two pages"])
def test_a_walk_of_one_page_reads_its_unseen_rows_with_the_lock(fake, alice, settings, page_size):
    """Alice's three conversations (API.md §8.1) on one page: the rows the walk did not see
    are read in the page's lock statement, no statement of their own; on two pages, once
    the walk is over, in one of their own. Either way a stored row CometChat no longer has is
    re-checked and marked."""
    settings.COMETCHAT = {**settings.COMETCHAT, "PAGE_SIZE": page_size}
    sync_conversations(alice)
    store_page(
        owner_id=alice.pk,
        owner_uid="alice",
        rows=[make_row("alice_user_ghost")],
        fetched_at=timezone.now() - timedelta(hours=1),
    )
    with CaptureQueriesContext(connection) as queries:
        result = sync_conversations(alice)
    statements = [q["sql"] for q in queries.captured_queries]
    locks = [sql for sql in statements if sql.startswith("SELECT pg_advisory_xact_lock")]
    unseen = [sql for sql in statements if sql.startswith("SELECT conversation_id FROM")]
    if page_size == 50:
        assert (len(locks), len(unseen)) == (1, 0)
        assert "ARRAY(SELECT conversation_id FROM" in locks[0]
    else:
        assert (len(locks), len(unseen)) == (2, 1)
        assert all("ARRAY(SELECT conversation_id FROM" not in sql for sql in locks)
    assert (result.rechecked, result.missing) == (1, 1)
    ghost = Conversation.objects.get(owner_uid="alice", conversation_id="alice_user_ghost")
    assert ghost.missing_since is not None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's page statement")
def test_the_page_statement_keeps_its_text_where_the_host_lets_psycopg_prepare(fake, alice):
    """With ``prepare_threshold`` 0 psycopg would prepare at once, and a prepared statement is
    logged and counted as ``None``: the page statement never is."""
    connection.ensure_connection()
    raw = connection.connection
    before = raw.prepare_threshold
    raw.prepare_threshold = 0
    try:
        for _ in range(3):
            Conversation.objects.filter(owner_uid="alice").delete()
            with CaptureQueriesContext(connection) as queries:
                sync_conversations(alice)
            assert all(q["sql"] is not None for q in queries.captured_queries)
            assert any("jsonb_to_recordset" in q["sql"] for q in queries.captured_queries)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone() == (0,)
    finally:
        raw.prepare_threshold = before


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's id parameter")
def test_a_pages_ids_are_one_json_parameter_and_find_exactly_the_stored_rows(fake, alice):
    """The ids travel as one JSON text (psycopg's list dumper cost a worker 2 ms of CPU per
    1,000 ids): the hash reads and the unseen check still match exactly the ids given."""
    sync_conversations(alice)
    stored_ids = sorted(
        Conversation.objects.filter(owner_uid="alice").values_list("conversation_id", flat=True)
    )
    asked = [stored_ids[0], "alice_user_nobody", stored_ids[-1]]
    with CaptureQueriesContext(connection) as queries:
        with storage.page_transaction("alice", asked) as read:
            known = read.hashes
        found = storage.stored_hashes("alice", asked)
        assert storage.stored_hashes("alice", []) == {}
    assert sorted(known) == sorted(found) == [stored_ids[0], stored_ids[-1]]
    reads = [q["sql"] for q in queries.captured_queries if "jsonb_array_elements_text" in q["sql"]]
    assert len(reads) == 3
    assert all(
        f"""'["{stored_ids[0]}","alice_user_nobody","{stored_ids[-1]}"]'""" in sql
        for sql in reads[:2]
    )
    # The unseen check of a one-page walk takes the page's ids the same way: in the page's
    # lock statement, and on its own once the page is added.
    with storage.SeenSet() as seen:
        query = seen.only_page_unseen("alice", stored_ids[1:], before=timezone.now(), limit=10)
        with CaptureQueriesContext(connection) as locked:
            with storage.page_transaction("alice", stored_ids[1:], unseen=query) as read:
                assert read.unseen == [stored_ids[0]]
        reads = [q["sql"] for q in locked if "SAVEPOINT" not in q["sql"]]  # the test's atomic
        assert len(reads) == 1
        assert reads[0].startswith("SELECT pg_advisory_xact_lock")
        seen.add(stored_ids[1:])
        assert seen.only_page_unseen("alice", [], before=timezone.now(), limit=10) is None
        assert seen.unseen("alice", before=timezone.now(), limit=10) == [stored_ids[0]]


def test_upstream_change_updates_and_appends_history(
    fake, alice, django_capture_on_commit_callbacks
):
    sync_conversations(alice)
    fake.send_message("bob", to_user="alice", text="are you there?")
    changed = []
    conversation_changed.connect(lambda **kw: changed.append(kw), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = sync_conversations(alice)
            assert changed == []  # not before the write commits
    finally:
        conversation_changed.disconnect(dispatch_uid="t")
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    bob = stored()["alice_user_bob"]
    assert bob.unread_message_count == 2
    assert bob.last_message["data"]["text"] == "are you there?"
    history = list(bob.snapshots.values_list("payload", flat=True))
    assert len(history) == 2
    assert history[0]["lastMessage"]["data"]["text"] == "are you there?"  # newest first
    assert [(c["conversation_id"], c["created"]) for c in changed] == [("alice_user_bob", False)]


def test_unread_count_drops_when_read(fake, alice):
    sync_conversations(alice)
    fake.mark_read("alice", "alice_user_bob")
    result = sync_conversations(alice)
    assert result.updated == 1
    assert stored()["alice_user_bob"].unread_message_count == 0


def test_conversations_synced_signal(fake, alice, django_capture_on_commit_callbacks):
    seen = []
    conversations_synced.connect(
        lambda **kw: seen.append(kw["result"]), weak=False, dispatch_uid="s"
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            sync_conversations(alice)
            assert seen == []  # under ATOMIC_REQUESTS a receiver would see uncommitted rows
    finally:
        conversations_synced.disconnect(dispatch_uid="s")
    assert [r.created for r in seen] == [3]


def test_signals_wait_for_the_callers_transaction_to_commit(fake, alice):
    """Under ATOMIC_REQUESTS the sync runs inside the request's transaction: receivers must hear
    of it only once that commits, and never if it rolls back."""
    heard = []
    conversations_synced.connect(lambda **kw: heard.append(1), weak=False, dispatch_uid="c")
    conversation_changed.connect(lambda **kw: heard.append(2), weak=False, dispatch_uid="d")

    def request_that_fails_after_syncing():
        with transaction.atomic():
            sync_conversations(alice)
            raise RuntimeError("the request failed after the sync")

    try:
        with pytest.raises(RuntimeError):
            request_that_fails_after_syncing()
    finally:
        conversations_synced.disconnect(dispatch_uid="c")
        conversation_changed.disconnect(dispatch_uid="d")
    assert heard == []


def test_sync_by_uid_without_a_django_user(fake):
    result = sync_conversations(owner_by_uid("Bob"))
    assert result.created == 2
    assert {c.owner_id for c in stored("bob").values()} == {None}


def test_dry_run_writes_nothing(fake, alice):
    result = sync_conversations(alice, dry_run=True)
    assert result.created == 3
    assert Conversation.objects.count() == 0
    assert SyncRun.objects.count() == 0


# -- missing ------------------------------------------------------------------------------------


def test_complete_sync_marks_missing_and_clears_it_when_back(fake, alice):
    sync_conversations(alice)
    Conversation.objects.filter(conversation_id="alice_user_carol").update(
        conversation_id="alice_user_gone"
    )
    result = sync_conversations(alice)
    assert result.missing == 1
    gone = stored()["alice_user_gone"]
    assert gone.missing_since is not None
    assert result.created == 1  # carol's came back as a new row
    # Nothing is deleted, and a later sync does not count it again.
    assert sync_conversations(alice).missing == 0
    assert stored()["alice_user_gone"].missing_since == gone.missing_since


def test_missing_row_is_cleared_when_cometchat_returns_it(fake, alice):
    sync_conversations(alice)
    Conversation.objects.filter(conversation_id="alice_user_bob").update(
        missing_since=timezone.now()
    )
    sync_conversations(alice)
    assert stored()["alice_user_bob"].missing_since is None


def test_filtered_sync_marks_nothing_missing(fake, alice):
    sync_conversations(alice)
    result = sync_conversations(alice, filters=ConversationFilters(conversation_type="group"))
    assert result.missing == 0
    assert result.unchanged == 1
    assert not Conversation.objects.filter(missing_since__isnull=False).exists()
    run = result.run
    assert run.filters == {"conversation_type": "group"}
    assert not run.complete


def test_change_during_a_multi_page_walk_is_caught_up_and_missing_is_proven(
    cometchat_fake, settings, monkeypatch
):
    fake = cometchat_fake
    settings.COMETCHAT = {**settings.COMETCHAT, "PAGE_SIZE": 5}
    fake.add_user("owner")
    for i in range(12):
        fake.add_user(f"peer-{i}")
        fake.send_message(f"peer-{i}", to_user="owner", text=f"m{i}")
    sync_conversations(owner_by_uid("owner"))
    Conversation.objects.filter(conversation_id="owner_user_peer-5").update(
        conversation_id="owner_user_gone"
    )
    Conversation.objects.filter(owner_uid="owner").exclude(
        conversation_id="owner_user_gone"
    ).delete()

    moved: list[object] = []
    real_store_page = storage.store_page

    def store_then_move_oldest(**kwargs):
        outcome = real_store_page(**kwargs)
        if not moved:  # after page 1 is stored, the oldest conversation jumps to the top
            moved.append(fake.send_message("peer-0", to_user="owner", text="late"))
        return outcome

    monkeypatch.setattr("django_cometchat.services.sync.store_page", store_then_move_oldest)
    fake.clear_requests()
    result = sync_conversations(owner_by_uid("owner"))
    rows = stored("owner")
    assert len(rows) == 13  # all 12 (peer-0 through the catch-up) + the "gone" row
    assert rows["owner_user_peer-0"].last_message["data"]["text"] == "late"
    # Each conversation counted once: the repeated row once as unchanged, the catch-up's
    # re-read rows not at all.
    assert (result.created, result.updated, result.unchanged) == (12, 0, 1)
    # The list moved under the walk, yet the one row it did not return is proven gone (the
    # peer "gone" does not exist: ERR_UID_NOT_FOUND, API.md §5.3), so no quiet sync is needed.
    assert (result.missing, result.rechecked) == (1, 1)
    assert rows["owner_user_gone"].missing_since is not None
    assert [r.path for r in fake.requests][-1] == "/v3/users/gone/conversation"
    assert result.requests == 3 + 1 + 1  # three pages, the catch-up's one, the re-check
    quiet = sync_conversations(owner_by_uid("owner"))
    assert (quiet.missing, quiet.rechecked) == (0, 0)
    assert quiet.requests == 3  # a quiet walk of 3 pages costs exactly 3 requests


# -- failures -----------------------------------------------------------------------------------


def test_failure_on_a_later_page_keeps_old_data_and_records_why(fake, alice, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "PAGE_SIZE": 2}
    sync_conversations(alice)
    before = {cid: (c.content_hash, c.fetched_at) for cid, c in stored().items()}
    fake.send_message("bob", to_user="alice", text="new!")  # a change a full sync would store
    fake.inject(Fault("status", status=500, times=10, query={"page": "2"}))
    with pytest.raises(CometChatServerError):
        sync_conversations(alice)
    run = SyncRun.objects.latest("started_at")
    assert run.status == SyncRun.Status.FAILED
    assert run.error_code == "ERR_MISSION_FAILED"
    assert "GET /conversations" in run.error_message
    assert "HTTP 500" in run.error_message
    assert run.pages == 1
    after = stored()
    # Page 1 was stored; page 2's rows keep their old snapshot; nothing was marked missing.
    assert not any(c.missing_since for c in after.values())
    untouched = [cid for cid, c in after.items() if (c.content_hash, c.fetched_at) == before[cid]]
    assert untouched  # the rows on the failed page


@pytest.mark.parametrize("kind", ["html", "truncate", "wrong_shape", "empty"])
def test_broken_upstream_body_never_overwrites_a_good_snapshot(fake, alice, kind):
    sync_conversations(alice)
    before = {cid: c.payload for cid, c in stored().items()}
    fake.inject(Fault(kind))
    result = sync_conversations(alice, raise_errors=False)
    assert isinstance(result.error, CometChatResponseError)
    assert result.run.status == SyncRun.Status.FAILED
    assert {cid: c.payload for cid, c in stored().items()} == before
    assert ConversationSnapshot.objects.count() == 3


def one_page(rows):
    """A whole conversation list in one page, as CometChat shapes it."""
    pagination = {"total": 2, "count": 2, "per_page": 1000, "current_page": 1, "total_pages": 1}
    return {"data": rows, "meta": {"pagination": {**pagination, "count": len(rows)}}}


def test_an_upstream_that_always_claims_another_page_stops_at_sync_max_pages(fake, alice, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "PAGE_SIZE": 2, "SYNC_MAX_PAGES": 4}
    sync_conversations(alice)
    Conversation.objects.filter(conversation_id="alice_user_carol").update(
        conversation_id="alice_user_gone"
    )  # a stored row no page will return: a complete sync would mark it
    first_page: list[object] = []

    def endless(body):
        """Every page full (page 1's rows again) and "another page follows" (API.md §0.5's
        total_pages = current_page + 1), however far the walk goes."""
        if not first_page:
            first_page.extend(body["data"])
        pagination = body["meta"]["pagination"]
        current = pagination["current_page"]
        return {
            "data": first_page,
            "meta": {"pagination": {**pagination, "count": 2, "total_pages": current + 1}},
        }

    fake.inject(Fault("transform", times=1000, path="/conversations", transform=endless))
    fake.clear_requests()
    result = sync_conversations(alice, raise_errors=False)
    run = result.run
    assert (run.status, run.error_code, run.complete) == ("failed", "ERR_TOO_MANY_PAGES", False)
    assert 'COMETCHAT["SYNC_MAX_PAGES"]' in run.error_message
    assert "after 4 pages" in run.error_message
    assert len(fake.requests) == run.requests == 4  # page 5 was never asked for
    assert run.pages == 4
    assert run.missing_count == 0
    assert not Conversation.objects.filter(missing_since__isnull=False).exists()
    assert run.public_error_message == "CometChat answered with something this site cannot use."


def test_one_malformed_conversation_fails_the_page_and_writes_nothing(fake, alice):
    payloads = [
        {
            "conversationId": "alice_user_bob",
            "conversationType": "user",
            "updatedAt": 5,
            "conversationWith": {"uid": "bob", "name": "Bob"},
        },
        {"conversationId": "alice_user_x", "conversationType": "nonsense"},
    ]
    fake.inject(Fault("status", status=200, body=one_page(payloads)))
    result = sync_conversations(alice, raise_errors=False)
    assert isinstance(result.error, CometChatResponseError)
    assert "conversationType" in result.run.error_message
    assert Conversation.objects.count() == 0


def test_integer_unread_and_missing_last_message_are_stored(fake, alice):
    payloads = [
        {
            "conversationId": "alice_user_bob",
            "conversationType": "user",
            "unreadMessageCount": 4,
            "createdAt": 10,
            "updatedAt": 20,
            "conversationWith": {"uid": "bob", "name": "Bob"},
        },
        {
            "conversationId": "alice_user_carol",
            "conversationType": "user",
            "unreadMessageCount": "7",
            "createdAt": 10,
            "updatedAt": 30,
            "conversationWith": {"uid": "carol", "name": "Carol"},
        },
    ]
    fake.inject(Fault("status", status=200, body=one_page(payloads)))
    sync_conversations(alice)
    rows = stored()
    assert rows["alice_user_bob"].unread_message_count == 4
    assert rows["alice_user_carol"].unread_message_count == 7
    assert rows["alice_user_bob"].last_message is None
    assert rows["alice_user_carol"].updated_at == datetime.fromtimestamp(
        30, tz=timezone.get_current_timezone()
    )


# -- ordering guarantees ------------------------------------------------------------------------


def make_row(conversation_id="alice_user_bob", *, updated=100, unread=0):
    payload = {"conversationId": conversation_id, "updatedAt": updated, "unread": unread}
    at = datetime.fromtimestamp(updated, tz=timezone.get_current_timezone())
    return Row(
        conversation_id=conversation_id,
        conversation_type="user",
        unread_message_count=unread,
        created_at=None,
        updated_at=at,
        peer_uid="bob",
        peer_guid="",
        peer_name="Bob",
        payload=payload,
        content_hash=content_hash(payload),
    )


def test_an_older_payload_never_overwrites_a_newer_one():
    now = timezone.now()
    store_page(owner_id=None, owner_uid="alice", rows=[make_row(updated=200)], fetched_at=now)
    outcome = store_page(
        owner_id=None,
        owner_uid="alice",
        rows=[make_row(updated=100, unread=9)],
        fetched_at=now + timedelta(seconds=1),
    )
    assert outcome.stale == 1
    row = Conversation.objects.get()
    assert row.payload["updatedAt"] == 200
    assert ConversationSnapshot.objects.count() == 1


def test_same_updated_at_fetched_earlier_is_stale_and_later_wins():
    now = timezone.now()
    store_page(owner_id=None, owner_uid="alice", rows=[make_row(unread=3)], fetched_at=now)
    earlier = store_page(
        owner_id=None,
        owner_uid="alice",
        rows=[make_row(unread=5)],
        fetched_at=now - timedelta(seconds=1),
    )
    assert earlier.stale == 1
    later = store_page(
        owner_id=None,
        owner_uid="alice",
        rows=[make_row(unread=0)],
        fetched_at=now + timedelta(seconds=1),
    )
    assert len(later.updated) == 1
    assert Conversation.objects.get().unread_message_count == 0


def test_duplicates_within_a_page_keep_the_newest():
    rows = [make_row(updated=100), make_row(updated=300), make_row(updated=200)]
    store_page(owner_id=None, owner_uid="alice", rows=rows, fetched_at=timezone.now())
    assert Conversation.objects.get().payload["updatedAt"] == 300


def test_query_count_per_page_is_the_same_for_10_and_1000_rows():
    """Insert page, all-changed page, no-change page: each costs the same for 10 or 1,000 rows."""
    counts: dict[int, list[int]] = {}
    for size in (10, 1000):
        Conversation.objects.all().delete()
        first = [make_row(f"alice_user_p{i:04d}") for i in range(size)]
        changed = [make_row(f"alice_user_p{i:04d}", updated=101) for i in range(size)]
        counts[size] = []
        for page in (first, changed, changed):
            with CaptureQueriesContext(connection) as queries:
                store_page(owner_id=None, owner_uid="alice", rows=page, fetched_at=timezone.now())
            counts[size].append(len(queries.captured_queries))
        assert Conversation.objects.count() == size
        assert ConversationSnapshot.objects.count() == 2 * size
    assert counts[10] == counts[1000]
    assert max(counts[1000]) <= 7  # savepoint, lock, select, upsert, history, touch, release


# -- fetch one ----------------------------------------------------------------------------------


def test_fetch_conversation_stores_one(fake, alice):
    conversation = fetch_conversation(alice, "group_book-club")
    assert conversation.pk
    assert conversation.peer_guid == "book-club"
    assert fake.requests[-1].path == "/v3/groups/book-club/conversation"
    assert ConversationSnapshot.objects.filter(conversation=conversation).count() == 1


@pytest.mark.parametrize("conversation_id", ["alice_user_bob", "group_book-club"])
def test_a_list_sync_and_a_single_fetch_agree_when_nothing_changed(fake, alice, conversation_id):
    # The list's lastMessage carries receipts, the single-conversation endpoint's does not.
    sync_conversations(alice)
    listed = Conversation.objects.get(owner_uid="alice", conversation_id=conversation_id)
    assert "receipts" in listed.payload["lastMessage"]
    fetch_conversation(alice, conversation_id)
    assert sync_conversations(alice).updated == 0
    row = Conversation.objects.get(owner_uid="alice", conversation_id=conversation_id)
    assert row.snapshots.count() == 1  # no history row for a difference of endpoints
    assert row.content_hash == listed.content_hash


def test_a_single_fetch_keeps_the_block_flags_of_the_last_sync(fake, alice):
    # The single-conversation endpoint takes no withBlockedInfo: its payload has no flags.
    fake.block_user("alice", "bob")
    sync_conversations(alice)
    fetch_conversation(alice, "alice_user_bob")
    row = Conversation.objects.get(owner_uid="alice", conversation_id="alice_user_bob")
    assert row.payload["conversationWith"]["blockedByMe"] is True
    assert row.payload["conversationWith"]["hasBlockedMe"] is False
    assert row.snapshots.count() == 1


def test_fetch_conversation_rejects_bad_ids_before_sending(fake, alice):
    fake.clear_requests()
    with pytest.raises(CometChatBadRequest):
        fetch_conversation(alice, "../../users")
    assert fake.requests == []


# -- prune --------------------------------------------------------------------------------------


def test_prune_keeps_each_conversations_latest_snapshot():
    now = timezone.now()
    for n in range(5):
        store_page(
            owner_id=None,
            owner_uid="alice",
            rows=[make_row(updated=100 + n), make_row("group_g", updated=100)],
            fetched_at=now - timedelta(days=10 - 2 * n),
        )
    assert ConversationSnapshot.objects.count() == 6
    assert prune_history(max_age_days=7, dry_run=True) == 2
    assert prune_history(max_age_days=7) == 2
    assert prune_history(keep_per_conversation=1) == 2
    remaining = ConversationSnapshot.objects.order_by("conversation__conversation_id")
    assert [s.payload["updatedAt"] for s in remaining] == [104, 100]


def test_prune_does_nothing_without_retention():
    store_page(owner_id=None, owner_uid="a", rows=[make_row()], fetched_at=timezone.now())
    assert prune_history() == 0


# -- on-demand refreshes ------------------------------------------------------------------------


def test_request_sync_returns_the_run(fake, alice):
    run = sync_on_demand(alice, trigger=SyncRun.Trigger.API)
    assert run.pk
    assert run.trigger == "api"
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.created_count == 3


def test_request_sync_fails_fast_within_the_web_budget(fake, alice, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "WEB_RETRY_BUDGET": 0.5}
    fake.inject(Fault("status", status=429, headers={"Retry-After": "30"}, times=10))
    started = time.monotonic()
    with pytest.raises(CometChatRateLimited):
        sync_on_demand(alice, trigger=SyncRun.Trigger.API)
    assert time.monotonic() - started < 2
    run = SyncRun.objects.get()
    assert (run.status, run.error_code) == (SyncRun.Status.FAILED, "ERR_TOO_MANY_REQUESTS")


def test_request_refresh_fetches_one(fake, alice):
    conversation = refresh_on_demand(alice, "alice_user_bob")
    assert conversation.peer_uid == "bob"
    assert conversation.owner == alice


def test_a_conversation_with_a_blocked_user_survives_a_complete_sync(fake, alice, client):
    """CometChat leaves blocked users' conversations out unless asked: a complete sync must ask,
    or it would mark them missing. The block shows in the API and the admin."""
    sync_conversations(alice)
    fake.block_user("alice", "bob")
    result = sync_conversations(alice)
    assert result.missing == 0
    bob = stored()["alice_user_bob"]
    assert bob.missing_since is None
    assert bob.conversation_with["blockedByMe"] is True
    assert stored()["alice_user_carol"].conversation_with["blockedByMe"] is False
    query = fake.requests[-1].query
    assert (query["includeBlockedUsers"], query["withBlockedInfo"]) == ("true", "true")
    client.force_login(alice)
    row = client.get("/cometchat/conversations/alice_user_bob/").json()
    assert row["conversation_with"]["blockedByMe"] is True
    alice.is_staff = alice.is_superuser = True
    alice.save()
    page = client.get(f"/admin/django_cometchat/conversation/{bob.pk}/change/").content.decode()
    assert "Bob Stone (UID bob); blocked by the owner" in page


def test_the_old_names_of_the_on_demand_seams_still_work_and_warn(fake, alice):
    """``services.request_sync`` / ``request_refresh`` were documented: kept, deprecated."""
    from django_cometchat import services

    with pytest.warns(DeprecationWarning, match="use sync_on_demand"):
        assert services.request_sync is sync_on_demand
    with pytest.warns(DeprecationWarning, match="use refresh_on_demand"):
        from django_cometchat.services import request_refresh
    assert request_refresh is refresh_on_demand
