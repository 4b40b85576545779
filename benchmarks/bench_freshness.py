"""Freshness: how long after CometChat delivers a webhook the stored snapshot shows the change.

Processes, as in a deployment on one machine: the fake CometChat in a child process (``--pairs``
pairs of users, ``owner-0001`` and ``owner-0002`` the first); the site in another, serving
``django_cometchat.urls`` with Django's threaded WSGI server (the one ``runserver`` uses) or,
with ``--server gunicorn``, gunicorn (one ``gthread`` worker of 8 threads); ``--workers``
django-tasks-db ``db_worker`` processes on PostgreSQL (a fresh database
``cometchat_bench_freshness`` on 127.0.0.1:5432); the rate budget counted in Redis.

Every owner is synced once first, so the site knows them (webhook traffic never creates
owners). Then, at ``--rate`` events per second for ``--seconds``, this process makes a real
change upstream (the fake's ``send``: one user of a pair messages the other, round robin over
the pairs) and delivers CometChat's ``message_sent`` webhook for it to the site, with Basic
credentials, from a small thread pool so that a slow answer does not hold back the schedule.
The webhook records the event and enqueues a task for it, unless an earlier event still waits
for its task (a burst shares one: ``services.needs_task``); a worker's task takes the event and
those waiting behind it, and refreshes both owners of each (sender and receiver) within the task
(``INLINE_REFRESHES``), fetching and storing each owner's conversation.

The lag of an (event, owner) is from the moment the delivery was sent to the ``fetched_at`` of
the first snapshot of that owner's conversation whose last message is the event's message or
a newer one (a refresh stores the snapshot it fetched at once). Reported: p50, p90, p99 and the
maximum of the lag, the webhook's answer time (CometChat's 2-second rule), and any event or
owner that never became fresh. Target: p99 under one second.

    python -m benchmarks.bench_freshness [--rate 50] [--seconds 60] [--workers 2]
        [--pairs 250] [--delay 0] [--budget 20000] [--redis-url redis://127.0.0.1:6379/7]
        [--server threaded|gunicorn]

The budget defaults to CometChat's standard 20,000 requests a minute: each event costs two
requests (one per owner), 6,000 a minute at 50 events a second, above the package's default of
450 for the free plan. The Redis database of ``--redis-url`` is flushed first: give it one
nobody else uses. Exits 0 whatever the figures (a report); 1 when a delivery, a task or a child
process failed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import re
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import processes
from .fake_server import owner_uids
from .processes import (
    WORKER_READY,
    Child,
    ChildDied,
    CpuMeter,
    check_alive,
)
from .support import (
    Database,
    FakeServer,
    configure_django,
    machine,
    pass_miss,
    postgres_database,
    queue_settings,
)

DB_NAME = "cometchat_bench_freshness"
WEB_READY = "Serving the webhook"
WARM_UP_EVENTS = 20
SERVERS = {
    "threaded": "Django's threaded WSGI server",
    "gunicorn": "gunicorn (1 gthread worker, 8 threads)",
}


@dataclass(frozen=True)
class Config:
    """Settings shared by this process and its children."""

    base_url: str
    database: dict[str, Any]
    redis_url: str
    budget: int
    webhook_auth: str  # "user:password", made up per run

    def configure(self, *, migrate: bool) -> None:
        configure_django(
            base_url=self.base_url,
            database=Database("postgres", self.database, ""),
            apps=["rest_framework", "django_filters", "django_tasks_db"],
            cometchat={
                "REQUESTS_PER_MINUTE": self.budget,
                "RATE_LIMIT_CACHE": "cometchat",
                "WEBHOOK_BASIC_AUTH": [self.webhook_auth],
            },
            extra={
                "ROOT_URLCONF": "django_cometchat.urls",
                "ALLOWED_HOSTS": ["127.0.0.1"],
                **queue_settings(self.redis_url),
            },
            migrate=migrate,
        )


# -- the children -------------------------------------------------------------------------------


def run_worker(name: str) -> int:
    Config(**processes.config_from_env()).configure(migrate=False)
    return processes.run_db_worker(name, interval=0.05)


def start_children(
    config: Config, workers: int, port: int, logs: Path, server: str
) -> tuple[list[Child], Child, list[int]]:
    """``workers`` ready db_workers, then the ready site on ``port``; the site's PIDs (gunicorn's
    worker besides its arbiter, whose CPU a parent does not see until the worker exits)."""
    roles = [(f"worker-{n}", ["--worker", f"worker-{n}"]) for n in range(1, workers + 1)]
    start = functools.partial(
        processes.start, "benchmarks.bench_freshness", config=config.__dict__, logs=logs
    )
    started = start(roles, ready=WORKER_READY)
    (web,) = start([("web", ["--web", str(port), "--server", server])], ready=WEB_READY)
    pids = {
        web.process.pid,
        *(int(pid) for pid in re.findall(rf"{WEB_READY} \(pid (\d+)\)", web.output())),
    }
    return started, web, sorted(pids)


def run_web(port: int, server: str) -> int:
    """The site, on Django's threaded WSGI server (``runserver``'s, without the reloader) or on
    gunicorn (one worker of 8 threads, ``gthread``)."""
    import logging

    Config(**processes.config_from_env()).configure(migrate=False)
    # With DEBUG off Django logs a 500's traceback nowhere but to ADMINS: the web log shows it.
    logging.basicConfig(level=logging.ERROR)
    if server == "gunicorn":
        return run_gunicorn(port)
    processes.warm_up()
    from django.core.servers.basehttp import ThreadedWSGIServer, run
    from django.core.wsgi import get_wsgi_application

    logging.getLogger("django.server").setLevel(logging.WARNING)  # a line per delivery is noise
    run(
        "127.0.0.1",
        port,
        get_wsgi_application(),
        threading=False,  # ThreadedWSGIServer is threaded already
        # runserver's own server starts a thread per connection and never closes the database
        # connection a thread opened: with CONN_MAX_AGE (the workers keep theirs) PostgreSQL
        # ran out of connections ("too many clients") and deliveries got 500s. This one closes
        # a thread's connections when its client connection ends (a keep-alive delivery
        # connection keeps one), as a production server's threads do.
        server_cls=ThreadedWSGIServer,
        on_bind=lambda _port: print(WEB_READY, flush=True),
    )
    return 0


def run_gunicorn(port: int) -> int:
    """gunicorn's arbiter in this process and one ``gthread`` worker, which warms up (in the
    worker: connections are not shared across a fork) before it says it is ready."""
    from django.core.wsgi import get_wsgi_application
    from gunicorn.app.base import BaseApplication

    def ready(worker: Any) -> None:
        processes.warm_up()
        print(f"{WEB_READY} (pid {os.getpid()})", flush=True)

    class Site(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"127.0.0.1:{port}",
                "workers": 1,
                "worker_class": "gthread",
                "threads": 8,  # the load's 8 delivery threads, each on a keep-alive connection
                "keepalive": 30,
                "post_worker_init": ready,
                "loglevel": "warning",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return get_wsgi_application()

    Site().run()
    return 0


@contextlib.contextmanager
def logs_directory(keep: str | None) -> Iterator[str]:
    """Where the children log: ``keep`` (made if missing, left behind), else a temporary
    directory removed at the end."""
    if keep:
        os.makedirs(keep, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory() as logs:
        yield logs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the load -----------------------------------------------------------------------------------


@dataclass
class Delivery:
    message_id: int
    conversation_id: str
    owners: tuple[str, str]
    sent_at: float  # time.time() as the delivery left
    answer_seconds: float = 0.0
    status: int | None = None


@dataclass
class Load:
    deliveries: list[Delivery] = field(default_factory=list)
    behind: float = 0.0  # how late the schedule ran at worst (this process too slow)


def deliver(
    fake: FakeServer,
    url: str,
    auth: tuple[str, str],
    *,
    pairs: list[tuple[str, str]],
    rate: float,
    count: int,
    first: int = 0,
) -> Load:
    """``count`` changes upstream and their webhooks at ``rate`` per second, open loop."""
    import json

    import requests

    load = Load()
    local = threading.local()

    def post(delivery: Delivery, body: str) -> None:
        sess = getattr(local, "session", None)
        if sess is None:
            sess = local.session = requests.Session()
            sess.auth = auth
        try:
            response = sess.post(
                url, data=body, headers={"Content-Type": "application/json"}, timeout=10
            )
            delivery.status = response.status_code
        except requests.RequestException:
            delivery.status = None
        delivery.answer_seconds = time.time() - delivery.sent_at

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for n in range(first, first + count):
            due = start + (n - first) / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                load.behind = max(load.behind, -pause)
            a, b = pairs[n % len(pairs)]
            sender, receiver = (a, b) if n // len(pairs) % 2 == 0 else (b, a)
            body = fake.send_message(sender, receiver)
            message = json.loads(body)["data"]["message"]
            delivery = Delivery(int(message["id"]), message["conversationId"], (a, b), time.time())
            load.deliveries.append(delivery)
            pool.submit(post, delivery, body)
    return load


def wait_until_drained(children: Sequence[Child], timeout: float = 600.0) -> float:
    """Until every webhook event is done and the queue is empty; the seconds it took."""
    from django_tasks_db.models import DBTaskResult

    from django_cometchat.models import WebhookEvent

    started = time.monotonic()
    while (
        WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED).exists()
        or DBTaskResult.objects.exclude(status__in=["SUCCESSFUL", "FAILED"]).exists()
    ):
        check_alive(children)
        if time.monotonic() - started > timeout:
            raise ChildDied(f"the queue did not drain in {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


def first_fresh(deliveries: Sequence[Delivery]) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """``(owner, conversation) -> [(last message id, fetched_at), …]`` by fetch time."""
    from django_cometchat.models import ConversationSnapshot

    conversations = {d.conversation_id for d in deliveries}
    seen: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    rows = (
        ConversationSnapshot.objects.filter(conversation__conversation_id__in=conversations)
        .order_by("fetched_at")
        .values_list(
            "conversation__owner_uid",
            "conversation__conversation_id",
            "payload__lastMessage__id",
            "fetched_at",
        )
    )
    for owner, conversation, message_id, fetched_at in rows.iterator():
        if message_id is not None:
            seen[owner, conversation].append((int(message_id), fetched_at.timestamp()))
    return seen


def lags(deliveries: Sequence[Delivery]) -> tuple[list[tuple[float, float]], int]:
    """``(sent at, lag)`` of every (event, owner) that became fresh; how many never did."""
    seen = first_fresh(deliveries)
    found: list[tuple[float, float]] = []
    missing = 0
    for delivery in deliveries:
        for owner in delivery.owners:
            snapshots = seen.get((owner, delivery.conversation_id), [])
            # Snapshots in fetch order; the first whose last message is this one or newer.
            fresh = next((at for mid, at in snapshots if mid >= delivery.message_id), None)
            if fresh is None:
                missing += 1
            else:
                found.append((delivery.sent_at, max(fresh - delivery.sent_at, 0.0)))
    return found, missing


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (``q`` in 0..1); NaN without values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def queue_times() -> str:
    """Where a task's time goes: waiting in the queue, then running (p50 / p99), for the tasks
    that processed their own event; those that found it taken by another task's run of
    followers (``skipped``) are only counted: they may start long after, harmlessly."""
    from django_tasks_db.models import DBTaskResult

    rows = DBTaskResult.objects.filter(status="SUCCESSFUL").values_list(
        "enqueued_at", "started_at", "finished_at", "return_value"
    )
    own = [(e, s, f) for e, s, f, value in rows if (value or {}).get("status") != "skipped"]
    waited = [(s - e).total_seconds() for e, s, _ in own]
    ran = [(f - s).total_seconds() for _, s, f in own]
    return (
        f"tasks ({len(rows):,}, {len(rows) - len(own):,} of them skipped: their event taken "
        f"by another task): waiting in the queue p50 {ms(percentile(waited, 0.5))}, p99 "
        f"{ms(percentile(waited, 0.99))}; running p50 {ms(percentile(ran, 0.5))}, p99 "
        f"{ms(percentile(ran, 0.99))}"
    )


def by_slice(timed: Sequence[tuple[float, float]], width: float = 10.0) -> str:
    """``p50/p99`` of the lags of each ``width``-second slice of delivery times."""
    first = min(at for at, _ in timed)
    slices: dict[int, list[float]] = defaultdict(list)
    for at, lag in timed:
        slices[int((at - first) // width)].append(lag)
    return ", ".join(
        f"{ms(percentile(values, 0.5))}/{ms(percentile(values, 0.99))}"
        for _, values in sorted(slices.items())
    )


def ms(seconds: float) -> str:
    return f"{1000 * seconds:,.0f} ms"


# -- main ---------------------------------------------------------------------------------------


def initial_sync(uids: Sequence[str]) -> None:
    """Sync every owner once, in this process, so the site knows them."""
    from django_cometchat import services
    from django_cometchat.models import SyncRun

    for owner in services.owners(uids=uids):
        services.sync_conversations(owner, trigger=SyncRun.Trigger.COMMAND)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_freshness",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--rate", type=float, default=50.0, help="webhook events per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=250, help="pairs of users messaging")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds the fake adds")
    parser.add_argument("--budget", type=int, default=20_000, help="REQUESTS_PER_MINUTE")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument(
        "--logs", help="keep the site's and the workers' logs in this directory (else deleted)"
    )
    parser.add_argument(
        "--server",
        choices=["threaded", "gunicorn"],
        default="threaded",
        help="the site's server: Django's threaded WSGI server (runserver's) or gunicorn gthread",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--web", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args.worker)
    if args.web:
        return run_web(args.web, args.server)
    import django
    import redis

    print("bench_freshness")
    print(f"machine: {machine()}")
    print(
        f"{args.rate:g} webhook events/s for {args.seconds:g} s over {args.pairs} pairs of users; "
        f"{args.workers} db_worker processes on PostgreSQL ({DB_NAME}); the site on "
        f"{SERVERS[args.server]}; fake CometChat +{1000 * args.delay:.0f} ms per request; budget "
        f"{args.budget:,}/min in Redis; Django {django.get_version()}",
        flush=True,
    )
    database = postgres_database(DB_NAME)
    database.settings["CONN_MAX_AGE"] = 600
    uids = owner_uids(2 * args.pairs)
    pairs = list(zip(uids[::2], uids[1::2], strict=True))
    options = ["--owners", str(len(uids)), "--conversations", "2", "--delay", str(args.delay)]
    user, password = "bench", secrets.token_urlsafe(16)
    children: list[Child] = []
    status = 0
    try:
        with FakeServer([], options=options) as fake, logs_directory(args.logs) as logs:
            config = Config(
                fake.base_url, database.settings, args.redis_url, args.budget, f"{user}:{password}"
            )
            config.configure(migrate=True)
            redis.Redis.from_url(args.redis_url).flushdb()
            began = time.monotonic()
            initial_sync(uids)
            print(f"synced {len(uids)} owners in {time.monotonic() - began:.1f} s", flush=True)
            port = free_port()
            workers, web, web_pids = start_children(
                config, args.workers, port, Path(logs), args.server
            )
            children += [*workers, web]
            url = f"http://127.0.0.1:{port}/webhook/"
            send = functools.partial(
                deliver, fake, url, (user, password), pairs=pairs, rate=args.rate
            )
            send(count=WARM_UP_EVENTS)  # connections, imports, caches
            wait_until_drained(children)
            fake.clear_requests()
            count = round(args.rate * args.seconds)
            cpu = CpuMeter(
                {"workers": [w.process.pid for w in workers], "web": web_pids},
                fake.cpu_seconds,
                DB_NAME,
            )
            cpu.start()
            began = time.monotonic()
            load = send(count=count, first=WARM_UP_EVENTS)
            sending = time.monotonic() - began
            drain = wait_until_drained(children)
            used = cpu.stop()
            requests_seen = len(fake.request_log())
            status = report(load, sending, drain, requests_seen, used)
    except ChildDied as exc:
        print(f"a child process failed: {exc}")
        status = 1
    finally:
        processes.stop_all(children)
        database.cleanup()
    return status


def report(
    load: Load, sending: float, drain: float, requests_seen: int, cpu: dict[str, float]
) -> int:
    from django_tasks_db.models import DBTaskResult

    from django_cometchat.models import WebhookEvent

    deliveries = load.deliveries
    refused = [d for d in deliveries if d.status != 200]
    answers = [d.answer_seconds for d in deliveries]
    timed_lags, missing = lags(deliveries)
    found = [lag for _, lag in timed_lags]
    failed_events = WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).count()
    failed_tasks = DBTaskResult.objects.filter(status="FAILED").count()
    print()
    sent = len(deliveries)
    print(
        f"sent {sent:,} deliveries in {sending:.1f} s ({sent / sending:.1f}/s, the schedule at "
        f"worst {ms(load.behind)} late); the queue drained {drain:.1f} s after the last; "
        f"{requests_seen:,} requests reached the fake ({requests_seen / max(sent, 1):.2f} an event)"
    )
    print(
        f"webhook answer: p50 {ms(statistics.median(answers))}, p99 "
        f"{ms(percentile(answers, 0.99))}, max {ms(max(answers))} (CometChat waits 2 s)"
    )
    print(
        f"lag to a fresh snapshot, {len(found):,} (event, owner) pairs: p50 "
        f"{ms(percentile(found, 0.5))}, p90 {ms(percentile(found, 0.9))}, p99 "
        f"{ms(percentile(found, 0.99))}, max {ms(max(found, default=0.0))}"
    )
    print(
        f"never fresh: {missing}; refused deliveries: {len(refused)}; failed events: "
        f"{failed_events}; failed tasks: {failed_tasks}"
    )
    if refused:
        statuses = Counter("no answer" if d.status is None else d.status for d in refused)
        print(
            "refused deliveries by status: " + ", ".join(f"{k}: {n}" for k, n in statuses.items())
        )
    if timed_lags:
        print("lag p50 / p99 by 10-second slice of the run: " + by_slice(timed_lags))
    print(queue_times())
    parts = ("workers", "postgres", "web", "fake", "load")
    wall = sending + drain
    print(
        "CPU ms per event: "
        + ", ".join(f"{part} {1000 * cpu[part] / max(sent, 1):.1f}" for part in parts)
        + f"; the machine {cpu['machine'] / wall:.2f} of {os.cpu_count()} cores busy on average "
        f"({sum(cpu[p] for p in parts) / wall:.2f} of them ours: load is this process)"
    )
    p99 = percentile(found, 0.99)
    print(f"p99 under 1 s: {pass_miss(p99 < 1.0 and not missing)}")
    return 1 if refused or missing or failed_events or failed_tasks else 0


if __name__ == "__main__":
    sys.exit(main())
