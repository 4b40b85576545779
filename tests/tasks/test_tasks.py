"""Background work through Django's Tasks framework, in-process: the immediate backend keeps
today's behaviour, a queuing backend (the dummy one here) makes the on-demand seams enqueue and
fetch nothing; the tasks, the commands and abandoned runs. Real workers: test_task_workers.py."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from io import StringIO
from typing import Any

import django
import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cometchat import services, tasks
from django_cometchat.batches import Totals
from django_cometchat.exceptions import CometChatQueueUnavailable
from django_cometchat.models import Conversation, SyncRun
from django_cometchat.signals import sync_run_finished

pytestmark = pytest.mark.django_db

BACKENDS = "django.tasks.backends" if django.VERSION >= (6, 0) else "django_tasks.backends"


@pytest.fixture(autouse=True)
def _uids(settings):
    settings.COMETCHAT = {**settings.COMETCHAT, "UID_RESOLVER": "tests.resolvers.uid_from_username"}


@pytest.fixture
def queue(settings):
    """A backend that keeps what is enqueued (as a worker's queue would) and runs nothing."""
    settings.TASKS = {"default": {"BACKEND": f"{BACKENDS}.dummy.DummyBackend"}}
    backend: Any = tasks.backend()
    assert tasks.queues()
    yield backend
    backend.clear()


def run_queued(backend) -> list[Any]:
    """What a worker would do: run every enqueued task, with its arguments as JSON."""
    outcomes = []
    for result in list(backend.results):
        args, kwargs = json.loads(json.dumps([result.args, result.kwargs]))
        outcomes.append(result.task.call(*args, **kwargs))
    backend.clear()
    return outcomes


def test_without_tasks_setting_the_immediate_backend_keeps_todays_behaviour(fake, alice, client):
    assert not tasks.queues()
    client.force_login(alice)
    response = client.post("/cometchat/conversations/refresh/")
    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"


def test_a_queued_sync_answers_202_with_the_run_to_follow_and_fetches_nothing(
    fake, alice, client, queue
):
    client.force_login(alice)
    response = client.post("/cometchat/conversations/refresh/?conversation_type=group")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["task_id"] == str(queue.results[0].id)
    assert response["Location"] == body["url"]
    assert fake.requests == []
    assert client.get(response["Location"]).json()["status"] == "queued"

    (outcome,) = run_queued(queue)
    run = SyncRun.objects.get()
    assert outcome == {"run": run.pk, "status": "succeeded", "error": ""}
    assert (run.trigger, run.filters) == ("api", {"conversation_type": "group"})
    assert set(Conversation.objects.values_list("conversation_id", flat=True)) == {
        "group_book-club"
    }
    assert client.get(response["Location"]).json()["status"] == "succeeded"


def test_a_sync_task_delivered_twice_syncs_once(fake, alice, queue):
    """Queues deliver at least once: the second delivery finds its run no longer queued."""
    queued = tasks.request_sync(alice, trigger=SyncRun.Trigger.API)
    assert isinstance(queued, tasks.Queued)
    (result,) = queue.results
    args, kwargs = json.loads(json.dumps([result.args, result.kwargs]))
    first = tasks.sync_owner.call(*args, **kwargs)
    requests = len(fake.requests)
    again = tasks.sync_owner.call(*args, **kwargs)
    run = SyncRun.objects.get()
    assert first == {"run": run.pk, "status": "succeeded", "error": ""}
    assert again == {"run": run.pk, "status": "succeeded", "skipped": "not queued any more"}
    assert type(first["status"]) is type(again["status"]) is str  # the plain value, both ways
    assert len(fake.requests) == requests  # nothing fetched the second time


def test_a_queued_refresh_answers_202_with_the_conversation_to_follow(fake, alice, client, queue):
    client.force_login(alice)
    response = client.post("/cometchat/conversations/alice_user_bob/refresh/")
    assert response.status_code == 202
    assert response["Location"].endswith("/cometchat/conversations/alice_user_bob/")
    assert response.json() == {
        "task_id": str(queue.results[0].id),
        "conversation": response["Location"],
        "already_queued": False,
    }
    assert fake.requests == []
    assert client.get(response["Location"]).status_code == 404  # not stored yet
    assert run_queued(queue)[0]["status"] == "succeeded"
    assert client.get(response["Location"]).status_code == 200


def work(settings, queue) -> list[Any]:
    """What a worker would do, with its verdict: run every enqueued task (arguments as JSON)
    through an immediate backend, which records each as SUCCESSFUL or FAILED with its error."""
    settings.TASKS = {
        **settings.TASKS,
        "worker": {"BACKEND": f"{BACKENDS}.immediate.ImmediateBackend"},
    }
    results = []
    for queued in list(queue.results):
        args, kwargs = json.loads(json.dumps([queued.args, queued.kwargs]))
        results.append(queued.task.using(backend="worker").enqueue(*args, **kwargs))
    queue.clear()
    return results


@pytest.mark.parametrize(
    ("conversation_id", "error", "reason"),
    [
        # API.md §0 point 4 and §2 (13): a pair that never chatted is not accessible.
        (
            "alice_user_dave",
            "CometChatNotFound",
            "ERR_CONVERSATION_NOT_ACCESSIBLE (HTTP 403) on GET /users/dave/conversation: "
            "The conversation alice_user_dave is not accessible for the UID alice.",
        ),
        # API.md §2.10: a UID that does not exist.
        (
            "alice_user_nobody",
            "CometChatNotFound",
            "ERR_UID_NOT_FOUND (HTTP 404) on GET /users/nobody/conversation: "
            "The UID nobody does not exist",
        ),
    ],
)
def test_a_queued_refresh_of_a_conversation_cometchat_does_not_have_fails_its_task(
    fake, alice, client, queue, *, settings, caplog, conversation_id, error, reason
):
    """Not stored here, and CometChat does not have it: 202, then the task ends FAILED with
    CometChat's reason (never SUCCESSFUL), and the log says why; nothing is stored."""
    fake.add_user("dave", "Dave Null")
    client.force_login(alice)
    response = client.post(f"/cometchat/conversations/{conversation_id}/refresh/")
    assert response.status_code == 202
    (result,) = work(settings, queue)
    assert result.status == "FAILED"
    (failure,) = result.errors
    assert failure.exception_class_path == f"django_cometchat.exceptions.{error}"
    assert reason in failure.traceback
    warnings = [
        r.getMessage() for r in caplog.records if r.name == "django_cometchat.services.refresh"
    ]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"CometChat refresh of {conversation_id} for alice failed: ")
    assert reason in warnings[0]
    assert client.get(response["Location"]).status_code == 404
    assert not Conversation.objects.filter(conversation_id=conversation_id).exists()
    # The task started, so its claim is gone: asking again queues a new refresh.
    again = client.post(f"/cometchat/conversations/{conversation_id}/refresh/")
    assert again.json()["already_queued"] is False


def test_a_queued_refresh_that_succeeds_is_a_successful_task(fake, alice, queue, settings):
    tasks.request_refresh(services.owner_for(alice), "alice_user_bob")
    (result,) = work(settings, queue)
    assert (result.status, result.errors) == ("SUCCESSFUL", [])
    stored = Conversation.objects.get(conversation_id="alice_user_bob")
    assert result.return_value == {"status": "succeeded", "conversation": stored.pk}


def test_admin_actions_enqueue_and_say_so(fake, alice, admin_client, queue):
    services.sync_conversations(alice)
    fake.clear_requests()
    pks = list(Conversation.objects.values_list("pk", flat=True))
    for action, message in (
        ("sync_owners", "Queued a sync of 1 owner from CometChat: alice."),
        ("refresh_from_cometchat", "Queued a refresh of 3 conversations from CometChat."),
    ):
        response = admin_client.post(
            "/admin/django_cometchat/conversation/",
            {"action": action, "_selected_action": pks},
            follow=True,
        )
        assert [str(m) for m in response.context["messages"]] == [message]
    assert fake.requests == []
    assert len(queue.results) == 4


@pytest.mark.usefixtures("fake")
def test_admin_actions_enqueue_on_a_web_host_without_cometchat_credentials(
    alice, admin_client, queue, settings, monkeypatch
):
    services.sync_conversations(alice)
    # Only the workers hold the key: the web process has none, and needs none to enqueue.
    settings.COMETCHAT = {k: v for k, v in settings.COMETCHAT.items() if k != "API_KEY"}
    monkeypatch.delenv("COMETCHAT_API_KEY", raising=False)
    pks = list(Conversation.objects.values_list("pk", flat=True))
    response = admin_client.post(
        "/admin/django_cometchat/conversation/",
        {"action": "refresh_from_cometchat", "_selected_action": pks},
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["Queued a refresh of 3 conversations from CometChat."]
    assert len(queue.results) == 3


def test_cometchat_sync_enqueue_fetches_nothing(fake, django_user_model, queue):
    for uid in ("alice", "bob", "carol"):
        django_user_model.objects.create_user(username=f"{uid}-django")
    out = StringIO()
    call_command("cometchat_sync", "--all", "--enqueue", stdout=out)
    assert out.getvalue().strip() == "Enqueued 3 syncs of 3."
    assert fake.requests == []
    assert [r.args for r in queue.results] == [["alice"], ["bob"], ["carol"]]
    assert {o["status"] for o in run_queued(queue)} == {"succeeded"}
    assert SyncRun.objects.filter(trigger="command").count() == 3


def test_refresh_stale_enqueues_owners_not_synced_recently(fake, alice, queue):
    services.sync_conversations(alice)  # fresh
    services.sync_conversations(services.owner_by_uid("bob"))
    SyncRun.objects.filter(owner_uid="bob").update(finished_at=timezone.now() - timedelta(hours=1))
    stuck = SyncRun.objects.create(
        owner_uid="carol",
        status=SyncRun.Status.RUNNING,
        started_at=timezone.now() - timedelta(hours=3),
    )
    out = StringIO()
    call_command("cometchat_refresh_stale", "--older-than", "15m", stdout=out)
    assert "Marked 1 abandoned sync run(s) failed." in out.getvalue()
    assert [r.args for r in queue.results] == [["bob"]]  # carol holds no conversations
    stuck.refresh_from_db()
    assert (stuck.status, stuck.error_code) == ("failed", "ERR_ABANDONED")


def test_an_abandoned_run_is_marked_failed_and_the_next_sync_proceeds(fake, alice):
    long_ago = timezone.now() - timedelta(hours=2)
    abandoned = SyncRun.objects.create(
        owner_uid="alice", status=SyncRun.Status.RUNNING, started_at=long_ago
    )
    recent = SyncRun.objects.create(
        owner_uid="alice", status=SyncRun.Status.RUNNING, started_at=timezone.now()
    )
    result = services.sync_conversations(alice)
    assert result.ok
    abandoned.refresh_from_db()
    recent.refresh_from_db()
    assert abandoned.status == "failed"
    assert "SYNC_ABANDONED_AFTER" in abandoned.error_message
    assert recent.status == "running"  # maybe still working: left alone


def test_a_queued_runs_task_takes_and_reads_it_and_marks_the_owners_abandoned_runs(
    fake, alice, django_capture_on_commit_callbacks
):
    """``sync_owner``'s run known by its id only: the take reads it, and marks the owner's
    abandoned runs (announced all the same); on PostgreSQL in one statement, so with no
    receiver to announce to the task touches the runs twice in all (the take, the finish)."""
    owner = services.owner_for(alice)
    queued = services.queue_sync_run(owner, trigger="api")
    abandoned = SyncRun.objects.create(  # its worker died while this one waited
        owner_uid=owner.uid,
        status=SyncRun.Status.RUNNING,
        started_at=timezone.now() - timedelta(hours=2),
    )
    heard: list[tuple[int, str]] = []

    def listener(sender: Any, run: SyncRun, outcome: str, **kwargs: Any) -> None:
        heard.append((run.pk, outcome))

    sync_run_finished.connect(listener)
    try:
        with (
            CaptureQueriesContext(connection) as queries,
            django_capture_on_commit_callbacks(execute=True),
        ):
            result = services.sync_in_background(owner.uid, run_id=queued.pk)
    finally:
        sync_run_finished.disconnect(listener)
    assert (result.run.pk, result.run.status, result.run.trigger) == (queued.pk, "succeeded", "api")
    assert result.run.started_at is not None
    assert result.run.started_at > queued.started_at
    abandoned.refresh_from_db()
    assert (abandoned.status, abandoned.error_code) == ("failed", "ERR_ABANDONED")
    assert sorted(heard) == sorted([(abandoned.pk, "abandoned"), (queued.pk, "succeeded")])
    if connection.vendor == "postgresql":
        touching = [q["sql"] for q in queries if "syncrun" in q["sql"]]
        # The take (which marks), the abandoned run read for its announcement (only because
        # a receiver listens), the finish.
        assert len(touching) == 3, "\n".join(touching)
        assert touching[0].startswith("WITH taken AS (UPDATE")
        assert f"IN ({abandoned.pk})" in touching[1]
    again = services.sync_in_background(owner.uid, run_id=queued.pk)  # delivered twice
    assert (again.skipped, again.run.status) == ("not queued any more", "succeeded")


@pytest.mark.django_db(transaction=True)
def test_a_queued_runs_take_skips_an_abandoned_run_another_transaction_holds(fake, alice):
    """The take keeps its own row locked to the commit, so it must not wait for an abandoned
    run another transaction holds (a sweep marking the owner's runs may be waiting for the
    taken row: a deadlock). It skips it, left for that transaction; and a queued run older
    than ``SYNC_ABANDONED_AFTER`` is taken, not marked abandoned by its own take."""
    if connection.vendor != "postgresql":
        pytest.skip("the take and the mark are one statement on PostgreSQL only")
    owner = services.owner_for(alice)
    queued = services.queue_sync_run(owner, trigger="api")
    long_ago = timezone.now() - timedelta(hours=2)
    SyncRun.objects.filter(pk=queued.pk).update(started_at=long_ago)  # waited for a worker
    abandoned = SyncRun.objects.create(
        owner_uid=owner.uid, status=SyncRun.Status.RUNNING, started_at=long_ago
    )
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                SyncRun.objects.select_for_update().get(pk=abandoned.pk)
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with connection.cursor() as cursor:  # waiting on the held row fails, not hangs
            cursor.execute("SET statement_timeout = '3s'")
        result = services.sync_in_background(owner.uid, run_id=queued.pk)
    finally:
        release.set()
        holder.join()
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
    assert (result.run.pk, result.run.status) == (queued.pk, "succeeded")
    abandoned.refresh_from_db()
    assert abandoned.status == "running"  # skipped: the holder's (or the next sweep's) to mark
    assert services.mark_abandoned_runs(owner.uid) == 1


def test_task_arguments_are_plain_json(fake, alice, queue):
    owner = services.owner_for(alice)
    tasks.request_sync(owner, trigger="api")
    tasks.request_refresh(owner, "alice_user_bob")
    for result in queue.results:
        assert json.loads(json.dumps([result.args, result.kwargs])) == [
            list(result.args),
            result.kwargs,
        ]


@pytest.mark.parametrize("value", ["15", "m", "5 minutes", "1w", ""])
def test_refresh_stale_refuses_a_bad_age(value):
    with pytest.raises(CommandError, match="expected a number and a unit"):
        call_command("cometchat_refresh_stale", "--older-than", value, stderr=StringIO())


def test_refresh_stale_does_not_enqueue_an_owner_whose_sync_still_waits(fake, alice, queue):
    services.sync_conversations(alice)
    SyncRun.objects.update(finished_at=timezone.now() - timedelta(hours=1))
    outputs = []
    for _ in range(2):  # cron fires again before a worker took the first one
        out = StringIO()
        call_command("cometchat_refresh_stale", "--older-than", "15m", stdout=out)
        outputs.append(out.getvalue())
    assert outputs == [
        "Enqueued 1 sync(s) of stale owners.\n",
        "Enqueued 0 sync(s) of stale owners; 1 already queued or running.\n",
    ]
    assert [r.args for r in queue.results] == [["alice"]]
    queued = SyncRun.objects.get(status=SyncRun.Status.QUEUED)
    assert queue.results[0].kwargs["run_id"] == queued.pk
    run_queued(queue)
    queued.refresh_from_db()
    assert queued.status == SyncRun.Status.SUCCEEDED


def test_a_sync_the_queue_refuses_fails_its_run_and_stays_due(fake, alice, queue, monkeypatch):
    """Left "queued", the run would keep cometchat_refresh_stale off alice for an hour."""
    services.sync_conversations(alice)
    SyncRun.objects.update(finished_at=timezone.now() - timedelta(hours=1))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the queue's broker is down")

    monkeypatch.setattr(queue, "enqueue", refuse)
    with pytest.raises(CommandError, match=r"The task queue refused sync_owner.*broker is down"):
        call_command("cometchat_refresh_stale", "--older-than", "15m", stdout=StringIO())
    refused = SyncRun.objects.get(trigger=SyncRun.Trigger.TASK)
    assert (refused.status, refused.error_code) == ("failed", "ERR_QUEUE_UNAVAILABLE")
    assert "broker is down" in refused.error_message
    monkeypatch.undo()
    call_command("cometchat_refresh_stale", "--older-than", "15m", stdout=StringIO())
    assert [r.args for r in queue.results] == [["alice"]]


# -- enqueue_syncs: owners claimed and queued in groups -----------------------------------------


def refuse_tasks_of(queue: Any, monkeypatch: Any, uid: str, error: BaseException) -> None:
    """The queue raises ``error`` for ``uid``'s task and accepts the others."""
    enqueue = queue.enqueue

    def refusing(task: Any, args: Any, kwargs: Any) -> Any:
        if args[0] == uid:
            raise error
        return enqueue(task, args, kwargs)

    monkeypatch.setattr(queue, "enqueue", refusing)


BROKER_DOWN = ConnectionError("the queue's broker is down")


def claimed_statements(owners: list[services.Owner]) -> tuple[Totals, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        totals = tasks.enqueue_syncs(owners)
    return totals, [q["sql"] for q in queries if "syncrun" in q["sql"]]


def test_a_group_of_owners_is_claimed_in_three_statements_whatever_its_size(fake, queue):
    """The batch's abandoned runs marked, its active runs read, its new runs inserted: as many
    statements for 30 owners as for 3. An owner whose sync waits gets no second one; an owner
    listed twice is queued once."""
    waiting = services.queue_sync_run(services.owner_by_uid("bob"), trigger="api")
    few = [services.owner_by_uid(uid) for uid in ("alice", "bob", "carol", "alice")]
    totals, statements = claimed_statements(few)
    assert (totals.succeeded, totals.already_queued) == (2, 2)
    assert len(statements) == 3, "\n".join(statements)
    assert [r.args for r in queue.results] == [["alice"], ["carol"]]
    runs = {r.owner_uid: r for r in SyncRun.objects.filter(status=SyncRun.Status.QUEUED)}
    assert runs["bob"] == waiting
    assert [r.kwargs["run_id"] for r in queue.results] == [runs["alice"].pk, runs["carol"].pk]

    SyncRun.objects.all().delete()
    queue.clear()
    many = [services.owner_by_uid(f"user-{n:02}") for n in range(30)]
    totals, statements = claimed_statements(many)
    assert totals.succeeded == 30
    assert len(statements) == 3, "\n".join(statements)
    assert SyncRun.objects.filter(status=SyncRun.Status.QUEUED).count() == 30


@pytest.mark.usefixtures("postgres_only")
@pytest.mark.django_db(transaction=True)
def test_a_run_a_request_claims_while_the_group_is_claimed_is_answered_not_doubled(fake, queue):
    """A request claims carol's sync between the group's read of the active runs and its
    insert (another connection, committed): the insert fails on the one-run-per-owner
    constraint, the group is claimed again one owner at a time, and carol keeps the request's
    run, with no second task."""
    owners = [services.owner_by_uid(uid) for uid in ("alice", "bob", "carol")]
    intruder: list[SyncRun] = []

    def claim_elsewhere() -> None:
        try:
            intruder.append(services.queue_sync_run(owners[2], trigger="api"))
        finally:
            connections.close_all()

    def race(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith('INSERT INTO "django_cometchat_syncrun"') and not intruder:
            thread = threading.Thread(target=claim_elsewhere)
            thread.start()
            thread.join(10)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(race):
        totals = tasks.enqueue_syncs(owners)
    assert (totals.succeeded, totals.already_queued) == (2, 1)
    assert [r.args for r in queue.results] == [["alice"], ["bob"]]
    active = SyncRun.objects.filter(status=SyncRun.Status.QUEUED)
    assert sorted(r.owner_uid for r in active) == ["alice", "bob", "carol"]
    assert active.get(owner_uid="carol") == intruder[0]


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("a race between two connections needs a database they share")


def test_a_task_the_queue_refuses_in_a_group_fails_that_run_and_the_ones_after_it(
    fake, queue, monkeypatch
):
    """The group's tasks are queued together; the refusal of carol's sends them again one at
    a time, so each owner gets its own outcome: alice and bob queued, carol's run failed with
    the reason, dave's (claimed, after the stop) failed with it too rather than left waiting.
    The in-memory queue, like Redis, keeps the tasks queued before the refusal: each run is
    taken by one of its two tasks, the other skipped."""
    refuse_tasks_of(queue, monkeypatch, "carol", BROKER_DOWN)
    owners = [services.owner_by_uid(uid) for uid in ("alice", "bob", "carol", "dave")]
    with pytest.raises(CometChatQueueUnavailable, match="broker is down"):
        tasks.enqueue_syncs(owners)
    runs = {r.owner_uid: r for r in SyncRun.objects.all()}
    assert {uid: (r.status, r.error_code) for uid, r in runs.items()} == {
        "alice": ("queued", ""),
        "bob": ("queued", ""),
        "carol": ("failed", "ERR_QUEUE_UNAVAILABLE"),
        "dave": ("failed", "ERR_QUEUE_UNAVAILABLE"),
    }
    assert [r.args for r in queue.results] == [["alice"], ["bob"], ["alice"], ["bob"]]
    outcomes = run_queued(queue)
    assert sorted(o["status"] if "skipped" not in o else "skipped" for o in outcomes) == [
        "skipped",
        "skipped",
        "succeeded",
        "succeeded",
    ]


@pytest.mark.usefixtures("postgres_only")
@pytest.mark.django_db(transaction=True)
def test_a_run_a_worker_took_before_the_queue_refused_is_left_to_it(fake, queue, monkeypatch):
    """A queue outside the database (Redis) accepts alice's and bob's tasks, and a worker (a
    thread with its own connection) carries out alice's at once; then the broker goes down.
    The replay's refusal stops the batch: alice's finished run is kept as it is, the runs
    still queued are failed."""
    enqueue = queue.enqueue
    calls = 0

    def work_off_alice() -> None:
        try:
            first = queue.results[0]
            first.task.call(*first.args, **first.kwargs)
        finally:
            connections.close_all()

    def broker_dies(task: Any, args: Any, kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= 2:
            return enqueue(task, args, kwargs)
        if calls == 3:  # a worker took alice's task meanwhile
            worker = threading.Thread(target=work_off_alice)
            worker.start()
            worker.join(30)
        raise ConnectionError("the queue's broker is down")

    monkeypatch.setattr(queue, "enqueue", broker_dies)
    heard: list[tuple[str, str]] = []

    def listener(sender: Any, run: SyncRun, outcome: str, **kwargs: Any) -> None:
        heard.append((run.owner_uid, outcome))

    owners = [services.owner_by_uid(uid) for uid in ("alice", "bob", "carol", "dave")]
    sync_run_finished.connect(listener)
    try:
        with pytest.raises(CometChatQueueUnavailable):
            tasks.enqueue_syncs(owners)
    finally:
        sync_run_finished.disconnect(listener)
    runs = {r.owner_uid: (r.status, r.error_code) for r in SyncRun.objects.all()}
    assert runs == {
        "alice": ("succeeded", ""),
        "bob": ("failed", "ERR_QUEUE_UNAVAILABLE"),
        "carol": ("failed", "ERR_QUEUE_UNAVAILABLE"),
        "dave": ("failed", "ERR_QUEUE_UNAVAILABLE"),
    }
    assert sorted(heard) == [("alice", "succeeded")] + [
        (uid, "failed") for uid in ("bob", "carol", "dave")
    ]  # each once


def test_an_interrupt_while_the_groups_tasks_are_queued_leaves_no_run_waiting(
    fake, queue, monkeypatch
):
    """Ctrl-C while queuing carol's task: the tasks queued together are rolled back (a queue in
    the database) or not (Redis); either way no claimed run waits for a task that may never
    come: each is failed as interrupted."""
    refuse_tasks_of(queue, monkeypatch, "carol", KeyboardInterrupt())
    owners = [services.owner_by_uid(uid) for uid in ("alice", "bob", "carol", "dave")]
    with pytest.raises(KeyboardInterrupt):
        tasks.enqueue_syncs(owners)
    assert not SyncRun.objects.filter(status=SyncRun.Status.QUEUED).exists()
    assert set(SyncRun.objects.values_list("error_code", flat=True)) == {"ERR_INTERRUPTED"}


def test_an_interrupt_while_a_requested_sync_is_queued_fails_its_run(
    fake, alice, queue, monkeypatch
):
    """The API's path (one owner, its task id answered) fails a run its task never reached, as
    the batch does: left "queued", it would answer alice's requests until abandoned."""
    refuse_tasks_of(queue, monkeypatch, "alice", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        tasks.request_sync(alice, trigger=SyncRun.Trigger.API)
    run = SyncRun.objects.get()
    assert (run.status, run.error_code) == ("failed", "ERR_INTERRUPTED")
    monkeypatch.undo()  # the queue takes tasks again
    again = tasks.request_sync(alice, trigger=SyncRun.Trigger.API)
    assert isinstance(again, tasks.Queued)
    assert not again.already_queued


def test_a_run_failed_where_its_task_was_queued_is_not_failed_again_with_its_group(
    fake, queue, monkeypatch, django_capture_on_commit_callbacks
):
    """The group queued together fails (a blip), so one at a time; Ctrl-C at carol's task
    fails her run there, then the group's runs still without a task (hers and dave's): hers
    is failed, and announced, once (found by a review)."""
    enqueue, calls = queue.enqueue, []

    def refusing(task: Any, args: Any, kwargs: Any) -> Any:
        calls.append(args[0])
        if len(calls) == 1:
            raise BROKER_DOWN  # the group together: one at a time instead
        if args[0] == "carol":
            raise KeyboardInterrupt
        return enqueue(task, args, kwargs)

    monkeypatch.setattr(queue, "enqueue", refusing)
    heard: list[str] = []

    def listener(sender: Any, run: SyncRun, **kwargs: Any) -> None:
        heard.append(run.owner_uid)

    sync_run_finished.connect(listener, dispatch_uid="test-once")
    try:
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(KeyboardInterrupt):
            tasks.enqueue_syncs(
                [services.owner_by_uid(uid) for uid in ("alice", "bob", "carol", "dave")]
            )
    finally:
        sync_run_finished.disconnect(dispatch_uid="test-once")
    assert sorted(heard) == ["carol", "dave"]
    runs = {r.owner_uid: (r.status, r.error_code) for r in SyncRun.objects.all()}
    assert runs == {
        "alice": ("queued", ""),
        "bob": ("queued", ""),
        "carol": ("failed", "ERR_INTERRUPTED"),
        "dave": ("failed", "ERR_INTERRUPTED"),
    }


def test_groups_are_claimed_in_turn_and_a_refusal_in_the_second_stops_the_rest(
    fake, queue, monkeypatch
):
    """ENQUEUE_BATCH 2, five owners: the first group queued together; in the second, dave's
    refusal fails his run and the run claimed for erin (after him in that group); frank's
    group is never claimed."""
    monkeypatch.setattr(tasks, "ENQUEUE_BATCH", 2)
    refuse_tasks_of(queue, monkeypatch, "dave", BROKER_DOWN)
    uids = ("alice", "bob", "dave", "erin", "frank")
    with pytest.raises(CometChatQueueUnavailable):
        tasks.enqueue_syncs([services.owner_by_uid(uid) for uid in uids])
    runs = {r.owner_uid: (r.status, r.error_code) for r in SyncRun.objects.all()}
    assert runs == {
        "alice": ("queued", ""),
        "bob": ("queued", ""),
        "dave": ("failed", "ERR_QUEUE_UNAVAILABLE"),
        "erin": ("failed", "ERR_QUEUE_UNAVAILABLE"),
    }
    assert [r.args for r in queue.results] == [["alice"], ["bob"]]


@pytest.mark.usefixtures("postgres_only")
@pytest.mark.django_db(transaction=True)
def test_a_user_deleted_while_the_owners_were_read_is_claimed_one_at_a_time(
    fake, queue, django_user_model
):
    """cat's account is deleted after the owners were read: the group's insert fails at its
    commit (the foreign key is checked there), nothing of the group stays, and the owners are
    claimed and queued one at a time, as before groups: ann and ben queued, cat's failure
    raised, dan not reached; no run is left queued without its task."""
    users = [django_user_model.objects.create(username=f"{u}-django") for u in ("ann", "ben")]
    users += [django_user_model.objects.create(username=f"{u}-django") for u in ("cat", "dan")]
    owners = [services.owner_for(user) for user in users]
    django_user_model.objects.filter(pk=users[2].pk).delete()
    with pytest.raises(IntegrityError):
        tasks.enqueue_syncs(owners)
    queued = SyncRun.objects.filter(status=SyncRun.Status.QUEUED)
    assert sorted(queued.values_list("owner_uid", flat=True)) == ["ann", "ben"]
    assert [r.args for r in queue.results] == [["ann"], ["ben"]]
