"""One rate budget for every process: per-window slots in a shared cache, learning from
CometChat's headers and its 429s; background work waits, on-demand work refuses and sends nothing.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis
import requests
from django.core.cache import cache, caches

from django_cometchat import deadline
from django_cometchat.budget import READING_EVERY, RateBudget
from django_cometchat.client import CometChatClient
from django_cometchat.exceptions import CometChatBudgetExhausted, CometChatRateLimited
from tests import ROOT
from tests.fake.test_fake_server import settle_in_window

WINDOW = 1.0


@pytest.fixture
def budget(settings, cometchat_fake):
    def configure(per_window, **extra):
        settings.COMETCHAT = {
            **settings.COMETCHAT,
            "REQUESTS_PER_MINUTE": per_window,
            "RATE_LIMIT_WINDOW": WINDOW,
            "BACKOFF_FACTOR": 0.01,
            "BACKOFF_MAX": 0.05,
            **extra,
        }
        cache.clear()
        cometchat_fake.add_user("bob")
        return cometchat_fake

    yield configure
    cache.clear()


def per_window(fake, window=WINDOW) -> Counter[int]:
    return Counter(math.floor(r.at / window) for r in fake.requests if r.path.startswith("/v3/"))


def start_of_a_window(window=WINDOW, margin=0.2) -> None:
    while time.time() % window > margin:
        time.sleep(0.01)


def test_background_work_waits_for_the_next_window(budget):
    fake = budget(3)
    start_of_a_window()
    started = time.monotonic()
    with CometChatClient() as client:
        for _ in range(7):
            assert client.get_user("bob").uid == "bob"
    assert max(per_window(fake).values()) == 3
    assert sorted(per_window(fake).values()) == [1, 3, 3]
    assert 1.5 < time.monotonic() - started < 3.5  # two window ends waited for


def test_on_demand_work_refuses_and_sends_nothing_when_the_window_is_spent(budget):
    fake = budget(2)
    start_of_a_window()
    with CometChatClient() as client:
        client.get_user("bob")
        client.get_user("bob")
        with deadline.deadline(0.1), pytest.raises(CometChatBudgetExhausted) as info:
            client.get_user("bob")
    assert len(fake.requests) == 2
    assert 0 < (info.value.retry_after or 0) <= WINDOW


def test_the_api_answers_503_with_retry_after_without_calling_cometchat(
    budget, client, django_user_model, settings
):
    # A 3 s window and a 1 s deadline: the first sync has a whole second even on a loaded CI
    # machine, and the second request still finds the window's end further off than its deadline.
    window = 3.0
    fake = budget(
        1,
        UID_RESOLVER="tests.resolvers.uid_from_username",
        RATE_LIMIT_WINDOW=window,
        WEB_DEADLINE=1.0,
    )
    fake.add_user("alice")
    user = django_user_model.objects.create_user(username="alice-django")
    client.force_login(user)
    start_of_a_window(window)
    assert client.post("/cometchat/conversations/refresh/").status_code == 201
    refused = client.post("/cometchat/conversations/refresh/")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "ERR_TOO_MANY_REQUESTS"
    assert 1 <= int(refused["Retry-After"]) <= window  # the window's end, in whole seconds
    assert len(fake.requests) == 1


def test_the_budget_learns_what_cometchat_has_left(budget):
    """The fake counts 4 a window; our budget says 100: the headers cap us at CometChat's 4."""
    fake = budget(100)
    fake.configure(rate_limit_per_minute=4, rate_limit_window=WINDOW)
    start_of_a_window()
    with CometChatClient() as client:
        for _ in range(6):
            client.get_user("bob")
    assert max(per_window(fake).values()) <= 4
    assert all(r.status == 200 for r in fake.requests)  # never a 429: we slowed down first


def test_learners_racing_on_one_count_do_not_spend_the_window(budget, monkeypatch):
    """CometChat has 40 of the window left, so at least 60 of our 100 are gone. Two processes
    read the window's count (nothing yet) before either has added the 60: the count must end at
    60, not 120, which would make every worker wait for the next window."""
    budget(100)
    learners = [
        RateBudget(per_window=100, window=60, cache_alias="default", app="race") for _ in range(2)
    ]
    key = learners[0]._key(time.time())
    cache.set(key, 0)
    headers = {"X-Rate-Limit": "1000", "X-Rate-Limit-Remaining": "40"}
    shared = caches["default"]
    monkeypatch.setattr(shared, "get", lambda *args, **kwargs: 0)  # both read before adding
    for learner in learners:
        learner.observe(200, headers)
    monkeypatch.undo()
    assert cache.get(key) == 60


def test_a_plan_far_above_the_budget_never_spends_it(budget):
    """CometChat has 100 a window left of the app's plan (others use the key too); our budget
    of 5 still allows 5, not none: what is left app-wide caps us only below our own budget."""
    fake = budget(5)
    fake.configure(rate_limit_per_minute=1000, rate_limit_window=WINDOW)
    start_of_a_window()
    for _ in range(100):  # another site on the same key uses 100 of the window
        requests.get(f"{fake.base_url}/users/bob", headers={"apikey": fake.api_key}, timeout=5)
    with CometChatClient() as client, deadline.deadline(0.5):
        for _ in range(5):
            assert client.get_user("bob").uid == "bob"  # on-demand: a spent budget refuses


def test_waiting_clients_do_not_spend_the_budget_they_wait_for(budget):
    fake = budget(2, RATE_LIMIT_WINDOW=60)  # a window that cannot end under a loaded machine
    settle_in_window(60, needed=10)
    with CometChatClient() as client:
        client.get_user("bob")
        client.get_user("bob")
        for _ in range(3):  # refused on demand, each time: nothing sent, no slot kept
            with deadline.deadline(0.2), pytest.raises(CometChatBudgetExhausted):
                client.get_user("bob")
        assert client.rate_budget is not None
        assert cache.get(client.rate_budget._key(time.time())) == 2  # the refused gave theirs back
    assert len(fake.requests) == 2


def test_a_client_writes_its_remaining_reading_once_a_second_and_a_429s_always(budget):
    """The health page's X-Rate-Limit-Remaining (the fake's limiter, API.md §5.4) is written
    by a client at most once per READING_EVERY; a 429's reading, and the next answer's, at
    once."""
    fake = budget(100, MAX_RETRIES=0)
    fake.configure(rate_limit_per_minute=1000, rate_limit_window=60)
    with CometChatClient() as client:
        rate = client.rate_budget
        assert rate is not None
        key = f"{rate.prefix}:remaining"
        client.get_user("bob")
        first = cache.get(key)[0]
        for _ in range(3):  # within the second: the first reading stands
            client.get_user("bob")
        assert cache.get(key)[0] == first
        rate._reading_written -= READING_EVERY  # a second later
        client.get_user("bob")
        assert cache.get(key)[0] == first - 4
        fake.fail_next(status=429, headers={"Retry-After": "0", "X-Rate-Limit-Remaining": "0"})
        with pytest.raises(CometChatRateLimited):
            client.get_user("bob")
        assert cache.get(key)[0] == 0
        time.sleep(0.05)  # the 429's pause (Retry-After 0, rounded up to a blink)
        client.get_user("bob")
        assert cache.get(key)[0] > 0  # the pause's 0 is not what the page shows after it


def test_a_429_pauses_every_client_of_the_cache(budget):
    fake = budget(100, RETRY_AFTER_MAX=5.0)
    fake.fail_next(status=429, headers={"Retry-After": "1"})
    first, second = CometChatClient(), CometChatClient()
    with first, second:
        started = time.monotonic()
        with deadline.deadline(0.3), pytest.raises(CometChatRateLimited):
            first.get_user("bob")  # the 429; waiting 1 s would pass the deadline
        assert second.get_user("bob").uid == "bob"  # another client waits out the pause
        assert time.monotonic() - started >= 0.9
    assert [r.status for r in fake.requests] == [429, 200]


def test_a_cache_that_fails_lets_requests_through(budget, settings):
    fake = budget(1)
    settings.COMETCHAT = {**settings.COMETCHAT, "RATE_LIMIT_CACHE": "broken"}
    settings.CACHES = {
        **settings.CACHES,
        "broken": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }
    with CometChatClient() as client:
        for _ in range(3):
            client.get_user("bob")
    assert len(fake.requests) == 3


SYNC_IN_A_PROCESS = """
import django, json, logging, os, sys
logging.basicConfig(level=logging.WARNING)
logging.getLogger("django_cometchat.budget").setLevel(logging.DEBUG)  # each slot's window
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django_cometchat import services
started = __import__("time").monotonic()
result = services.sync_conversations(services.owner_by_uid(sys.argv[1]))
print(json.dumps({"created": result.created, "pages": result.pages}))
"""


def test_four_processes_share_one_budget_through_redis(cometchat_fake):
    """Four processes sync at once with a budget of 5 requests per 2-second window, counted in
    Redis: the fake's log never shows a window above 5, and every sync completes."""
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
    redis.Redis(host="127.0.0.1", port=6379, db=3).flushdb()
    owners = [f"owner{n}" for n in range(4)]
    for uid in owners:
        cometchat_fake.add_user(uid)
        cometchat_fake.bulk_conversations(uid, 12, prefix=f"{uid}-peer")  # 4 pages of 3
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_redis",
        "COMETCHAT_TEST_DB": "sqlite",
        "COMETCHAT_BASE_URL": cometchat_fake.base_url,
    }
    start_of_a_window(2.0)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SYNC_IN_A_PROCESS, uid],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for uid in owners
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert '"created": 12' in out
        assert "budget's cache failed" not in err, err
    # The budget's promise is about slots: at most five taken per window, whatever the machine's
    # load does to when each request then reaches the fake.
    slots = Counter(
        line.rsplit(" ", 1)[1]
        for _, err in outputs
        for line in err.splitlines()
        if "slot taken in window" in line
    )
    assert sum(slots.values()) == 16, slots  # 4 owners x 4 pages
    assert max(slots.values()) <= 5, slots
    # 16 requests at 5 a window cannot fit in fewer than 4 windows: the budget really held them,
    # as the fake saw too.
    assert len(slots) >= 4, slots
    windows = per_window(cometchat_fake, 2.0)
    assert sum(windows.values()) == 16
    assert max(windows) - min(windows) >= 3, windows
    assert all(r.status == 200 for r in cometchat_fake.requests)
