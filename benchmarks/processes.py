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
from collections.abc import Sequence
from dataclasses import dataclass
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
