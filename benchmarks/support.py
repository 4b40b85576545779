"""What the benchmarks share: the fake server in a subprocess, Django set-up, measuring helpers.

Django is configured here with ``settings.configure()`` (a settings object can be configured
once per process, which is why ``bench_sync`` runs each database in a child process).
"""

from __future__ import annotations

import json
import os
import platform
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

API_KEY = "bench-api-key-not-secret"
APP_ID = "benchapp"
PG_DSN = "host=127.0.0.1 port=5432 user=postgres"
PG_BENCH_DB = "cometchat_bench"
MIB = 1024 * 1024


class FakeServer:
    """``benchmarks.fake_server`` in a child process; its memory and threads are not ours."""

    def __init__(
        self,
        bulk: Sequence[tuple[str, int]],
        *,
        start_timeout: float = 60.0,
        options: Sequence[str] = (),
    ) -> None:
        command = [sys.executable, "-m", "benchmarks.fake_server", "--api-key", API_KEY]
        command += ["--app-id", APP_ID, *options]
        for owner, count in bulk:
            command += ["--bulk", f"{owner}={count}"]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.base_url = self._read_ready(start_timeout)

    def _read_ready(self, timeout: float) -> str:
        line = self._readline(timeout)
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the fake server did not start: {line!r}")
        return line.split(" ", 1)[1].strip()

    def _readline(self, timeout: float = 10.0) -> str:
        assert self._process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise RuntimeError(f"the fake server did not answer within {timeout}s")
        return self._process.stdout.readline()

    def _ask_line(self, command: str) -> str:
        assert self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return self._readline()

    def _ask(self, command: str) -> int:
        return int(self._ask_line(command))

    @property
    def pid(self) -> int:
        return self._process.pid

    def request_log(self) -> list[tuple[float, int | None]]:
        """``(at, status)`` of every request since the last :meth:`clear_requests`."""
        return [(at, status) for at, status in json.loads(self._ask_line("log"))]

    def clear_requests(self) -> None:
        self._ask("clear")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the fake's process has used."""
        return float(self._ask_line("cpu"))

    def send_message(self, sender: str, receiver: str) -> str:
        """A real change upstream: ``sender`` messages ``receiver``; the ``message_sent``
        webhook body announcing it, as CometChat would deliver it (JSON text)."""
        return self._ask_line(f"send {sender} {receiver}").strip()

    def connections_opened(self) -> int:
        """TCP connections the fake accepted since it started (``FakeCometChat``'s counter)."""
        return self._ask("connections")

    def requests_served(self) -> int:
        return self._ask("requests")

    def stop(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()  # end of input: the fake stops
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# -- Django -----------------------------------------------------------------------------------


@dataclass
class Database:
    """Where the benchmark writes; ``cleanup()`` removes it."""

    vendor: str  # "sqlite" | "postgres" | "none"
    settings: dict[str, Any]
    description: str
    _tempdir: str | None = None

    def cleanup(self) -> None:
        if self.vendor == "postgres":
            from django.db import connections

            connections.close_all()
            _drop_postgres_database(str(self.settings["NAME"]))
        if self._tempdir:
            shutil.rmtree(self._tempdir, ignore_errors=True)


def sqlite_database() -> Database:
    """A file database in a temporary directory (a file, not ``:memory:``: commits hit disk)."""
    tempdir = tempfile.mkdtemp(prefix="cometchat-bench-")
    path = os.path.join(tempdir, "bench.sqlite3")
    return Database(
        "sqlite",
        {"ENGINE": "django.db.backends.sqlite3", "NAME": path},
        f"SQLite file {path}",
        tempdir,
    )


def postgres_database(name: str = PG_BENCH_DB) -> Database:
    """A fresh database ``name`` on the local PostgreSQL (dropped first if present)."""
    import psycopg

    _drop_postgres_database(name)
    with psycopg.connect(f"{PG_DSN} dbname=postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return Database(
        "postgres",
        {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "USER": "postgres",
            "NAME": name,
        },
        f"PostgreSQL database {name} at 127.0.0.1:5432",
    )


def _drop_postgres_database(name: str = PG_BENCH_DB) -> None:
    import psycopg

    with psycopg.connect(f"{PG_DSN} dbname=postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def configure_django(
    *,
    base_url: str,
    database: Database | None,
    page_size: int = 1000,
    apps: Sequence[str] = (),
    cometchat: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    migrate: bool = True,
) -> None:
    """Minimal settings pointing ``COMETCHAT`` at the fake; migrate when there is a database.

    ``apps`` are added to ``INSTALLED_APPS``, ``cometchat`` to ``COMETCHAT``, ``extra`` are
    further settings (``TASKS``, ``CACHES``); ``migrate=False`` leaves the schema alone (a
    worker process beside the one that migrated)."""
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="benchmarks-only-not-secret",  # noqa: S106
        DEBUG=False,  # no query log growing in memory
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django_cometchat",
            *apps,
        ],
        DATABASES={"default": database.settings} if database else {},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        COMETCHAT={
            "APP_ID": APP_ID,
            "API_KEY": API_KEY,
            "BASE_URL": base_url,
            "PAGE_SIZE": page_size,
            "MAX_RETRIES": 0,  # a benchmark should fail loudly, not retry quietly
            **(cometchat or {}),
        },
        **(extra or {}),
    )
    django.setup()
    if database is not None and migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def queue_settings(redis_url: str) -> dict[str, Any]:
    """``TASKS`` on django-tasks-db and the rate budget's cache ("cometchat") in Redis: the
    settings of the task-queue benchmarks, as a deployment has them."""
    return {
        "TASKS": {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}},
        "CACHES": {
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "cometchat": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
            },
        },
    }


# -- measuring --------------------------------------------------------------------------------


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def traced_peak(fn: Callable[[], T]) -> tuple[int, T]:
    """Run ``fn`` under tracemalloc; return the peak bytes allocated during it, and its value.

    Only allocations made while tracing count, so what the process held before does not.
    tracemalloc traces every thread of this process, which is why the fake runs elsewhere.
    """
    tracemalloc.start()
    try:
        value = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, value


def client_connections(client: Any) -> int:
    """New TCP connections made by the client's urllib3 pools (``num_connections``)."""
    adapter = client.session.get_adapter(client.base_url)
    pools = adapter.poolmanager.pools
    # RecentlyUsedContainer refuses iteration; keys() is its locked snapshot.
    return sum(pools[key].num_connections for key in pools.keys())  # noqa: SIM118


@dataclass
class SqlStats:
    """Statements run on the default connection: how many, and seconds inside ``execute``
    (sending, server time, receiving rows) per kind of statement. No SQL text is kept."""

    by_kind: dict[str, list[float]] = field(default_factory=dict)  # kind -> [count, seconds]

    @property
    def count(self) -> int:
        """Statements sent through ``execute`` (commits are timed, not counted)."""
        return int(sum(n for kind, (n, _) in self.by_kind.items() if kind != "COMMIT"))

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.by_kind.values())

    def add(self, kind: str, seconds: float) -> None:
        entry = self.by_kind.setdefault(kind, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds


_TABLE_RE = re.compile(r'(?:FROM|INTO|UPDATE|JOIN)\s+"?(\w+)"?', re.IGNORECASE)


def statement_kind(sql: str) -> str:
    """``INSERT django_cometchat_conversation`` and the like: the verb and the first table."""
    words = sql.lstrip().split(None, 1)
    verb = words[0].upper() if words else "?"
    if verb == "SELECT" and "pg_advisory_xact_lock" in sql:
        return "SELECT pg_advisory_xact_lock"
    match = _TABLE_RE.search(sql)
    return f"{verb} {match.group(1)}" if match else verb


@contextmanager
def sql_stats() -> Iterator[SqlStats]:
    """Count and time the SQL statements run on the default connection."""
    from django.db import connection

    stats = SqlStats()

    def wrapper(execute: Any, sql: Any, params: Any, many: Any, context: Any) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            stats.add(statement_kind(str(sql)), time.perf_counter() - start)

    # COMMIT does not pass through execute wrappers (it is the driver's commit()); time it by
    # wrapping this connection's _commit for the duration. On a SQLite file it is the fsync.
    commit = getattr(connection, "_commit")  # noqa: B009 (not in django-stubs)

    def timed_commit() -> None:
        start = time.perf_counter()
        try:
            commit()
        finally:
            stats.add("COMMIT", time.perf_counter() - start)

    setattr(connection, "_commit", timed_commit)  # noqa: B010 (mypy: no method assignment)
    try:
        with connection.execute_wrapper(wrapper):
            yield stats
    finally:
        delattr(connection, "_commit")


def mib(n: float) -> str:
    return f"{n / MIB:.1f} MiB"


def within(a: float, b: float, tolerance: float) -> bool:
    """``b`` is no more than ``tolerance`` (0.25 = 25%) away from ``a``."""
    return abs(b - a) <= tolerance * max(a, 1)


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def pass_miss(flag: bool) -> str:
    return "PASS" if flag else "MISS"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first, *rest = row
        parts = [first.ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def machine() -> str:
    import django

    cpus = os.cpu_count()
    return (
        f"{cpus} CPU cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, Django {django.get_version()}"
    )
