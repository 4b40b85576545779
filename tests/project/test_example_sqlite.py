"""The example project on its SQLite file under a real threaded server (runserver, as
``scripts/demo`` serves it): concurrent refreshes never answer 500, and a lock that outlasts the
busy timeout is a 503 with Retry-After."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests import ROOT

USERS = ("alice", "bob", "carol", "dave")

# Token per demo login, made in the example project's own process.
MAKE_TOKENS = """
import django, json
django.setup()
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
tokens = {}
for name in %r:
    user = get_user_model().objects.create_user(name)
    tokens[name] = Token.objects.create(user=user).key
print(json.dumps(tokens))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def example_site(cometchat_fake, tmp_path):
    """The example project served by runserver on a fresh SQLite file, against the fake."""
    cometchat_fake.seed_demo()
    database = tmp_path / "example.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "EXAMPLE_SQLITE_PATH": str(database),
        "EXAMPLE_SQLITE_TIMEOUT": "20",
        "COMETCHAT_APP_ID": "demo",
        "COMETCHAT_REGION": "us",
        "COMETCHAT_API_KEY": cometchat_fake.api_key,
        "COMETCHAT_BASE_URL": cometchat_fake.base_url,
        "DJANGO_SECRET_KEY": "tests-only",
    }
    env.pop("DATABASE_URL", None)

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    manage("migrate", "--verbosity", "0")
    import json

    tokens = json.loads(
        subprocess.run(
            [sys.executable, "-c", MAKE_TOKENS % (USERS,)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )

    def serve(timeout: str) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env={**env, "EXAMPLE_SQLITE_TIMEOUT": timeout},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/api/cometchat/"
        for _ in range(100):
            try:
                requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        return server, url

    servers = []

    def start(timeout: str = "20") -> str:
        server, url = serve(timeout)
        servers.append(server)
        return url

    yield start, tokens, database
    for server in servers:
        server.terminate()
        server.wait(timeout=10)


def test_forty_parallel_refreshes_never_answer_500(example_site):
    start, tokens, _ = example_site
    url = start()

    def refresh(n: int) -> int:
        user = USERS[n % len(USERS)]
        path = (
            "conversations/refresh/" if n % 2 else f"conversations/{conversation_of(user)}/refresh/"
        )
        response = requests.post(
            url + path, headers={"Authorization": f"Token {tokens[user]}"}, timeout=60
        )
        return response.status_code

    with ThreadPoolExecutor(40) as pool:
        statuses = Counter(pool.map(refresh, range(40)))
    # 20 conversation refreshes answer 200; of the 20 owner syncs, one per user runs and the rest
    # answer 202 with the sync already running for that user (one run per owner at a time).
    assert statuses[200] == 20, statuses
    assert statuses[201] + statuses[202] == 20, statuses
    assert statuses[201] >= len(USERS), statuses


def conversation_of(user: str) -> str:
    """A conversation every demo login has (see django_cometchat.testing.seed)."""
    other = "bob" if user != "bob" else "alice"
    return "_user_".join(sorted((user, other)))


def test_a_lock_that_outlasts_the_busy_timeout_is_a_503_with_retry_after(example_site):
    start, tokens, database = example_site
    url = start(timeout="0.5")
    auth = {"Authorization": f"Token {tokens['alice']}"}
    assert requests.get(url + "conversations/", headers=auth, timeout=10).status_code == 200
    blocker = sqlite3.connect(database, timeout=5)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        response = requests.post(url + "conversations/refresh/", headers=auth, timeout=30)
    finally:
        blocker.rollback()
        blocker.close()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"]["code"] == "ERR_DATABASE_BUSY"
