"""A burst of webhook deliveries shares the task queued for its first event
(``services.needs_task``), and concurrent workers never process an event twice, on PostgreSQL
through a live server.

The deliveries are CometChat's ``message_sent`` (API.md §7, fixtures/webhook.message_sent.json)
carrying the fake's messages; the conversations the refreshes fetch follow API.md §8.2, as
seeded by tests/conftest.py's ``fake``. The one real-worker version (db_worker processes) is in
tests/tasks/test_task_workers.py.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.db import connection, connections

from django_cometchat import services
from django_cometchat.models import Conversation, WebhookEvent
from tests.surface import basic_authorization, published_webhook, webhook_path
from tests.task_backends import RecordingBackend

DELIVERIES = 30
WORKERS = 3
SENDERS = 5
# API.md §8.2: bob's copy is fetched as /users/alice/conversation, alice's as /users/bob/…
ONE = ("/v3/users/alice/conversation", "/v3/users/bob/conversation")


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency guarantees are proven on PostgreSQL")


@pytest.fixture
def queue(settings):
    """A queue that keeps what is enqueued, across threads, and runs nothing."""
    RecordingBackend.reset()
    settings.TASKS = {"default": {"BACKEND": "tests.task_backends.RecordingBackend"}}
    yield RecordingBackend
    RecordingBackend.reset()


def deliver_concurrently(url: str, bodies: list[dict[str, Any]]) -> list[requests.Response]:
    """The deliveries, ``SENDERS`` at a time (more at once overflow the live server's listen
    backlog of 5: connections reset before Django sees them)."""

    def post(body: dict[str, Any]) -> requests.Response:
        return requests.post(
            url,
            data=json.dumps(body),
            headers={"Content-Type": "application/json", "Authorization": basic_authorization()},
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        return list(pool.map(post, bodies))


@pytest.mark.usefixtures("postgres_only")
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_and_workers_process_every_event_exactly_once(
    fake, queue, live_server
):
    """30 deliveries, 5 at a time, then three threads working off the queued tasks as workers do,
    each also running the task of an event picked at random (a queue delivering it twice):
    every event processed once, two conversation GETs each, never more."""
    for uid in ("alice", "bob"):
        services.sync_conversations(services.owner_by_uid(uid))
    bodies = []
    for n in range(DELIVERIES):
        body = published_webhook("message_sent")
        body["data"]["message"] = fake.send_message("bob", to_user="alice", text=f"m{n}")
        bodies.append(body)
    fake.clear_requests()

    answers = deliver_concurrently(live_server.url + webhook_path(), bodies)
    assert [a.status_code for a in answers] == [200] * DELIVERIES, [a.text for a in answers]
    assert {a.json()["status"] for a in answers} == {"accepted"}
    queued = list(queue.enqueued)
    assert 1 <= len(queued) < DELIVERIES  # concurrent first deliveries may each queue one
    assert WebhookEvent.objects.filter(task_queued=True).count() == len(queued)

    ids = list(WebhookEvent.objects.values_list("pk", flat=True))
    pending = queue.enqueued  # the tasks queued so far, and those the tasks queue as they run
    lock = threading.Lock()
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(WORKERS)

    def work(seed: int) -> None:
        try:
            start.wait()
            again = random.Random(seed).choice(ids)
            results.append(queued[0].task.call(again))  # a delivery twice, or a first one
            while True:
                with lock:
                    if not pending:
                        return
                    result = pending.pop(0)
                results.append(result.task.call(*json.loads(json.dumps(result.args))))
        except BaseException as exc:  # every failure is the test's business
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    done = Counter(r["status"] for r in results if r["status"] != "skipped")
    for result in results:
        done.update(result["followers"])
    assert done == {"processed": DELIVERIES}, results
    events = list(WebhookEvent.objects.values_list("status", "owners"))
    assert events == [("processed", ["alice", "bob"])] * DELIVERIES
    fetched = Counter(r.path for r in fake.requests)
    assert fetched == dict.fromkeys(ONE, DELIVERIES)  # one GET per owner per event
    for owner in ("alice", "bob"):
        row = Conversation.objects.get(owner_uid=owner, conversation_id="alice_user_bob")
        assert row.payload["lastMessage"]["data"]["text"] == f"m{DELIVERIES - 1}"
