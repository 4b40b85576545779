"""The API key never shows, whatever happens and whatever CometChat answers.

A distinctive key ("sk-live-" and 32 random hex digits) is configured, every logger is captured at
DEBUG (root, django_cometchat.*, urllib3, requests, Django, SQL), and the main flows run: a
successful sync, a failure of every exception class, CometChat echoing the key in its message,
devMessage, details and body, the REST API (a refused key included), every admin page and both
admin actions, and the management commands. The key must then appear in no log record, no text of
a raised error (its whole chain and traceback), no stored row of any model, no admin page, no API
response and no command output. Any 12 hex digits of it count: half a key is a leak too.

And it must still reach CometChat in the ``apikey`` header, so that nothing passes by sending
nothing.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import StringIO
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from django_cometchat.exceptions import (
    CometChatAPIError,
    CometChatAuthError,
    CometChatBadRequest,
    CometChatDeadlineExceeded,
    CometChatError,
    CometChatForbidden,
    CometChatInvalidId,
    CometChatNotFound,
    CometChatResponseError,
    CometChatServerError,
    CometChatTimeout,
    CometChatTransportError,
    CometChatUnknownOwner,
)
from django_cometchat.exceptions import (
    CometChatRateLimited as RateLimited,
)
from django_cometchat.models import Conversation, ConversationSnapshot, SyncRun
from django_cometchat.services import (
    fetch_conversation,
    owner_by_uid,
    refresh_on_demand,
    sync_conversations,
    sync_on_demand,
)
from django_cometchat.testing import FakeCometChat, Fault
from tests.operations.test_redaction import decodes_to

pytestmark = pytest.mark.django_db

KEY_HEX = secrets.token_hex(16)
KEY = f"sk-live-{KEY_HEX}"
# Any 12 consecutive hex digits of the key: a key cut short by a length limit still leaks.
FRAGMENT = re.compile("|".join(KEY_HEX[i : i + 12] for i in range(len(KEY_HEX) - 11)))
ACCEPTED_INSTEAD = f"fake-only-{secrets.token_hex(8)}"  # the fake's key when ours is refused

SETTINGS = {
    "UID_RESOLVER": "tests.resolvers.uid_from_username",
    "MAX_RETRIES": 1,
    "BACKOFF_FACTOR": 0.005,
    "BACKOFF_MAX": 0.02,
    "RETRY_AFTER_MAX": 0.05,
    "WEB_RETRY_BUDGET": 0.3,
    "WEB_DEADLINE": 0.6,
    "TIMEOUT": (1.0, 1.0),  # a loaded CI machine answers well within a second
    "HISTORY_KEEP_PER_CONVERSATION": 1,
}


def leaks(text: str) -> bool:
    return KEY in text or FRAGMENT.search(text) is not None


# -- the fake CometChat, keyed with KEY -----------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[FakeCometChat]:
    with FakeCometChat(api_key=KEY) as server:
        yield server


@pytest.fixture
def chat(keyed_server, settings) -> Iterator[FakeCometChat]:
    """alice, bob and carol; bob and carol wrote to alice; all three share book-club."""
    fake = keyed_server
    fake.reset()
    fake.api_key = KEY
    fake.add_user("alice", "Alice Liddell")
    fake.add_user("bob", "Bob Stone")
    fake.add_user("carol", "Carol Danvers")
    fake.add_group("book-club", "Book Club", members=["alice", "bob", "carol"])
    fake.send_message("bob", to_user="alice", text="hi alice")
    fake.send_message("carol", to_user="alice", text="hello")
    fake.send_message("bob", to_group="book-club", text="chapter 3?")
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        **SETTINGS,
        "BASE_URL": fake.base_url,
        "API_KEY": KEY,
        "APP_ID": "testapp",
    }
    yield fake
    fake.reset()
    fake.api_key = KEY


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(username="alice-django", password="x")


def echo(code: str, *, details: bool = True) -> dict[str, Any]:
    """An error envelope that repeats the key everywhere CometChat could put it."""
    error: dict[str, Any] = {
        "code": code,
        "message": f"The apiKey {KEY} cannot do this.",
        "devMessage": f"apikey header was '{KEY}'",
        "source": "chat-api",
    }
    if details:
        error["details"] = {"apikey": [f"{KEY} is not valid"]}
    return {"error": error}


def no_type(body: Any) -> Any:
    """Rows without their conversationType."""
    for row in body["data"]:
        del row["conversationType"]
    return body


# -- what is scanned ------------------------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


FORMAT = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")


@dataclass
class Scan:
    """Everything a test produced that a person or a log could see."""

    handler: Records
    texts: list[tuple[str, str]] = field(default_factory=list)  # (where, text)
    errors: list[BaseException] = field(default_factory=list)

    def add(self, where: str, text: Any) -> None:
        self.texts.append((where, text if isinstance(text, str) else repr(text)))

    def response(self, where: str, response: Any) -> Any:
        self.add(f"{where}: body", response.content.decode("utf-8", "replace"))
        self.add(f"{where}: headers", str(dict(response.headers)))
        return response

    def error(self, exc: BaseException) -> BaseException:
        self.errors.append(exc)
        return exc

    def leaks(self) -> list[str]:
        found = [where for where, text in self.texts if leaks(text)]
        for record in self.handler.records:
            texts = [FORMAT.format(record), repr(record.args), repr(vars(record))]
            if any(leaks(text) for text in texts):
                found.append(f"log record {record.name} {record.levelname}: {record.getMessage()}")
        for exc in self.errors:
            found += [f"error {type(exc).__name__}: {what}" for what in error_leaks(exc)]
        found += [f"stored row {where}" for where, text in stored_texts() if leaks(text)]
        return found

    def assert_clean(self) -> None:
        assert self.handler.records, "nothing was logged: is the capture wired?"
        found = self.leaks()
        assert not found, "the API key leaked into:\n" + "\n".join(found)


def error_texts(exc: BaseException) -> Iterator[tuple[str, str]]:
    """Every text of an error and of the errors chained to it, and the whole traceback."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        item = pending.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        name = type(item).__name__
        yield f"str({name})", str(item)
        yield f"repr({name})", repr(item)
        yield f"args of {name}", repr(item.args)
        if isinstance(item, CometChatError):
            yield f"{name}.describe()", item.describe()
            yield f"{name}.public_message", item.public_message
        if isinstance(item, CometChatAPIError):
            yield f"{name}.api_message", item.api_message
            yield f"{name}.dev_message", item.dev_message
            yield f"{name}.body", item.body
        if not isinstance(item, CometChatError):  # requests' and urllib3's: request, response
            # But a JSONDecodeError's .doc: the raw body as received, which no text shows.
            shown = {
                k: v
                for k, v in vars(item).items()
                if not (isinstance(item, json.JSONDecodeError) and k == "doc")
            }
            yield f"vars of {name}", repr(shown)
        pending += [item.__cause__, item.__context__]
    yield "traceback", "".join(traceback.format_exception(exc))


def error_leaks(exc: BaseException) -> list[str]:
    return [where for where, text in error_texts(exc) if leaks(text)]


def stored_texts() -> Iterator[tuple[str, str]]:
    """Every column of every row of every model (ours, auth, admin's log, sessions, tokens)."""
    for model in apps.get_models():
        for row in model._default_manager.all():
            for column in model._meta.concrete_fields:
                value = getattr(row, column.attname)
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                yield f"{model._meta.label}.{column.name} pk={row.pk}", text
            if isinstance(row, Session):
                yield f"session {row.pk} decoded", repr(row.get_decoded())


@pytest.fixture
def scan() -> Iterator[Scan]:
    """Every logger at DEBUG into one handler; SQL logged too (with its parameters)."""
    handler = Records()
    loggers = [logging.getLogger()] + [
        item
        for item in logging.root.manager.loggerDict.values()
        if isinstance(item, logging.Logger)
    ]
    saved = [(item, item.level, item.disabled) for item in loggers]
    for item in loggers:
        item.setLevel(logging.DEBUG)
        item.disabled = False
        if item is logging.getLogger() or not item.propagate:
            item.addHandler(handler)
    debug_cursor = connection.force_debug_cursor
    connection.force_debug_cursor = True
    try:
        yield Scan(handler)
    finally:
        connection.force_debug_cursor = debug_cursor
        for item, level, disabled in saved:
            item.setLevel(level)
            item.disabled = disabled
            item.removeHandler(handler)


def sent_the_key(fake: FakeCometChat) -> int:
    """Requests that carried the key in the apikey header (and nowhere else)."""
    sent = [r for r in fake.requests if r.path.startswith("/v3/")]
    assert sent, "nothing reached the fake CometChat"
    for r in sent:
        assert not leaks(r.path + json.dumps(r.query)), "the key travelled in the URL"
        others = {name: value for name, value in r.headers.items() if name != "apikey"}
        assert not leaks(json.dumps(others)), "the key travelled in another header"
    return sum(1 for r in sent if r.headers.get("apikey") == KEY)


def redacted_somewhere(scan: Scan) -> bool:
    """The echoed key did reach a page or an output, as "[redacted]" (not dropped unseen)."""
    return any("[redacted]" in text for _, text in scan.texts)


def test_the_scan_finds_the_key_wherever_it_is(chat, scan, alice):
    """The scan itself: a key in a log record, in half a key, in a stored row, in an error."""
    logging.getLogger("django_cometchat.anything").debug("sending %s", KEY)
    scan.add("a page", f"...{KEY[:20]}...")  # "sk-live-" and 12 hex digits
    SyncRun.objects.create(owner_uid="alice", started_at="2024-01-01T00:00Z", filters={"k": KEY})
    scan.error(RuntimeError(KEY))
    found = "\n".join(scan.leaks())
    assert "log record django_cometchat.anything DEBUG: sending" in found
    assert "a page" in found
    assert "stored row django_cometchat.SyncRun.filters" in found
    assert "error RuntimeError: str(RuntimeError)" in found
    assert not leaks("sk-live-" + "0" * 32)


# -- services: a sync, and a failure of every class -----------------------------------------------


def echoing(status: int, code: str, *, times: int = 1) -> Fault:
    return Fault("status", status=status, body=echo(code), times=times)


FAILURES: list[tuple[str, Fault, type[CometChatError]]] = [
    ("429", Fault("status", status=429, headers={"Retry-After": "0"}, times=2), RateLimited),
    ("503", Fault("status", status=503, times=2), CometChatServerError),
    ("reset", Fault("reset", times=2), CometChatTransportError),
    ("read timeout", Fault("delay", delay=1.3, times=2), CometChatTimeout),
    ("HTML with 200", Fault("html"), CometChatResponseError),
    ("rows missing a field", Fault("transform", transform=no_type), CometChatResponseError),
    ("400 echo", echoing(400, "ERR_BAD_REQUEST"), CometChatBadRequest),
    ("401 echo", echoing(401, "AUTH_ERR_APIKEY_NOT_FOUND"), CometChatAuthError),
    ("403 echo", echoing(403, "ERR_PLAN_RESTRICTION"), CometChatForbidden),
    ("404 echo, the owner", echoing(404, "ERR_UID_NOT_FOUND"), CometChatUnknownOwner),
    ("429 echo", echoing(429, "ERR_TOO_MANY_REQUESTS", times=2), RateLimited),
    ("500 echo", echoing(500, "ERR_MISSION_FAILED", times=2), CometChatServerError),
    (
        "502 plain text echo",
        Fault("status", status=502, body=f"upstream rejected apikey: {KEY}", times=2),
        CometChatServerError,
    ),
    (
        "HTML echo with 200",
        Fault("html", body=f"<html><body>apikey={KEY}</body></html>", headers={"X-Echo": KEY}),
        CometChatResponseError,
    ),
]


def test_a_sync_and_a_failure_of_every_class_never_show_the_key(chat, scan, alice):
    result = sync_conversations(alice)
    assert result.created == 3
    chat.send_message("bob", to_user="alice", text="again")
    assert sync_conversations(alice).updated == 1
    assert fetch_conversation(alice, "alice_user_bob").conversation_id == "alice_user_bob"
    assert sync_conversations(owner_by_uid("bob")).created == 2

    for name, fault, expected in FAILURES:
        chat.clear_faults()
        chat.inject(fault)
        with pytest.raises(CometChatError) as info:
            sync_conversations(alice)
        assert type(info.value) is expected, (name, info.value)
        scan.error(info.value)
    chat.clear_faults()

    # On demand: one conversation not accessible, a deadline, an id refused before sending.
    path = "/users/bob/conversation"
    chat.inject(
        Fault("status", status=403, path=path, body=echo("ERR_CONVERSATION_NOT_ACCESSIBLE"))
    )
    with pytest.raises(CometChatNotFound) as not_found:
        refresh_on_demand(alice, "alice_user_bob")
    scan.error(not_found.value)
    chat.inject(Fault("trickle", chunk_size=16, pause=0.1))
    with pytest.raises(CometChatDeadlineExceeded) as late:
        sync_on_demand(alice, trigger=SyncRun.Trigger.API)
    scan.error(late.value)
    with pytest.raises(CometChatInvalidId) as invalid:
        refresh_on_demand(alice, f"alice_user_{KEY}/x")
    scan.error(invalid.value)

    assert SyncRun.objects.filter(status=SyncRun.Status.FAILED).count() == len(FAILURES) + 1
    assert sent_the_key(chat) >= len(FAILURES)
    scan.assert_clean()


def test_an_echoed_key_in_details_is_redacted(chat, alice):
    chat.inject(Fault("status", status=400, body=echo("ERR_BAD_REQUEST")))
    with pytest.raises(CometChatBadRequest) as info:
        sync_conversations(alice)
    assert sent_the_key(chat) == 1
    assert not leaks(json.dumps(info.value.details))


@pytest.mark.parametrize(
    ("where", "limit"),
    [
        pytest.param("message", 500),
        pytest.param("devMessage", 500),
        pytest.param("body", 2000),
    ],
)
def test_a_key_cut_by_a_length_limit_is_still_redacted(chat, alice, where, limit):
    """CometChat's texts are cut (500 characters of message or devMessage, 2000 of the body)
    before they are redacted: a key straddling the cut must not leave its first half behind."""
    straddling = "x" * (limit - 24) + KEY  # the cut keeps "sk-live-" and 16 hex digits
    if where == "body":
        body: Any = straddling  # not JSON: the whole body is CometChat's text
    else:
        body = echo("ERR_BAD_REQUEST", details=False)
        body["error"][where] = straddling
    chat.inject(Fault("status", status=400, body=body))
    with pytest.raises(CometChatBadRequest) as info:
        sync_conversations(alice)
    assert sent_the_key(chat) == 1
    assert error_leaks(info.value) == []
    assert not leaks(SyncRun.objects.get(status=SyncRun.Status.FAILED).error_message)


# -- CometChat echoing the key in another spelling -------------------------------------------------

# A key and a webhook password holding what encoders change ("/", "+", "=", " ", "%", "é"), so
# their percent-encoded and JSON forms differ from the text itself.
SPELLED_KEY = f"sk/Live+{secrets.token_hex(12)}=="
HOOK_PASSWORD = f"hook pass/{secrets.token_hex(6)}%é"
SPELLINGS: dict[str, Callable[[str], str]] = {
    "upper-cased": str.upper,
    "lower-cased": str.lower,
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "url-safe base64, unpadded": lambda s: (
        base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")
    ),
    "in a Basic credential": lambda s: base64.b64encode(f"cometchat:{s}".encode()).decode(),
    "quote()": quote,
    "quote(safe='')": lambda s: quote(s, safe=""),
    "quote_plus()": quote_plus,
}


def shows(text: str, secret: str) -> list[str]:
    """The spellings of ``secret`` that ``text`` still holds (any of them, not only the one
    echoed), and "base64" if a base64 run of it decodes to the secret at any alignment."""
    found = [how for how, spell in SPELLINGS.items() if spell(secret) in text]
    found += ["any case"] if secret.lower() in text.lower() else []
    found += ["base64"] if decodes_to(text, secret.encode()) else []
    return found


@pytest.mark.parametrize("how", sorted(SPELLINGS))
@pytest.mark.parametrize("where", ["JSON error", "plain-text body"])
def test_a_key_echoed_in_another_spelling_is_redacted(chat, alice, settings, caplog, *, how, where):
    """CometChat (over real HTTP, through the fake's error injection) echoes the key and a
    webhook password upper-cased, base64-encoded or URL-encoded: neither shows in the failed
    SyncRun, the raised error (its whole chain and traceback) nor any log record."""
    chat.api_key = SPELLED_KEY
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "API_KEY": SPELLED_KEY,
        "WEBHOOK_BASIC_AUTH": [f"cometchat:{HOOK_PASSWORD}"],
    }
    caplog.set_level(logging.DEBUG)
    key, password = SPELLINGS[how](SPELLED_KEY), SPELLINGS[how](HOOK_PASSWORD)
    if where == "JSON error":  # API.md section 0: the error envelope
        fault = Fault(
            "status",
            status=400,
            body={
                "error": {
                    "code": "ERR_BAD_REQUEST",
                    "message": f"The apiKey {key} cannot do this.",
                    "devMessage": f"webhook auth was '{password}'",
                    "details": {"apikey": [f"{key} is not valid"], "auth": [password]},
                }
            },
        )
        expected: type[CometChatError] = CometChatBadRequest
    else:  # a proxy's or a server's own text, which API.md does not shape
        fault = Fault("status", status=502, body=f"rejected {key} / {password}", times=2)
        expected = CometChatServerError
    chat.inject(fault)
    with pytest.raises(CometChatError) as info:
        sync_conversations(alice)
    assert type(info.value) is expected
    sent = [r.headers.get("apikey") for r in chat.requests if r.path.startswith("/v3/")]
    assert set(sent) == {SPELLED_KEY}  # the key itself still went, in its header
    run = SyncRun.objects.get(status=SyncRun.Status.FAILED)
    # The echo was kept, redacted: a JSON message is in the run's text, a plain body on the error.
    kept = run.error_message if where == "JSON error" else info.value.body  # type: ignore[attr-defined]
    assert "[redacted]" in kept
    assert caplog.records, "nothing was logged: is the capture wired?"
    texts = [("SyncRun.error_message", run.error_message)]
    texts += [(f"log {r.name}", FORMAT.format(r) + repr(r.args)) for r in caplog.records]
    texts += list(error_texts(info.value))
    if isinstance(info.value, CometChatAPIError):
        texts.append(("details", json.dumps(info.value.details, ensure_ascii=False)))
    found = [
        f"{where_}: {spelling}"
        for where_, text in texts
        for secret in (SPELLED_KEY, HOOK_PASSWORD)
        for spelling in shows(text, secret)
    ]
    assert found == []


# -- the REST API ---------------------------------------------------------------------------------

API = "/cometchat/"
ECHOED = [  # (CometChat's status and code, the API's status)
    (400, "ERR_BAD_REQUEST", 502),
    (401, "AUTH_ERR_APIKEY_NOT_FOUND", 502),
    (403, "AUTH_ERR_NO_ACCESS", 502),
    (429, "ERR_TOO_MANY_REQUESTS", 503),
    (500, "ERR_MISSION_FAILED", 502),
]


def test_the_api_never_shows_the_key(chat, scan, alice):
    api = APIClient()
    api.force_login(alice)

    def call(method: str, url: str, expected: int) -> Any:
        response = scan.response(f"{method} {url}", getattr(api, method.lower())(url))
        assert response.status_code == expected, (method, url, response.content[:300])
        return response

    sync, bob, carol = (
        f"{API}conversations/refresh/",
        f"{API}conversations/alice_user_bob/",
        f"{API}conversations/alice_user_carol/",
    )
    call("POST", sync, 201)
    call("GET", f"{API}conversations/", 200)
    call("GET", bob, 200)
    call("GET", f"{bob}history/", 200)
    call("POST", f"{bob}refresh/", 200)

    for status, code, expected in ECHOED:  # CometChat repeats the key in its error
        for url in (sync, f"{bob}refresh/"):
            chat.clear_faults()
            chat.inject(Fault("status", status=status, body=echo(code), times=2))
            call("POST", url, expected)
    chat.clear_faults()
    not_accessible = echo("ERR_CONVERSATION_NOT_ACCESSIBLE")
    chat.inject(Fault("status", status=403, path="/users/carol/", body=not_accessible))
    call("POST", f"{carol}refresh/", 404)
    chat.inject(Fault("html", body=f"<p>{KEY}</p>", times=2))
    call("POST", sync, 502)
    chat.clear_faults()

    chat.api_key = ACCEPTED_INSTEAD  # CometChat refuses our key
    asked_before = len(chat.requests)
    call("POST", sync, 502)
    call("POST", f"{bob}refresh/", 502)
    chat.api_key = KEY
    refused = chat.requests[asked_before:]
    assert [(r.status, r.headers.get("apikey")) for r in refused] == [(401, KEY)] * 2

    call("GET", f"{API}sync-runs/", 200)
    failed = SyncRun.objects.filter(owner_uid="alice", status=SyncRun.Status.FAILED)
    assert failed.count() == len(ECHOED) + 2
    for run in SyncRun.objects.filter(owner_uid="alice"):
        call("GET", f"{API}sync-runs/{run.pk}/", 200)
    call("GET", f"{API}conversations/alice_user_nobody/", 404)
    call("GET", f"{API}no-such-endpoint/", 404)
    api.logout()
    call("POST", sync, 403)

    assert sent_the_key(chat) > 0
    # The echoed key stood in the operator's texts as "[redacted]"; the API shows its owner
    # only the end user's text, so no page holds even that.
    assert any("[redacted]" in run.error_message for run in failed)
    assert not redacted_somewhere(scan)
    scan.assert_clean()


# -- the admin ------------------------------------------------------------------------------------


def test_admin_pages_and_actions_never_show_the_key(chat, scan, alice, admin_client):
    sync_conversations(alice)
    sync_conversations(owner_by_uid("bob"))
    chat.inject(Fault("status", status=500, body=echo("ERR_MISSION_FAILED"), times=2))
    with pytest.raises(CometChatServerError) as failed:
        sync_conversations(alice)
    scan.error(failed.value)

    def get(url: str) -> Any:
        response = scan.response(f"GET {url}", admin_client.get(url))
        assert response.status_code == 200, url
        return response

    def every_page() -> int:
        pages = 0
        get(reverse("admin:index"))
        for model in admin.site._registry:
            prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
            get(reverse(f"{prefix}_changelist"))
            for pk in model._default_manager.values_list("pk", flat=True):
                get(reverse(f"{prefix}_change", args=[pk]))
                get(reverse(f"{prefix}_history", args=[pk]))
                pages += 2
        return pages

    changelist = reverse("admin:django_cometchat_conversation_changelist")
    pks = [str(pk) for pk in Conversation.objects.values_list("pk", flat=True)]

    def action(name: str, *expected: str) -> None:
        data = {"action": name, "_selected_action": pks}
        response = scan.response(f"action {name}", admin_client.post(changelist, data, follow=True))
        html = response.content.decode()
        for text in expected:
            assert text in html, (name, text)

    action("refresh_from_cometchat", "Refreshed 5 conversations")
    action("sync_owners", "Synced 2 owners")
    for status, code, _ in ECHOED:
        chat.clear_faults()
        chat.inject(Fault("status", status=status, body=echo(code), times=20))
        action("refresh_from_cometchat", "Could not refresh", code)
        action("sync_owners", "Could not sync", code)
    chat.clear_faults()
    chat.api_key = ACCEPTED_INSTEAD
    action("refresh_from_cometchat", "Could not refresh", "AUTH_ERR_APIKEY_NOT_FOUND")
    action("sync_owners", "Could not sync", "AUTH_ERR_APIKEY_NOT_FOUND")
    chat.api_key = KEY

    # One per failure, two where the failure may be about one owner only (a 400, a 500: the batch
    # goes on, batches.stops_batch).
    assert SyncRun.objects.filter(status=SyncRun.Status.FAILED).count() == len(ECHOED) + 4
    assert every_page() > Conversation.objects.count() + ConversationSnapshot.objects.count()
    assert sent_the_key(chat) > 0
    assert redacted_somewhere(scan)  # in the action messages and the failed runs' pages
    scan.assert_clean()


# -- the commands ---------------------------------------------------------------------------------


def test_commands_never_show_the_key(chat, scan, alice):
    def run(*args: str) -> str:
        out, err = StringIO(), StringIO()
        failure = ""
        try:
            call_command(*args, stdout=out, stderr=err)
        except CommandError as exc:
            failure = str(scan.error(exc))
        shown = out.getvalue() + err.getvalue()
        scan.add(" ".join(args), shown)
        return shown + failure

    assert "created 3" in run("cometchat_sync", "--user", "alice-django")
    assert "created 2" in run("cometchat_sync", "--uid", "bob")
    chat.send_message("carol", to_user="alice", text="news")
    assert "updated 1" in run("cometchat_sync", "--all")
    for status, code, _ in ECHOED:
        chat.clear_faults()
        chat.inject(Fault("status", status=status, body=echo(code), times=4))
        assert code in run("cometchat_sync", "--user", "alice-django")
        assert code in run("cometchat_sync", "--uid", "bob", "--uid", "carol")
    chat.clear_faults()
    chat.api_key = ACCEPTED_INSTEAD
    assert "AUTH_ERR_APIKEY_NOT_FOUND" in run("cometchat_sync", "--all")
    chat.api_key = KEY
    assert run("cometchat_prune", "--dry-run").startswith("Would delete 1 snapshot ")
    assert run("cometchat_prune").startswith("Deleted 1 snapshot ")  # HISTORY_KEEP 1
    assert run("cometchat_prune", "--max-age-days", "0").startswith("Deleted 0 snapshots")

    assert ConversationSnapshot.objects.count() == Conversation.objects.count()
    assert sent_the_key(chat) > 0
    assert redacted_somewhere(scan)
    scan.assert_clean()
