"""The admin in a real browser: Debian's chromium, driven by Playwright, against a live server.

A person logs in, lists conversations, filters them, opens one, reads its payload and last message,
goes back, and refreshes a row from the (fake) CometChat with the action. Screenshots of each step
are kept under ``artifacts/screenshots/`` at the repository root.

Runs on both databases: on SQLite, pytest-django hands the test's in-memory connection to the live
server's thread, so both see the same rows.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from django_cometchat.services import owner_by_uid, sync_conversations

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
PASSWORD = "browser-test-password"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def missing_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (it is in the test group: uv pip install --group test)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.fixture
def page() -> Iterator[Page]:
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
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            tab = context.new_page()
            tab.set_default_timeout(15_000)
            yield tab
        finally:
            browser.close()


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
    return page.locator("#result_list tbody th.field-conversation_id").all_inner_texts()


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
    assert sorted(rows(page)) == ["alice_user_bob", "alice_user_carol", "group_book-club"]
    assert page.locator("#changelist-filter li.selected", has_text="Has unread").count() == 1
    shoot(page, "3-filtered")

    # Open one: the payload, pretty-printed, and the last message as text.
    page.get_by_role("link", name="alice_user_bob", exact=True).click()
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
    row = page.locator("#result_list tbody tr", has_text="alice_user_bob")
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "refresh_from_cometchat")
    page.locator("#changelist-form button[name=index]").click()
    success = page.locator("ul.messagelist li.success")
    success.wait_for()
    assert success.inner_text() == "Refreshed 1 conversation from CometChat."
    assert "unread=yes" in page.url  # the filters survive the action
    shoot(page, "5-refreshed")

    page.get_by_role("link", name="alice_user_bob", exact=True).click()
    assert "see you at 5" in page.locator(".cometchat-last-message").inner_text()
    assert page.get_by_text("2 stored, all listed below").is_visible()
    assert page.locator(".field-unread_message_count .readonly").inner_text() == "2"
    shoot(page, "6-detail-after-refresh")
