"""A re-sync under every fault the fake CometChat can inject, met on the first, a middle or the
last page, in the background and on demand (PostgreSQL).

The owner "alice" already has snapshots: a clean sync stores her 11 conversations (pages of 4, 4
and 3). Upstream then changes two conversations on every page (a peer renames, alice reads one)
and alice leaves the group of the oldest conversation, so a complete sync would mark it missing.
The next sync meets one fault on page N:

* a transient fault that a retry clears (``times=1``) must not show: the sync completes, every
  change is stored, the group she left is marked missing;
* a fault that outlasts the retries, or a 2xx with a broken body (never retried), fails the sync
  with the expected exception class, and the failed ``SyncRun`` names the cause. Pages before N
  hold upstream's content, page N and later are exactly as they were, nothing is marked missing,
  no (owner_uid, conversation_id) is doubled, and history grows only by the changes written.

On demand (``services.sync_on_demand`` under ``WEB_DEADLINE``) every fault, plus two slower than
the deadline, must end within the deadline and a small margin.

The fake gzips every JSON answer (its default), so pages, retried error bodies and the faults
about content all come compressed; two cases add a decompression bomb and an encoding the
client cannot decode.

Every sync is timed; ``pytest -s`` prints the outcome table at the end, and
``FAULT_MATRIX_TABLE=/path.md`` also writes it to that file.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count

from django_cometchat import services
from django_cometchat.client import CometChatClient
from django_cometchat.exceptions import (
    CometChatDeadlineExceeded,
    CometChatError,
    CometChatRateLimited,
    CometChatResponseError,
    CometChatServerError,
    CometChatTimeout,
    CometChatTransportError,
)
from django_cometchat.models import Conversation, ConversationSnapshot, SyncRun
from django_cometchat.storage import content_hash
from django_cometchat.testing import Fault

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="the fault matrix runs on PostgreSQL only (COMETCHAT_TEST_DB=postgres), where "
        "pages are written under the owner's advisory lock",
    ),
]

OWNER = "alice"
PEERS = [f"p{n:02d}" for n in range(1, 11)]  # p10 wrote last: it tops page 1
LEFT_GROUP = "group_old-club"  # the oldest conversation; alice leaves the group upstream
PAGE_SIZE = 4  # before: pages of 4, 4, 3; after alice leaves old-club: 4, 4, 2
PAGES = {1: "first", 2: "middle", 3: "last"}
MAX_RETRIES = 2
ATTEMPTS = MAX_RETRIES + 1  # requests for one page when every attempt fails
READ_TIMEOUT = 0.2
SERVER_WAIT = 0.05  # RETRY_AFTER_MAX: what Retry-After: 1 or a reset 2 s away come to
WEB_DEADLINE = 1.0
MAX_RESPONSE_BYTES = 64 * 1024
SETTINGS = {
    "UID_RESOLVER": "tests.resolvers.uid_from_username",
    "PAGE_SIZE": PAGE_SIZE,
    "MAX_RETRIES": MAX_RETRIES,
    "BACKOFF_FACTOR": 0.005,
    "BACKOFF_MAX": 0.02,
    "RETRY_AFTER_MAX": SERVER_WAIT,
    "RETRY_BUDGET": 2.0,
    "WEB_RETRY_BUDGET": 0.5,
    "WEB_DEADLINE": WEB_DEADLINE,
    "TIMEOUT": (1.0, READ_TIMEOUT),
    "MAX_RESPONSE_BYTES": MAX_RESPONSE_BYTES,
}
CASE_SECONDS = 3.0  # one background sync under one fault, retries and waits included
DEADLINE_MARGIN = 0.5  # an on-demand sync never outlasts WEB_DEADLINE by more than this
MATRIX_SECONDS = 60.0  # every sync of the matrix together


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, **SETTINGS}


# -- the faults -----------------------------------------------------------------------------------

Query = dict[str, str]
MakeFault = Callable[[Query], Fault]


def status(code: int, *, times: int, headers: Callable[[], dict[str, str]] | None = None):
    """A status fault on the conversation list; ``headers`` are made when it is injected."""

    def make(query: Query) -> Fault:
        return Fault(
            "status",
            status=code,
            headers=headers() if headers else None,
            path="/conversations",
            query=query,
            times=times,
        )

    return make


def fault(kind: Any, *, times: int = 1, **options: Any) -> MakeFault:
    def make(query: Query) -> Fault:
        return Fault(kind, path="/conversations", query=query, times=times, **options)

    return make


def retry_after() -> dict[str, str]:
    return {"Retry-After": "1"}


def reset_only() -> dict[str, str]:
    return {"X-Rate-Limit-Reset": str(int(time.time()) + 2)}


def without_conversation_type(body: Any) -> Any:
    for row in body["data"]:
        del row["conversationType"]
    return body


@dataclass(frozen=True)
class Case:
    """One fault, and what a sync that meets it must do."""

    name: str
    make: MakeFault
    error: type[CometChatError] | None = None  # None: the sync completes
    code: str = ""  # the failed SyncRun's error_code
    message: str = ""  # a regex the failed SyncRun's error_message must match
    attempts: int | None = 1  # requests for the faulty page (None: not checked)
    min_seconds: float = 0.0  # a wait the server asked for (capped) is observed
    on_demand: Case | None = None  # the on-demand variant, where it differs
    settings: dict[str, Any] = field(default_factory=dict)
    parsed_by_services: bool = False  # found after the prefetch asked for the next page

    def __str__(self) -> str:
        return self.name


def transient(name: str, make: MakeFault, *, min_seconds: float = 0.0) -> Case:
    return Case(f"{name} x1", make, attempts=2, min_seconds=min_seconds)


def persistent(
    name: str, make: MakeFault, error: type[CometChatError], code: str, message: str, **more: Any
) -> Case:
    return Case(f"{name} x{ATTEMPTS}", make, error, code, message, attempts=ATTEMPTS, **more)


def broken(name: str, make: MakeFault, message: str, **more: Any) -> Case:
    return Case(name, make, CometChatResponseError, "ERR_BAD_RESPONSE", message, **more)


RATE_LIMITED = r"^ERR_TOO_MANY_REQUESTS \(HTTP 429\) on GET /conversations: Too many requests"
RESET = r"^GET /conversations: could not reach CometChat at 127\.0\.0\.1: the connection was "
TIMED_OUT = r"^GET /conversations: could not reach CometChat at 127\.0\.0\.1: no answer came "
DEADLINE = rf"WEB_DEADLINE \({WEB_DEADLINE:g} s\) passed"
EXCEEDED = "ERR_DEADLINE"

CASES: list[Case] = [
    # Transient: one bad answer, then the retry gets the page.
    transient(
        "429 Retry-After", status(429, times=1, headers=retry_after), min_seconds=SERVER_WAIT
    ),
    transient(
        "429 X-Rate-Limit-Reset", status(429, times=1, headers=reset_only), min_seconds=SERVER_WAIT
    ),
    transient("429 no wait header", status(429, times=1)),
    *(transient(str(code), status(code, times=1)) for code in (500, 502, 503, 504)),
    transient("connection reset", fault("reset")),
    transient("connection dropped", fault("drop")),
    transient("read timeout", fault("delay", delay=READ_TIMEOUT * 2.5)),
    # Persistent: every attempt fails; the last answer (or error) is what is raised.
    persistent(
        "429 Retry-After",
        status(429, times=ATTEMPTS, headers=retry_after),
        CometChatRateLimited,
        "ERR_TOO_MANY_REQUESTS",
        RATE_LIMITED,
        min_seconds=MAX_RETRIES * SERVER_WAIT,
    ),
    persistent(
        "429 X-Rate-Limit-Reset",
        status(429, times=ATTEMPTS, headers=reset_only),
        CometChatRateLimited,
        "ERR_TOO_MANY_REQUESTS",
        RATE_LIMITED,
        min_seconds=MAX_RETRIES * SERVER_WAIT,
    ),
    persistent(
        "429 no wait header",
        status(429, times=ATTEMPTS),
        CometChatRateLimited,
        "ERR_TOO_MANY_REQUESTS",
        RATE_LIMITED,
    ),
    *(
        persistent(
            str(code),
            status(code, times=ATTEMPTS),
            CometChatServerError,
            "ERR_MISSION_FAILED",
            rf"^ERR_MISSION_FAILED \(HTTP {code}\) on GET /conversations: Something went wrong",
        )
        for code in (500, 502, 503, 504)
    ),
    persistent(
        "connection reset",
        fault("reset", times=ATTEMPTS),
        CometChatTransportError,
        "ERR_CONNECTION_RESET",
        RESET + "closed or reset before an answer came$",
    ),
    persistent(
        "connection dropped",
        fault("drop", times=ATTEMPTS),
        CometChatTransportError,
        "ERR_CONNECTION_RESET",
        RESET + "closed or reset before an answer came$",
    ),
    persistent(
        "read timeout",
        fault("delay", times=ATTEMPTS, delay=READ_TIMEOUT * 2.5),
        CometChatTimeout,
        "ERR_READ_TIMEOUT",
        TIMED_OUT + "within the read timeout$",
    ),
    # A 2xx with a broken body is not retried: one is enough to fail the sync.
    broken(
        "truncated JSON",
        fault("truncate"),
        r"^GET /conversations: expected JSON, got invalid or truncated JSON \(\d+ bytes, "
        r"'application/json'\)$",
    ),
    broken(
        "HTML with 200",
        fault("html"),
        r"^GET /conversations: expected JSON, got an HTML page \(\d+ bytes, 'text/html",
    ),
    broken("empty body", fault("empty"), r"^GET /conversations: empty response body$"),
    broken(
        "data of the wrong type",
        fault("wrong_shape"),
        r"^GET /conversations: expected data to be a list, got dict$",
    ),
    # Found while the page is parsed for storing, after the client handed it over (so the
    # next page may already have been asked for).
    Case(
        "rows missing conversationType",
        fault("transform", transform=without_conversation_type),
        CometChatResponseError,
        "ERR_BAD_RESPONSE",
        r"^GET /conversations: page \d: conversation\.conversationType must be 'user' or "
        r"'group', got None$",
        parsed_by_services=True,
    ),
    broken(
        "oversize body (Content-Length)",
        fault("oversize", size=4 * MAX_RESPONSE_BYTES),
        rf"^GET /conversations: the response body is larger than {MAX_RESPONSE_BYTES} bytes "
        rf"\(at least {4 * MAX_RESPONSE_BYTES}\)",
    ),
    broken(
        "oversize body (chunked)",
        fault("oversize", size=4 * MAX_RESPONSE_BYTES, chunked=True, chunk_size=8192),
        rf"^GET /conversations: the response body is larger than {MAX_RESPONSE_BYTES} bytes",
    ),
    # Compressed: ~MAX_RESPONSE_BYTES / 16 on the wire, 64 times the cap once decompressed.
    broken(
        "gzip bomb",
        fault("gzip_bomb", size=64 * MAX_RESPONSE_BYTES),
        rf"^GET /conversations: the decompressed response body is larger than "
        rf"{MAX_RESPONSE_BYTES} bytes \(at least \d+\)",
    ),
    broken(
        "unknown Content-Encoding",
        fault(
            "status",
            status=200,
            body=b"\x1b\x07\x00\xf8",
            headers={"Content-Type": "application/json", "Content-Encoding": "br"},
        ),
        r"^GET /conversations: the body is encoded with 'br', which the client cannot decode",
    ),
    # Every write arrives within the read timeout but the whole answer takes longer: the
    # background waits it out; on demand, the deadline cuts it off.
    Case(
        "trickle",
        fault("trickle", chunk_size=1024, pause=READ_TIMEOUT / 2),
        on_demand=Case(
            "trickle",
            fault("trickle", chunk_size=64, pause=0.1),
            CometChatDeadlineExceeded,
            EXCEEDED,
            DEADLINE,
        ),
    ),
]

# Only on demand: upstreams slower than the whole deadline.
DEADLINE_CASES: list[Case] = [
    Case(
        "delay 5 s, read timeout 15 s",
        fault("delay", times=10, delay=5.0),
        CometChatDeadlineExceeded,
        EXCEEDED,
        DEADLINE,
        attempts=None,  # the fake logs a request once answered: 5 s later
        settings={"TIMEOUT": (3.05, 15.0)},
    ),
    Case(
        "503 Retry-After 0.3 x50",
        status(503, times=50, headers=lambda: {"Retry-After": "0.3"}),
        CometChatServerError,
        "ERR_MISSION_FAILED",
        r"^ERR_MISSION_FAILED \(HTTP 503\)",
        attempts=None,
        settings={"RETRY_AFTER_MAX": 60.0, "MAX_RETRIES": 10, "WEB_RETRY_BUDGET": 3.0},
    ),
]


def test_every_case_has_its_own_name():
    names = [case.name for case in CASES + DEADLINE_CASES]
    assert len(names) == len(set(names))


# -- the world: alice synced once, then changed upstream ------------------------------------------


@dataclass(frozen=True)
class Stored:
    content_hash: str
    payload: dict[str, Any]
    fetched_at: Any
    missing_since: Any
    snapshots: int


def stored_rows() -> dict[str, Stored]:
    counts = dict(
        ConversationSnapshot.objects.values_list("conversation__conversation_id").annotate(
            n=Count("id")
        )
    )
    return {
        c.conversation_id: Stored(
            c.content_hash, c.payload, c.fetched_at, c.missing_since, counts[c.conversation_id]
        )
        for c in Conversation.objects.owned_by(OWNER)
    }


Upstream = list[tuple[str, str, Mapping[str, Any]]]  # one page: (conversation id, hash, payload)


@dataclass
class World:
    user: Any
    before: dict[str, Stored]  # alice's rows before the faulty sync
    pages: dict[int, Upstream]  # what upstream answers now, page by page
    changed: set[str]  # conversations whose upstream content differs from the stored one

    def ids(self, pages: set[int]) -> set[str]:
        return {cid for number in pages for cid, _, _ in self.pages[number]}


@pytest.fixture
def world(cometchat_fake, django_user_model) -> World:
    fake = cometchat_fake
    fake.add_user(OWNER, "Alice Liddell")
    for uid in PEERS:
        fake.add_user(uid, f"Peer {uid}")
    fake.add_group("old-club", "Old Club", members=[OWNER, PEERS[0]])
    fake.send_message(PEERS[0], to_group="old-club", text="anyone?")
    for uid in PEERS:
        fake.send_message(uid, to_user=OWNER, text=f"hello from {uid}")
    user = django_user_model.objects.create_user(username=f"{OWNER}-django")
    first = services.sync_conversations(user)
    assert (first.created, first.pages) == (11, 3)

    # Two changes per page, neither of which reorders the list (pages: p10-p07 | p06-p03 |
    # p02, p01), and alice leaves old-club.
    for renamed, read in (("p10", "p09"), ("p06", "p05"), ("p02", "p01")):
        fake.update_user(renamed, name=f"Renamed {renamed}")
        fake.mark_read(OWNER, f"{OWNER}_user_{read}")
    fake.state.groups["old-club"].members.pop(OWNER)
    fake.state.changed()

    before = stored_rows()
    with CometChatClient() as client:
        pages = {
            page.number: [(row["conversationId"], content_hash(row), row) for row in page.items]
            for page in client.iter_raw_conversation_pages(on_behalf_of=OWNER)
        }
    assert [len(rows) for rows in pages.values()] == [4, 4, 2]
    changed = {
        cid
        for rows in pages.values()
        for cid, digest, _ in rows
        if before[cid].content_hash != digest
    }
    assert all(len({cid for cid, _, _ in rows} & changed) == 2 for rows in pages.values())
    fake.clear_requests()
    return World(user, before, pages, changed)


# -- one case -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    fault: str
    page: int
    path: str  # "background" or "on demand"
    error: CometChatError | None
    error_code: str
    seconds: float


OUTCOMES: list[Outcome] = []


def run_sync(world: World, case: Case, page: int, *, on_demand: bool) -> Outcome:
    started = time.monotonic()
    error: CometChatError | None = None
    try:
        if on_demand:
            services.sync_on_demand(world.user, trigger=SyncRun.Trigger.API)
        else:
            services.sync_conversations(world.user, trigger=SyncRun.Trigger.TASK)
    except CometChatError as exc:
        error = exc
    seconds = time.monotonic() - started
    run = SyncRun.objects.exclude(trigger=SyncRun.Trigger.CODE).first()
    path = "on demand" if on_demand else "background"
    outcome = Outcome(case.name, page, path, error, run.error_code if run else "?", seconds)
    OUTCOMES.append(outcome)
    return outcome


def check_store(world: World, case: Case, page: int, error: CometChatError | None) -> None:
    """The rows, history and SyncRun after a sync that met ``case`` on ``page``."""
    completed = case.error is None
    if completed:
        assert error is None, f"expected the sync to complete, got {error!r}"
    else:
        assert type(error) is case.error, f"expected {case.error!r}, got {error!r}"
    written = set(world.pages) if completed else {n for n in world.pages if n < page}
    after = stored_rows()

    # No duplicate (owner_uid, conversation_id); nothing lost, nothing added.
    doubled = (
        Conversation.objects.values("owner_uid", "conversation_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not doubled.exists()
    assert set(after) == set(world.before)

    # Pages written hold upstream's content; the others are exactly as they were. A snapshot
    # only for a real change.
    for number, rows in world.pages.items():
        for cid, digest, payload in rows:
            was, now = world.before[cid], after[cid]
            if number not in written:
                assert now == was, (cid, number)
                continue
            assert (now.content_hash, now.payload) == (digest, payload), (cid, number)
            grew = cid in world.changed
            assert now.snapshots == was.snapshots + grew, (cid, number)
            if not grew:
                assert now.fetched_at == was.fetched_at, (cid, number)
    new_history = len(world.ids(written) & world.changed)
    history_before = sum(s.snapshots for s in world.before.values())
    assert ConversationSnapshot.objects.count() == history_before + new_history

    # Missing marks: only by a complete sync, and only the group alice left.
    missing = {cid for cid, s in after.items() if s.missing_since is not None}
    assert missing == ({LEFT_GROUP} if completed else set())
    assert after[LEFT_GROUP].payload == world.before[LEFT_GROUP].payload

    # The SyncRun: what it wrote, and why it failed.
    run = SyncRun.objects.exclude(trigger=SyncRun.Trigger.CODE).get()
    assert run.finished_at is not None
    assert (run.created_count, run.updated_count) == (0, new_history)
    if completed:
        assert (run.status, run.complete, run.missing_count) == ("succeeded", True, 1)
        assert (run.error_code, run.error_message) == ("", "")
        assert run.unchanged_count == 10 - len(world.changed)
    else:
        assert error is not None
        assert (run.status, run.complete, run.missing_count) == ("failed", False, 0)
        assert run.error_code == case.code
        assert re.search(case.message, run.error_message), run.error_message
        assert run.error_message == error.describe()


def check_traffic(fake, case: Case, page: int) -> None:
    """The faulty page was asked for as often as the case says (a retry cleared the fault, every
    attempt failed, or a broken 2xx was not retried), and no page past a failure was asked for,
    but the one fetched ahead while a faulty page was being stored."""
    patience = time.monotonic() + 2.0  # the fake logs a request once answered: a delay shows late
    while True:
        asked = [int(r.query["page"]) for r in fake.requests if r.path == "/v3/conversations"]
        if asked.count(page) >= (case.attempts or 0) or time.monotonic() > patience:
            break
        time.sleep(0.02)
    if case.attempts is not None:
        assert asked.count(page) == case.attempts, asked
    if case.error is not None:
        ahead = 1 if case.parsed_by_services else 0
        assert max(asked) <= page + ahead, asked


@pytest.mark.parametrize("page", list(PAGES), ids=[f"page{n}-{w}" for n, w in PAGES.items()])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_resync_meets_a_fault(world, cometchat_fake, settings, case, page):
    settings.COMETCHAT = {**settings.COMETCHAT, **case.settings}
    cometchat_fake.inject(case.make({"page": str(page)}))
    outcome = run_sync(world, case, page, on_demand=False)
    check_store(world, case, page, outcome.error)
    check_traffic(cometchat_fake, case, page)
    assert case.min_seconds <= outcome.seconds < CASE_SECONDS


@pytest.mark.parametrize("case", CASES + DEADLINE_CASES, ids=str)
def test_on_demand_never_outlasts_the_deadline(world, cometchat_fake, settings, case):
    case = case.on_demand or case
    settings.COMETCHAT = {**settings.COMETCHAT, **case.settings}
    page = 2
    cometchat_fake.inject(case.make({"page": str(page)}))
    outcome = run_sync(world, case, page, on_demand=True)
    assert case.min_seconds <= outcome.seconds <= WEB_DEADLINE + DEADLINE_MARGIN
    check_store(world, case, page, outcome.error)
    check_traffic(cometchat_fake, case, page)
    assert SyncRun.objects.get(trigger=SyncRun.Trigger.API)


def test_a_broken_row_names_the_endpoint_like_every_other_response_error(world, cometchat_fake):
    cometchat_fake.inject(fault("transform", transform=without_conversation_type)({"page": "2"}))
    with pytest.raises(CometChatResponseError):
        services.sync_conversations(world.user)
    run = SyncRun.objects.get(status=SyncRun.Status.FAILED)
    assert run.error_message.startswith("GET /conversations: ")


# -- the table ------------------------------------------------------------------------------------


def test_outcome_table():
    """Print (``pytest -s``) and, with FAULT_MATRIX_TABLE set, write the table of every sync."""
    if not OUTCOMES:
        pytest.skip("no case of the matrix ran in this session")
    lines = [
        "| fault | page | path | outcome | exception | SyncRun error_code | seconds |",
        "|---|---|---|---|---|---|---:|",
    ]
    for o in OUTCOMES:
        outcome, exception = ("failed", type(o.error).__name__) if o.error else ("completed", "-")
        lines.append(
            f"| {o.fault} | {o.page} ({PAGES[o.page]}) | {o.path} | {outcome} | {exception} "
            f"| {o.error_code or '-'} | {o.seconds:.2f} |"
        )
    background = [o.seconds for o in OUTCOMES if o.path == "background"]
    on_demand = [o.seconds for o in OUTCOMES if o.path == "on demand"]
    lines += [
        "",
        f"{len(background)} background syncs: {sum(background):.1f} s in all, longest "
        f"{max(background, default=0):.2f} s. {len(on_demand)} on-demand syncs: "
        f"{sum(on_demand):.1f} s in all, longest {max(on_demand, default=0):.2f} s "
        f"(WEB_DEADLINE {WEB_DEADLINE:g} s).",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    target = os.environ.get("FAULT_MATRIX_TABLE")
    if target:
        with open(target, "w", encoding="utf-8") as out:
            out.write(table + "\n")
    assert sum(background) + sum(on_demand) < MATRIX_SECONDS
