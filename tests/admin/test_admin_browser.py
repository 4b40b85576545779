"""The admin in a real browser: Debian's chromium, driven by Playwright, against a live server.

A person logs in, lists conversations, filters them, opens one, reads its payload and last message,
goes back, and refreshes a row from the (fake) CometChat with the action. Screenshots of each step
are kept under ``artifacts/screenshots/`` at the repository root.

Runs on both databases: on SQLite, pytest-django hands the test's in-memory connection to the live
server's thread, so both see the same rows.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.utils import timezone

from django_cometchat.models import Conversation, MessageAccess, SyncRun, WebhookEvent
from django_cometchat.services import owner_by_uid, sync_conversations
from tests import FIXTURES, ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
# COMETCHAT_SCREENSHOTS=/some/dir keeps them elsewhere (a temporary directory, to look at them).
SCREENSHOTS = Path(os.environ.get("COMETCHAT_SCREENSHOTS") or ROOT / "artifacts" / "screenshots")
PASSWORD = "browser-test-password"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def missing_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (it is in the test group: uv pip install --group test)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@contextmanager
def browser_page(*, width: int = 1440, height: int = 900) -> Iterator[Page]:
    """A tab of a headless chromium whose window is ``width`` x ``height`` CSS pixels."""
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            tab = context.new_page()
            tab.set_default_timeout(15_000)
            yield tab
        finally:
            browser.close()


@pytest.fixture
def page() -> Iterator[Page]:
    with browser_page() as tab:
        yield tab


def log_in(page: Page, url: str) -> None:
    """Open ``url`` and sign in as staff on the login page it redirects to."""
    page.goto(url)
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#content")


def shoot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"admin-{name}.png"), full_page=True)


@pytest.fixture
def world(cometchat_fake: Any, settings: Any, django_user_model: Any) -> Any:
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "UID_RESOLVER": "tests.resolvers.uid_from_username",
        "MAX_RETRIES": 1,
        "BACKOFF_FACTOR": 0.01,
    }
    fake = cometchat_fake
    fake.add_user("alice", "Alice Liddell")
    fake.add_user("bob", "Bob Stone")
    fake.add_user("carol", "Carol Danvers")
    fake.add_group("book-club", "Book Club", members=["alice", "bob", "carol"])
    fake.send_message("bob", to_user="alice", text="hi alice")
    fake.send_message("carol", to_user="alice", text="hello")
    fake.send_message("bob", to_group="book-club", text="chapter 3?")
    alice = django_user_model.objects.create_user(username="alice-django", password="x")
    sync_conversations(alice)
    sync_conversations(owner_by_uid("bob"))
    django_user_model.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    return fake


def rows(page: Page) -> list[str]:
    """The peer names the conversation list shows (its first column)."""
    return page.locator("#result_list tbody th.field-inbox_peer .cometchat-clip").all_inner_texts()


# ``world`` comes before ``page``: the Django ORM refuses to run while Playwright's event loop is
# running in this thread, so every row is written before the browser starts, and what changed is
# then checked through the pages, as a person would.
def test_staff_filter_read_and_refresh_a_conversation(world: Any, live_server: Any, page: Page):
    base = live_server.url

    # Log in.
    page.goto(f"{base}/admin/django_cometchat/conversation/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    shoot(page, "1-login")
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list")
    assert len(rows(page)) == 5
    assert page.locator("#changelist-filter").is_visible()
    shoot(page, "2-changelist")

    # Filter: only conversations with unread messages (alice's three).
    page.locator("#changelist-filter").get_by_role("link", name="Has unread messages").click()
    page.wait_for_url("**unread=yes**")
    assert sorted(rows(page)) == ["Bob Stone", "Book Club", "Carol Danvers"]
    assert page.locator("#changelist-filter li.selected", has_text="Has unread").count() == 1
    shoot(page, "3-filtered")

    # Open one: the payload, pretty-printed, and the last message as text.
    page.get_by_role("link", name="Bob Stone", exact=True).click()
    payload = page.locator("pre.cometchat-json")
    payload.wait_for()
    assert '"conversationId": "alice_user_bob"' in payload.inner_text()
    last = page.locator(".cometchat-last-message")
    assert "Bob Stone (bob)" in last.inner_text()
    assert "hi alice" in last.inner_text()
    assert page.get_by_text("1 stored, all listed below").is_visible()
    shoot(page, "4-detail")

    # Back to the filtered list; CometChat has news; refresh the row with the action.
    page.go_back()
    page.wait_for_url("**unread=yes**")
    world.send_message("bob", to_user="alice", text="see you at 5")
    row = page.locator("#result_list tbody tr").filter(
        has=page.get_by_role("link", name="Bob Stone", exact=True)
    )
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "refresh_from_cometchat")
    page.locator("#changelist-form button[name=index]").click()
    success = page.locator("ul.messagelist li.success")
    success.wait_for()
    assert success.inner_text() == "Refreshed 1 conversation from CometChat."
    assert "unread=yes" in page.url  # the filters survive the action
    shoot(page, "5-refreshed")

    page.get_by_role("link", name="Bob Stone", exact=True).click()
    assert "see you at 5" in page.locator(".cometchat-last-message").inner_text()
    assert page.get_by_text("2 stored, all listed below").is_visible()
    assert page.locator(".field-unread_message_count .readonly").inner_text() == "2"
    shoot(page, "6-detail-after-refresh")


# -- the inbox and the Messages view ------------------------------------------------------------

# A 1x1 GIF: what the avatar host answers here (the fake's avatar URLs name a host that does not
# exist, API.md §3's conversationWith.avatar being a plain URL).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
HOSTILE = '<img src=x onerror="window.pwned=1"> & <b>bold</b>'


@pytest.fixture
def chatty(world: Any) -> Any:
    """``world``, with 60 more messages from bob to alice, one hostile, one edited, one deleted,
    one with an attachment (API.md §4.3 shapes), read live by the Messages view."""
    world.add_messages("bob", 57, to_user="alice", text="note {n}")
    world.send_message("bob", to_user="alice", text=HOSTILE)
    world.add_message("alice", to_user="bob", text="fixed", edited_at=1_700_000_000)
    gone = world.send_message("bob", to_user="alice", text="oops")
    world.delete_message(gone["id"])
    world.add_message(
        "bob",
        to_user="alice",
        text="the report",
        type="file",
        attachments=[{"url": "https://files.example/report.pdf", "name": "report.pdf"}],
    )
    return world


def test_staff_scan_the_inbox_and_read_a_conversation_page_by_page(
    chatty: Any, live_server: Any, page: Page
) -> None:
    base = live_server.url
    avatars: list[str] = []

    def serve_avatar(route: Any) -> None:
        avatars.append(route.request.url)
        route.fulfill(status=200, content_type="image/gif", body=PIXEL)

    page.route("https://assets.fake-cometchat.invalid/**", serve_avatar)
    log_in(page, f"{base}/admin/django_cometchat/conversation/")

    # The inbox: the peer's avatar and name, the last message, how long ago, the unread count.
    row = page.locator("#result_list tbody tr").filter(
        has=page.get_by_role("link", name="Bob Stone", exact=True)
    )
    avatar = row.locator("img.cometchat-avatar")
    avatar.wait_for()
    assert avatar.get_attribute("loading") == "lazy"
    page.wait_for_function("document.querySelector('img.cometchat-avatar').complete")
    size = avatar.bounding_box()
    assert size is not None
    assert (round(size["width"]), round(size["height"])) == (32, 32)  # fixed, whatever the image
    assert "https://assets.fake-cometchat.invalid/avatars/bob.png" in avatars
    preview = row.locator(".field-inbox_last_message")
    assert "hi alice" in preview.inner_text()
    assert "Bob Stone" in preview.inner_text()
    assert "ago" in preview.inner_text() or "just now" in preview.inner_text()
    assert row.locator(".cometchat-unread").inner_text() == "1"
    shoot(page, "7-inbox")

    # The conversation's page links to its messages.
    page.get_by_role("link", name="Bob Stone", exact=True).click()
    page.get_by_role("link", name="Read the messages").click()
    page.wait_for_selector(".cometchat-message-list")
    messages = page.locator(".cometchat-message")
    assert messages.count() == 50
    first = messages.first
    assert "the report" in first.inner_text()
    assert first.get_by_role("link", name="report.pdf").get_attribute("href") == (
        "https://files.example/report.pdf"
    )
    deleted = page.locator(".cometchat-message-deleted")
    assert "This message was deleted." in deleted.inner_text()
    assert "oops" not in deleted.inner_text()
    edited = page.locator(".cometchat-message", has_text="fixed")
    assert "edited" in edited.locator(".cometchat-message-head").inner_text()
    assert "owner" in edited.locator(".cometchat-message-head").inner_text()  # alice wrote it
    # Hostile text reads as text: no element made of it, no script run.
    hostile = page.locator(".cometchat-text", has_text="onerror")
    assert hostile.inner_text() == HOSTILE
    assert hostile.locator("img, b").count() == 0
    assert page.evaluate("window.pwned") is None
    shoot(page, "8-messages-newest")

    # Older: the rest, down to the first message; then newer, back to the same 50.
    page.locator(".cometchat-older").first.click()
    page.wait_for_url("**cursor=**")
    older = page.locator(".cometchat-text").all_inner_texts()
    assert older[-1] == "hi alice"
    assert page.locator(".cometchat-older").count() == 0
    shoot(page, "9-messages-older")
    page.locator(".cometchat-newer").first.click()
    page.wait_for_selector(".cometchat-message-list")
    assert page.locator(".cometchat-message").count() == 50
    assert "the report" in page.locator(".cometchat-message").first.inner_text()

    # Each page read is on the record.
    page.goto(f"{base}/admin/django_cometchat/messageaccess/")
    page.wait_for_selector("#result_list")
    records = page.locator("#result_list tbody tr")
    assert records.count() == 3
    assert records.first.locator(".field-staff_column").inner_text() == "staff"
    assert page.locator("select[name=action]").count() == 0  # nothing to delete with
    shoot(page, "10-message-accesses")


# -- layout: every changelist reads in a 1280 x 800 window with the navigation sidebar open ------

# At CometChat's limits (API.md "Limits": UIDs and GUIDs up to 100 characters of a-z, 0-9, - and _,
# names up to 100): 99 characters, as API.md advises to stay under its contradicting limits.
LONG_OWNER = (
    "org-7c1e4b2a-9f3d-4e8a-b6c5-1d2e3f4a5b6c-user-0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f-" * 2
)[:99]
LONG_PEER = ("customer_success_emea_apac_escalations_night_shift_and_weekend_on_call_" * 2)[:99]
LONG_GUID = ("regional-support-leads-emea-apac-amer-quarterly-planning-and-escalations-" * 2)[:99]
LONG_PEER_NAME = (
    "Maximiliane Alexandra von Hohenzollern-Sigmaringen, Head of Customer Success EMEA & APAC"
)
LONG_GROUP_NAME = "Regional support leads — EMEA, APAC & AMER quarterly planning and escalations"
GHOST = ("former-contractor-account-removed-from-cometchat-during-the-2024-offboarding-" * 2)[:99]
# CometChatAPIError's shape: "<code> (HTTP <status>) on <endpoint>: <message>" (exceptions.py).
LONG_CODE = "ERR_" + "PLAN_QUOTA_RESTRICTION_" * 4  # at the column's 100-character limit
LONG_EVENT_ERROR = (
    f"ERR_CONVERSATION_NOT_ACCESSIBLE (HTTP 403) on GET /users/{LONG_OWNER}/conversations/"
    f"group_{LONG_GUID}: The user {LONG_OWNER} is not a member of the group {LONG_GUID}."
)


@pytest.fixture
def crowded(cometchat_fake: Any, settings: Any, django_user_model: Any) -> dict[str, Any]:
    """Every changelist with rows at CometChat's limits, next to ordinary ones: a long owner UID
    whose Django username is longer still, a peer and a group with long ids and names, runs of
    every status (one failed with a code at the column's limit), events of every status."""
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "UID_RESOLVER": "tests.resolvers.uid_from_username",
        "MAX_RETRIES": 0,
        "BACKOFF_FACTOR": 0.01,
    }
    fake = cometchat_fake
    fake.add_user(LONG_OWNER, LONG_PEER_NAME)
    fake.add_user(LONG_PEER, LONG_PEER_NAME)
    fake.add_user("alice", "Alice Liddell")
    fake.add_group(LONG_GUID, LONG_GROUP_NAME, members=[LONG_OWNER, LONG_PEER, "alice"])
    fake.send_message(
        LONG_PEER, to_user=LONG_OWNER, text="https://support.example.com/" + "x" * 200
    )
    fake.send_message("alice", to_user=LONG_OWNER, text="hello")
    fake.send_message(LONG_PEER, to_group=LONG_GUID, text=LONG_GROUP_NAME * 3)
    owner = django_user_model.objects.create_user(username=f"{LONG_OWNER}-django", password="x")
    alice = django_user_model.objects.create_user(username="alice-django", password="x")
    ghost = django_user_model.objects.create_user(username=f"{GHOST}-django", password="x")
    sync_conversations(owner)
    sync_conversations(alice)
    assert sync_conversations(ghost, raise_errors=False).error is not None  # ERR_UID_NOT_FOUND
    now = timezone.now()
    for waiting in (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING):
        SyncRun.objects.create(owner=owner, owner_uid=LONG_OWNER, status=waiting, started_at=now)
    SyncRun.objects.create(
        owner=owner,
        owner_uid=LONG_OWNER,
        trigger=SyncRun.Trigger.WEBHOOK,
        status=SyncRun.Status.FAILED,
        started_at=now - timedelta(minutes=1),
        finished_at=now,
        error_code=LONG_CODE,
        error_message=LONG_EVENT_ERROR.replace("ERR_CONVERSATION_NOT_ACCESSIBLE", LONG_CODE),
    )
    sent = json.loads((FIXTURES / "webhook.message_sent.json").read_text())
    for status in [*WebhookEvent.Status.values, "deferred"]:  # and a status added after this
        WebhookEvent.objects.create(
            trigger="message_sent",
            received_at=now,
            status=status,
            error=LONG_EVENT_ERROR if status == "failed" else "",
            payload=sent,
        )
    WebhookEvent.objects.create(
        trigger="group_member_kicked",
        received_at=now,
        status=WebhookEvent.Status.FAILED,
        error="The body is not a JSON object.",
    )
    django_user_model.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    group = Conversation.objects.get(owner_uid=LONG_OWNER, conversation_type="group")
    for cursor in ("", "9" * 19):  # the newest page, and one past a message id of 19 digits
        MessageAccess.objects.create(
            staff_user=owner,
            staff_username=owner.get_username(),
            owner_uid=LONG_OWNER,
            conversation_id=group.conversation_id,
            accessed_at=now,
            message_count=50,
            cursor=cursor,
        )
    return {
        "group": group.pk,
        "run": SyncRun.objects.filter(error_code=LONG_CODE).get().pk,
        "event": WebhookEvent.objects.filter(error=LONG_EVENT_ERROR).get().pk,
    }


def layout(page: Page) -> dict[str, Any]:
    """How wide the page and the result list are against the room they have."""
    seen: dict[str, Any] = page.evaluate(
        """() => {
        const box = (el) => el && {scroll: el.scrollWidth, client: el.clientWidth};
        // Text that runs past the content's right edge: scrolled away, or cut off by a box
        // that hides its overflow (Django's form rows do), which no scroll width shows.
        const edge = document.querySelector('#content').getBoundingClientRect().right;
        const walker = document.createTreeWalker(
            document.querySelector('#content'), NodeFilter.SHOW_TEXT);
        const cut = [];
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            if (!node.textContent.trim()) continue;
            const range = document.createRange();
            range.selectNodeContents(node);
            const right = Math.max(0, ...[...range.getClientRects()].map((r) => r.right));
            if (right > edge + 1) cut.push(node.textContent.trim().slice(0, 60));
        }
        return {
            cut: cut.slice(0, 5),
            page: box(document.scrollingElement),
            results: box(document.querySelector('#changelist-form .results')),
            filter: box(document.querySelector('#changelist-filter')),
            sidebarOpen: document.querySelector('#main').classList.contains('shifted'),
        };
    }"""
    )
    return seen


def test_every_changelist_fits_1280_pixels_with_the_sidebar_open(
    crowded: dict[str, Any], live_server: Any
) -> None:
    admin = f"{live_server.url}/admin/django_cometchat"
    changelists = {
        "conversations": "/conversation/",
        "conversations-of-long-owner": f"/conversation/?owner_uid={LONG_OWNER}",
        "snapshots": "/conversationsnapshot/",
        "snapshots-of-long-group": f"/conversationsnapshot/?conversation={crowded['group']}",
        "sync-runs": "/syncrun/",
        "sync-runs-failed": "/syncrun/?status__exact=failed",
        "uid-bindings": "/uidbinding/",
        "webhook-events": "/webhookevent/",
        "message-accesses": "/messageaccess/",
    }
    # Where the columns left out went: the object pages must not scroll sideways either.
    object_pages = {
        "conversation-long-group": f"/conversation/{crowded['group']}/change/",
        "sync-run-long-code": f"/syncrun/{crowded['run']}/change/",
        "webhook-event-failed": f"/webhookevent/{crowded['event']}/change/",
        # Not a changelist: the sync health page, its failing owners at CometChat's limits.
        "health": "/health/",
        "messages-of-long-group": f"/conversation/{crowded['group']}/messages/",
    }
    overflowing = {}
    with browser_page(width=1280, height=800) as page:
        log_in(page, f"{admin}/conversation/")
        for name, path in {**changelists, **object_pages}.items():
            page.goto(admin + path)
            page.wait_for_selector("#result_list" if name in changelists else "#content-main")
            shoot(page, f"1280-{name}")
            seen = layout(page)
            assert seen["sidebarOpen"], name
            boxes = [seen[box] for box in ("page", "results", "filter") if seen[box]]
            if any(box["scroll"] > box["client"] for box in boxes) or seen["cut"]:
                overflowing[name] = seen
    assert overflowing == {}, {
        name: {box: seen[box] for box in ("page", "results", "filter", "cut")}
        for name, seen in overflowing.items()
    }


CONTRAST = """(selector) => {
    // WCAG 2 contrast of each element's text against the first opaque background behind it.
    const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
    const luminance = ([r, g, b]) => {
        const [R, G, B] = [r, g, b].map((c) => {
            c /= 255;
            return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * R + 0.7152 * G + 0.0722 * B;
    };
    const background = (el) => {
        for (; el; el = el.parentElement) {
            const color = rgb(getComputedStyle(el).backgroundColor);
            if (color.length < 4 || color[3] > 0) return color;
        }
        return [255, 255, 255];
    };
    return [...document.querySelectorAll(selector)].map((el) => {
        const [fg, bg] = [luminance(rgb(getComputedStyle(el).color)), luminance(background(el))];
        return {
            text: el.textContent.trim(),
            tone: el.className,
            ratio: (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05),
        };
    });
}"""


def test_statuses_read_as_badges_with_the_error_code_in_light_and_dark_themes(
    crowded: dict[str, Any], live_server: Any
) -> None:
    admin = f"{live_server.url}/admin/django_cometchat"
    with browser_page(width=1280, height=800) as page:
        log_in(page, f"{admin}/syncrun/")
        for theme in ("light", "dark"):
            page.emulate_media(color_scheme=theme)  # Django's admin follows it ("auto" theme)
            page.goto(f"{admin}/syncrun/")
            page.wait_for_selector("#result_list")
            shoot(page, f"1280-sync-runs-{theme}")
            body = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert body == ("rgb(255, 255, 255)" if theme == "light" else "rgb(18, 18, 18)")
            failed = page.locator("#result_list tbody tr", has_text="ERR_UID_NOT_FOUND")
            assert failed.locator(".field-status_column").inner_text().split() == [
                "Failed",
                "ERR_UID_NOT_FOUND",
            ]
            tone = failed.locator(".cometchat-badge").get_attribute("class") or ""
            assert "cometchat-tone-error" in tone
            statuses = page.locator("#result_list .cometchat-badge").all_inner_texts()
            assert sorted(set(statuses)) == ["Failed", "Queued", "Running", "Succeeded"]
            page.goto(f"{admin}/webhookevent/")
            page.wait_for_selector("#result_list")
            shoot(page, f"1280-webhook-events-{theme}")
            badges = {
                badge["text"]: badge["tone"]
                for badge in page.evaluate(CONTRAST, "#result_list .cometchat-badge")
            }
            # Every status reads; an event deferred by the budget is a warning.
            deferred = WebhookEvent(status="deferred").get_status_display()
            assert set(badges) == set(WebhookEvent.Status.labels)
            assert "cometchat-tone-warning" in badges[deferred]
            assert "cometchat-tone-success" in badges["Processed"]
            assert page.locator("#result_list .cometchat-code").all_inner_texts() == [
                "ERR_CONVERSATION_NOT_ACCESSIBLE"
            ]
            for url in ("syncrun", "webhookevent"):
                page.goto(f"{admin}/{url}/")
                page.wait_for_selector("#result_list")
                seen = page.evaluate(CONTRAST, ".cometchat-badge, .cometchat-code")
                assert seen
                weak = [item for item in seen if item["ratio"] < 4.5]  # WCAG AA, normal text
                assert weak == [], (theme, url)


def test_the_health_page_reads_at_a_glance_and_opens_what_it_counts(
    crowded: dict[str, Any], live_server: Any
) -> None:
    """From the app's index to the health page, then from a figure to the runs it counts."""
    admin = f"{live_server.url}/admin/django_cometchat"
    with browser_page(width=1280, height=800) as page:
        log_in(page, f"{admin}/")
        page.locator("#content-main").get_by_role("link", name="Sync health").click()
        page.wait_for_selector("#health-syncs")
        shoot(page, "1280-health")
        assert page.locator("h1").inner_text() == "Sync health"
        # The ghost's only run failed; the long owner's failed one has runs on their way since.
        failing = page.locator("#health-failing tbody tr")
        assert failing.count() == 1
        assert "ERR_UID_NOT_FOUND" in failing.inner_text()
        assert f"{GHOST}-django"[:20] in failing.inner_text()
        overdue = page.locator("#health-syncs tr", has_text="queued or running too long")
        assert overdue.locator(".cometchat-figure").inner_text() == "0"
        row = page.locator("#health-syncs tr", has_text="Owners whose latest run failed")
        assert row.locator(".cometchat-badge").inner_text() == "1"
        assert "cometchat-tone-error" in (
            row.locator(".cometchat-badge").get_attribute("class") or ""
        )
        row.get_by_role("link").click()
        page.wait_for_url("**health=failing**")
        page.wait_for_selector("#result_list")
        statuses = page.locator("#result_list .field-status_column").all_inner_texts()
        assert [text.split() for text in statuses] == [["Failed", "ERR_UID_NOT_FOUND"]]
        selected = page.locator("#changelist-filter li.selected", has_text="failed")
        assert selected.count() == 1
        shoot(page, "1280-health-failing-runs")
