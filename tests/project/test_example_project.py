"""The example project passes `check` and answers one request per URL group.

It runs in a subprocess because its settings are not the suite's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests import ROOT


def test_example_project_check_and_url_groups(tmp_path):
    env = {
        **os.environ,
        "COMETCHAT_APP_ID": "demo",
        "COMETCHAT_REGION": "us",
        "COMETCHAT_API_KEY": "example-key-not-secret",
        "COMETCHAT_BASE_URL": "https://proxy.invalid/v3",
        "EXAMPLE_WEBHOOK_BASIC_AUTH": "cometchat:example-webhook-password",
        "DJANGO_DEBUG": "0",
        "EXAMPLE_SQLITE_PATH": str(tmp_path / "example.sqlite3"),
    }
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.example_smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    statuses = json.loads(done.stdout.strip().splitlines()[-1])
    assert statuses == {
        "home": 302,
        "admin": 200,
        "api_anonymous": 403,
        "api": 200,
        "schema": 200,
        "swagger": 200,
        "redoc": 200,
    }
    assert "example-key-not-secret" not in done.stdout + done.stderr
