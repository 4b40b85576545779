"""One queued run per owner, and a queue that refuses answered in words (issue 14, items 5 and 6).

Repeated refresh requests by one user answer the sync (or refresh) already on its way instead of
queueing another: through Django's client, and 30 at once against a live server on PostgreSQL,
where the database's constraint decides. A task backend that refuses (tests.task_backends,
configured through TASKS) gives 503 ERR_QUEUE_UNAVAILABLE from the API, an error message in the
admin, a CommandError from the commands, and a failed run with the reason.

The fake's data follows API.md §8.1 (conversation list) and §8.2 (one conversation), as seeded by
tests/conftest.py's ``fake``.
"""

from __future__ import annotations

import json
import threading
from io import StringIO
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test import Client
from rest_framework.authtoken.models import Token

from django_cometchat import services, tasks
from django_cometchat.models import Conversation, QueuedRefresh, SyncRun
from tests.task_backends import BROKER_DOWN, CommitCheckingBackend, RecordingBackend

pytestmark = pytest.mark.django_db

SYNC = "/cometchat/conversations/refresh/"
REFRESH = "/cometchat/conversations/alice_user_bob/refresh/"
WALK = "/v3/conversations"  # API.md §8.1: the list, one page for alice's three conversations
ONE = "/v3/users/bob/conversation"  # API.md §8.2: one conversation with a user
TIMES = 30


@pytest.fixture(autouse=True)
def _uids(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "UID_RESOLVER": "tests.resolvers.uid_from_username"}


@pytest.fixture
def queue(settings):
    """A queue that keeps what is enqueued, across threads, and runs nothing."""
    RecordingBackend.reset()
    settings.TASKS = {"default": {"BACKEND": "tests.task_backends.RecordingBackend"}}
    assert tasks.queues()
    yield RecordingBackend
    RecordingBackend.reset()


def work_off(queue: type[RecordingBackend]) -> list[Any]:
    """What a worker would do: run every enqueued task, with its arguments through JSON."""
    outcomes = []
    for result in list(queue.enqueued):
        args, kwargs = json.loads(json.dumps([result.args, result.kwargs]))
        outcomes.append(result.task.call(*args, **kwargs))
    queue.enqueued.clear()
    return outcomes


def upstream(fake: Any) -> list[str]:
    return [r.path for r in fake.requests]


# -- one sync on its way per owner ------------------------------------------------------------


def test_thirty_sync_requests_queue_one_run_and_every_answer_names_it(fake, alice, client, queue):
    client.force_login(alice)
    answers = [client.post(SYNC) for _ in range(TIMES)]

    assert {a.status_code for a in answers} == {202}
    bodies = [a.json() for a in answers]
    run = SyncRun.objects.get()
    assert {b["id"] for b in bodies} == {run.pk}
    assert {a["Location"] for a in answers} == {bodies[0]["url"]}
    assert [b["already_queued"] for b in bodies] == [False] + [True] * (TIMES - 1)
    assert bodies[0]["task_id"] == str(queue.enqueued[0].id)
    assert {b["task_id"] for b in bodies[1:]} == {None}
    assert (run.status, run.trigger, run.exclusive) == ("queued", "api", True)
    assert len(queue.enqueued) == 1
    assert upstream(fake) == []

    [outcome] = work_off(queue)
    assert outcome == {"run": run.pk, "status": "succeeded", "error": ""}
    assert upstream(fake) == [WALK]  # one walk over alice's one page

    # Done: the next request queues a new sync.
    again = client.post(SYNC)
    assert (again.status_code, again.json()["already_queued"]) == (202, False)
    assert again.json()["id"] != run.pk
    assert len(queue.enqueued) == 1


def test_a_running_sync_is_answered_too(fake, alice, client, queue):
    client.force_login(alice)
    first = client.post(SYNC).json()
    SyncRun.objects.filter(pk=first["id"]).update(status=SyncRun.Status.RUNNING)  # a worker took it
    answer = client.post(SYNC)
    assert answer.status_code == 202
    assert (answer.json()["id"], answer.json()["status"]) == (first["id"], "running")
    assert answer.json()["already_queued"] is True
    assert len(queue.enqueued) == 1


def test_an_abandoned_run_does_not_hold_requests_back(fake, alice, client, queue, settings):
    client.force_login(alice)
    first = client.post(SYNC).json()
    settings.COMETCHAT = {**settings.COMETCHAT, "SYNC_ABANDONED_AFTER": 1}
    SyncRun.objects.filter(pk=first["id"]).update(
        started_at=SyncRun.objects.get().started_at.replace(year=2000)
    )
    answer = client.post(SYNC).json()
    assert (answer["already_queued"], answer["id"] != first["id"]) == (False, True)
    assert SyncRun.objects.get(pk=first["id"]).error_code == "ERR_ABANDONED"
    assert len(queue.enqueued) == 2


def test_the_admin_and_the_commands_answer_the_sync_on_its_way(
    fake, alice, client, admin_client, queue
):
    services.sync_conversations(alice)
    pks = list(Conversation.objects.values_list("pk", flat=True))
    client.force_login(alice)
    run_id = client.post(SYNC).json()["id"]

    response = admin_client.post(
        "/admin/django_cometchat/conversation/",
        {"action": "sync_owners", "_selected_action": pks},
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]] == [
        f"Queued a sync of 1 owner from CometChat: alice (already queued: sync run {run_id})."
    ]
    out = StringIO()
    call_command("cometchat_sync", "--enqueue", "--uid", "alice", stdout=out)
    assert out.getvalue() == "Enqueued 0 syncs of 1 (1 already queued or running).\n"
    assert services.queue_sync_run(services.owner_by_uid("alice"), trigger="code").pk == run_id
    assert SyncRun.objects.filter(status="queued").count() == 1
    assert len(queue.enqueued) == 1


@pytest.mark.django_db(transaction=True)
def test_without_a_worker_a_sync_in_progress_is_answered_not_repeated(fake, alice):
    """The immediate backend syncs inline: a request while that walk runs gets its run (202),
    and CometChat sees one walk."""
    hold = fake.hold_next(path="/conversations", timeout=10)
    first: list[Any] = []

    def post() -> None:
        own = Client()
        own.force_login(alice)
        try:
            first.append(own.post(SYNC))
        finally:
            connections.close_all()

    worker = threading.Thread(target=post)
    worker.start()
    assert hold.held.wait(5)
    client = Client()
    client.force_login(alice)
    answer = client.post(SYNC)
    hold.release.set()
    worker.join(10)

    running = SyncRun.objects.get()
    assert answer.status_code == 202
    body = answer.json()
    assert (body["id"], body["status"], body["already_queued"], body["task_id"]) == (
        running.pk,
        "running",
        True,
        None,
    )
    assert first[0].status_code == 201
    assert first[0].json()["id"] == running.pk
    assert upstream(fake) == [WALK]


def test_a_sync_that_cannot_start_does_not_hold_the_next_request(
    fake, alice, client, settings, monkeypatch
):
    """No worker, no API key: the claimed run fails at once, and the next request is answered
    for itself (503 again), not with a run that never ran."""
    monkeypatch.delenv("COMETCHAT_API_KEY", raising=False)
    settings.COMETCHAT = {**settings.COMETCHAT, "API_KEY": None}
    client.force_login(alice)
    for _ in range(2):
        response = client.post(SYNC)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "ERR_NOT_CONFIGURED"
    runs = SyncRun.objects.order_by("pk")
    assert [(r.status, r.error_code) for r in runs] == [("failed", "ERR_NOT_CONFIGURED")] * 2
    assert all(r.finished_at is not None for r in runs)
    assert upstream(fake) == []


# -- one refresh queued per owner and conversation ------------------------------------------------


def test_thirty_refresh_requests_queue_one_refresh(fake, alice, client, queue):
    client.force_login(alice)
    answers = [client.post(REFRESH) for _ in range(TIMES)]
    assert {a.status_code for a in answers} == {202}
    bodies = [a.json() for a in answers]
    assert {b["conversation"] for b in bodies} == {answers[0]["Location"]}
    assert [b["already_queued"] for b in bodies] == [False] + [True] * (TIMES - 1)
    assert bodies[0]["task_id"] == str(queue.enqueued[0].id)
    assert len(queue.enqueued) == 1
    assert QueuedRefresh.objects.count() == 1

    # Another conversation, or another owner's, is its own refresh.
    assert (
        client.post("/cometchat/conversations/alice_user_carol/refresh/").json()["already_queued"]
        is False
    )
    assert len(queue.enqueued) == 2

    assert [o["status"] for o in work_off(queue)] == ["succeeded", "succeeded"]
    assert sorted(upstream(fake)) == [ONE, "/v3/users/carol/conversation"]
    assert QueuedRefresh.objects.count() == 0  # taken by the worker: the next one queues
    again = client.post(REFRESH).json()
    assert again["already_queued"] is False
    assert len(queue.enqueued) == 1


# -- 30 at once, against a real server, on PostgreSQL ---------------------------------------------


@pytest.fixture(params=[False, True], ids=["autocommit", "atomic_requests"])
def atomic_requests(request, monkeypatch):
    """Each request in autocommit, and each in one transaction (a host's ATOMIC_REQUESTS)."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", request.param)


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency guarantees are proven on PostgreSQL")


def post_at_once(url: str, token: str) -> list[requests.Response]:
    start = threading.Barrier(TIMES)
    answers: list[Any] = [None] * TIMES

    def post(index: int) -> None:
        start.wait()
        answers[index] = requests.post(url, headers={"Authorization": f"Token {token}"}, timeout=30)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(TIMES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


@pytest.mark.usefixtures("postgres_only", "atomic_requests")
@pytest.mark.django_db(transaction=True)
def test_thirty_concurrent_sync_posts_to_a_live_server_make_one_run_one_enqueue_one_walk(
    fake, alice, queue, live_server
):
    services.owner_for(alice)  # bound already: binding on first use would serialise them
    token = Token.objects.create(user=alice).key
    answers = post_at_once(live_server.url + SYNC, token)

    assert [a.status_code for a in answers] == [202] * TIMES, [a.text for a in answers]
    run = SyncRun.objects.get()
    assert {a.json()["id"] for a in answers} == {run.pk}
    assert sorted(a.json()["already_queued"] for a in answers) == [False] + [True] * (TIMES - 1)
    assert len(queue.enqueued) == 1
    assert [o["status"] for o in work_off(queue)] == ["succeeded"]
    assert upstream(fake) == [WALK]


@pytest.mark.usefixtures("postgres_only")
@pytest.mark.django_db(transaction=True)
def test_thirty_concurrent_refresh_posts_to_a_live_server_queue_one_refresh(
    fake, alice, queue, live_server
):
    services.owner_for(alice)  # bound already: binding on first use would serialise them
    token = Token.objects.create(user=alice).key
    answers = post_at_once(live_server.url + REFRESH, token)

    assert [a.status_code for a in answers] == [202] * TIMES, [a.text for a in answers]
    assert sorted(a.json()["already_queued"] for a in answers) == [False] + [True] * (TIMES - 1)
    assert len(queue.enqueued) == 1
    assert [o["status"] for o in work_off(queue)] == ["succeeded"]
    assert upstream(fake) == [ONE]


# -- what a task reads is committed before the queue has it ----------------------------------


@pytest.fixture
def checking_queue(settings):
    """A queue that notes, per task, whether its run (or refresh claim) was committed when the
    task reached it: a worker in another process takes a task that soon (RQ's does)."""
    CommitCheckingBackend.reset()
    settings.TASKS = {"default": {"BACKEND": "tests.task_backends.CommitCheckingBackend"}}
    yield CommitCheckingBackend
    CommitCheckingBackend.reset()


@pytest.mark.usefixtures("postgres_only", "atomic_requests")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("route", [SYNC, REFRESH], ids=["sync", "refresh"])
def test_the_api_commits_what_a_task_reads_before_queueing_it(
    fake, alice, checking_queue, live_server, route
):
    """Under ATOMIC_REQUESTS too: a run still uncommitted when an RQ worker takes its task is
    not there to take (the sync is lost, and the run answers every request until abandoned)."""
    services.owner_for(alice)
    token = Token.objects.create(user=alice).key
    answer = requests.post(
        live_server.url + route, headers={"Authorization": f"Token {token}"}, timeout=30
    )

    assert answer.status_code == 202, answer.text
    assert checking_queue.committed == [True]
    assert [o["status"] for o in work_off(checking_queue)] == ["succeeded"]


@pytest.mark.usefixtures("postgres_only", "atomic_requests")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["sync_owners", "refresh_from_cometchat"])
def test_the_admin_actions_commit_what_a_task_reads_before_queueing_it(
    fake, alice, admin_client, checking_queue, action
):
    services.sync_conversations(alice)
    pks = list(Conversation.objects.values_list("pk", flat=True))[:1]
    response = admin_client.post(
        "/admin/django_cometchat/conversation/",
        {"action": action, "_selected_action": pks},
        follow=True,
    )

    assert response.status_code == 200
    assert checking_queue.committed == [True]
    assert [o["status"] for o in work_off(checking_queue)] == ["succeeded"]


# -- a queue that refuses -----------------------------------------------------------------------


def error_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    return dict(response.json()["error"])


QUEUE_ERROR = {
    "code": "ERR_QUEUE_UNAVAILABLE",
    "message": "This site could not queue the work just now. Try again later.",
    "status": 503,
}


def test_a_refusing_queue_gives_503_json_from_each_endpoint_and_fails_the_run(
    fake, alice, client, queue, settings
):
    queue.down = True
    queue.error = f"{BROKER_DOWN} (password {settings.COMETCHAT['API_KEY']})"
    client.force_login(alice)

    assert error_of(client.post(SYNC)) == QUEUE_ERROR
    assert error_of(client.post(REFRESH)) == QUEUE_ERROR

    run = SyncRun.objects.get()
    assert (run.status, run.error_code, run.trigger) == ("failed", "ERR_QUEUE_UNAVAILABLE", "api")
    assert run.finished_at is not None
    assert run.error_message.startswith("The task queue refused sync_owner: ConnectionError: ")
    assert BROKER_DOWN in run.error_message
    assert settings.COMETCHAT["API_KEY"] not in run.error_message
    assert run.public_error_message == QUEUE_ERROR["message"]
    assert (
        client.get(f"/cometchat/sync-runs/{run.pk}/").json()["error_message"]
        == (QUEUE_ERROR["message"])
    )
    assert QueuedRefresh.objects.count() == 0  # the refused refresh holds nothing back
    assert upstream(fake) == []

    # The queue is back: the next requests queue normally.
    queue.down = False
    sync = client.post(SYNC)
    assert (sync.status_code, sync.json()["already_queued"]) == (202, False)
    assert sync.json()["id"] != run.pk
    refresh = client.post(REFRESH)
    assert (refresh.status_code, refresh.json()["already_queued"]) == (202, False)
    assert len(queue.enqueued) == 2


@pytest.mark.usefixtures("fake", "atomic_requests")
@pytest.mark.django_db(transaction=True)
def test_a_queue_whose_table_is_missing_gives_503_and_keeps_the_failed_run(alice, client, settings):
    """A forgotten ``migrate`` for django-tasks-db: the enqueue's SQL fails. On PostgreSQL
    that aborts the transaction; the failed run is still recorded, under ATOMIC_REQUESTS too."""
    settings.TASKS = {"default": {"BACKEND": "tests.task_backends.UnmigratedBackend"}}
    client.force_login(alice)
    assert error_of(client.post(SYNC)) == QUEUE_ERROR
    assert error_of(client.post(REFRESH)) == QUEUE_ERROR
    run = SyncRun.objects.get()
    assert (run.status, run.error_code) == ("failed", "ERR_QUEUE_UNAVAILABLE")
    assert "django_tasks_database_dbtaskresult" in run.error_message
    assert QueuedRefresh.objects.count() == 0


def test_a_refusing_queue_is_an_error_message_in_the_admin_actions(
    fake, alice, admin_client, queue
):
    services.sync_conversations(alice)
    pks = list(Conversation.objects.values_list("pk", flat=True))
    queue.down = True
    refused = (
        f"The task queue refused %s: ConnectionError: {BROKER_DOWN} Check the task backend in "
        "Django's TASKS setting: is its broker reachable, and have its migrations run?"
    )
    for action, verb, task, rest in (
        ("sync_owners", "Could not sync alice", "sync_owner", None),
        (
            "refresh_from_cometchat",
            "Could not refresh group_book-club (owner alice)",  # the newest first
            "refresh_conversation",
            "Stopped after that error: 2 more conversation(s) were not tried. Try again once "
            "the task queue takes work.",
        ),
    ):
        response = admin_client.post(
            "/admin/django_cometchat/conversation/",
            {"action": action, "_selected_action": pks},
            follow=True,
        )
        assert response.status_code == 200
        messages = [(m.level_tag, str(m)) for m in response.context["messages"]]
        expected = [("error", f"{verb}: {refused % task}")]
        if rest:
            expected.append(("warning", rest))
        assert messages == expected
    failed = SyncRun.objects.get(trigger="admin")
    assert (failed.status, failed.error_code) == ("failed", "ERR_QUEUE_UNAVAILABLE")
    assert len(queue.enqueued) == 0


def test_a_refusing_queue_is_a_command_error_naming_the_reason(fake, alice, queue):
    services.sync_conversations(alice)
    queue.down = True
    with pytest.raises(CommandError) as refused:
        call_command("cometchat_sync", "--enqueue", "--uid", "alice", stdout=StringIO())
    assert str(refused.value).startswith(
        "Enqueuing stopped: The task queue refused sync_owner: ConnectionError: "
        f"{BROKER_DOWN} Check"
    )
    with pytest.raises(CommandError, match="The task queue refused sync_owner"):
        call_command("cometchat_refresh_stale", "--older-than", "0s", stdout=StringIO())
    failed = SyncRun.objects.filter(status="failed").order_by("pk")
    assert [(r.trigger, r.error_code) for r in failed] == [
        ("command", "ERR_QUEUE_UNAVAILABLE"),
        ("task", "ERR_QUEUE_UNAVAILABLE"),
    ]

    queue.down = False
    out = StringIO()
    call_command("cometchat_sync", "--enqueue", "--uid", "alice", stdout=out)
    assert out.getvalue() == "Enqueued 1 sync of 1.\n"
    assert len(queue.enqueued) == 1


# -- a queued run is carried out once, however often its task is delivered ----------------------


def test_a_queued_run_is_taken_by_one_delivery_only(fake, alice, monkeypatch):
    """Queues deliver at least once: two deliveries of one sync task may both read the run as
    queued. The take is one conditional update, so the second finds it taken and does nothing
    (here the second delivery takes the run between the first one's read and its take)."""
    from django_cometchat.services import sync as sync_service

    run = services.queue_sync_run(services.owner_by_uid("alice"), trigger="task")
    real_owner_by_uid = services.owner_by_uid
    second: list[services.SyncResult] = []

    def another_delivery_first(uid):
        if not started:
            started.append(uid)
            second.append(services.sync_in_background(uid, run_id=run.pk))
        return real_owner_by_uid(uid)

    started: list[str] = []

    monkeypatch.setattr(sync_service, "owner_by_uid", another_delivery_first)
    first = services.sync_in_background("alice", run_id=run.pk)
    assert second[0].run.status == "succeeded"
    assert not second[0].skipped
    assert first.skipped == "not queued any more"
    assert first.run.status == "succeeded"  # read back: the other delivery's outcome
    assert [r.path for r in fake.requests].count(WALK) == 1
    assert SyncRun.objects.get(pk=run.pk).status == "succeeded"
