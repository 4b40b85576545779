"""How fast the admin's conversation pages render over 1,000,000 rows on PostgreSQL.

    .venv/bin/python -m benchmarks.bench_admin_changelist [--rows N] [--runs 5] [--keep] [--explain]

Creates its own database (``cometchat_admin_bench`` on 127.0.0.1:5432, user postgres), migrates
it, bulk-loads ``--rows`` conversations (one snapshot each) with ``INSERT ... SELECT
generate_series``, then times ``GET`` of each admin page with ``django.test.Client`` logged in as
a superuser: one warm-up request, then ``--runs`` timed ones; prints the median and max in ms and
PASS/MISS against the 1 s target. ``--explain`` prints the plan of every query of each page.
The database is dropped at the end unless ``--keep``. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import psycopg
from psycopg import sql

DB_NAME = "cometchat_admin_bench"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
TARGET_MS = 1000.0
ROWS_PER_OWNER = 200
CONVERSATION_TABLE = "django_cometchat_conversation"
SNAPSHOT_TABLE = "django_cometchat_conversationsnapshot"
ADMIN = "/admin/django_cometchat/"

FIRST_NAMES = (
    "Alice",
    "Bob",
    "Carol",
    "Dave",
    "Erin",
    "Frank",
    "Grace",
    "Heidi",
    "Ivan",
    "Judy",
    "Karl",
    "Liam",
    "Mallory",
    "Nina",
    "Oscar",
    "Peggy",
    "Quinn",
    "Rupert",
    "Sybil",
    "Trent",
    "Uma",
    "Victor",
    "Walter",
    "Xena",
    "Yusuf",
    "Zoe",
    "Amir",
    "Beatriz",
    "Chen",
    "Dmitri",
    "Elif",
    "Fatima",
    "Goran",
    "Hana",
    "Ines",
    "Jonas",
    "Kenji",
    "Lena",
    "Mateo",
    "Noor",
    "Olga",
    "Pablo",
    "Rosa",
    "Sanjay",
    "Tomas",
    "Ulla",
    "Vera",
    "Wen",
    "Yara",
    "Zeynep",
)
LAST_NAMES = (
    "Smith",
    "Stone",
    "Garcia",
    "Muller",
    "Rossi",
    "Novak",
    "Kim",
    "Tanaka",
    "Silva",
    "Ivanova",
    "Cohen",
    "Dubois",
    "Jensen",
    "Kowalski",
    "Nguyen",
    "Okafor",
    "Patel",
    "Quispe",
    "Larsen",
    "Haddad",
    "Moreau",
    "Fischer",
    "Ricci",
    "Santos",
    "Weber",
    "Yilmaz",
    "Popescu",
    "Horvat",
    "Lindqvist",
    "Costa",
    "Adeyemi",
    "Bauer",
    "Castillo",
    "Dimitrov",
    "Eriksen",
    "Ferreira",
    "Gallo",
    "Hoffmann",
    "Ibrahim",
    "Jovanovic",
    "Keller",
    "Lopez",
    "Martin",
    "Nowak",
    "Olsen",
    "Petrov",
    "Reyes",
    "Schmidt",
    "Torres",
    "Varga",
)


def configure_django() -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY=secrets.token_urlsafe(32),
        USE_TZ=True,
        TIME_ZONE="UTC",
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
            "django_cometchat",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        ROOT_URLCONF=__name__,
        STATIC_URL="static/",
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": PG["host"],
                "PORT": str(PG["port"]),
                "USER": PG["user"],
                "NAME": DB_NAME,
            }
        },
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        COMETCHAT={"APP_ID": "benchapp", "REGION": "us", "API_KEY": "bench-api-key-not-secret"},
    )
    django.setup()


def __getattr__(name: str) -> Any:
    """``urlpatterns`` for ROOT_URLCONF, built once Django is set up (PEP 562)."""
    if name == "urlpatterns":
        from django.contrib import admin
        from django.urls import path

        return [path("admin/", admin.site.urls)]
    raise AttributeError(name)


# -- the database ---------------------------------------------------------------------------


def admin_connection(dbname: str = "postgres") -> psycopg.Connection[Any]:
    return psycopg.connect(**PG, dbname=dbname, autocommit=True)  # type: ignore[arg-type]


def recreate_database() -> None:
    with admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DB_NAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))


def drop_database() -> None:
    from django.db import connections

    connections.close_all()
    with admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DB_NAME)))


@contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"  {label:<52} {time.perf_counter() - started:7.1f} s", flush=True)


def _text_array(values: tuple[str, ...] | list[str]) -> sql.Composable:
    return sql.SQL("(ARRAY[{}])").format(sql.SQL(", ").join(sql.Literal(v) for v in values))


LOAD_CONVERSATIONS = """
INSERT INTO django_cometchat_conversation (
    owner_id, owner_uid, conversation_id, conversation_type, unread_message_count, created_at,
    updated_at, peer_uid, peer_guid, peer_name, payload, content_hash, fetched_at, missing_since
)
SELECT
    CASE WHEN o % 2 = 0 THEN {first_user} + o / 2 END,
    owner_uid, conversation_id, kind, unread, updated_at - created_back, updated_at,
    CASE WHEN kind = 'user' THEN peer ELSE '' END, CASE WHEN kind = 'group' THEN peer ELSE '' END,
    name,
    jsonb_build_object(
        'conversationId', conversation_id,
        'conversationType', kind,
        'unreadMessageCount', unread::text,
        'createdAt', extract(epoch FROM updated_at - created_back)::bigint,
        'updatedAt', extract(epoch FROM updated_at)::bigint,
        'lastMessage', jsonb_build_object(
            'id', (g + 1)::text,
            'conversationId', conversation_id,
            'sender', CASE WHEN kind = 'user' THEN peer ELSE 'member-' || (g % 97) END,
            'receiverType', kind,
            'receiver', CASE WHEN kind = 'user' THEN owner_uid ELSE peer END,
            'category', 'message',
            'type', 'text',
            'data', jsonb_build_object(
                'text', 'Message number ' || g || ' about ' || name,
                'entities', jsonb_build_object(
                    'sender', jsonb_build_object(
                        'entityType', 'user',
                        'entity', jsonb_build_object('uid', peer, 'name', name)
                    )
                )
            ),
            'sentAt', extract(epoch FROM updated_at)::bigint,
            'updatedAt', extract(epoch FROM updated_at)::bigint
        ),
        'conversationWith', CASE WHEN kind = 'user'
            THEN jsonb_build_object(
                'uid', peer, 'name', name, 'status', 'offline', 'role', 'default',
                'avatar', 'https://avatars.example.com/' || peer || '.png',
                'conversationId', conversation_id
            )
            ELSE jsonb_build_object(
                'guid', peer, 'name', name, 'type', 'public', 'scope', 'participant',
                'icon', 'https://avatars.example.com/' || peer || '.png',
                'membersCount', 3 + g % 40, 'conversationId', conversation_id
            )
        END
    ),
    md5(g::text) || md5(conversation_id),
    updated_at + interval '1 minute' * (1 + g % 600),
    CASE WHEN r4 < 0.01 THEN now() - interval '3 days' END
FROM (
    SELECT *,
        CASE WHEN kind = 'user' THEN owner_uid || '_user_' || peer ELSE 'group_' || peer END
            AS conversation_id,
        CASE WHEN kind = 'user'
            THEN {first}[1 + (o * 7 + p * 13) % {nfirst}]
                || ' ' || {last}[1 + (o + p * 3) % {nlast}]
            ELSE 'Group ' || {last}[1 + (o + p) % {nlast}] || ' ' || p
        END AS name,
        CASE WHEN r1 < 0.1 THEN 1 + (r2 * 20)::int ELSE 0 END AS unread,
        now() - interval '1095 days' * r3 AS updated_at,
        interval '30 days' * r2 AS created_back
    FROM (
        SELECT g, o, p,
            'owner-' || lpad(o::text, 5, '0') AS owner_uid,
            CASE WHEN p % 5 = 4 THEN 'group' ELSE 'user' END AS kind,
            CASE WHEN p % 5 = 4 THEN 'group-' || p ELSE 'peer-' || lpad(p::text, 4, '0') END
                AS peer,
            random() AS r1, random() AS r2, random() AS r3, random() AS r4
        FROM (
            SELECT g, g % {owners} AS o, g / {owners} AS p FROM generate_series(0, {rows} - 1) g
        ) numbered
    ) drawn
) named
"""


# Every conversation has its first snapshot; the newest one has 60 more (a long history).
COPY_SNAPSHOTS = """
INSERT INTO django_cometchat_conversationsnapshot
    (conversation_id, payload, content_hash, fetched_at)
SELECT id, payload, content_hash, fetched_at FROM django_cometchat_conversation
"""
EXTRA_SNAPSHOTS = """
INSERT INTO django_cometchat_conversationsnapshot
    (conversation_id, payload, content_hash, fetched_at)
SELECT c.id, c.payload, md5(n::text), c.fetched_at - interval '1 hour' * n
FROM (
    SELECT * FROM django_cometchat_conversation ORDER BY updated_at DESC, id DESC LIMIT 1
) c, generate_series(1, 60) n
"""


def load(rows: int) -> None:
    owners = max(1, rows // ROWS_PER_OWNER)
    with admin_connection(DB_NAME) as conn:
        conn.execute("SELECT setseed(0.42)")
        # Owners with an even number have a Django user; the others are known by UID only.
        with timed(f"{(owners + 1) // 2:,} users"):
            conn.execute(
                "INSERT INTO auth_user (password, is_superuser, username, first_name, "
                "last_name, email, is_staff, is_active, date_joined) "
                "SELECT '!', false, 'owner-' || lpad((2 * n)::text, 5, '0') || '-django', "
                "'', '', '', false, true, now() FROM generate_series(0, %s) n",
                [(owners - 1) // 2],
            )
            first_user_id = conn.execute("SELECT min(id) FROM auth_user").fetchone()
        assert first_user_id is not None
        # Secondary indexes are built once after the load (much faster than row by row).
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            [[CONVERSATION_TABLE, SNAPSHOT_TABLE]],
        ).fetchall()
        for name, _ in indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        conn.execute("SET session_replication_role = replica")  # no FK triggers during the load
        query = sql.SQL(LOAD_CONVERSATIONS)
        with timed(f"{rows:,} conversations ({owners:,} owners)"):
            conn.execute(
                query.format(
                    first=_text_array(FIRST_NAMES),
                    nfirst=sql.Literal(len(FIRST_NAMES)),
                    last=_text_array(LAST_NAMES),
                    nlast=sql.Literal(len(LAST_NAMES)),
                    owners=sql.Literal(owners),
                    rows=sql.Literal(rows),
                    first_user=sql.Literal(first_user_id[0]),
                )
            )
        with timed(f"{rows:,} snapshots (+60 for one conversation)"):
            conn.execute(COPY_SNAPSHOTS)
            conn.execute(EXTRA_SNAPSHOTS)
        conn.execute("SET session_replication_role = DEFAULT")
        with timed(f"{len(indexes)} secondary indexes"):
            conn.execute("SET maintenance_work_mem = '512MB'")
            for _, definition in indexes:
                conn.execute(definition)
        with timed("VACUUM ANALYZE"):
            for table in (CONVERSATION_TABLE, SNAPSHOT_TABLE, "auth_user"):
                conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


# -- timing ---------------------------------------------------------------------------------


@dataclass
class Case:
    label: str
    url: str
    expect: str  # a piece of HTML that proves the page shows what was asked


def cases() -> list[Case]:
    from django_cometchat.models import Conversation

    newest = Conversation.objects.order_by("-updated_at", "-id").first()
    assert newest is not None
    month = newest.updated_at.replace(day=1)
    a_year_ago = month.replace(year=month.year - 1)
    owners = Conversation.objects.order_by("-owner_uid").values_list("owner_uid", flat=True)[0]
    owner = f"owner-{min(42, int(owners.split('-')[1])):05d}"
    known = Conversation.objects.filter(owner_uid=owner).order_by("id").last()
    assert known is not None
    full_name = (
        Conversation.objects.filter(peer_name__startswith="Zoe ")
        .values_list("peer_name", flat=True)
        .first()
    ) or "Zoe"
    changelist = f"{ADMIN}conversation/"
    return [
        Case("changelist", changelist, f'title="{newest.peer_name} ({newest.peer_id})"'),
        Case("changelist, page 50", f"{changelist}?p=50", "conversation"),
        Case("changelist, last linked page (100)", f"{changelist}?p=100", "conversation"),
        Case("filter: type = group", f"{changelist}?conversation_type__exact=group", "group_"),
        Case("filter: unread = yes", f"{changelist}?unread=yes", "conversation"),
        Case("filter: unread = no", f"{changelist}?unread=no", "conversation"),
        Case("filter: missing = yes", f"{changelist}?missing=yes", "conversation"),
        Case("filter: owner UID", f"{changelist}?owner_uid={owner}", owner),
        Case(
            "filters: group + unread + missing = no",
            f"{changelist}?conversation_type__exact=group&unread=yes&missing=no",
            "group_",
        ),
        Case("search: owner UID", f"{changelist}?q={owner}", owner),
        Case(
            "search: conversation id",
            f"{changelist}?q={known.conversation_id}",
            known.conversation_id,
        ),
        Case("search: peer name prefix", f"{changelist}?q=Zoe", "Zoe"),
        Case(
            "search: quoted full name", f"{changelist}?q=%22{quote_plus(full_name)}%22", full_name
        ),
        Case(
            "date hierarchy: a year",
            f"{changelist}?updated_at__year={a_year_ago.year}",
            str(a_year_ago.year),
        ),
        Case(
            "date hierarchy: a month",
            f"{changelist}?updated_at__year={a_year_ago.year}&updated_at__month={a_year_ago.month}",
            str(a_year_ago.year),
        ),
        Case(
            "date hierarchy: a day",
            f"{changelist}?updated_at__year={a_year_ago.year}"
            f"&updated_at__month={a_year_ago.month}&updated_at__day=15",
            str(a_year_ago.year),
        ),
        Case(
            "detail page (60 snapshots)",
            f"{changelist}{newest.pk}/change/",
            "&quot;conversationId&quot;",
        ),
        Case("snapshot changelist", f"{ADMIN}conversationsnapshot/", "unread"),
        Case(
            "snapshots of one conversation",
            f"{ADMIN}conversationsnapshot/?conversation={newest.pk}",
            "unread",
        ),
        Case("sync run changelist", f"{ADMIN}syncrun/", "sync run"),
    ]


def explain(captured: list[dict[str, Any]]) -> None:
    from django.db import connection

    for query in captured:
        text = query["sql"]
        if not text.lstrip().upper().startswith("SELECT") or "django_cometchat" not in text:
            continue
        print(f"    -- {query['time']} s: {text[:300]}")
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + text)
            for (line,) in cursor.fetchall():
                print(f"       {line}")


def measure(runs: int, *, show_plans: bool) -> bool:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user_model = get_user_model()
    admin_user = user_model.objects.create_superuser("bench-admin", "admin@example.com", "x")
    client = Client()
    client.force_login(admin_user)
    all_pass = True
    print(f"\n  {'page':<40} {'median':>8} {'max':>8} {'queries':>8}  (target {TARGET_MS:.0f} ms)")
    for case in cases():
        with CaptureQueriesContext(connection) as captured:
            warm = client.get(case.url)  # warm-up: templates compiled, connection opened
        page_queries = list(captured.captured_queries)  # before the next request resets the log
        queries = len(page_queries)
        if warm.status_code != 200 or case.expect not in warm.content.decode():
            print(f"  {case.label:<40} BROKEN: HTTP {warm.status_code}, {case.expect!r} missing")
            all_pass = False
            continue
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get(case.url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        median, worst = statistics.median(timings), max(timings)
        verdict = "PASS" if worst < TARGET_MS else "MISS"
        all_pass &= verdict == "PASS"
        print(
            f"  {case.label:<40} {median:7.1f}  {worst:7.1f}  {queries:7d}   {verdict}",
            flush=True,
        )
        if show_plans:
            explain(page_queries)
    return all_pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="conversations to load")
    parser.add_argument("--runs", type=int, default=5, help="timed requests per page")
    parser.add_argument("--keep", action="store_true", help=f"keep the {DB_NAME} database")
    parser.add_argument("--reuse", action="store_true", help="reuse a database kept by --keep")
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    args = parser.parse_args(argv)

    print(f"django-cometchat admin changelist benchmark, PostgreSQL database {DB_NAME}")
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
    print("\nall pages under the target" if ok else "\nsome pages missed the target (or broke)")
    return 0  # a report, not a test: the figures are the result


if __name__ == "__main__":
    sys.exit(main())
