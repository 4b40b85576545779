"""Real task workers in other processes, two at a time: django-tasks-db's ``db_worker`` (the queue
is a table of PostgreSQL) and RQ through django-tasks-rq (the queue is in Redis, run by
django-rq's ``rqworker``).

Each sync test starts two workers, enqueues 200 owner syncs with ``cometchat_sync --all --enqueue``
(in a process of its own, as a host's cron would), waits for the queue to drain, and checks that
every owner was synced exactly once (one succeeded ``SyncRun`` each, trigger "command", every
page of every owner fetched once), that no (owner_uid, conversation_id) row is duplicated, that
no task failed and no worker logged a traceback, and that both workers did work.

One more test posts CometChat's published webhook examples to the view (in a process of its own,
with the db backend) and checks what the workers' refreshes made of them; another posts a burst
over real HTTP to the site served by gunicorn (``gthread``, as docs/webhooks.md advises).

The workers run ``tests.settings_workers`` against the pytest test database (hence
``transaction=True``: they see only committed rows) and reach this process's fake CometChat over
loopback through ``COMETCHAT_BASE_URL``. A worker that dies fails the test with its stderr; the
fixture kills every worker's process group whatever happens. The in-process tests of the tasks
are in test_tasks.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django
import pytest
import redis
import requests
from django.db import connection
from django.db.models import Count

from django_cometchat.models import Conversation, SyncRun
from tests import ROOT

REDIS_URL = os.environ.get("COMETCHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
OWNERS = 200
WORKERS = 2
START_TIMEOUT = 30.0
DRAIN_TIMEOUT = 60.0
TASK_TABLE = "django_tasks_database_dbtaskresult"  # app label "django_tasks_database"

pytestmark = pytest.mark.django_db(transaction=True)


def owner_uid(i: int) -> str:
    return f"owner-{i:03d}"


def conversations_of(i: int) -> int:
    return 1 + i % 7  # 1 to 7 conversations: 1 to 3 pages of PAGE_SIZE 3


# -- the workers --------------------------------------------------------------------------------


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            pytest.fail(
                f"worker {self.name} exited with status {code}; its stderr:\n"
                f"{self.stderr.read_text(errors='replace')[-8000:]}\n"
                f"its stdout (end):\n{self.stdout.read_text(errors='replace')[-2000:]}"
            )

    def stop(self) -> None:
        """SIGTERM to the worker's process group (an RQ work horse too), SIGKILL if it lingers."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue
            if sig == signal.SIGTERM:  # the leader is gone; a forked child may not be
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
            break


def worker_command(engine: str, name: str) -> list[str]:
    if engine == "db":
        return ["db_worker", "--worker-id", name, "--interval", "0.2", "--no-startup-delay"]
    return ["rqworker", "default", "--name", name, "--job-class", "django_tasks_rq.Job"]


READY_LINE = {"db": "Starting worker", "rq": "Listening on"}


@pytest.fixture
def worker_env(cometchat_fake) -> Callable[[str], dict[str, str]]:
    def env(engine: str) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings_workers",
            "COMETCHAT_TEST_DB": "postgres",
            "COMETCHAT_TEST_TASKS": engine,
            "COMETCHAT_TEST_WORKER_DB": str(connection.settings_dict["NAME"]),
            "COMETCHAT_TEST_REDIS_URL": REDIS_URL,
            "COMETCHAT_BASE_URL": cometchat_fake.base_url,
            "PYTHONUNBUFFERED": "1",
        }

    return env


@pytest.fixture
def start_workers(
    tmp_path, worker_env
) -> Iterator[Callable[[str], tuple[dict[str, str], list[Worker]]]]:
    """``start(engine)``: two ready workers, and the environment to run commands beside them."""
    started: list[Worker] = []

    def start(engine: str) -> tuple[dict[str, str], list[Worker]]:
        env = worker_env(engine)
        if engine == "db":  # the queue's table, in the test database
            run_django(env, "migrate", "django_tasks_database", "--verbosity", "0")
        workers = []
        for n in range(1, WORKERS + 1):
            name = f"{engine}-worker-{n}-{secrets.token_hex(3)}"
            stdout, stderr = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
            with stdout.open("wb") as out, stderr.open("wb") as err:
                process = subprocess.Popen(
                    [sys.executable, "-m", "django", *worker_command(engine, name)],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,  # its own process group, killed as one
                )
            worker = Worker(name, process, stdout, stderr)
            started.append(worker)
            workers.append(worker)
        deadline = time.monotonic() + START_TIMEOUT
        for worker in workers:
            while READY_LINE[engine] not in worker.output():
                worker.check_alive()
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"worker {worker.name} not ready in {START_TIMEOUT}s:\n"
                        f"{worker.output()[-4000:]}"
                    )
                time.sleep(0.1)
        return env, workers

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def shared_services():
    if connection.vendor != "postgresql":
        pytest.skip(
            "worker processes need a database they can share; this cell's SQLite is in memory "
            "(run with COMETCHAT_TEST_DB=postgres)"
        )
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"Redis is not running at {REDIS_URL} (.ci/run starts it)")
    client.flushdb()  # the RQ queue and the rate budget of these tests only
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def owners(cometchat_fake, django_user_model) -> dict[str, int]:
    """200 CometChat users with 1 to 7 conversations each, and their Django users."""
    expected = {}
    for i in range(OWNERS):
        uid = owner_uid(i)
        cometchat_fake.add_user(uid)
        cometchat_fake.bulk_conversations(uid, conversations_of(i), prefix=f"{uid}-peer")
        expected[uid] = conversations_of(i)
    django_user_model.objects.bulk_create(
        [django_user_model(username=f"{uid}-django") for uid in expected]
    )
    cometchat_fake.clear_requests()
    return expected


def run_django(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


# -- what became of the tasks -------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: str  # SUCCESSFUL, FAILED, READY, RUNNING
    worker: str | None
    value: Any


def db_outcomes(_: redis.Redis) -> list[Outcome]:
    """The task rows of django-tasks-db (not an app of this process's settings: plain SQL)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status, worker_ids, return_value FROM {TASK_TABLE}")  # noqa: S608
        rows = cursor.fetchall()

    def decoded(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    return [
        Outcome(status, (decoded(workers) or [None])[-1], decoded(value))
        for status, workers, value in rows
    ]


def rq_outcomes(client: redis.Redis) -> list[Outcome]:
    """RQ's registries and results of the "default" queue."""
    from rq import Queue
    from rq.job import Job
    from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
    from rq.results import Result

    queue = Queue("default", connection=client)
    outcomes = [Outcome("READY", None, None) for _ in range(queue.count)]
    outcomes += [
        Outcome("RUNNING", None, None) for _ in StartedJobRegistry(queue=queue).get_job_ids()
    ]
    for status, registry in (
        ("SUCCESSFUL", FinishedJobRegistry(queue=queue)),
        ("FAILED", FailedJobRegistry(queue=queue)),
    ):
        for job_id in registry.get_job_ids():
            result = Job.fetch(job_id, connection=client).latest_result()
            if result is None:  # finished a moment ago; its result is on its way
                outcomes.append(Outcome("RUNNING", None, None))
                continue
            value = result.return_value if result.type == Result.Type.SUCCESSFUL else None
            outcomes.append(Outcome(status, result.worker_name, value))
    return outcomes


OUTCOMES = {"db": db_outcomes, "rq": rq_outcomes}


def drain(engine, client, workers: list[Worker], *, count: int = OWNERS) -> list[Outcome]:
    """Wait until ``count`` tasks have finished (or a worker died, or the time is up)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        for worker in workers:
            worker.check_alive()
        outcomes = OUTCOMES[engine](client)
        statuses = Counter(o.status for o in outcomes)
        if statuses["SUCCESSFUL"] + statuses["FAILED"] >= count:
            return outcomes
        if time.monotonic() > deadline:
            logs = "\n".join(f"== {w.name}\n{w.output()[-3000:]}" for w in workers)
            pytest.fail(f"the queue did not drain in {DRAIN_TIMEOUT}s: {dict(statuses)}\n{logs}")
        time.sleep(0.25)


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["db", "rq"])
def test_two_workers_sync_every_owner_exactly_once(
    engine, shared_services, owners, cometchat_fake, start_workers
):
    env, workers = start_workers(engine)

    out = run_django(env, "cometchat_sync", "--all", "--enqueue")
    assert out.strip() == f"Enqueued {OWNERS} syncs of {OWNERS}."
    outcomes = drain(engine, shared_services, workers)

    # Every task succeeded, each ran its owner's sync to success; both workers took some.
    assert len(outcomes) == OWNERS
    assert Counter(o.status for o in outcomes) == {"SUCCESSFUL": OWNERS}
    assert all(o.value["status"] == "succeeded" and o.value["error"] == "" for o in outcomes)
    by_worker = Counter(o.worker for o in outcomes)
    assert set(by_worker) == {w.name for w in workers}, by_worker

    # One succeeded SyncRun per owner, as enqueued by the command.
    runs = list(SyncRun.objects.values_list("owner_uid", "status", "trigger", "error_code"))
    assert Counter(uid for uid, *_ in runs) == dict.fromkeys(owners, 1)
    assert {(status, trigger, code) for _, status, trigger, code in runs} == {
        ("succeeded", "command", "")
    }
    assert {o.value["run"] for o in outcomes} == set(SyncRun.objects.values_list("pk", flat=True))

    # Every conversation stored once; every page of every owner fetched once, never refused.
    duplicates = (
        Conversation.objects.values("owner_uid", "conversation_id")
        .annotate(rows=Count("id"))
        .filter(rows__gt=1)
    )
    assert list(duplicates) == []
    stored = Counter(Conversation.objects.values_list("owner_uid", flat=True))
    assert stored == owners
    pages = Counter(
        (r.headers.get("onbehalfof"), r.query.get("page", "1"))
        for r in cometchat_fake.requests
        if r.path == "/v3/conversations"
    )
    assert {uid for uid, _ in pages} == set(owners)
    assert set(pages.values()) == {1}, [key for key, n in pages.items() if n > 1]
    assert {r.status for r in cometchat_fake.requests} == {200}

    for worker in workers:
        worker.check_alive()
        assert "Traceback" not in worker.output(), worker.output()[-4000:]


# -- a published webhook, end to end -------------------------------------------------------------

DELIVER = """
import json
from django.test import Client
from tests.surface import basic_authorization, published_webhook, webhook_path

client = Client()
for name in {names!r}:
    response = client.post(
        webhook_path(),
        data=json.dumps(published_webhook(name)),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_authorization(),
    )
    print("answer:", response.status_code, response.content.decode())
"""


def test_published_webhooks_are_processed_by_a_real_worker(
    shared_services, cometchat_fake, start_workers
):
    """CometChat's published ``group_member_kicked`` and ``user_blocked`` examples (API.md §7,
    fixtures/webhook.*.json), posted with Basic auth to the view in a process of its own that
    enqueues on django-tasks-db; the workers' refreshes mark bob's copy of the group missing
    (CometChat answers ERR_CONVERSATION_NOT_ACCESSIBLE) and set the block flags."""
    from django_cometchat import services
    from django_cometchat.models import WebhookEvent

    fake = cometchat_fake
    fake.add_user("alice", "Alice Example")
    fake.add_user("bob", "Bob Example")
    fake.add_group("support-team", "Support Team", members=["alice", "bob"])
    fake.send_message("alice", to_group="support-team", text="welcome")
    fake.send_message("bob", to_user="alice", text="hi")
    for uid in ("alice", "bob"):
        services.sync_conversations(services.owner_by_uid(uid))
    fake.remove_member("support-team", "bob")
    fake.block_user("alice", "bob")
    fake.clear_requests()
    env, workers = start_workers("db")
    with connection.cursor() as cursor:  # an earlier test's tasks (not an app here: no flush)
        cursor.execute(f"DELETE FROM {TASK_TABLE}")  # noqa: S608

    names = ("group_member_kicked", "user_blocked")
    out = run_django(env, "shell", "-c", DELIVER.format(names=names))
    # Django 6 shell prints its auto-import count first: pick our own lines by their marker.
    answers = [line for line in out.splitlines() if line.startswith("answer: ")]
    assert answers == ['answer: 200 {"status": "accepted"}'] * 2, out

    deadline = time.monotonic() + DRAIN_TIMEOUT
    while WebhookEvent.objects.filter(status__in=("received", "processing")).exists():
        for worker in workers:
            worker.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"the events were not processed: {list(WebhookEvent.objects.values())}")
        time.sleep(0.2)

    events = dict(WebhookEvent.objects.values_list("trigger", "status"))
    assert events == {"group_member_kicked": "processed", "user_blocked": "processed"}
    owners = dict(WebhookEvent.objects.values_list("trigger", "owners"))
    assert owners == {"group_member_kicked": ["bob"], "user_blocked": ["alice", "bob"]}
    bob_team = Conversation.objects.get(owner_uid="bob", conversation_id="group_support-team")
    assert bob_team.missing_since is not None
    alice_team = Conversation.objects.get(owner_uid="alice", conversation_id="group_support-team")
    assert alice_team.missing_since is None
    peers = {
        row.owner_uid: row.payload["conversationWith"]
        for row in Conversation.objects.filter(conversation_id="alice_user_bob")
    }
    assert (peers["alice"]["blockedByMe"], peers["bob"]["hasBlockedMe"]) == (True, True)
    assert sorted((r.headers.get("onbehalfof"), r.path, r.status) for r in fake.requests) == [
        ("alice", "/v3/users/bob/conversation", 200),
        ("bob", "/v3/groups/support-team/conversation", 403),
        ("bob", "/v3/users/alice/conversation", 200),
    ]
    # One task each, or one for both when the second arrived before a worker took the first
    # (services.needs_task): every event processed once either way.
    outcomes = db_outcomes(shared_services)
    assert {o.status for o in outcomes} == {"SUCCESSFUL"}
    done = Counter(o.value["status"] for o in outcomes if o.value["status"] != "skipped")
    for o in outcomes:
        done.update(o.value["followers"])
    assert done == {"processed": 2}, [o.value for o in outcomes]
    for worker in workers:
        worker.check_alive()
        assert "Traceback" not in worker.output(), worker.output()[-4000:]


DELIVER_FILE = """
import json, sys
from django.test import Client
from tests.surface import basic_authorization, webhook_path

client = Client()
for body in json.load(open({path!r})):
    response = client.post(
        webhook_path(),
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_authorization(),
    )
    print("answer:", response.status_code, response.content.decode())
"""


BURST = 40


def message_burst(fake) -> list[dict[str, Any]]:
    """alice and bob known to the site (a first sync each), then ``BURST`` messages from bob as
    CometChat's ``message_sent`` deliveries (fixtures/webhook.message_sent.json carrying the
    fake's messages: API.md §7), the last saying ``m{BURST - 1}``."""
    from django_cometchat import services
    from tests.surface import published_webhook

    for uid in ("alice", "bob"):
        fake.add_user(uid, f"{uid.title()} Example")
    fake.send_message("bob", to_user="alice", text="hi")
    for uid in ("alice", "bob"):
        services.sync_conversations(services.owner_by_uid(uid))
    bodies = []
    for n in range(BURST):
        body = published_webhook("message_sent")
        body["data"]["message"] = fake.send_message("bob", to_user="alice", text=f"m{n}")
        bodies.append(body)
    return bodies


def forget_earlier_tasks() -> None:
    with connection.cursor() as cursor:  # an earlier test's tasks (not an app here: no flush)
        cursor.execute(f"DELETE FROM {TASK_TABLE}")  # noqa: S608


def check_burst_processed(processes: list[Worker]) -> None:
    """Wait until every event of ``message_burst`` is processed (the tasks queue more as they
    go: a helper for a backlog), then check each refreshed both owners, both copies end on the
    last message, and no process died or logged a traceback."""
    from django_cometchat.models import WebhookEvent

    deadline = time.monotonic() + DRAIN_TIMEOUT
    while WebhookEvent.objects.exclude(status="processed").exists():
        for process in processes:
            process.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"the events were not processed: {list(WebhookEvent.objects.values())}")
        time.sleep(0.2)
    events = list(WebhookEvent.objects.values_list("status", "owners"))
    assert events == [("processed", ["alice", "bob"])] * BURST
    for owner in ("alice", "bob"):
        row = Conversation.objects.get(owner_uid=owner, conversation_id="alice_user_bob")
        assert row.payload["lastMessage"]["data"]["text"] == f"m{BURST - 1}"
    for process in processes:
        process.check_alive()
        assert "Traceback" not in process.output(), process.output()[-4000:]


def test_a_burst_of_webhooks_shares_tasks_and_each_event_is_processed_once(
    shared_services, cometchat_fake, start_workers, worker_env, tmp_path
):
    """40 ``message_sent`` deliveries (CometChat's published example, fixtures/
    webhook.message_sent.json, carrying the fake's messages: API.md §7) posted while no worker
    runs: the webhook queues one task for the first, the rest wait behind it
    (``services.needs_task``). Two workers then process every event exactly once, in fewer
    tasks than events (a task asks for one more while a backlog waits, so that both workers
    help), and both owners' copies end on the last message."""
    from django_cometchat.models import WebhookEvent

    path = tmp_path / "bodies.json"
    path.write_text(json.dumps(message_burst(cometchat_fake)))
    env = worker_env("db")
    run_django(env, "migrate", "django_tasks_database", "--verbosity", "0")
    forget_earlier_tasks()
    out = run_django(env, "shell", "-c", DELIVER_FILE.format(path=str(path)))
    answers = [line for line in out.splitlines() if line.startswith("answer: ")]
    assert answers == ['answer: 200 {"status": "accepted"}'] * BURST, out
    queued = WebhookEvent.objects.filter(task_queued=True).count()
    assert 1 <= queued < BURST

    _, workers = start_workers("db")
    check_burst_processed(workers)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {TASK_TABLE}")  # noqa: S608
        (tasks,) = cursor.fetchone()
    assert tasks < BURST
    outcomes = drain("db", shared_services, workers, count=tasks)
    assert {o.status for o in outcomes} == {"SUCCESSFUL"}, outcomes
    done = Counter(o.value["status"] for o in outcomes if o.value["status"] != "skipped")
    for o in outcomes:
        done.update(o.value["followers"])
    assert done == {"processed": BURST}, [o.value for o in outcomes]


# -- the webhook served by gunicorn ----------------------------------------------------------------

GUNICORN_THREADS = 8


SITE_NAME = "cometchat-gunicorn-site"  # application_name of the site's connections


@pytest.fixture
def gunicorn_site(worker_env, tmp_path) -> Iterator[tuple[str, Worker]]:
    """The tests' site served by gunicorn as docs/webhooks.md advises (one ``gthread`` worker of
    ``GUNICORN_THREADS`` threads, ``CONN_MAX_AGE`` 60) on the test database; its base URL. It
    binds a port of the kernel's choosing and says which in its log (no port taken in between)."""
    env = {
        **worker_env("db"),
        "COMETCHAT_TEST_CONN_MAX_AGE": "60",
        "COMETCHAT_TEST_APPLICATION_NAME": SITE_NAME,
    }
    stdout, stderr = tmp_path / "gunicorn.out", tmp_path / "gunicorn.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "django.core.wsgi:get_wsgi_application()",
                "--bind=127.0.0.1:0",
                "--workers=1",
                "--worker-class=gthread",
                f"--threads={GUNICORN_THREADS}",
                "--access-logfile=-",
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    site = Worker("gunicorn", process, stdout, stderr)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not (listening := re.search(r"Listening at: (http://\S+)", site.output())):
            site.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn not ready in {START_TIMEOUT}s:\n{site.output()[-4000:]}")
            time.sleep(0.1)
        yield listening[1], site
    finally:
        site.stop()


def test_a_burst_through_gunicorn_is_processed_once_on_a_connection_a_thread(
    shared_services, cometchat_fake, start_workers, gunicorn_site
):
    """40 ``message_sent`` deliveries (fixtures/webhook.message_sent.json carrying the fake's
    messages: API.md §7), 8 at a time over real HTTP to gunicorn while two db_workers run: each
    answers 200, each event is processed once, both copies end on the last message, and the
    site holds at most a database connection a thread (docs/webhooks.md sizes
    ``max_connections`` by it)."""
    from tests.surface import basic_authorization, webhook_path

    url, site = gunicorn_site
    bodies = [json.dumps(body) for body in message_burst(cometchat_fake)]
    _, workers = start_workers("db")
    forget_earlier_tasks()

    def deliver(body: str) -> tuple[int, str]:
        answer = requests.post(
            url + webhook_path(),
            data=body,
            headers={"Content-Type": "application/json", "Authorization": basic_authorization()},
            timeout=30,
        )
        return answer.status_code, answer.text

    with ThreadPoolExecutor(max_workers=GUNICORN_THREADS) as pool:
        answers = list(pool.map(deliver, bodies))
    assert answers == [(200, '{"status": "accepted"}')] * BURST
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [SITE_NAME],
        )
        (held,) = cursor.fetchone()
    assert 1 <= held <= GUNICORN_THREADS
    check_burst_processed([*workers, site])
    assert '" 500 ' not in site.output()


# -- a failed sync, as a worker reports it ---------------------------------------------------------


def test_a_failed_sync_is_a_failed_task_for_the_worker(
    shared_services, cometchat_fake, django_user_model, start_workers
):
    """An owner CometChat does not know (ERR_UID_NOT_FOUND, API.md §2.10) beside one it does:
    the failed sync is recorded on its run and its task ends FAILED (the worker logs
    state=FAILED, never SUCCESSFUL for it); the other's task succeeds."""
    cometchat_fake.add_user("alice", "Alice Example")
    for uid in ("alice", "ghost"):
        django_user_model.objects.create_user(username=f"{uid}-django")
    env, workers = start_workers("db")
    with connection.cursor() as cursor:  # an earlier test's tasks (not an app here: no flush)
        cursor.execute(f"DELETE FROM {TASK_TABLE}")  # noqa: S608

    out = run_django(env, "cometchat_sync", "--all", "--enqueue")
    assert out.strip() == "Enqueued 2 syncs of 2."
    drain("db", shared_services, workers, count=2)

    runs = dict(SyncRun.objects.values_list("owner_uid", "status"))
    assert runs == {"alice": "succeeded", "ghost": "failed"}
    assert SyncRun.objects.get(owner_uid="ghost").error_code == "ERR_UID_NOT_FOUND"
    outcomes = db_outcomes(shared_services)
    assert sorted(o.status for o in outcomes) == ["FAILED", "SUCCESSFUL"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT exception_class_path FROM {TASK_TABLE} WHERE status = 'FAILED'"  # noqa: S608
        )
        assert [row[0] for row in cursor.fetchall()] == [
            "django_cometchat.exceptions.CometChatUnknownOwner"
        ]
    logs = "\n".join(worker.output() for worker in workers)
    # The package's warning shows with no LOGGING configured (no NullHandler): once, by the
    # worker that ran the sync.
    assert logs.count("CometChat sync of ghost failed: ") == 1, logs[-4000:]
    if django.VERSION < (6, 0):
        # db_worker shows the backport's "django_tasks" lines; Django 6's "django.tasks" logger
        # needs the host's LOGGING (docs/operations.md), so its worker prints no state lines.
        assert logs.count("state=FAILED") == 1, logs[-4000:]
        assert logs.count("state=SUCCESSFUL") == 1, logs[-4000:]


# -- a failed refresh and a failed event, as a worker reports them --------------------------------

ENQUEUE_REFRESH_AND_EVENT = """
import json
from django.test import Client
from django_cometchat import services, tasks
from tests.surface import basic_authorization, published_webhook, webhook_path

queued = tasks.request_refresh(services.owner_by_uid("alice"), "alice_user_dave")
print("queued:", queued.task_id is not None)
response = Client().post(
    webhook_path(),
    data=json.dumps(published_webhook("user_blocked")),
    content_type="application/json",
    HTTP_AUTHORIZATION=basic_authorization(),
)
print("answer:", response.status_code, response.content.decode())
"""


def test_failed_refreshes_are_failed_tasks_for_the_worker(
    shared_services, cometchat_fake, start_workers
):
    """A queued refresh of a conversation CometChat does not have (alice and dave never wrote:
    ERR_CONVERSATION_NOT_ACCESSIBLE, API.md §0 point 4) and the published ``user_blocked``
    example (fixtures/webhook.user_blocked.json) naming bob, who was deactivated since
    (ERR_UID_NOT_FOUND, API.md §2.10): each task ends FAILED with CometChat's reason, the
    event is recorded failed first, and the worker logs each reason."""
    from django_cometchat import services
    from django_cometchat.models import WebhookEvent

    fake = cometchat_fake
    for uid in ("alice", "bob", "dave"):
        fake.add_user(uid, f"{uid.title()} Example")
    fake.send_message("bob", to_user="alice", text="hi")
    for uid in ("alice", "bob"):
        services.sync_conversations(services.owner_by_uid(uid))
    fake.deactivate_user("bob")
    env, workers = start_workers("db")
    with connection.cursor() as cursor:  # an earlier test's tasks (not an app here: no flush)
        cursor.execute(f"DELETE FROM {TASK_TABLE}")  # noqa: S608

    out = run_django(env, "shell", "-c", ENQUEUE_REFRESH_AND_EVENT)
    mine = [line for line in out.splitlines() if line.startswith(("queued: ", "answer: "))]
    assert mine == ["queued: True", 'answer: 200 {"status": "accepted"}'], out
    drain("db", shared_services, workers, count=2)

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT task_path, status, exception_class_path, traceback FROM {TASK_TABLE}"  # noqa: S608
        )
        rows = {path.rsplit(".", 1)[-1]: rest for path, *rest in cursor.fetchall()}
    assert set(rows) == {"refresh_conversation", "process_webhook_event"}
    status, error, traceback = rows["refresh_conversation"]
    assert (status, error) == ("FAILED", "django_cometchat.exceptions.CometChatNotFound")
    assert "ERR_CONVERSATION_NOT_ACCESSIBLE" in traceback
    status, error, traceback = rows["process_webhook_event"]
    assert status == "FAILED"
    assert "ERR_UID_NOT_FOUND" in traceback
    event = WebhookEvent.objects.get()
    assert event.status == "failed"
    assert "ERR_UID_NOT_FOUND" in event.error
    logs = "\n".join(worker.output() for worker in workers)
    assert logs.count("CometChat refresh of alice_user_dave for alice failed: ") == 1, logs[-4000:]
    assert "ERR_CONVERSATION_NOT_ACCESSIBLE" in logs
