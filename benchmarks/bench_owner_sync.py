"""CPU and SQL statements per owner sync of 50 conversations (one page), on PostgreSQL.

    .venvs/py311-dj52-postgres/bin/python -m benchmarks.bench_owner_sync --owners 200

Runs ``tasks.sync_owner``'s function in this process (a queued run, as the fan-out's tasks carry
out), first syncs then no-change re-syncs of ``--owners`` owners, and reports per sync: CPU
milliseconds of this process (``time.process_time``: every thread, not wall time), of its
PostgreSQL backend and of the fake (both from /proc), and the statements Django executed
(``CaptureQueriesContext``). The machine is shared, so CPU time, not wall time, is the measure;
the best of ``--repeat`` rounds is kept.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from . import processes
from .fake_server import owner_uids
from .support import FakeServer, configure_django, postgres_database, table

DB_NAME = "cometchat_bench_owner_sync"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_owner_sync")
    parser.add_argument("--owners", type=int, default=200)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--show-sql", action="store_true", help="print one sync's statements")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one round")
    parser.add_argument(
        "--sort", default="tottime", help="the profile's order: tottime, cumulative, …"
    )
    args = parser.parse_args(argv)

    database = postgres_database(DB_NAME)
    options = ["--owners", str(args.owners), "--conversations", str(args.conversations)]
    with FakeServer([], options=options) as fake:
        configure_django(base_url=fake.base_url, database=database)
        try:
            return _run(args, fake)
        finally:
            database.cleanup()


def _run(args: argparse.Namespace, fake: FakeServer) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_cometchat import services, tasks
    from django_cometchat.models import Conversation, ConversationSnapshot, SyncRun

    uids = owner_uids(args.owners)
    sync = tasks.sync_owner.func

    def one_round(kind: str) -> tuple[float, float, float, float]:
        if kind == "first":
            with connection.cursor() as cursor:
                for model in (ConversationSnapshot, Conversation, SyncRun):
                    cursor.execute(f"DELETE FROM {model._meta.db_table}")  # noqa: S608
        runs = [services.queue_sync_run(services.owner_by_uid(uid), trigger="task") for uid in uids]
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        statements = 0
        pg0, fake0, cpu0 = processes.proc_cpu(backend), fake.cpu_seconds(), time.process_time()
        for uid, run in zip(uids, runs, strict=True):
            connection.queries_log.clear()  # a bounded deque: a full one counts nothing
            with CaptureQueriesContext(connection) as queries:
                outcome = sync(uid, run_id=run.pk)
            statements += len(queries)
            if args.show_sql and uid == uids[0]:
                print(f"-- {kind}")
                for query in queries.captured_queries:
                    print("  ", " ".join(query["sql"].split())[:150])
            assert outcome["status"] == "succeeded", outcome
        cpu = time.process_time() - cpu0
        pg = (processes.proc_cpu(backend) or 0.0) - (pg0 or 0.0)
        fake_cpu = fake.cpu_seconds() - fake0
        n = len(uids)
        return cpu * 1000 / n, pg * 1000 / n, fake_cpu * 1000 / n, statements / n

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(one_round, "first")
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(40)
        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(one_round, "resync")
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(40)

    rows = []
    best: dict[str, tuple[float, float, float, float]] = {}
    for _ in range(args.repeat):
        for kind in ("first", "resync"):
            figures = one_round(kind)
            if kind not in best or sum(figures[:3]) < sum(best[kind][:3]):
                best[kind] = figures
    for kind, (worker, pg, fake_ms, statements) in best.items():
        total = worker + pg + fake_ms
        rows.append(
            (
                kind,
                f"{worker:.1f}",
                f"{pg:.1f}",
                f"{fake_ms:.1f}",
                f"{total:.1f}",
                f"{statements:.1f}",
            )
        )
    print(
        f"{args.owners} owners of {args.conversations} conversations, best of {args.repeat} "
        "rounds, CPU time (not wall)"
    )
    print(
        table(
            ["sync", "worker ms", "postgres ms", "fake ms", "total ms", "statements"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
