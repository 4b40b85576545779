"""Wall time, CPU and SQL statements per webhook event processed, on PostgreSQL.

    .venvs/py311-dj52-postgres/bin/python -m benchmarks.bench_webhook_event --events 300

What one event costs the worker that processes it, away from bench_freshness's crowded machine:
the fake CometChat (``--pairs`` pairs of users) in a child process, the rate budget in Redis (as
a deployment has it), everything else in this process. Every owner is synced once; then, per
event, a real change upstream (one user of a pair messages the other, the fake's ``send``), its
``message_sent`` webhook recorded (``services.record_webhook``, as the view does) and processed
as a worker's task does (``process_webhook_event_in_background``: the claim, the two owners, both
refreshes, the finish). Only the processing is measured. Reported per event, best of
``--repeat`` rounds: wall milliseconds, CPU milliseconds of this process
(``time.process_time``), of its PostgreSQL backend and of the fake (both from /proc), and the SQL
statements Django executed (``CaptureQueriesContext``, which counts BEGIN and COMMIT too).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import redis

from . import processes
from .fake_server import owner_uids
from .support import FakeServer, configure_django, machine, postgres_database, table

DB_NAME = "cometchat_bench_webhook_event"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_webhook_event")
    parser.add_argument("--events", type=int, default=300, help="events a round")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--show-sql", action="store_true", help="print one event's statements")
    args = parser.parse_args(argv)

    database = postgres_database(DB_NAME)
    uids = owner_uids(2 * args.pairs)
    options = ["--owners", str(len(uids)), "--conversations", "2"]
    with FakeServer([], options=options) as fake:
        configure_django(
            base_url=fake.base_url,
            database=database,
            cometchat={"REQUESTS_PER_MINUTE": 20_000, "RATE_LIMIT_CACHE": "cometchat"},
            extra={
                "CACHES": {
                    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
                    "cometchat": {
                        "BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": args.redis_url,
                    },
                }
            },
        )
        redis.Redis.from_url(args.redis_url).flushdb()
        try:
            return _run(args, fake, uids)
        finally:
            database.cleanup()


def _run(args: argparse.Namespace, fake: FakeServer, uids: list[str]) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_cometchat import services
    from django_cometchat.models import SyncRun
    from django_cometchat.webhook_types import parse_webhook

    for owner in services.owners(uids=uids):
        services.sync_conversations(owner, trigger=SyncRun.Trigger.COMMAND)
    pairs = list(zip(uids[::2], uids[1::2], strict=True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]

    shown = False

    def one_round(first: int) -> tuple[float, float, float, float, float]:
        nonlocal shown
        wall = cpu = pg = fake_cpu = 0.0
        statements = 0
        for n in range(first, first + args.events):
            a, b = pairs[n % len(pairs)]
            sender, receiver = (a, b) if n // len(pairs) % 2 == 0 else (b, a)
            body = json.loads(fake.send_message(sender, receiver))
            event = services.record_webhook(parse_webhook(body))
            assert event is not None
            pg0, fake0 = processes.proc_cpu(backend) or 0.0, fake.cpu_seconds()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            connection.queries_log.clear()
            with CaptureQueriesContext(connection) as queries:
                outcome = services.process_webhook_event_in_background(event.pk)
            wall += time.perf_counter() - wall0
            cpu += time.process_time() - cpu0
            pg += (processes.proc_cpu(backend) or 0.0) - pg0
            fake_cpu += fake.cpu_seconds() - fake0
            statements += len(queries)
            assert outcome.status == "processed", outcome
            if args.show_sql and not shown:
                shown = True
                for query in queries.captured_queries:
                    print("  ", " ".join(query["sql"].split())[:150])
        n = args.events
        return (
            wall * 1000 / n,
            cpu * 1000 / n,
            pg * 1000 / n,
            fake_cpu * 1000 / n,
            statements / n,
        )

    best: tuple[float, ...] | None = None
    for round_ in range(args.repeat):
        figures = one_round(round_ * args.events)
        if best is None or sum(figures[:2]) < sum(best[:2]):
            best = figures
    assert best is not None
    wall, cpu, pg, fake_ms, statements = best
    print("bench_webhook_event")
    print(f"machine: {machine()}")
    print(
        f"{args.events} message events a round over {args.pairs} pairs, best of {args.repeat} "
        "rounds, per event processed"
    )
    print(
        table(
            ["wall ms", "worker CPU ms", "postgres ms", "fake ms", "statements"],
            [
                (
                    f"{wall:.1f}",
                    f"{cpu:.1f}",
                    f"{pg:.1f}",
                    f"{fake_ms:.1f}",
                    f"{statements:.1f}",
                )
            ],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
