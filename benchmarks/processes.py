"""Child processes of the task-queue benchmarks: started, watched and stopped here.

A benchmark re-runs its own module with a role argument (``--worker NAME``, ``--web PORT``) and
its settings as JSON in ``CONFIG_ENV``; each child's output goes to a log file read back to see
that it is ready and, when it dies, why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_ENV = "COMETCHAT_BENCH_CONFIG"
WORKER_READY = "Starting worker"  # what django-tasks-db's db_worker logs once it polls


class ChildDied(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def config_from_env() -> dict[str, Any]:
    """The settings a parent handed its child (``start``'s ``config``)."""
    config: dict[str, Any] = json.loads(os.environ[CONFIG_ENV])
    return config


def start(
    module: str,
    roles: Sequence[tuple[str, Sequence[str]]],
    *,
    config: dict[str, Any],
    logs: Path,
    ready: str,
    timeout: float = 60.0,
) -> list[Child]:
    """``python -m module *args`` for each ``(name, args)`` of ``roles``; wait until every log
    holds ``ready``."""
    env = {**os.environ, CONFIG_ENV: json.dumps(config)}
    children = []
    for name, args in roles:
        log = logs / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        children.append(Child(name, process, log))
    deadline = time.monotonic() + timeout
    for child in children:
        while ready not in child.output():
            check_alive(children)
            if time.monotonic() > deadline:
                stop_all(children)
                raise ChildDied(
                    f"{child.name} not ready in {timeout:.0f} s:\n{child.output()[-3000:]}"
                )
            time.sleep(0.1)
    return children


def check_alive(children: Sequence[Child]) -> None:
    for child in children:
        if child.process.poll() is not None:
            raise ChildDied(
                f"{child.name} exited with status {child.process.returncode}:\n"
                f"{child.output()[-4000:]}"
            )


def stop_all(children: Sequence[Child]) -> None:
    for child in children:
        child.stop()


# -- CPU time from /proc ------------------------------------------------------------------------


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float | None:
    """CPU seconds all cores spent busy since boot (everyone's processes, not only ours)."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
    except OSError:
        return None
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def postgres_backends(database: str) -> list[int]:
    """PIDs of the PostgreSQL backends connected to ``database``, but this process's own."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )
        return [row[0] for row in cursor.fetchall()]


@dataclass
class CpuMeter:
    """CPU seconds used between ``start()`` and ``stop()``: by each named group of processes,
    by the fake CometChat (``fake_cpu()``), by this process ("load"), by the PostgreSQL backends
    of ``database`` and by the whole machine (Linux /proc)."""

    groups: Mapping[str, Sequence[int]]
    fake_cpu: Callable[[], float]
    database: str
    before: dict[str, float] = field(default_factory=dict)
    backends: dict[int, float] = field(default_factory=dict)

    def _read(self) -> dict[str, float]:
        for pid in postgres_backends(self.database):
            self.backends.setdefault(pid, proc_cpu(pid) or 0.0)
        times = os.times()
        figures = {
            name: sum(proc_cpu(pid) or 0.0 for pid in pids) for name, pids in self.groups.items()
        }
        figures.update(
            fake=self.fake_cpu(),
            load=times.user + times.system,
            machine=machine_busy() or 0.0,
        )
        return figures

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> dict[str, float]:
        after = self._read()
        used = {key: after[key] - self.before[key] for key in after}
        used["postgres"] = sum((proc_cpu(pid) or at) - at for pid, at in self.backends.items())
        return used


# -- the worker's side ----------------------------------------------------------------------------


def warm_up() -> None:
    """What a worker otherwise does on its first task, done before it reports ready: import the
    task modules (db_worker imports a task's module when it first runs one), load the URLconf,
    open the database and cache connections. The figures are then a steady state, not the
    first seconds of a process (with PYTHONDONTWRITEBYTECODE, as here, every import compiles
    its source, 2-4 s of CPU for the package and its dependencies)."""
    from django.conf import settings as django_settings
    from django.core.cache import caches
    from django.db import connection
    from django.urls import get_resolver

    import django_cometchat.tasks
    import django_cometchat.webhooks  # noqa: F401
    from django_cometchat.conf import get_settings

    if getattr(django_settings, "ROOT_URLCONF", None):
        get_resolver().url_patterns  # noqa: B018 (imports every view)
    connection.ensure_connection()
    settings = get_settings()
    if settings.rate_limit_cache:
        caches[settings.rate_limit_cache].get("django-cometchat-bench-warm-up")


def run_db_worker(name: str, *, interval: float, profile_path: str | None = None) -> int:
    """django-tasks-db's ``db_worker`` in this (configured) process until SIGTERM, under
    cProfile when ``profile_path`` is given (written on the way out)."""
    import cProfile

    from django.core.management import call_command

    warm_up()
    profile = cProfile.Profile() if profile_path else None
    if profile is not None:
        profile.enable()
    try:
        call_command(
            "db_worker",
            "--worker-id",
            name,
            "--interval",
            str(interval),
            "--no-startup-delay",
            verbosity=1,
        )
    finally:  # SIGTERM: db_worker exits through SystemExit
        if profile is not None and profile_path:
            profile.disable()
            profile.dump_stats(profile_path)
    return 0
