"""The admin's Messages view of a conversation and the record of staff reads, over real HTTP to
the fake CometChat (its message lists follow API.md §4.3: ``GET /users/{uid}/messages`` and
``GET /groups/{guid}/messages`` with ``onBehalfOf``, cursor paging by ``id`` and ``affix``).

Every test asserts what reached the fake as well as what the page says: a refused read sends
nothing upstream and records nothing.
"""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core import signing
from django.core.cache import cache

from django_cometchat.admin.conversation_messages import CURSOR_SALT
from django_cometchat.models import Conversation, MessageAccess
from django_cometchat.services import owner_by_uid, sync_conversations
from django_cometchat.testing import FakeCometChat

pytestmark = pytest.mark.django_db

FAST = {
    "UID_RESOLVER": "tests.resolvers.uid_from_username",
    "BACKOFF_FACTOR": 0.01,
    "BACKOFF_MAX": 0.05,
    "MAX_RETRIES": 0,
    "WEB_RETRY_BUDGET": 0.5,
}
ACCESSES = "/admin/django_cometchat/messageaccess/"
PAGE = 50  # ConversationAdmin.messages_page_size


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, **FAST}
    cache.clear()


@pytest.fixture
def direct(fake: FakeCometChat, alice) -> Conversation:
    """alice's conversation with bob, stored by a sync; 120 more messages in it (the fake
    fixture's "hi alice" is the first); the request log cleared."""
    fake.add_messages("bob", 120, to_user="alice", text="note {n}")
    sync_conversations(alice)
    fake.clear_requests()
    return Conversation.objects.get(owner_uid="alice", conversation_id="alice_user_bob")


def messages_url(conversation: Conversation, query: str = "") -> str:
    return f"/admin/django_cometchat/conversation/{conversation.pk}/messages/{query}"


def message_requests(fake: FakeCometChat) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/messages")]


def texts(response) -> list[str]:
    """The text of each message on the page, top to bottom."""
    found = re.findall(r'<div class="cometchat-text">(.*?)</div>', response.content.decode(), re.S)
    return [unescape(text) for text in found]


def link(response, kind: str) -> str | None:
    found = re.search(rf'class="cometchat-{kind}" href="([^"]+)"', response.content.decode())
    return unescape(found.group(1)) if found else None


def staff(django_user_model, name: str, *codenames: str):
    user = django_user_model.objects.create_user(name, password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


# -- who may read -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        ("anonymous", 302),
        ("staff without any permission", 403),
        ("staff who may view conversations", 403),
        ("staff who may read messages but not view conversations", 403),
        ("staff who may view conversations and read messages", 200),
        ("superuser", 200),
    ],
    ids=lambda case: case[0].replace(" ", "-"),
)
def test_who_may_read_the_messages(client, django_user_model, fake, direct, case):
    who, status = case
    if who == "superuser":
        client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    elif who != "anonymous":
        codenames = {
            "staff without any permission": (),
            "staff who may view conversations": ("view_conversation",),
            "staff who may read messages but not view conversations": (
                "view_conversation_messages",
            ),
            "staff who may view conversations and read messages": (
                "view_conversation",
                "view_conversation_messages",
            ),
        }[who]
        client.force_login(staff(django_user_model, "support-ann", *codenames))
    response = client.get(messages_url(direct))
    assert response.status_code == status
    sent = message_requests(fake)
    if status != 200:
        assert sent == []  # nothing asked of CometChat
        assert not MessageAccess.objects.exists()  # and nothing recorded
        if who == "anonymous":
            assert response["Location"].startswith("/admin/login/?next=")
        return
    (request,) = sent
    assert request.method == "GET"
    assert request.path == "/v3/users/bob/messages"
    assert request.headers["onbehalfof"] == "alice"
    assert len(texts(response)) == PAGE
    (access,) = MessageAccess.objects.all()
    assert access.staff_username == ("root" if who == "superuser" else "support-ann")
    assert (access.owner_uid, access.conversation_id) == ("alice", "alice_user_bob")
    assert access.message_count == PAGE


def test_the_conversation_page_links_to_the_messages_only_for_those_who_may_read_them(
    client, admin_client, django_user_model, direct
):
    change = f"/admin/django_cometchat/conversation/{direct.pk}/change/"
    assert messages_url(direct) in admin_client.get(change).content.decode()
    client.force_login(staff(django_user_model, "viewer", "view_conversation"))
    response = client.get(change)
    assert response.status_code == 200
    assert messages_url(direct) not in response.content.decode()


def test_an_unknown_conversation_is_a_404_with_nothing_sent(admin_client, fake, direct):
    for pk in ("999999", "not-a-number"):
        response = admin_client.get(f"/admin/django_cometchat/conversation/{pk}/messages/")
        assert response.status_code == 404
    assert message_requests(fake) == []
    assert not MessageAccess.objects.exists()


# -- paging -------------------------------------------------------------------------------------


def test_paging_older_then_newer_shows_every_message_once_in_order(admin_client, fake, direct):
    newest = admin_client.get(messages_url(direct))
    assert link(newest, "newer") is None  # the newest page has nothing newer
    pages = [texts(newest)]
    url = link(newest, "older")
    while url:
        response = admin_client.get(url)
        assert response.status_code == 200
        pages.append(texts(response))
        url = link(response, "older")
    seen = [text for page in pages for text in page]
    everything = [f"note {n}" for n in range(120, 0, -1)] + ["hi alice"]  # newest first
    assert seen == everything
    assert [len(page) for page in pages] == [50, 50, 21]
    assert len(message_requests(fake)) == 3  # one request a page

    # And back towards the newest from the oldest page, through the "newer" links.
    back = [pages[-1]]
    url = link(response, "newer")
    while url:
        response = admin_client.get(url)
        back.append(texts(response))
        url = link(response, "newer")
    assert [text for page in reversed(back) for text in page] == everything
    assert link(response, "newest") is not None  # a way straight back to the newest page
    assert len(message_requests(fake)) == 5
    accesses = list(MessageAccess.objects.order_by("id"))
    assert [a.message_count for a in accesses] == [50, 50, 21, 50, 50]
    assert [a.direction for a in accesses] == ["older"] * 3 + ["newer"] * 2
    assert accesses[0].cursor == ""  # the newest page
    assert all(a.cursor.isdigit() for a in accesses[1:])


def test_a_group_conversation_is_read_from_the_group_list(admin_client, fake, alice):
    fake.add_messages("carol", 3, to_group="book-club", text="club {n}")
    sync_conversations(alice)
    group = Conversation.objects.get(owner_uid="alice", conversation_id="group_book-club")
    fake.clear_requests()
    response = admin_client.get(messages_url(group))
    assert texts(response) == ["club 3", "club 2", "club 1", "chapter 3?"]
    (request,) = message_requests(fake)
    assert request.path == "/v3/groups/book-club/messages"
    assert request.headers["onbehalfof"] == "alice"


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "e30:1a2b3c:deadbeef",
        # A real token with one character changed.
        "TAMPER",
        # Signed by this site, but not a position.
        signing.dumps({"c": 0, "i": "1"}, salt=CURSOR_SALT),
        # Signed with another salt (another signed value of the site).
        signing.dumps({"c": 0, "i": "1", "a": "prepend", "s": None, "d": "older"}),
    ],
)
def test_a_tampered_cursor_is_a_400_with_nothing_sent(admin_client, fake, direct, cursor):
    if cursor == "TAMPER":
        older = link(admin_client.get(messages_url(direct)), "older")
        assert older is not None
        token = older.split("cursor=")[1]
        cursor = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
        fake.clear_requests()
        MessageAccess.objects.all().delete()
    response = admin_client.get(messages_url(direct), {"cursor": cursor})
    assert response.status_code == 400
    assert "This page link is not valid" in response.content.decode()
    assert message_requests(fake) == []
    assert not MessageAccess.objects.exists()


def test_a_cursor_of_another_conversation_is_refused(admin_client, fake, direct, alice):
    older = link(admin_client.get(messages_url(direct)), "older")
    assert older is not None
    other = Conversation.objects.get(owner_uid="alice", conversation_id="alice_user_carol")
    fake.clear_requests()
    response = admin_client.get(messages_url(other, "?" + older.split("?")[1]))
    assert response.status_code == 400
    assert "another conversation" in response.content.decode()
    assert message_requests(fake) == []


# -- what a page shows --------------------------------------------------------------------------


def test_hostile_text_is_escaped(admin_client, fake, alice):
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    fake.add_user("mallory", hostile[:90])
    fake.send_message("mallory", to_user="alice", text=hostile)
    # API.md §4.3: data.attachments[] with url and name.
    fake.add_message(
        "mallory",
        to_user="alice",
        text=None,
        type="file",
        attachments=[{"url": "https://files.example/a?x=1&y=<2>", "name": hostile[:50]}],
    )
    sync_conversations(alice)
    conversation = Conversation.objects.get(owner_uid="alice", peer_uid="mallory")
    html = admin_client.get(messages_url(conversation)).content.decode()
    assert "<script>" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert 'href="https://files.example/a?x=1&amp;y=&lt;2&gt;"' in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_edits_deletions_attachments_and_actions_read_at_a_glance(admin_client, fake, alice):
    # API.md §4.3: editedAt/editedBy, deletedAt/deletedBy, attachments, action messages.
    fake.add_message("bob", to_user="alice", text="fixed typo", edited_at=1_700_000_000)
    gone = fake.send_message("bob", to_user="alice", text="oops, secret")
    fake.delete_message(gone["id"])
    fake.add_message(
        "alice",
        to_user="bob",
        text="the report",
        type="file",
        attachments=[{"url": "https://files.example/report.pdf", "name": "report.pdf"}],
    )
    fake.add_message(
        "alice",
        to_group="book-club",
        text=None,
        category="action",
        type="groupMember",
        action="added",
        on="carol",
    )
    sync_conversations(alice)
    bob = Conversation.objects.get(owner_uid="alice", conversation_id="alice_user_bob")
    html = admin_client.get(messages_url(bob)).content.decode()
    assert "oops, secret" not in html  # a deleted message shows as deleted, without text
    assert "This message was deleted." in html
    assert ">deleted</span>" in html
    assert ">edited</span>" in html
    assert "fixed typo" in html
    assert '<a href="https://files.example/report.pdf" rel="noopener noreferrer nofollow"' in html
    assert ">report.pdf</a>" in html
    assert 'cometchat-badge cometchat-tone-neutral">owner</span>' in html  # alice wrote it
    assert "Bob Stone (bob)" in html
    club = Conversation.objects.get(owner_uid="alice", conversation_id="group_book-club")
    html = admin_client.get(messages_url(club)).content.decode()
    assert re.search(r"<em>Alice Liddell added Carol Danvers</em>", html)


def test_an_upstream_failure_is_a_page_that_says_so(admin_client, fake, direct):
    fake.fail_next(status=500, path="/v3/users/bob/messages")
    response = admin_client.get(messages_url(direct))
    assert response.status_code == 502
    html = response.content.decode()
    assert "CometChat did not answer with the messages" in html
    assert "Try again in a moment" in html
    assert len(message_requests(fake)) == 1  # MAX_RETRIES 0: one try
    assert not MessageAccess.objects.exists()  # nothing was read


def test_an_owner_cometchat_does_not_know_is_a_page_too(admin_client, fake, direct):
    fake.fail_next(status=404, path="/v3/users/bob/messages")
    response = admin_client.get(messages_url(direct))
    assert response.status_code == 502
    assert "CometChat did not answer with the messages" in response.content.decode()


def test_a_page_that_fails_to_render_records_no_read(admin_client, fake, direct, monkeypatch):
    """The read's record commits with the page shown: a template that breaks (a 500) leaves no
    MessageAccess row claiming staff saw the messages."""
    from django_cometchat.admin import conversation_messages

    monkeypatch.setattr(conversation_messages, "TEMPLATE", "admin/no-such-template.html")
    admin_client.raise_request_exception = False
    response = admin_client.get(messages_url(direct))
    assert response.status_code == 500
    assert len(message_requests(fake)) == 1  # it was read upstream
    assert not MessageAccess.objects.exists()  # but not recorded as seen


# -- the record of reads ------------------------------------------------------------------------


def test_the_record_of_reads_is_listed_read_only_and_filtered(
    client, admin_client, django_user_model, fake, direct
):
    ann = staff(django_user_model, "support-ann", "view_conversation", "view_conversation_messages")
    client.force_login(ann)
    older = link(client.get(messages_url(direct)), "older")
    assert older is not None
    client.get(older)
    admin_client.get(messages_url(direct))  # the superuser "admin" reads once
    sync_conversations(owner_by_uid("bob"))
    bobs = Conversation.objects.get(owner_uid="bob", conversation_id="alice_user_bob")
    admin_client.get(messages_url(bobs))

    response = admin_client.get(ACCESSES)
    assert response.status_code == 200
    html = response.content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', html)
    assert headers == [
        "accessed_at",
        "staff_column",
        "owner_column",
        "conversation_column",
        "message_count",
        "cursor_column",
    ]
    assert "newest page" in html
    first_older = MessageAccess.objects.get(staff_username="support-ann", cursor__gt="")
    assert f"older than message {first_older.cursor}" in html
    assert 'name="action"' not in html  # no actions at all, so no bulk delete
    assert "/messageaccess/add/" not in html

    def listed(query: dict[str, str]) -> list[tuple[str, str]]:
        result = admin_client.get(ACCESSES, query).context["cl"].result_list
        return sorted((a.staff_username, a.owner_uid) for a in result)

    assert listed({"staff": "support-ann"}) == [("support-ann", "alice")] * 2
    assert listed({"owner_uid": "BOB"}) == [("admin", "bob")]
    assert listed({"staff": "admin", "owner_uid": "alice"}) == [("admin", "alice")]
    assert listed({"staff": "nobody"}) == []

    access = MessageAccess.objects.first()
    assert access is not None
    base = f"{ACCESSES}{access.pk}"
    assert admin_client.get(f"{base}/change/").status_code == 200  # read-only page
    assert admin_client.post(f"{base}/change/", {"message_count": 0}).status_code == 403
    assert admin_client.get(f"{base}/delete/").status_code == 403
    assert admin_client.post(f"{base}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get(f"{ACCESSES}add/").status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [str(access.pk)], "post": "yes"}
    admin_client.post(ACCESSES, bulk)
    assert MessageAccess.objects.count() == 4  # nothing deleted


def test_a_deleted_staff_account_keeps_its_reads(admin_client, django_user_model, fake, direct):
    ann = staff(django_user_model, "support-ann", "view_conversation", "view_conversation_messages")
    from django.test import Client

    reader = Client()
    reader.force_login(ann)
    reader.get(messages_url(direct))
    ann.delete()
    html = admin_client.get(ACCESSES).content.decode()
    assert "support-ann (account deleted)" in html
    listed = admin_client.get(ACCESSES, {"staff": "support-ann"}).context["cl"].result_list
    assert [a.staff_username for a in listed] == ["support-ann"]
