"""docs/testing.md's examples, executed as written: the first one's tests pass against the fake,
and the "CometChat is down" one fails fast, since it turns retries off; the webhook delivery's
test passes too, and the long-running fake's delivery is one the webhook accepts."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests import ROOT

pytestmark = pytest.mark.django_db

DOC = ROOT / "docs" / "testing.md"


def first_example() -> dict[str, Any]:
    block = re.search(r"```python\n(import pytest\n[\s\S]*?)```", DOC.read_text())
    assert block is not None
    namespace: dict[str, Any] = {}
    exec(block[1], namespace)  # noqa: S102 (our own documentation)
    return namespace


def test_the_cometchat_is_down_example_fails_in_well_under_a_second(
    cometchat_fake, settings, django_user_model
):
    example = first_example()
    started = time.monotonic()
    example["test_cometchat_down"](cometchat_fake, settings, django_user_model)
    assert time.monotonic() - started < 0.5
    assert len(cometchat_fake.requests) == 1  # no retry


def test_the_inbox_example_passes(cometchat_fake, client, django_user_model):
    first_example()["test_inbox_shows_unread"](cometchat_fake, client, django_user_model)


def test_the_webhook_delivery_example_passes(cometchat_fake, client):
    block = re.search(r"```python\n(import base64\n[\s\S]*?)```", DOC.read_text())
    assert block is not None
    namespace: dict[str, Any] = {}
    exec(block[1], namespace)  # noqa: S102 (our own documentation)
    namespace["test_a_message_refreshes_both_copies"](cometchat_fake, client)


def test_the_long_running_fakes_delivery_is_accepted(cometchat_fake, client, settings):
    """fake_with_messages.py's body, posted as its curl line does, is accepted and processed
    (API.md §7's message_sent, with the fake's message)."""
    import base64

    from django_cometchat.models import WebhookEvent

    block = re.search(r"```python\n(\"\"\"fake_with_messages.py[\s\S]*?)```", DOC.read_text())
    assert block is not None
    namespace: dict[str, Any] = {"__name__": "fake_with_messages"}  # not run as a script
    exec(block[1], namespace)  # noqa: S102 (our own documentation)
    for uid in ("alice", "bob"):
        cometchat_fake.add_user(uid)
    settings.COMETCHAT = {**settings.COMETCHAT, "APP_ID": cometchat_fake.app_id}
    body = namespace["message_delivery"](cometchat_fake, "bob", "alice")
    credentials = settings.COMETCHAT["WEBHOOK_BASIC_AUTH"][0]
    answer = client.post(
        "/cometchat/webhook/",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(credentials.encode()).decode(),
    )
    assert answer.json() == {"status": "accepted"}
    event = WebhookEvent.objects.get()
    assert (event.trigger, event.status) == ("message_sent", "processed")


@pytest.mark.parametrize("stdin", ["/dev/null", "closed"])
def test_the_long_running_fake_keeps_serving_without_a_terminal(tmp_path, stdin):
    """Started in the background (``< /dev/null``: EOFError; ``<&-``: no sys.stdin at all),
    fake_with_messages.py used to die at its first prompt; it serves until it is stopped."""
    import os
    import socket
    import subprocess
    import sys
    import urllib.request

    block = re.search(r"```python\n(\"\"\"fake_with_messages.py[\s\S]*?)```", DOC.read_text())
    assert block is not None
    with socket.socket() as probe:  # a free port for this run, in place of the doc's 8765
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = tmp_path / "fake_with_messages.py"
    script.write_text(block[1].replace("port=8765", f"port={port}"))
    closed = stdin == "closed"
    process = subprocess.Popen(
        [sys.executable, "-u", str(script)],
        stdin=None if closed else subprocess.DEVNULL,
        # the shell's <&-: the child starts without file descriptor 0
        preexec_fn=(lambda: os.close(0)) if closed else None,  # noqa: PLW1509 (a test's child)
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith(f"COMETCHAT_BASE_URL=http://127.0.0.1:{port}/v3 "), first
        time.sleep(0.5)  # past the first prompt, where EOFError ended it
        assert process.poll() is None, process.communicate()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v3/users", headers={"apikey": "fake-dev-key"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 (loopback)
            assert answer.status == 200
    finally:
        process.terminate()
        process.wait(10)
