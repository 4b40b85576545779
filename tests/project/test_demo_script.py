"""scripts/demo's and the fake's command lines: --help says what can be set and the defaults, and
the demo stops at once when the fake's port is taken (it used to carry on against whatever held
the port)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from tests import ROOT

DEMO = ROOT / "scripts" / "demo"
# scripts/ is the repository's (the sdist carries the package's tests, not its maintainer scripts)
needs_demo = pytest.mark.skipif(not DEMO.exists(), reason="scripts/demo is not in this tree")
REAL_APP = ("COMETCHAT_APP_ID", "COMETCHAT_REGION", "COMETCHAT_API_KEY", "COMETCHAT_BASE_URL")


def demo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in REAL_APP}
    return subprocess.run(
        ["bash", str(DEMO), *args],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_demo
def test_demo_help_lists_its_options_and_ports():
    done = demo("--help")
    assert done.returncode == 0, done.stderr
    for name in ("--no-serve", "--worker", "COMETCHAT_FAKE_PORT", "DEMO_PORT", "default 8765"):
        assert name in done.stdout
    assert "set -euo" not in done.stdout
    assert done.stderr == ""


@needs_demo
def test_demo_stops_at_once_when_the_fakes_port_is_taken():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        done = demo("--no-serve", COMETCHAT_FAKE_PORT=str(port))
        elapsed = time.monotonic() - started
    assert done.returncode == 1
    assert f"port {port} is taken" in done.stderr
    assert "COMETCHAT_FAKE_PORT=" in done.stderr  # how to pick another
    assert "Started the bundled fake" not in done.stdout
    assert elapsed < 5  # before building anything


def test_the_fakes_help_shows_its_defaults():
    done = subprocess.run(
        [sys.executable, "-m", "django_cometchat.testing", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    text = " ".join(done.stdout.split())  # argparse wraps lines
    for default in (
        "(default: 127.0.0.1)",
        "(default: 8765)",
        "(default: $COMETCHAT_FAKE_API_KEY, else the dev key 'fake-dev-key')",
        "(default: testapp)",
        "(default: none)",
        "(default: no limit)",
        "(default: hyphen)",
        "(default: gzip)",
    ):
        assert default in text
