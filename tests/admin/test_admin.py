"""The admin: read-only pages, filters, search, actions through the fake CometChat, big tables."""

from __future__ import annotations

import re
import socket
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from html import unescape
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.admin import site as admin_site
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cometchat import services
from django_cometchat.admin import (
    ApproximateCount,
    ConversationAdmin,
    LargeTablePaginator,
    SyncRunAdmin,
    WebhookEventAdmin,
)
from django_cometchat.admin.dates import periods_with_rows
from django_cometchat.admin.inbox import avatar_html, how_long_ago
from django_cometchat.admin.pagination import estimated_row_count
from django_cometchat.admin.rendering import (
    TONES,
    clipped,
    describe_message,
    error_code_in,
    status_badge,
)
from django_cometchat.exceptions import CometChatUnknownOwner
from django_cometchat.models import (
    Conversation,
    ConversationSnapshot,
    SyncRun,
    UIDBinding,
    WebhookEvent,
)
from django_cometchat.services import owner_by_uid, sync_conversations
from django_cometchat.storage import content_hash
from django_cometchat.testing import Fault

pytestmark = pytest.mark.django_db

FAST = {"BACKOFF_FACTOR": 0.01, "BACKOFF_MAX": 0.05, "MAX_RETRIES": 1, "WEB_RETRY_BUDGET": 0.5}
CHANGELIST = "/admin/django_cometchat/conversation/"
SNAPSHOTS = "/admin/django_cometchat/conversationsnapshot/"
SYNC_RUNS = "/admin/django_cometchat/syncrun/"
T0 = datetime(2024, 5, 10, 12, 0, tzinfo=dt_timezone.utc)


@pytest.fixture(autouse=True)
def _uid_is_username(settings):
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        **FAST,
        "UID_RESOLVER": "tests.resolvers.uid_from_username",
    }


@pytest.fixture
def synced(fake, alice):
    """alice's 3 conversations (owner FK set) and bob's 2 (known by UID only, no FK)."""
    sync_conversations(alice)
    sync_conversations(owner_by_uid("bob"))
    return fake


def api_key(settings) -> str:
    return str(settings.COMETCHAT["API_KEY"])


def make(
    owner_uid: str = "alice",
    conversation_id: str = "alice_user_bob",
    *,
    owner: Any = None,
    kind: str = "user",
    unread: int = 0,
    updated_at: datetime = T0,
    peer_name: str = "Bob Stone",
    missing: bool = False,
    text: str = "hi",
    payload: dict[str, Any] | None = None,
) -> Conversation:
    peer = conversation_id.removeprefix("group_").split("_user_")[-1]
    if payload is None:
        payload = {
            "conversationId": conversation_id,
            "conversationType": kind,
            "unreadMessageCount": str(unread),
            "updatedAt": int(updated_at.timestamp()),
            "lastMessage": {
                "id": "1",
                "sender": peer,
                "category": "message",
                "type": "text",
                "data": {
                    "text": text,
                    "entities": {"sender": {"entity": {"uid": peer, "name": peer_name}}},
                },
                "sentAt": int(updated_at.timestamp()),
            },
            "conversationWith": {"uid": peer, "name": peer_name},
        }
    return Conversation.objects.create(
        owner=owner,
        owner_uid=owner_uid,
        conversation_id=conversation_id,
        conversation_type=kind,
        unread_message_count=unread,
        updated_at=updated_at,
        peer_uid="" if kind == "group" else peer,
        peer_guid=peer if kind == "group" else "",
        peer_name=peer_name,
        payload=payload,
        content_hash=content_hash(payload),
        fetched_at=updated_at + timedelta(minutes=5),
        missing_since=updated_at + timedelta(days=1) if missing else None,
    )


@pytest.fixture
def rows(alice):
    """Five rows covering every filter; ``rows["bob/alice"]`` is bob's view of alice."""
    return {
        "alice/bob": make(owner=alice, unread=1, updated_at=T0),
        "alice/carol": make(
            conversation_id="alice_user_carol",
            owner=alice,
            peer_name="Carol Danvers",
            updated_at=T0 - timedelta(days=40),
        ),
        "alice/book-club": make(
            conversation_id="group_book-club",
            owner=alice,
            kind="group",
            unread=2,
            peer_name="Book Club",
            updated_at=T0 - timedelta(days=400),
        ),
        "bob/alice": make(
            "bob", "alice_user_bob", peer_name="Alice Liddell", missing=True, updated_at=T0
        ),
        "bob/book-club": make(
            "bob",
            "group_book-club",
            kind="group",
            peer_name="Book Club",
            updated_at=T0 - timedelta(days=800),
        ),
    }


def shown(response) -> set[tuple[str, str]]:
    """(owner_uid, conversation_id) of the rows a changelist response lists."""
    return {(c.owner_uid, c.conversation_id) for c in response.context["cl"].result_list}


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def run_action(client, action: str, pks, *, url: str = CHANGELIST, **extra: str):
    data = {"action": action, "_selected_action": [str(pk) for pk in pks], **extra}
    return client.post(url, data, follow=True)


# -- the list -----------------------------------------------------------------------------------


def test_changelist_shows_the_columns(admin_client, rows):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', html)
    assert 'class="action-checkbox-column"' in html
    # An inbox: who, whose, the last message, the unread count; the rest is on the object page.
    assert headers == ["inbox_peer", "owner_column", "inbox_last_message", "inbox_unread"]
    for label in ("Conversation", "Owner UID", "Last message", "Unread"):
        assert f">{label}<" in html or f">{label}</a>" in html
    assert "alice-django" not in html  # the owner's Django user: on the object page
    assert "Carol Danvers" in html
    # Long values keep to two lines; the whole value (and the peer id) is in the title.
    assert '<span class="cometchat-clip" title="Carol Danvers (carol)">Carol Danvers</span>' in html
    # bob's view of alice is missing: a badge beside its name, saying so in words.
    missing = re.findall(
        r'<span class="cometchat-badge cometchat-tone-warning" title="([^"]+)"', html
    )
    assert len(missing) == 1
    assert missing[0].startswith("Missing from CometChat since ")
    assert "5 conversations" in html
    # Newest first: (-updated_at, -id).
    listed = [c.conversation_id for c in response.context["cl"].result_list]
    assert listed[-1] == "group_book-club"
    assert response.context["cl"].result_list[0].updated_at == T0


def inbox_row(response, conversation_id: str) -> str:
    """The HTML of the changelist row of ``conversation_id`` (found by its change link's pk)."""
    pk = Conversation.objects.get(conversation_id=conversation_id).pk
    html = response.content.decode()
    rows: list[str] = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    (row,) = [r for r in rows if f"/conversation/{pk}/change/" in r]
    return row


def test_the_list_reads_like_an_inbox(admin_client, alice, settings):
    now = timezone.now().replace(microsecond=0)
    payload = {
        "conversationId": "alice_user_bob",
        "conversationType": "user",
        "unreadMessageCount": "3",
        "updatedAt": int(now.timestamp()),
        "lastMessage": {
            "id": "7",
            "sender": "bob",
            "category": "message",
            "type": "text",
            "data": {
                "text": "first line\n\nsecond   line " + "x" * 400,
                "entities": {"sender": {"entity": {"uid": "bob", "name": "Bob Stone"}}},
            },
            "sentAt": int((now - timedelta(hours=3)).timestamp()),
        },
        # API.md §3: a user conversation's conversationWith carries the user's avatar URL.
        "conversationWith": {
            "uid": "bob",
            "name": "Bob Stone",
            "avatar": "https://cdn.example/b.png?a=1&b=2",
        },
    }
    make(owner=alice, unread=3, payload=payload, updated_at=now)
    group = {
        "conversationId": "group_book-club",
        "conversationType": "group",
        "updatedAt": int(now.timestamp()),
        # API.md §4.3: an action message (data.action, entities by/on); sent by the owner here.
        "lastMessage": {
            "id": "8",
            "sender": "alice",
            "category": "action",
            "type": "groupMember",
            "data": {
                "action": "added",
                "entities": {
                    "by": {"entity": {"uid": "alice", "name": "Alice"}},
                    "on": {"entity": {"uid": "carol", "name": "Carol"}},
                },
            },
            "sentAt": int((now - timedelta(days=2)).timestamp()),
        },
        # A group's picture is its icon (API.md §3); one that is no web URL is never shown.
        "conversationWith": {
            "guid": "book-club",
            "name": "Book Club",
            "icon": "javascript:alert(1)",
        },
    }
    make(
        conversation_id="group_book-club",
        owner=alice,
        kind="group",
        peer_name="Book Club",
        payload=group,
        updated_at=now - timedelta(days=2),
    )
    response = admin_client.get(CHANGELIST)
    bob = inbox_row(response, "alice_user_bob")
    assert (
        '<img class="cometchat-avatar" src="https://cdn.example/b.png?a=1&amp;b=2" alt="" '
        'width="32" height="32" loading="lazy" decoding="async" referrerpolicy="no-referrer">'
    ) in bob
    assert '">first line second line xxx' in bob
    assert '</time> · <span class="cometchat-sender">Bob Stone</span>' in bob
    preview = re.search(r'<span class="cometchat-preview" title="([^"]*)"', bob)
    assert preview is not None
    assert len(unescape(preview.group(1))) == 120  # one line, cut
    assert ">3\xa0hours ago</time>" in bob  # timesince joins with a no-break space
    assert '<span class="cometchat-unread" title="3 unread">3</span>' in bob
    club = inbox_row(response, "group_book-club")
    assert "javascript" not in club
    assert 'class="cometchat-avatar cometchat-avatar-initial" aria-hidden="true">B</span>' in club
    assert '">[action] Alice added Carol</span>' in club
    assert '<span class="cometchat-sender">Owner</span>' in club
    assert ">2\xa0days ago</time>" in club
    assert '<span class="cometchat-muted">0</span>' in club
    assert how_long_ago(T0, T0 + timedelta(seconds=59)) == "just now"
    assert how_long_ago(T0, T0 + timedelta(seconds=61)) == "1\xa0minute ago"
    assert how_long_ago(T0 + timedelta(days=1), T0) == "just now"  # a clock ahead of ours


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://cdn.example/a.png", True),
        ("HTTPS://cdn.example/a.png", True),
        ("javascript:alert(1)", False),
        ("data:image/png;base64,AAAA", False),
        ("//cdn.example/a.png", False),
        ("/media/a.png", False),
        ("https://cdn.example/a.png\n", False),
        ("https:///nohost", False),
        ("https://" + "a" * 3000, False),  # API.md §6: URLs are at most 3,000 characters
        (None, False),
    ],
)
def test_avatars_only_from_web_urls(url, shown):
    html = str(avatar_html(url, "zed"))
    if shown:
        assert f'src="{url}"' in html
    else:
        assert "<img" not in html
        assert ">Z</span>" in html


def test_the_inbox_escapes_what_the_payload_says(admin_client, alice):
    hostile = '"><script>alert(1)</script>'
    payload = {
        "conversationId": "alice_user_bob",
        "conversationType": "user",
        "lastMessage": {
            "id": "1",
            "sender": "bob",
            "category": "message",
            "type": "text",
            "data": {
                "text": hostile,
                "entities": {"sender": {"entity": {"uid": "bob", "name": hostile}}},
            },
            "sentAt": int(T0.timestamp()),
        },
        "conversationWith": {
            "uid": "bob",
            "name": hostile,
            "avatar": f"https://x.example/{hostile}",
        },
    }
    make(owner=alice, payload=payload, peer_name=hostile)
    html = admin_client.get(CHANGELIST).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_inbox_reads_a_few_keys_never_the_payload(admin_client, rows):
    with CaptureQueriesContext(connection) as captured:
        admin_client.get(CHANGELIST)
    # The page's rows: a few keys of the payload, read inside the database.
    (listing,) = [q["sql"] for q in captured.captured_queries if '"inbox_text"' in q["sql"]]
    assert "->" in listing or "#>>" in listing or "JSON_EXTRACT" in listing
    column = re.compile(r'(?:SELECT |, )"django_cometchat_conversation"\."payload"(?:,| FROM)')
    assert not column.search(listing)  # the payload column itself, never
    # The count reads no key at all (nor does any other query).
    others = [q["sql"] for q in captured.captured_queries if q["sql"] != listing]
    assert not [sql for sql in others if '"payload"' in sql]


def test_every_page_of_the_package_loads_its_stylesheet(admin_client, rows):
    conversation = Conversation.objects.first()
    assert conversation is not None
    for url in (CHANGELIST, f"{CHANGELIST}{conversation.pk}/change/", SNAPSHOTS, SYNC_RUNS):
        assert "django_cometchat/admin.css" in admin_client.get(url).content.decode(), url


def test_changelist_has_no_add_button_and_add_is_forbidden(admin_client, rows):
    html = admin_client.get(CHANGELIST).content.decode()
    assert f"{CHANGELIST}add/" not in html  # neither in the object tools nor in the sidebar
    assert "Add conversation" not in html
    for url in (CHANGELIST, SNAPSHOTS, SYNC_RUNS):
        assert admin_client.get(f"{url}add/").status_code == 403


def test_nothing_can_be_changed_or_deleted(admin_client, rows):
    row = rows["alice/bob"]
    change = f"{CHANGELIST}{row.pk}/change/"
    html = admin_client.get(change).content.decode()
    assert 'name="_save"' not in html
    assert "deletelink" not in html
    response = admin_client.post(change, {"peer_name": "Mallory", "unread_message_count": "9"})
    assert response.status_code == 403
    assert admin_client.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert (row.peer_name, row.unread_message_count) == ("Bob Stone", 1)
    # Not even through the bulk action: "Delete selected" is not offered.
    assert "delete_selected" not in admin_client.get(CHANGELIST).content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("conversation_type__exact=group", {"alice/book-club", "bob/book-club"}),
        ("conversation_type__exact=user", {"alice/bob", "alice/carol", "bob/alice"}),
        ("unread=yes", {"alice/bob", "alice/book-club"}),
        ("unread=no", {"alice/carol", "bob/alice", "bob/book-club"}),
        ("missing=yes", {"bob/alice"}),
        ("missing=no", {"alice/bob", "alice/carol", "alice/book-club", "bob/book-club"}),
        ("owner_uid=bob", {"bob/alice", "bob/book-club"}),
        ("owner_uid=BOB", {"bob/alice", "bob/book-club"}),  # UIDs are stored lowercased
        ("owner_uid=nobody", set()),
        ("conversation_type__exact=group&unread=no", {"bob/book-club"}),
        ("updated_at__year=2024", {"alice/bob", "alice/carol", "bob/alice"}),
        ("updated_at__year=2024&updated_at__month=5", {"alice/bob", "bob/alice"}),
        ("updated_at__year=2023&updated_at__month=4&updated_at__day=6", {"alice/book-club"}),
    ],
)
def test_filters(admin_client, rows, query, expected):
    response = admin_client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    assert shown(response) == {(rows[key].owner_uid, rows[key].conversation_id) for key in expected}


def test_filter_sidebar(admin_client, rows):
    html = admin_client.get(f"{CHANGELIST}?owner_uid=bob&unread=no").content.decode()
    for title in ("By type", "By unread messages", "By missing upstream", "By owner UID"):
        assert title in html
    # The owner filter is a text box that keeps the other filters, not a list of every owner.
    form = re.search(r'<form method="get" class="cometchat-input-filter".*?</form>', html, re.S)
    assert form is not None
    assert 'name="unread" value="no"' in form.group(0)
    assert 'type="search" name="owner_uid" value="bob"' in form.group(0)
    assert "alice-django" not in form.group(0)
    # The chosen owner shows as the selected choice, beside "All" to clear it.
    assert re.search(r'<li class="selected">\s*<a href="\?[^"]*">bob</a>', html)


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("alice_user_bob", {"alice/bob", "bob/alice"}),  # exact conversation id, every owner
        ("ALICE_USER_BOB", {"alice/bob", "bob/alice"}),
        ("bob", {"bob/alice", "bob/book-club", "alice/bob"}),  # owner UID, or "Bob Stone"
        ("bo", {"alice/bob", "alice/book-club", "bob/book-club"}),  # name prefixes only
        ("ob", set()),  # a prefix, not "contains"
        ("car", {"alice/carol"}),
        ('"book club"', {"alice/book-club", "bob/book-club"}),
        ("book alice", {"alice/book-club"}),  # words are ANDed
        ("alice_user", set()),  # ids match exactly
    ],
)
def test_search(admin_client, rows, search, expected):
    response = admin_client.get(CHANGELIST, {"q": search})
    assert response.status_code == 200
    assert shown(response) == {(rows[key].owner_uid, rows[key].conversation_id) for key in expected}


def test_search_escapes_like_wildcards(admin_client, rows):
    make("carol", "carol_user_x", peer_name="100% Real")
    assert shown(admin_client.get(CHANGELIST, {"q": "%"})) == set()
    assert shown(admin_client.get(CHANGELIST, {"q": "100%"})) == {("carol", "carol_user_x")}
    assert shown(admin_client.get(CHANGELIST, {"q": "_"})) == set()


def test_date_hierarchy_offers_the_periods_with_rows(admin_client, rows):
    html = admin_client.get(CHANGELIST).content.decode()
    nav = re.search(r'<nav class="toplinks"[^>]*>(.*?)</nav>', html, re.S)
    assert nav is not None
    assert re.findall(r">(\d{4})</a>", nav.group(1)) == ["2022", "2023", "2024"]
    html = admin_client.get(f"{CHANGELIST}?updated_at__year=2024").content.decode()
    nav = re.search(r'<nav class="toplinks"[^>]*>(.*?)</nav>', html, re.S)
    assert nav is not None
    assert re.findall(r">([A-Z][a-z]+ 2024)</a>", nav.group(1)) == ["March 2024", "May 2024"]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/New_York"])
@pytest.mark.parametrize("kind", ["year", "month", "day"])
def test_date_probes_match_djangos_distinct_dates(zone, kind):
    # Rows around year, month and day boundaries, sparse periods in between.
    moments = [
        datetime(2021, 12, 31, 23, 30, tzinfo=dt_timezone.utc),
        datetime(2022, 1, 1, 3, 0, tzinfo=dt_timezone.utc),
        datetime(2022, 3, 12, 4, 59, tzinfo=dt_timezone.utc),
        datetime(2022, 3, 13, 7, 0, tzinfo=dt_timezone.utc),
        datetime(2022, 11, 6, 4, 30, tzinfo=dt_timezone.utc),
        datetime(2024, 2, 29, 18, 45, tzinfo=dt_timezone.utc),
    ]
    for n, moment in enumerate(moments):
        make("alice", f"alice_user_p{n}", updated_at=moment)
    queryset = Conversation.objects.all()
    with timezone.override(zone):
        if kind == "day":
            queryset = queryset.filter(updated_at__year=2022, updated_at__month=3)
        expected = list(queryset.datetimes("updated_at", kind))
        assert periods_with_rows(queryset, "updated_at", kind) == expected
        assert periods_with_rows(queryset.none(), "updated_at", kind) == []


def test_sorting_is_limited_to_indexed_columns(admin_client, rows):
    html = admin_client.get(CHANGELIST).content.decode()
    sortable = set(re.findall(r'class="sortable[^"]*column-(\w+)', html))
    assert sortable == {"inbox_peer", "inbox_last_message"}
    response = admin_client.get(CHANGELIST, {"o": "1"})  # peer, ascending
    names = [c.peer_name for c in response.context["cl"].result_list]
    assert names == sorted(names)
    response = admin_client.get(CHANGELIST, {"o": "3"})  # last message (updated), ascending
    times = [c.updated_at for c in response.context["cl"].result_list]
    assert times == sorted(times)


# -- the detail page ----------------------------------------------------------------------------


def test_detail_shows_the_payload_pretty_printed_and_escaped(admin_client, alice):
    row = make(owner=alice, text="<script>alert(1)</script> & more", peer_name="Bob <b>Stone</b>")
    html = admin_client.get(f"{CHANGELIST}{row.pk}/change/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "<b>Stone</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    pre = re.search(r'<pre class="cometchat-json"[^>]*>(.*?)</pre>', html, re.S)
    assert pre is not None
    lines = pre.group(1).splitlines()
    assert lines[0] == "{"
    assert lines[1] == "  &quot;conversationId&quot;: &quot;alice_user_bob&quot;,"
    top_keys = re.findall(r"^  &quot;(\w+)&quot;", pre.group(1), re.M)
    assert top_keys == sorted(top_keys)  # sort_keys
    assert "    &quot;category&quot;: &quot;message&quot;," in lines  # indent=2, nested


def test_detail_shows_the_last_message_as_text(admin_client, synced):
    row = Conversation.objects.get(owner_uid="alice", conversation_id="alice_user_bob")
    html = admin_client.get(f"{CHANGELIST}{row.pk}/change/").content.decode()
    block = re.search(r'<div class="cometchat-last-message">(.*?)</div>', html, re.S)
    assert block is not None
    assert "<strong>Bob Stone (bob)</strong>" in block.group(1)
    assert ">hi alice</p>" in block.group(1)
    assert row.last_message is not None
    sent = timezone.localtime(datetime.fromtimestamp(row.last_message["sentAt"], dt_timezone.utc))
    assert str(sent.year) in block.group(1)
    assert "alice (alice-django)" in html
    assert "Bob Stone (UID bob)" in html


def test_detail_without_a_last_message(admin_client):
    payload = {"conversationId": "group_g", "conversationType": "group", "updatedAt": 1}
    row = make("alice", "group_g", kind="group", peer_name="G", payload=payload)
    html = admin_client.get(f"{CHANGELIST}{row.pk}/change/").content.decode()
    assert "No last message" in html


def test_detail_lists_the_newest_history_and_links_to_all_of_it(admin_client, rows):
    row = rows["alice/bob"]
    other = rows["alice/carol"]
    for n in range(55):
        ConversationSnapshot.objects.create(
            conversation=row,
            payload={"unreadMessageCount": str(n), "lastMessage": {"data": {"text": f"m{n}"}}},
            content_hash=f"hash-{n:02d}",
            fetched_at=T0 + timedelta(minutes=n),
        )
    ConversationSnapshot.objects.create(
        conversation=other, payload={}, content_hash="other", fetched_at=T0
    )
    response = admin_client.get(f"{CHANGELIST}{row.pk}/change/")
    html = response.content.decode()
    hashes = re.findall(r"hash-(\d\d)", html)
    assert hashes == [f"{n:02d}" for n in range(54, 4, -1)]  # 50, newest first
    assert "unread 54 · m54" in html
    assert "55 stored, the newest 50 are listed below." in html
    link = f"{SNAPSHOTS}?conversation={row.pk}"
    assert f'href="{link}"' in html
    listing = admin_client.get(link)
    assert listing.status_code == 200
    listed = list(listing.context["cl"].result_list)
    assert len(listed) == 55
    assert {s.conversation_id for s in listed} == {row.pk}
    assert [s.content_hash for s in listed[:2]] == ["hash-54", "hash-53"]
    assert str(row) in listing.content.decode()  # the filter names the conversation
    snapshot = listed[0]
    detail = admin_client.get(f"{SNAPSHOTS}{snapshot.pk}/change/").content.decode()
    assert "&quot;unreadMessageCount&quot;: &quot;54&quot;" in detail
    assert 'name="_save"' not in detail


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"category": "message", "type": "text", "data": {"text": "hello"}}, "hello"),
        (
            {
                "category": "message",
                "type": "image",
                "data": {"attachments": [{"name": "cat.png", "url": "https://x/cat.png"}]},
            },
            "[image] cat.png",
        ),
        ({"category": "message", "type": "audio", "data": {"url": "https://x"}}, "[audio]"),
        (
            {
                "category": "action",
                "type": "groupMember",
                "data": {
                    "action": "added",
                    "entities": {
                        "by": {"entity": {"uid": "alice", "name": "Alice"}},
                        "on": {"entity": {"uid": "bob", "name": "Bob"}},
                    },
                },
            },
            "[action] Alice added Bob",
        ),
        (
            {
                "category": "action",
                "type": "groupMember",
                "data": {
                    "action": "joined",
                    "entities": {
                        "by": {"entity": {"uid": "carol", "name": "Carol"}},
                        "on": {"entity": {"uid": "carol", "name": "Carol"}},
                        "for": {"entity": {"guid": "book-club", "name": "Book Club"}},
                    },
                },
            },
            "[action] Carol joined",
        ),
        ({"category": "action", "type": "message", "data": {"action": "edited"}}, None),
        ({"category": "call", "type": "video", "data": {"action": "ended"}}, "[video call: ended]"),
        ({"category": "custom", "type": "location", "data": {"customData": {}}}, None),
        ({"category": "message", "type": "text", "deletedAt": 5, "data": {}}, "[deleted message]"),
        ({"category": "interactive", "type": "form", "data": {}}, "[interactive: form]"),
    ],
)
def test_describe_message(message, text):
    described = describe_message(message)
    if text is None:
        assert described.startswith("[")
        assert message["type"] in described or message["data"]["action"] in described
    else:
        assert described == text


# -- actions ------------------------------------------------------------------------------------


def test_refresh_fetches_the_selected_rows_through_the_fake(admin_client, synced):
    synced.send_message("bob", to_user="alice", text="are you there?")
    synced.send_message("alice", to_user="bob", text="yes")  # bob's view changes too
    alice_bob = Conversation.objects.get(owner_uid="alice", conversation_id="alice_user_bob")
    bob_alice = Conversation.objects.get(owner_uid="bob", conversation_id="alice_user_bob")
    untouched = Conversation.objects.get(owner_uid="alice", conversation_id="alice_user_carol")
    assert bob_alice.owner is None  # refreshed by UID
    synced.clear_requests()
    response = run_action(admin_client, "refresh_from_cometchat", [alice_bob.pk, bob_alice.pk])
    assert response.status_code == 200
    assert messages_of(response) == ["Refreshed 2 conversations from CometChat."]
    assert sorted(r.path for r in synced.requests) == [
        "/v3/users/alice/conversation",  # on behalf of bob
        "/v3/users/bob/conversation",  # on behalf of alice
    ]
    alice_bob.refresh_from_db()
    bob_alice.refresh_from_db()
    assert alice_bob.last_message is not None
    assert alice_bob.last_message["data"]["text"] == "yes"
    assert bob_alice.last_message is not None
    assert bob_alice.last_message["data"]["text"] == "yes"
    assert bob_alice.owner is None
    assert untouched.fetched_at == Conversation.objects.get(pk=untouched.pk).fetched_at


def test_refresh_reports_a_row_that_fails_and_goes_on(admin_client, synced, settings):
    gone = make(owner=None, owner_uid="alice", conversation_id="alice_user_zed")
    good = Conversation.objects.get(owner_uid="alice", conversation_id="group_book-club")
    response = run_action(admin_client, "refresh_from_cometchat", [gone.pk, good.pk])
    shown_messages = messages_of(response)
    assert shown_messages[0] == "Refreshed 1 conversation from CometChat."
    assert shown_messages[1].startswith(
        "Could not refresh alice_user_zed (owner alice): ERR_UID_NOT_FOUND (HTTP 404)"
    )
    assert len(shown_messages) == 2
    assert api_key(settings) not in response.content.decode()


def test_refresh_stops_at_once_when_cometchat_is_unreachable(admin_client, synced, settings):
    pks = list(Conversation.objects.filter(owner_uid="alice").values_list("pk", flat=True))
    with socket.socket() as closed:  # a port nothing listens on: connection refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.COMETCHAT = {**settings.COMETCHAT, "BASE_URL": f"http://127.0.0.1:{port}/v3"}
    response = run_action(admin_client, "refresh_from_cometchat", pks)
    shown_messages = messages_of(response)
    assert len(shown_messages) == 2
    assert shown_messages[0].endswith(
        "could not reach CometChat at 127.0.0.1: the connection was refused"
    )
    assert shown_messages[1] == (
        "Stopped after that error: 2 more conversation(s) were not tried. Try again once "
        "CometChat answers."
    )
    assert api_key(settings) not in response.content.decode()


def test_refresh_goes_on_past_a_5xx_until_three_rows_in_a_row_fail(admin_client, synced, settings):
    """A 500 may be about one row's data (batches.stops_batch): the others are still tried."""
    pks = list(Conversation.objects.filter(owner_uid="alice").values_list("pk", flat=True))
    assert len(pks) == 3
    synced.inject(Fault("status", status=500, times=10))
    response = run_action(admin_client, "refresh_from_cometchat", pks)
    shown_messages = messages_of(response)
    assert len(shown_messages) == 3  # each row tried; the third in a row would stop the rest
    assert all("ERR_MISSION_FAILED (HTTP 500)" in message for message in shown_messages)
    assert api_key(settings) not in response.content.decode()


@pytest.mark.parametrize("action", ["refresh_from_cometchat", "sync_owners"])
def test_after_a_refused_key_the_admin_says_the_key_is_wrong(admin_client, synced, action):
    """AUTH_ERR_* (API.md §5: 401 AUTH_ERR_APIKEY_NOT_FOUND for a key the app does not have) is
    no outage: waiting for CometChat to answer fixes nothing."""
    pks = list(Conversation.objects.values_list("pk", flat=True))
    synced.inject(Fault("status", status=401, times=10))
    shown_messages = messages_of(run_action(admin_client, action, pks))
    assert "AUTH_ERR_APIKEY_NOT_FOUND (HTTP 401)" in shown_messages[0]
    assert shown_messages[-1].startswith("Stopped after that error: ")
    assert 'CometChat refused the API key: check COMETCHAT["API_KEY"]' in shown_messages[-1]
    assert "once CometChat answers" not in " ".join(shown_messages)


def test_a_bad_api_key_is_named_by_its_code_never_shown(admin_client, synced, settings):
    wrong = "sk-wrong-key-0123456789"
    settings.COMETCHAT = {**settings.COMETCHAT, "API_KEY": wrong}
    row = Conversation.objects.get(owner_uid="alice", conversation_id="alice_user_bob")
    response = run_action(admin_client, "refresh_from_cometchat", [row.pk])
    shown_messages = messages_of(response)
    assert "AUTH_ERR_APIKEY_NOT_FOUND (HTTP 401)" in shown_messages[0]
    html = response.content.decode()
    assert wrong not in html
    assert synced.api_key not in html


def test_refresh_refuses_too_many_rows(admin_client, synced, monkeypatch):
    monkeypatch.setattr(ConversationAdmin, "refresh_limit", 2)
    synced.clear_requests()
    pks = Conversation.objects.values_list("pk", flat=True)
    response = run_action(admin_client, "refresh_from_cometchat", pks)
    assert messages_of(response) == [
        "Select at most 2 conversations to refresh at once; nothing was refreshed. For more, "
        "use “Sync these owners” or the cometchat_sync command."
    ]
    assert synced.requests == []
    # "Select all" across pages is bounded the same way.
    response = run_action(admin_client, "refresh_from_cometchat", [pks[0]], select_across="1")
    assert messages_of(response)[0].startswith("Select at most 2 conversations")


def test_refresh_across_every_page(admin_client, synced):
    response = run_action(
        admin_client,
        "refresh_from_cometchat",
        [Conversation.objects.first().pk],  # type: ignore[union-attr]
        select_across="1",
    )
    assert messages_of(response) == ["Refreshed 5 conversations from CometChat."]


def test_sync_these_owners_creates_admin_sync_runs(admin_client, synced, alice):
    SyncRun.objects.all().delete()
    synced.send_message("carol", to_user="bob", text="new for bob")
    picked = Conversation.objects.filter(conversation_id="group_book-club")  # alice's and bob's
    response = run_action(admin_client, "sync_owners", picked.values_list("pk", flat=True))
    assert messages_of(response) == [
        "Synced 2 owners from CometChat: alice (0 new, 0 updated, 3 unchanged, 0 missing); "
        "bob (1 new, 0 updated, 2 unchanged, 0 missing)."
    ]
    runs = {run.owner_uid: run for run in SyncRun.objects.all()}
    assert set(runs) == {"alice", "bob"}
    assert {run.trigger for run in runs.values()} == {SyncRun.Trigger.ADMIN}
    assert {run.status for run in runs.values()} == {SyncRun.Status.SUCCEEDED}
    assert runs["alice"].owner == alice
    assert runs["bob"].owner is None
    assert Conversation.objects.filter(owner_uid="bob").count() == 3


def test_sync_these_owners_reports_failures_by_code(admin_client, synced, settings):
    SyncRun.objects.all().delete()
    synced.inject(Fault("status", status=429, headers={"Retry-After": "30"}, times=20))
    response = run_action(
        admin_client, "sync_owners", Conversation.objects.values_list("pk", flat=True)
    )
    shown_messages = messages_of(response)
    assert shown_messages[0].startswith("Could not sync alice: ERR_TOO_MANY_REQUESTS (HTTP 429)")
    assert shown_messages[1].startswith("Stopped after that error: 1 more owner(s)")
    run = SyncRun.objects.get()
    assert (run.status, run.trigger, run.error_code) == (
        SyncRun.Status.FAILED,
        SyncRun.Trigger.ADMIN,
        "ERR_TOO_MANY_REQUESTS",
    )
    assert api_key(settings) not in response.content.decode()


def test_sync_these_owners_refuses_too_many_owners(admin_client, synced, monkeypatch):
    monkeypatch.setattr(ConversationAdmin, "sync_owner_limit", 1)
    SyncRun.objects.all().delete()
    response = run_action(
        admin_client, "sync_owners", Conversation.objects.values_list("pk", flat=True)
    )
    assert messages_of(response)[0].startswith(
        "Select the conversations of at most 1 owners to sync at once; nothing was synced."
    )
    assert not SyncRun.objects.exists()


def test_view_only_staff_browse_but_cannot_refresh(client, django_user_model, synced):
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_conversation", "view_conversationsnapshot", "view_syncrun"]
        )
    )
    client.force_login(viewer)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Bob Stone" in html
    assert "refresh_from_cometchat" not in html
    assert "sync_owners" not in html
    synced.clear_requests()
    row = Conversation.objects.first()
    assert row is not None
    response = run_action(client, "refresh_from_cometchat", [row.pk])
    assert synced.requests == []
    assert client.get(f"{CHANGELIST}{row.pk}/change/").status_code == 200
    assert client.get(SYNC_RUNS).status_code == 200


# -- sync runs and snapshots --------------------------------------------------------------------


def test_sync_run_list_filters_and_search(admin_client, synced, alice):
    failed = SyncRun.objects.create(
        owner_uid="carol",
        trigger=SyncRun.Trigger.COMMAND,
        status=SyncRun.Status.FAILED,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=2.5),
        error_code="ERR_UID_NOT_FOUND",
        error_message="GET /users/carol/conversation -> HTTP 404 ERR_UID_NOT_FOUND: gone",
    )
    response = admin_client.get(SYNC_RUNS)
    html = response.content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', html)
    assert headers == [
        "started_at",
        "owner_column",
        "trigger",
        "status_column",
        "duration",
        "changes",
    ]
    for header in ("Started at", "Owner UID", "Trigger", "Status", "Duration", "Changes"):
        assert f">{header}<" in html or f">{header}</a>" in html
    assert "2.50 s" in html
    # The failure reads at a glance: a red badge, the code beside it, the message on hover.
    assert (
        '<span class="cometchat-badge cometchat-tone-error">Failed</span> '
        '<code class="cometchat-code" title="GET /users/carol/conversation -&gt; HTTP 404 '
        'ERR_UID_NOT_FOUND: gone">ERR_UID_NOT_FOUND</code>'
    ) in html
    assert html.count('<span class="cometchat-badge cometchat-tone-success">Succeeded</span>') == 2
    assert ">3 new<" in html  # alice's sync created her three conversations
    assert ">none<" in html  # the failed run changed nothing
    assert f"{SYNC_RUNS}add/" not in html

    def owners(query):
        return sorted(
            r.owner_uid for r in admin_client.get(SYNC_RUNS + query).context["cl"].result_list
        )

    assert owners("?status__exact=failed") == ["carol"]
    assert owners("?status__exact=succeeded") == ["alice", "bob"]
    assert owners("?trigger__exact=command") == ["carol"]
    assert owners("?q=ALICE") == ["alice"]
    assert owners("?q=alice+carol") == ["alice", "carol"]
    assert owners("?q=ali") == []
    detail = admin_client.get(f"{SYNC_RUNS}{failed.pk}/change/").content.decode()
    assert "gone" in detail
    assert '<span class="cometchat-badge cometchat-tone-error">Failed</span>' in detail
    assert 'name="_save"' not in detail
    assert admin_client.post(f"{SYNC_RUNS}{failed.pk}/delete/", {"post": "yes"}).status_code == 403


WEBHOOK_EVENTS = "/admin/django_cometchat/webhookevent/"


def test_webhook_event_list_shows_status_badges_and_the_code_of_a_failure(admin_client):
    # The operator's text of a failed refresh, as services.finish_webhook_event stores it.
    unknown = services.operator_message(
        CometChatUnknownOwner(
            "The UID bob does not exist.",
            uid="bob",
            endpoint="GET /users/bob/conversations/alice_user_bob",
            status=404,
            code="ERR_UID_NOT_FOUND",
        )
    )
    assert not unknown.startswith("ERR_")  # the code is inside the text, not in front of it
    statuses = {
        "processed": "",
        "received": "",
        "processing": "",
        "ignored": "the delivery is for another CometChat app",
        "failed": unknown,
        "deferred": "ERR_TOO_MANY_REQUESTS (HTTP 429) on GET /users/bob/conversation",
    }
    for status, error in statuses.items():
        WebhookEvent.objects.create(
            trigger="message_sent", received_at=T0, status=status, error=error
        )
    WebhookEvent.objects.create(  # refused: a reason without a code
        trigger="", received_at=T0, status="failed", error="The body is <not> JSON."
    )
    html = admin_client.get(WEBHOOK_EVENTS).content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', html)
    assert headers == ["received_at", "trigger_column", "status_column", "error_summary"]
    badges = re.findall(r'<span class="cometchat-badge cometchat-tone-(\w+)">([^<]+)</span>', html)
    assert sorted(badges) == sorted(
        [
            ("error", "Failed"),
            ("error", "Failed"),
            ("neutral", "Ignored"),
            ("warning", "Deferred"),  # waiting for cometchat_refresh_stale
            ("pending", "Processing"),
            ("pending", "Received"),
            ("success", "Processed"),
        ]
    )
    codes = re.findall(r'<code class="cometchat-code" title="([^"]*)">([^<]+)</code>', html)
    assert [(unescape(title), code) for title, code in codes] == [(unknown, "ERR_UID_NOT_FOUND")]
    assert "The body is &lt;not&gt; JSON." in html  # escaped, and no code invented for it
    assert "another CometChat app" in html  # why an event was ignored


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (
            "ERR_CONVERSATION_NOT_ACCESSIBLE (HTTP 403) on GET /users/a/conversations/x: no",
            ("ERR_CONVERSATION_NOT_ACCESSIBLE"),
        ),
        (
            "The key is wrong [AUTH_ERR_APIKEY_NOT_FOUND (HTTP 401) on GET /conversations]",
            ("AUTH_ERR_APIKEY_NOT_FOUND"),
        ),
        ("The body is not JSON.", ""),
        ("MY_ERR_THING is not a code", ""),
    ],
)
def test_the_code_of_a_stored_error_text(text, code):
    assert error_code_in(text) == code


def test_a_badge_escapes_and_a_tone_it_does_not_know_is_neutral():
    tones = {"failed": "error", "odd": "purple"}
    assert status_badge("failed", "Failed", tones) == (
        '<span class="cometchat-badge cometchat-tone-error">Failed</span>'
    )
    assert status_badge("odd", "Odd", tones) == (
        '<span class="cometchat-badge cometchat-tone-neutral">Odd</span>'
    )
    assert status_badge("new", "<b>New</b>", tones) == (
        '<span class="cometchat-badge cometchat-tone-neutral">&lt;b&gt;New&lt;/b&gt;</span>'
    )
    assert clipped('a_"b"_<c>') == (
        '<span class="cometchat-clip" title="a_&quot;b&quot;_&lt;c&gt;">'
        "a_<wbr>&quot;b&quot;_<wbr>&lt;c&gt;</span>"
    )


def test_every_status_of_the_models_has_a_tone():
    """A status added to a model later reads in a neutral badge; these are the ones coloured."""
    assert set(SyncRunAdmin.status_tones) >= {"queued", "running", "succeeded", "failed"}
    assert set(WebhookEventAdmin.status_tones) >= {
        "received",
        "processing",
        "processed",
        "ignored",
        "failed",
    }
    assert set(SyncRunAdmin.status_tones.values()) | set(
        WebhookEventAdmin.status_tones.values()
    ) <= set(TONES)


def test_snapshot_and_binding_lists_keep_to_a_few_columns(admin_client, synced):
    html = admin_client.get(SNAPSHOTS).content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', html)
    assert headers == ["fetched_at", "conversation_column", "owner_column", "summary"]
    snapshot = ConversationSnapshot.objects.first()
    assert snapshot is not None
    assert snapshot.content_hash not in html  # on the snapshot's page
    assert (
        snapshot.content_hash
        in admin_client.get(f"{SNAPSHOTS}{snapshot.pk}/change/").content.decode()
    )
    html = admin_client.get("/admin/django_cometchat/uidbinding/").content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', html)
    assert headers == ["uid_column", "user_column", "bound_at"]


def test_badges_and_long_values_cost_no_query_per_row(admin_client, django_user_model):
    def populate(numbers: range) -> None:
        for n in numbers:
            user = django_user_model.objects.create(username=f"user{n}-django")
            UIDBinding.objects.create(uid=f"user{n}", user=user)
            WebhookEvent.objects.create(
                trigger="message_sent",
                received_at=T0,
                status=("failed", "processed", "received")[n % 3],
                error="ERR_UID_NOT_FOUND (HTTP 404) on GET /conversations: gone" if n % 3 else "",
            )

    urls = ["/admin/django_cometchat/uidbinding/", WEBHOOK_EVENTS]
    populate(range(3))
    few = [count_queries(admin_client, url) for url in urls]
    populate(range(3, 30))
    assert [count_queries(admin_client, url) for url in urls] == few


def test_the_api_key_never_appears_in_any_admin_page(admin_client, synced, settings):
    key = api_key(settings)
    SyncRun.objects.create(
        owner_uid="x",
        status=SyncRun.Status.FAILED,
        started_at=T0,
        error_code="AUTH_ERR_APIKEY_NOT_FOUND",
        error_message="The apiKey provided does not exist for this app.",
    )
    conversation = Conversation.objects.first()
    snapshot = ConversationSnapshot.objects.first()
    run = SyncRun.objects.first()
    assert conversation is not None
    assert snapshot is not None
    assert run is not None
    pages = [
        "/admin/",
        "/admin/django_cometchat/",
        CHANGELIST,
        f"{CHANGELIST}?q=alice",
        f"{CHANGELIST}{conversation.pk}/change/",
        f"{CHANGELIST}{conversation.pk}/history/",
        SNAPSHOTS,
        f"{SNAPSHOTS}{snapshot.pk}/change/",
        SYNC_RUNS,
        f"{SYNC_RUNS}{run.pk}/change/",
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert key not in response.content.decode(), page


# -- big tables ---------------------------------------------------------------------------------


def populate(count: int, alice: Any) -> None:
    """``count`` rows with and without owners, spanning the same years whatever ``count``.

    The first and the last rows match every filter the tests use, so whatever ``count``, each
    filtered list spans the same periods (the date hierarchy's queries depend on the span).
    """
    span = (T0 - datetime(2022, 1, 15, tzinfo=dt_timezone.utc)) / max(1, count - 1)
    for n in range(count):
        at = T0 - span * n
        edge = n in (0, count - 1)
        make(
            owner_uid="alice" if n % 2 or edge else f"owner{n}",
            owner=alice if n % 2 else None,
            conversation_id=f"c_user_{n}",
            updated_at=at,
            unread=1 if edge else n % 3,
        )
        ConversationSnapshot.objects.create(
            conversation_id=Conversation.objects.get(conversation_id=f"c_user_{n}").pk,
            payload={"n": n},
            content_hash=str(n),
            fetched_at=at,
        )
        SyncRun.objects.create(
            owner=alice if n % 2 else None,
            owner_uid="alice",
            started_at=at,
            finished_at=at + timedelta(seconds=1),
        )


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize(
    "url",
    [
        CHANGELIST,
        f"{CHANGELIST}?unread=yes&conversation_type__exact=user",
        f"{CHANGELIST}?q=alice",
        f"{CHANGELIST}?updated_at__year=2023",
        SNAPSHOTS,
        SYNC_RUNS,
    ],
)
def test_query_count_does_not_grow_with_rows(admin_client, alice, url):
    populate(5, alice)
    few = count_queries(admin_client, url)
    Conversation.objects.all().delete()
    SyncRun.objects.all().delete()
    populate(50, alice)
    assert count_queries(admin_client, url) == few


def test_the_count_is_capped_without_counting_every_row(admin_client, alice, monkeypatch):
    populate(8, alice)
    monkeypatch.setattr(ConversationAdmin, "count_limit", 5)
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(f"{CHANGELIST}?missing=no")
    cl = response.context["cl"]
    assert cl.result_count == 5
    assert str(cl.result_count) == "5+"
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len(counts) == 1
    assert re.search(r"LIMIT 6\b", counts[0])
    html = response.content.decode()
    assert "5+ conversations" in html
    assert "2 conversations" in admin_client.get(f"{CHANGELIST}?unread=no").content.decode()


def test_paginator_counts():
    assert str(ApproximateCount(1_000_000, estimated=True)) == "~1,000,000"
    assert str(ApproximateCount(10_000, estimated=False)) == "10,000+"
    assert ApproximateCount(12, estimated=True) + 1 == 13
    for n in range(4):
        make("alice", f"alice_user_{n}")
    paginator = LargeTablePaginator(Conversation.objects.order_by("id"), 2, count_limit=3)
    assert paginator.count == 3
    assert not paginator.count_is_exact
    assert paginator.num_pages == 2
    # An estimate above the limit links pages of the first count_limit rows only.
    estimated = LargeTablePaginator(Conversation.objects.order_by("id"), 2, count_limit=3)
    estimated.count = ApproximateCount(1_000_000, estimated=True)
    assert estimated.num_pages == 2
    assert list(estimated.get_elided_page_range(1)) == [1, 2]
    exact = LargeTablePaginator(Conversation.objects.order_by("id"), 2, count_limit=10)
    assert exact.count == 4
    assert exact.count_is_exact
    assert LargeTablePaginator([1, 2, 3], 2).count == 3


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_class estimates are PostgreSQL's")
def test_unfiltered_count_on_postgresql_is_the_planners_estimate(admin_client, alice, monkeypatch):
    populate(30, alice)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Conversation._meta.db_table}")
    assert estimated_row_count(Conversation.objects.all()) == 30
    assert estimated_row_count(Conversation.objects.filter(unread_message_count=1)) is None
    monkeypatch.setattr(ConversationAdmin, "count_limit", 10)
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(CHANGELIST)
    assert not [q for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert str(response.context["cl"].result_count) == "~30"
    assert "~30 conversations" in response.content.decode()


@pytest.mark.parametrize("action", ["refresh_from_cometchat", "sync_owners"])
def test_actions_without_configuration_say_so_instead_of_a_500(
    admin_client, synced, settings, monkeypatch, action
):
    monkeypatch.delenv("COMETCHAT_API_KEY", raising=False)
    settings.COMETCHAT = {**settings.COMETCHAT, "API_KEY": None}
    synced.clear_requests()
    pks = list(Conversation.objects.filter(owner_uid="alice").values_list("pk", flat=True))
    response = run_action(admin_client, action, pks)
    assert response.status_code == 200
    shown = messages_of(response)
    assert shown[0].startswith("Could not ")
    assert 'COMETCHAT["API_KEY"] is not set' in shown[0]
    assert "were not tried" in shown[1]
    assert shown[1].endswith("Fix that setting, then try again.")
    assert synced.requests == []


def test_sync_of_an_owner_cometchat_does_not_know_says_where_its_uid_came_from(
    admin_client, fake, django_user_model
):
    ghost = django_user_model.objects.create_user(username="ghost-django")
    make(owner=ghost, owner_uid="ghost", conversation_id="bob_user_ghost")
    services.owner_for(ghost)  # the UID is bound to the user, as a first sync would have done
    response = run_action(
        admin_client, "sync_owners", Conversation.objects.values_list("pk", flat=True)
    )
    (shown,) = messages_of(response)
    assert shown.startswith("Could not sync ghost: CometChat has no user with UID 'ghost'.")
    assert "COMETCHAT[\"UID_RESOLVER\"] = 'tests.resolvers.uid_from_username'" in shown
    assert "Django user 'ghost-django'" in shown


def test_uid_bindings_are_listed_read_only_and_searchable(admin_client, synced, alice):
    url = "/admin/django_cometchat/uidbinding/"
    html = admin_client.get(url).content.decode()
    assert ">alice<" in html
    assert "alice-django" in html
    assert "Add UID binding" not in html
    assert admin_client.get(url, {"q": "ALICE"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"q": "nobody"}).context["cl"].result_count == 0
    binding = UIDBinding.objects.get(uid="alice")
    page = admin_client.get(f"{url}{binding.pk}/change/").content.decode()
    assert 'name="_save"' not in page  # nothing here edits a binding


def test_a_host_read_only_admin_without_fieldsets_shows_every_field_read_only(rf, admin_user):
    from django.contrib.admin import AdminSite

    from django_cometchat.admin.base import ReadOnlyAdmin

    class Bindings(ReadOnlyAdmin):  # a host's reuse: no fields, no fieldsets
        pass

    request = rf.get("/")
    request.user = admin_user
    fields = Bindings(UIDBinding, AdminSite()).get_readonly_fields(request)
    assert fields == ["id", "uid", "user", "bound_at"]


# -- lookups from the URL -----------------------------------------------------------------------

ADMIN_PAGES = {
    "conversation": CHANGELIST,
    "conversationsnapshot": "/admin/django_cometchat/conversationsnapshot/",
    "syncrun": SYNC_RUNS,
    "uidbinding": "/admin/django_cometchat/uidbinding/",
    "webhookevent": "/admin/django_cometchat/webhookevent/",
}
# Lookups no page offers (issue 14, item 8): scans of a big table, a way to probe a related
# user's password hash, or a field no filter reads.
HOSTILE_LOOKUPS = {
    "conversation": [
        "payload__icontains=a",
        "peer_name__iregex=(a%2B)%2B$",
        "owner__password__startswith=pbkdf2",
        "missing_since__isnull=True",  # the missing filter's own parameter is "missing"
        "updated_at__gte=2024-01-01",  # the date hierarchy takes a year, a month, a day
        "conversation_type__iexact=user",  # the type filter takes __exact (or the bare name)
        "no_such_field=1",
    ],
    "conversationsnapshot": [
        "payload__icontains=a",
        "conversation__payload__icontains=a",
        "conversation__owner__password__startswith=pbkdf2",
    ],
    "syncrun": ["error_message__icontains=a", "filters__icontains=a", "owner__password=x"],
    "uidbinding": ["uid__iregex=.*", "user__password__startswith=pbkdf2", "user__is_superuser=1"],
    "webhookevent": ["payload__icontains=a", "error__icontains=a", "status__in=failed"],
}


@pytest.fixture
def every_model(synced):
    """Rows in all five admins: conversations, snapshots, runs and bindings from two syncs, and
    a webhook event."""
    WebhookEvent.objects.create(
        trigger="message_sent",
        received_at=T0,
        status=WebhookEvent.Status.PROCESSED,
        dedupe_key="a" * 64,
        payload={"trigger": "message_sent"},
    )
    return synced


@pytest.fixture
def viewer(client, django_user_model):
    """Staff who may only view the five models."""
    user = django_user_model.objects.create_user("viewer", is_staff=True)  # no password to hash
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=[f"view_{model}" for model in ADMIN_PAGES])
    )
    client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["admin_client", "viewer"])  # a superuser, view-only staff
@pytest.mark.parametrize("model", sorted(HOSTILE_LOOKUPS))
def test_a_lookup_no_filter_offers_is_a_400(request, who, model):
    browser = request.getfixturevalue(who)
    for query in HOSTILE_LOOKUPS[model]:
        with CaptureQueriesContext(connection) as queries:
            response = browser.get(f"{ADMIN_PAGES[model]}?{query}")
        assert response.status_code == 400, query  # Django's DisallowedModelAdminLookup
        table = f"django_cometchat_{model}"
        assert not [q for q in queries if table in q["sql"]], query  # refused before reading


@pytest.mark.parametrize("model", sorted(ADMIN_PAGES))
def test_every_filter_and_period_the_page_offers_is_allowed(every_model, viewer, model):
    """Each link of the filter sidebar and of the date hierarchy answers the page: the rule
    takes the parameters from the filters themselves, so it refuses none of its own."""
    start = ADMIN_PAGES[model]
    if model == "conversationsnapshot":  # its filter shows once a conversation is chosen
        start += f"?conversation={Conversation.objects.order_by('pk')[0].pk}"
    page = viewer.get(start)
    assert page.status_code == 200
    html = page.content.decode()
    links = {
        unescape(link)
        for link in re.findall(r'href="(\?[^"]+)"', html)
        if not re.match(r"\?(o|p|all|q|e)=", unescape(link))  # sorting, pages, search
    }
    assert links or model == "uidbinding"  # the bindings have no filters
    for link in sorted(links):
        response = viewer.get(ADMIN_PAGES[model] + link)
        assert response.status_code == 200, link
        assert "e=1" not in response.get("Location", "")
    # The filters each admin offers, by hand too: a filter dropped by mistake shows here.
    offered = {
        "conversation": {
            "conversation_type",
            "conversation_type__exact",
            "conversation_type__isnull",
            "unread",
            "missing",
            "owner_uid",
            "updated_at__year",
            "updated_at__month",
            "updated_at__day",
        },
        "conversationsnapshot": {"conversation"},
        "syncrun": {
            "status",
            "status__exact",
            "status__isnull",
            "trigger",
            "trigger__exact",
            "trigger__isnull",
            "finished",
            "error_code",
            "health",
        },
        "uidbinding": set(),
        "webhookevent": {
            *("trigger", "status", "status__exact", "status__isnull"),
            *("received", "event_time"),
        },
    }
    model_admin: Any = admin_site._registry[django_apps.get_model("django_cometchat", model)]
    assert model_admin.offered_lookups(page.wsgi_request) == offered[model]


@pytest.mark.parametrize(
    "query",
    [
        "updated_at__year=9999",  # Django's end of the period is in year 10000
        "updated_at__year=9999&updated_at__month=12",
        "updated_at__year=9999&updated_at__month=12&updated_at__day=31",
        "updated_at__year=99999999999999999999",  # no C integer holds it
        "updated_at__year=0",
        "updated_at__year=2024&updated_at__month=13",
        "updated_at__year=2024&updated_at__month=2&updated_at__day=30",
        "updated_at__year=x",
        "updated_at__month=5",  # a month of every year: EXTRACT(month) over every row
        "updated_at__year=2024&updated_at__day=5",
    ],
)
def test_a_period_no_database_holds_is_refused_as_a_bad_filter(admin_client, rows, query):
    """Django's answer to a bad filter value: the list again, with ``?e=1``, never a 500."""
    response = admin_client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 302
    assert response["Location"] == f"{CHANGELIST}?e=1"


def test_year_one_east_of_utc_is_refused_and_west_of_it_is_a_period(admin_client, rows, settings):
    """Year 1 starts in year 0 in UTC where the clock is ahead of UTC: no database holds it."""
    settings.TIME_ZONE = "Asia/Tokyo"
    response = admin_client.get(f"{CHANGELIST}?updated_at__year=1")
    assert (response.status_code, response["Location"]) == (302, f"{CHANGELIST}?e=1")
    settings.TIME_ZONE = "America/New_York"
    response = admin_client.get(f"{CHANGELIST}?updated_at__year=1")
    assert response.status_code == 200
    assert shown(response) == set()
    response = admin_client.get(f"{CHANGELIST}?updated_at__year=2024&updated_at__month=5")
    assert shown(response) == {("alice", "alice_user_bob"), ("bob", "alice_user_bob")}
