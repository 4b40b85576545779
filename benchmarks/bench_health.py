"""How fast the admin's sync health page reads 1,000,000 sync runs and 1,000,000 webhook events
on PostgreSQL.

    .venv/bin/python -m benchmarks.bench_health [--rows N] [--runs 5] [--keep] [--reuse] [--explain]

Creates its own database (``cometchat_health_bench`` on 127.0.0.1:5432, user postgres), migrates
it, bulk-loads ``--rows`` sync runs (30 days of them, for ``--rows / 200`` owners; every 50th
owner's latest run failed, 5% of the others failed too, 20 runs left running for hours) and
``--rows`` webhook events (30 days; 80% carry an event time), then times, as a superuser with
``django.test.Client``: ``health.gather()`` alone, the health page, and each changelist a figure
links to. One warm-up, then ``--runs`` timed rounds; prints the median and max in ms, the number
of queries and PASS/MISS against the 1 s target. ``--explain`` prints each query's plan. The
database is dropped at the end unless ``--keep``. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from psycopg import sql

from benchmarks.bench_admin_changelist import admin_connection, explain, timed

DB_NAME = "cometchat_health_bench"
TARGET_MS = 1000.0
RUNS_PER_OWNER = 200
RUN_TABLE = "django_cometchat_syncrun"
EVENT_TABLE = "django_cometchat_webhookevent"
ADMIN = "/admin/django_cometchat/"


def configure_django() -> None:
    import django
    from django.conf import settings

    from benchmarks import bench_admin_changelist

    bench_admin_changelist.DB_NAME = DB_NAME  # its settings, on this benchmark's database
    bench_admin_changelist.configure_django()
    assert settings.DATABASES["default"]["NAME"] == DB_NAME
    django.setup()


def recreate_database() -> None:
    with admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DB_NAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))


def drop_database() -> None:
    from django.db import connections

    connections.close_all()
    with admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DB_NAME)))


# g = 0 is the newest row; a row's age grows with g over 30 days.
LOAD_RUNS = """
INSERT INTO django_cometchat_syncrun (
    owner_id, owner_uid, trigger, status, filters, complete, started_at, finished_at,
    created_count, updated_count, unchanged_count, missing_count, rechecked_count, pages,
    requests, error_code, error_message, public_error_message, exclusive
)
SELECT
    CASE WHEN o % 2 = 0 THEN {first_user} + o / 2 END,
    'owner-' || lpad(o::text, 5, '0'), 'task', status, '{{}}'::jsonb, true, started_at,
    CASE WHEN status IN ('succeeded', 'failed') THEN started_at + interval '2 seconds' END,
    0, 1, 99, 0, 0, 1, 1,
    CASE WHEN status = 'failed'
        THEN (ARRAY['ERR_UID_NOT_FOUND', 'ERR_INTERNAL_SERVER_ERROR', 'ERR_ABANDONED',
                    'ERR_INTERRUPTED', 'ERR_TOO_MANY_REQUESTS'])[1 + g % 5]
        ELSE '' END,
    CASE WHEN status = 'failed' THEN 'failed' ELSE '' END, '', false
FROM (
    SELECT g, g % {owners} AS o,
        now() - interval '30 days' * (g::float / {rows}) AS started_at,
        CASE
            WHEN g < {owners} AND (g % {owners}) % 50 = 0 THEN 'failed'
            WHEN g >= {owners} AND g < {owners} + 20 THEN 'running'
            WHEN random() < 0.05 THEN 'failed'
            ELSE 'succeeded'
        END AS status
    FROM generate_series(0, {rows} - 1) g
) drawn
"""

LOAD_EVENTS = """
INSERT INTO django_cometchat_webhookevent (
    trigger, received_at, dedupe_key, status, processed_at, event_at, attempted_at, error,
    owners, payload, topic
)
SELECT
    'message_sent', received_at, NULL, status,
    CASE WHEN status IN ('processed', 'failed')
        THEN received_at + interval '1 second' * (r2 * 2) END,
    CASE WHEN r3 < 0.8 THEN received_at - interval '1 second' * (r2 * 5) END,
    NULL, CASE WHEN status = 'failed' THEN 'ERR_X' ELSE '' END, '[]'::jsonb, NULL, ''
FROM (
    SELECT now() - interval '30 days' * (g::float / {rows}) AS received_at,
        CASE
            WHEN r1 < 0.90 THEN 'processed'
            WHEN r1 < 0.95 THEN 'ignored'
            WHEN r1 < 0.98 THEN 'failed'
            WHEN r1 < 0.99 THEN 'deferred'
            ELSE 'received'
        END AS status,
        r2, r3
    FROM (
        SELECT g, random() AS r1, random() AS r2, random() AS r3
        FROM generate_series(0, {rows} - 1) g
    ) numbered
) drawn
"""


def load(rows: int) -> None:
    owners = max(1, rows // RUNS_PER_OWNER)
    with admin_connection(DB_NAME) as conn:
        conn.execute("SELECT setseed(0.42)")
        with timed(f"{(owners + 1) // 2:,} users"):
            conn.execute(
                "INSERT INTO auth_user (password, is_superuser, username, first_name, "
                "last_name, email, is_staff, is_active, date_joined) "
                "SELECT '!', false, 'owner-' || lpad((2 * n)::text, 5, '0') || '-django', "
                "'', '', '', false, true, now() FROM generate_series(0, %s) n",
                [(owners - 1) // 2],
            )
            first_user = conn.execute("SELECT min(id) FROM auth_user").fetchone()
        assert first_user is not None
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            [[RUN_TABLE, EVENT_TABLE]],
        ).fetchall()
        for name, _ in indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        conn.execute("SET session_replication_role = replica")  # no FK triggers during the load
        values = {
            "owners": sql.Literal(owners),
            "rows": sql.Literal(rows),
            "first_user": sql.Literal(first_user[0]),
        }
        with timed(f"{rows:,} sync runs ({owners:,} owners)"):
            conn.execute(sql.SQL(LOAD_RUNS).format(**values))
        with timed(f"{rows:,} webhook events"):
            conn.execute(sql.SQL(LOAD_EVENTS).format(**values))
        conn.execute("SET session_replication_role = DEFAULT")
        with timed(f"{len(indexes)} secondary indexes"):
            conn.execute("SET maintenance_work_mem = '512MB'")
            for _, definition in indexes:
                conn.execute(definition)
        with timed("VACUUM ANALYZE"):
            for table in (RUN_TABLE, EVENT_TABLE, "auth_user"):
                conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


def measure(runs: int, *, show_plans: bool) -> bool:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from django_cometchat import health

    user = get_user_model().objects.create_superuser(
        "bench-admin", "admin@example.com", secrets.token_urlsafe(8)
    )
    client = Client()
    client.force_login(user)
    figures = health.gather()
    print(
        f"\n  figures: synced {figures.synced_last_hour:,} (hour) / {figures.synced_last_day:,}"
        f" (day) owners; failing {figures.failing}; overdue {figures.overdue}; abandoned"
        f" {figures.abandoned_last_day}, interrupted {figures.interrupted_last_day} (day);"
        f" events (day) {sum(figures.events_last_day.values()):,}; lag p50"
        f" {figures.lag.p50}, p99 {figures.lag.p99} over {figures.lag.measured:,}"
        f" (+{figures.lag.without_time:,} without a time)"
    )

    def page(url: str, expect: str) -> Callable[[], None]:
        def get() -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            assert expect in response.content.decode(), (url, expect)

        return get

    runlist, events = f"{ADMIN}syncrun/", f"{ADMIN}webhookevent/"
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("health.gather()", health.gather),
        ("health page", page(f"{ADMIN}health/", "Sync health")),
        ("runs: succeeded, last hour", page(f"{runlist}?status__exact=succeeded&finished=1h", "")),
        ("runs: succeeded, last 24 h", page(f"{runlist}?status__exact=succeeded&finished=24h", "")),
        (
            "runs: latest of its owner, failed, 24 h",
            page(f"{runlist}?health=failing&finished=24h", "Failed"),
        ),
        ("runs: latest of its owner, failed (all)", page(f"{runlist}?health=failing", "Failed")),
        ("runs: queued or running too long", page(f"{runlist}?health=overdue", "Running")),
        (
            "runs: abandoned, last 24 h",
            page(f"{runlist}?status__exact=failed&error_code=ERR_ABANDONED&finished=24h", ""),
        ),
        ("runs: one error code", page(f"{runlist}?status__exact=failed&error_code=ERR_X", "")),
        ("events: failed, last 24 h", page(f"{events}?status__exact=failed&received=24h", "")),
        ("events: with a time, last hour", page(f"{events}?received=1h&event_time=yes", "")),
    ]
    all_pass = True
    print(f"\n  {'what':<40} {'median':>8} {'max':>8} {'queries':>8}  (target {TARGET_MS:.0f} ms)")
    for label, call in cases:
        with CaptureQueriesContext(connection) as captured:
            call()  # warm-up
        queries = list(captured.captured_queries)
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            call()
            timings.append((time.perf_counter() - started) * 1000)
        median, worst = statistics.median(timings), max(timings)
        verdict = "PASS" if worst < TARGET_MS else "MISS"
        all_pass &= verdict == "PASS"
        print(f"  {label:<40} {median:7.1f}  {worst:7.1f}  {len(queries):7d}   {verdict}")
        if show_plans:
            explain(queries)
    return all_pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="runs, and events, to load")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds per case")
    parser.add_argument("--keep", action="store_true", help=f"keep the {DB_NAME} database")
    parser.add_argument("--reuse", action="store_true", help="reuse a database kept by --keep")
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    args = parser.parse_args(argv)

    print(f"django-cometchat sync health benchmark, PostgreSQL database {DB_NAME}")
    if not args.reuse:
        recreate_database()
    configure_django()
    from django.core.management import call_command

    try:
        if not args.reuse:
            with timed("migrate"):
                call_command("migrate", verbosity=0)
            load(args.rows)
        else:
            from django.contrib.auth import get_user_model

            get_user_model().objects.filter(username="bench-admin").delete()
        ok = measure(args.runs, show_plans=args.explain)
    finally:
        if not args.keep:
            drop_database()
    print("\nall under the target" if ok else "\nsome missed the target (or broke)")
    return 0  # a report, not a test: the figures are the result


if __name__ == "__main__":
    sys.exit(main())
