"""read_messages: a conversation's messages read live on its owner's behalf, over real HTTP to
the fake CometChat (the message lists of API.md §4.3, in both published meta shapes).

The fake's cursor semantics (``id`` inclusive, ``meta.next`` one past the page) are its own
choice where API.md is silent (see django_cometchat/testing/messages.py); read_messages is
meant to page exactly under an exclusive ``id`` too, which a "transform" fault stands in for.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_cometchat import services
from django_cometchat.exceptions import (
    CometChatInvalidFilter,
    CometChatNotFound,
    CometChatResponseError,
)
from django_cometchat.messages_types import MessageCursor
from django_cometchat.models import Conversation, MessageAccess
from django_cometchat.services.messages import (
    MAX_PAGE_SIZE,
    page_cursors,
    read_messages,
)
from django_cometchat.services.retention import prune_message_access
from django_cometchat.signals import conversation_messages_read
from django_cometchat.testing import FakeCometChat, Fault
from tests.message_history import seed_message_history

pytestmark = pytest.mark.django_db

TOTAL = 250
FAST = {
    "UID_RESOLVER": "tests.resolvers.uid_from_username",
    "BACKOFF_FACTOR": 0.01,
    "BACKOFF_MAX": 0.05,
    "MAX_RETRIES": 1,
    "WEB_RETRY_BUDGET": 0.5,
}


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, **FAST}
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def chat(cometchat_fake: FakeCometChat, django_user_model) -> dict[str, Conversation]:
    """alice's conversation with bob and her group "crew", 250 messages each (ids with gaps:
    other conversations' messages in between), stored by a sync; the request log cleared."""
    fake = cometchat_fake
    seed_message_history(fake, TOTAL)
    alice = django_user_model.objects.create_user(username="alice-django")
    services.sync_conversations(alice)
    fake.clear_requests()
    rows = Conversation.objects.owned_by("alice")
    return {"user": rows.get(conversation_id="alice_user_bob"), "group": rows.get(peer_guid="crew")}


def history(fake: FakeCometChat, conversation: Conversation) -> list[str]:
    """The conversation's message ids as the fake holds them, newest first."""
    return [str(m.id) for m in reversed(fake.state.history[conversation.conversation_id])]


def message_requests(fake: FakeCometChat) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/messages")]


@pytest.mark.parametrize("kind", ["user", "group"])
@pytest.mark.parametrize("meta", ["next", "cursor"])
@pytest.mark.parametrize("page_size", [1, 50, 249, 250, 998])
def test_older_pages_walk_every_message_once_newest_first(
    chat, cometchat_fake, kind, meta, page_size
):
    cometchat_fake.configure(messages_meta=meta)
    conversation = chat[kind]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = read_messages(conversation, page_size=page_size, cursor=cursor)
        pages += 1
        assert len(page.messages) <= page_size
        seen += [m.id for m in page.messages]
        if page.is_last:
            break
        cursor = page.next
    assert seen == history(cometchat_fake, conversation)
    assert pages == -(-TOTAL // page_size)  # no empty last page
    sent = message_requests(cometchat_fake)
    assert len(sent) == pages  # one request a page
    endpoint = "/v3/users/bob/messages" if kind == "user" else "/v3/groups/crew/messages"
    assert {r.path for r in sent} == {endpoint}
    assert {r.headers["onbehalfof"] for r in sent} == {"alice"}
    assert all(int(r.query["limit"]) <= 1000 for r in sent)


@pytest.mark.parametrize("kind", ["user", "group"])
def test_newer_pages_walk_back_to_the_newest(chat, cometchat_fake, kind):
    conversation = chat[kind]
    everything = history(cometchat_fake, conversation)
    # Start at the oldest page, then follow "newer" up to the newest message.
    page = read_messages(conversation, page_size=40, direction="newer")
    seen = list(reversed([m.id for m in page.messages]))
    assert seen == list(reversed(everything))[:40]
    while not page.is_last:
        page = read_messages(conversation, page_size=40, cursor=page.next, direction="newer")
        assert [m.id for m in page.messages] == sorted(
            (m.id for m in page.messages), key=int, reverse=True
        )
        seen += reversed([m.id for m in page.messages])
    assert seen == list(reversed(everything))


def test_page_cursors_lead_to_the_pages_beside_one(chat, cometchat_fake):
    conversation = chat["user"]
    everything = history(cometchat_fake, conversation)
    first = read_messages(conversation, page_size=30)
    assert page_cursors(first, cursor=None, direction="older").newer is None
    older = page_cursors(first, cursor=None, direction="older").older
    second = read_messages(conversation, page_size=30, cursor=older)
    assert [m.id for m in second.messages] == everything[30:60]
    back = page_cursors(second, cursor=older, direction="older").newer
    again = read_messages(conversation, page_size=30, cursor=back, direction="newer")
    assert [m.id for m in again.messages] == everything[:30]
    assert again.is_last  # nothing newer than the newest page
    assert page_cursors(again, cursor=back, direction="newer").newer is None
    behind = page_cursors(again, cursor=back, direction="newer").older
    assert behind is not None
    assert behind.id == everything[29]


def exclusive_ids(body: Any, *, edge: str) -> Any:
    """The answer an exclusive ``id`` cursor would give: the edge message left out."""
    body["data"] = [m for m in body["data"] if m["id"] != edge]
    return body


def test_an_exclusive_id_cursor_pages_the_same(chat, cometchat_fake):
    """API.md does not say whether CometChat's ``id`` is inclusive: without the edge message
    (one fewer in the answer) the page is the same and no message is lost."""
    conversation = chat["group"]
    everything = history(cometchat_fake, conversation)
    first = read_messages(conversation, page_size=20)
    assert first.next is not None
    assert first.next.id is not None
    edge = first.next.id
    cometchat_fake.inject(
        Fault("transform", path="/messages", transform=lambda body: exclusive_ids(body, edge=edge))
    )
    second = read_messages(conversation, page_size=20, cursor=first.next)
    assert [m.id for m in second.messages] == everything[20:40]
    assert not second.is_last


def test_deleted_edited_and_action_messages(chat, cometchat_fake):
    conversation = chat["user"]
    deleted = cometchat_fake.add_message("bob", to_user="alice", text="oops")
    cometchat_fake.delete_message(deleted["id"])
    cometchat_fake.add_message("bob", to_user="alice", text="fixed", edited_at=1_750_000_000)
    cometchat_fake.add_message(
        "bob",
        to_user="alice",
        text=None,
        attachments=[{"url": "https://files.example/a.png", "name": "a.png"}],
    )
    page = read_messages(conversation, page_size=3)
    attachment, edited, gone = page.messages
    assert attachment.attachments[0].url == "https://files.example/a.png"
    assert edited.text == "fixed"
    assert edited.edited_at == 1_750_000_000
    assert gone.is_deleted
    assert gone.text is None


def test_a_reader_leaves_one_access_row_and_a_signal_after_commit(
    chat, django_user_model, django_capture_on_commit_callbacks
):
    staff = django_user_model.objects.create_user(username="support-1", is_staff=True)
    received: list[MessageAccess] = []

    def receiver(sender: Any, access: MessageAccess, **kwargs: Any) -> None:
        received.append(access)

    conversation_messages_read.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            first = read_messages(chat["group"], page_size=25, reader=staff)
            assert not received  # not before the row commits
            read_messages(chat["group"], page_size=25, cursor=first.next, reader=staff)
        assert len(callbacks) == 2
    finally:
        conversation_messages_read.disconnect(receiver)
    rows = list(MessageAccess.objects.order_by("id"))
    assert received == rows
    newest, following = rows
    assert (newest.staff_user, newest.staff_username) == (staff, "support-1")
    assert (newest.owner_uid, newest.conversation_id) == ("alice", "group_crew")
    assert (newest.message_count, newest.cursor, newest.direction) == (25, "", "older")
    assert first.next is not None
    assert following.cursor == first.next.id
    # The account may go; the record stays, with the name it had.
    staff.delete()
    kept = MessageAccess.objects.get(pk=following.pk)
    assert (kept.staff_user, kept.staff_username) == (None, "support-1")


def test_no_reader_no_record(chat):
    read_messages(chat["user"], page_size=10)
    assert not MessageAccess.objects.exists()


def test_a_failed_read_is_not_recorded(chat, cometchat_fake, django_user_model):
    staff = django_user_model.objects.create_user(username="support-1", is_staff=True)
    cometchat_fake.inject(
        Fault(
            "status",
            status=404,
            path="/messages",
            body={"error": {"code": "ERR_GUID_NOT_FOUND", "message": "no such group"}},
        )
    )
    with pytest.raises(CometChatNotFound):
        read_messages(chat["group"], reader=staff)
    assert not MessageAccess.objects.exists()


@pytest.mark.parametrize("page_size", [0, -1, MAX_PAGE_SIZE + 1])
def test_page_size_out_of_bounds_sends_nothing(chat, cometchat_fake, page_size):
    with pytest.raises(CometChatInvalidFilter):
        read_messages(chat["user"], page_size=page_size)
    with pytest.raises(CometChatInvalidFilter):
        read_messages(chat["user"], direction="sideways")  # type: ignore[arg-type]
    assert not cometchat_fake.requests


def test_a_bad_cursor_id_sends_nothing(chat, cometchat_fake):
    with pytest.raises(CometChatInvalidFilter):
        read_messages(
            chat["user"], cursor=MessageCursor(affix="prepend", id="1 OR 1", sent_at=None)
        )
    assert not cometchat_fake.requests


def test_messages_of_another_conversation_are_refused(chat, cometchat_fake):
    def other(body: Any) -> Any:
        body["data"][0]["conversationId"] = "alice_user_carol"
        return body

    cometchat_fake.inject(Fault("transform", path="/messages", transform=other))
    with pytest.raises(CometChatResponseError):
        read_messages(chat["user"], page_size=5)


def test_without_cache_every_read_asks_cometchat(chat, cometchat_fake):
    read_messages(chat["user"], page_size=10)
    read_messages(chat["user"], page_size=10)
    assert len(message_requests(cometchat_fake)) == 2


def test_with_cache_a_page_is_served_for_its_seconds(
    chat, cometchat_fake, settings, django_user_model
):
    settings.COMETCHAT = {**settings.COMETCHAT, "MESSAGES_CACHE_SECONDS": 30}
    staff = django_user_model.objects.create_user(username="support-1", is_staff=True)
    first = read_messages(chat["user"], page_size=10)
    again = read_messages(chat["user"], page_size=10, reader=staff)
    assert again == first
    assert len(message_requests(cometchat_fake)) == 1
    assert MessageAccess.objects.count() == 1  # a cached page read by staff is still recorded
    # Another size, cursor, direction or conversation is another page.
    read_messages(chat["user"], page_size=11)
    read_messages(chat["user"], page_size=10, cursor=first.next)
    read_messages(chat["user"], page_size=10, direction="newer")
    read_messages(chat["group"], page_size=10)
    assert len(message_requests(cometchat_fake)) == 5
    keys = list(cache._cache)  # type: ignore[attr-defined]  # locmem: the keys name no UID and no key
    assert keys
    assert not any(
        "alice" in str(k) or cometchat_fake.api_key in str(k) or "bob" in str(k) for k in keys
    )


@pytest.mark.parametrize("limit", [0, 1001])
def test_the_client_keeps_limit_within_cometchat_s_bounds(client_for, cometchat_fake, limit):
    client = client_for()
    with pytest.raises(CometChatInvalidFilter):
        client.get_message_page(
            receiver_type="user", receiver="bob", on_behalf_of="alice", limit=limit
        )
    assert not cometchat_fake.requests


# -- cometchat_prune --message-access-days ---------------------------------------------------


@pytest.fixture
def accesses(django_user_model) -> dict[int, int]:
    """Staff reads made 400, 100, 31 and 1 days ago: {age in days: pk}."""
    staff = django_user_model.objects.create_user(username="support-1", is_staff=True)
    now = timezone.now()
    return {
        days: MessageAccess.objects.create(
            staff_user=staff,
            staff_username="support-1",
            owner_uid="alice",
            conversation_id="alice_user_bob",
            accessed_at=now - timedelta(days=days),
            message_count=50,
        ).pk
        for days in (400, 100, 31, 1)
    }


def ages_left(accesses: dict[int, int]) -> list[int]:
    left = set(MessageAccess.objects.values_list("pk", flat=True))
    return [days for days, pk in accesses.items() if pk in left]


def prune(*args: str) -> str:
    out = StringIO()
    call_command("cometchat_prune", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_access_records_are_kept_by_default(accesses):
    assert "Message access records are kept: MESSAGE_ACCESS_MAX_AGE_DAYS is None." in prune()
    assert ages_left(accesses) == [400, 100, 31, 1]
    assert prune_message_access() == 0


def test_the_flag_prunes_older_records_and_dry_run_only_counts(accesses):
    out = prune("--message-access-days", "90", "--dry-run")
    assert "Would delete 2 message access records (staff message reads made more than 90" in out
    assert ages_left(accesses) == [400, 100, 31, 1]
    out = prune("--message-access-days", "90")
    assert "Deleted 2 message access records (" in out
    assert ages_left(accesses) == [31, 1]


def test_the_setting_is_the_default_and_batches_hold(accesses, settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "MESSAGE_ACCESS_MAX_AGE_DAYS": 30}
    assert "Deleted 3 message access records (" in prune()
    assert ages_left(accesses) == [1]
    assert prune_message_access(max_age_days=0, batch_size=1) == 1
    assert not MessageAccess.objects.exists()


@pytest.mark.parametrize("value", ["-1", "x"])
def test_the_flag_refuses_bad_numbers(value):
    with pytest.raises(CommandError):
        prune("--message-access-days", value)
