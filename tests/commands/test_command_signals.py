"""SIGTERM and SIGINT to a real command in a process of its own, mid-sync: the runs in progress
are recorded failed (``ERR_INTERRUPTED``, "interrupted (SIGTERM)") before it exits with 143
(SIGTERM) or 130 (SIGINT), inline and on threads.

The command runs ``tests.settings_file_db`` on a SQLite file made for each test (migrated once
per module, then copied), and reaches this process's fake CometChat over loopback through
``COMETCHAT_BASE_URL``; the fake holds its answers to the conversation list (API.md §2.1), so the
command is waiting on CometChat when the signal comes.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from django_cometchat.testing import Fault
from tests import ROOT

EXIT_STATUS = {signal.SIGTERM: 143, signal.SIGINT: 130}


def environment(database: Path, base_url: str = "http://127.0.0.1:9/v3") -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_file_db",
        "COMETCHAT_TEST_SQLITE": str(database),
        "COMETCHAT_BASE_URL": base_url,
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    database: Path = tmp_path_factory.mktemp("signals") / "template.sqlite3"
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"],
        env=environment(database),
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    return database


def runs(database: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(database, timeout=20) as db:
        rows = db.execute(
            "SELECT owner_uid, status, error_code, error_message FROM django_cometchat_syncrun "
            "ORDER BY owner_uid, id"
        )
        return [tuple(row) for row in rows]


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail("timed out waiting")
        time.sleep(0.05)


@pytest.mark.parametrize("concurrency", [1, 2])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_records_the_runs_in_progress_as_failed(
    cometchat_fake, migrated, tmp_path, signum, concurrency
):
    database = tmp_path / "db.sqlite3"
    shutil.copy(migrated, database)
    owners = ["owner-a", "owner-b"][:concurrency]
    for uid in owners:
        cometchat_fake.bulk_conversations(uid, 3, prefix=f"{uid}-peer")
    held = cometchat_fake.inject(
        Fault("hold", times=concurrency, path="/conversations", hold_timeout=60)
    )
    command = [sys.executable, "-m", "django", "cometchat_sync", "--concurrency", str(concurrency)]
    for uid in owners:
        command += ["--uid", uid]
    process = subprocess.Popen(
        command,
        env=environment(database, cometchat_fake.base_url),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Mid-sync: every owner's run is "running" and waits on a held answer.
        wait_for(lambda: not cometchat_fake.pending_faults and held.held.is_set())
        wait_for(lambda: [r[1] for r in runs(database)] == ["running"] * concurrency)
        started = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=20)
        stopped_in = time.monotonic() - started
    finally:
        held.release.set()
        if process.poll() is None:
            process.kill()
            process.communicate()
    name = signal.Signals(signum).name
    assert process.returncode == EXIT_STATUS[signum], (out, err)
    assert stopped_in < 5.0  # not a read timeout, nor the hold's 60 s
    assert runs(database) == [
        (uid, "failed", "ERR_INTERRUPTED", f"interrupted ({name})") for uid in owners
    ]
    assert "Interrupted after" in err
    assert "Traceback" not in err, err


def test_refresh_stale_records_the_sync_it_runs_inline(cometchat_fake, migrated, tmp_path):
    """With the immediate backend (no ``TASKS``) the syncs it enqueues run in the command."""
    database = tmp_path / "db.sqlite3"
    shutil.copy(migrated, database)
    cometchat_fake.bulk_conversations("owner-a", 3)
    env = environment(database, cometchat_fake.base_url)
    sync = [sys.executable, "-m", "django", "cometchat_sync", "--uid", "owner-a"]
    subprocess.run(sync, env=env, cwd=ROOT, check=True, capture_output=True, timeout=60)
    time.sleep(1.1)  # stale after one second
    held = cometchat_fake.inject(Fault("hold", path="/conversations", hold_timeout=60))
    refresh = [sys.executable, "-m", "django", "cometchat_refresh_stale", "--older-than", "1s"]
    process = subprocess.Popen(
        refresh, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(held.held.is_set)
        wait_for(lambda: [r[1] for r in runs(database)] == ["succeeded", "running"])
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        held.release.set()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, (out, err)
    assert runs(database)[-1] == ("owner-a", "failed", "ERR_INTERRUPTED", "interrupted (SIGTERM)")
    assert "Traceback" not in err, err
