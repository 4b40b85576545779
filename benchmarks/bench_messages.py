"""The server time the API's messages page adds over its wait for CometChat.

    python -m benchmarks.bench_messages [--messages 250] [--requests 400] [--page-size 50]

The fake CometChat runs in a child process at 0 latency, seeded with ``--messages`` messages in
alice's conversation with bob and in her group "crew". alice's conversations are synced once
into a SQLite file; then ``GET conversations/<id>/messages/`` is answered through DRF's whole
request cycle in-process (``APIRequestFactory`` with ``force_authenticate``), alternating the two
conversations and the newest page with the one its ``next`` link leads to. For each request the
upstream wait is the time the client reports (``upstream_request_answered``: from the request's
send to the last byte of the answer); the time added is the request's wall time minus that wait:
our SQL, decoding and checking the answer, building the page, the signed links and the JSON. The
target: at most 10 ms (median).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import support

TARGET_MS = 10.0
CONVERSATIONS = ("alice_user_bob", "group_crew")


def uid_for(user: Any) -> str:
    return str(user.get_username())


def __getattr__(name: str) -> Any:
    """``urlpatterns`` for ROOT_URLCONF, built once Django is set up (PEP 562)."""
    if name != "urlpatterns":
        raise AttributeError(name)
    from django.urls import include, path

    return [path("cometchat/", include("django_cometchat.urls"))]


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_messages")
    parser.add_argument("--messages", type=int, default=250, help="messages per conversation")
    parser.add_argument("--requests", type=int, default=400, help="timed API requests")
    parser.add_argument("--page-size", type=int, default=50)
    args = parser.parse_args(argv)

    with support.FakeServer([], options=["--messages", str(args.messages)]) as fake:
        database = support.sqlite_database()
        try:
            support.configure_django(
                base_url=fake.base_url,
                database=database,
                apps=["rest_framework", "django_filters"],
                cometchat={
                    "UID_RESOLVER": "benchmarks.bench_messages.uid_for",
                    "REQUESTS_PER_MINUTE": None,  # no budget: nothing but the request is timed
                },
                extra={
                    "ROOT_URLCONF": __name__,
                    "ALLOWED_HOSTS": ["testserver"],
                    "REST_FRAMEWORK": {"DEFAULT_AUTHENTICATION_CLASSES": []},
                },
            )
            return run(args)
        finally:
            database.cleanup()


def run(args: argparse.Namespace) -> int:
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIRequestFactory, force_authenticate

    from django_cometchat import services
    from django_cometchat.api.messages import ConversationMessagesView
    from django_cometchat.signals import upstream_request_answered

    alice = get_user_model().objects.create_user(username="alice")
    services.sync_conversations(alice)
    waits: list[float] = []

    def answered(sender: Any, seconds: float, **kwargs: Any) -> None:
        waits.append(seconds)

    upstream_request_answered.connect(answered)
    view = ConversationMessagesView.as_view()
    factory = APIRequestFactory()

    def one(conversation_id: str, query: dict[str, str]) -> tuple[float, float, Any]:
        request = factory.get(f"/cometchat/conversations/{conversation_id}/messages/", query)
        force_authenticate(request, user=alice)
        waits.clear()
        started = time.perf_counter()
        response = view(request, conversation_id=conversation_id)
        response.render()
        total = time.perf_counter() - started
        assert response.status_code == 200, response.content
        assert len(waits) == 1, waits  # one upstream request a page
        return total, waits[0], response

    size = {"page_size": str(args.page_size)}
    nexts: dict[str, dict[str, str]] = {}
    for conversation_id in CONVERSATIONS:  # warm up: imports, connections, the next cursors
        for _ in range(5):
            *_, response = one(conversation_id, size)
        nexts[conversation_id] = dict(parse_qsl(urlsplit(response.data["next"]).query))
    totals: list[float] = []
    upstream: list[float] = []
    added: list[float] = []
    gc.collect()
    for n in range(args.requests):
        conversation_id = CONVERSATIONS[n % 2]
        query = size if (n // 2) % 2 == 0 else nexts[conversation_id]
        total, wait, response = one(conversation_id, query)
        assert response.data["results"]
        totals.append(total)
        upstream.append(wait)
        added.append(total - wait)

    ms = 1000.0
    print("bench_messages")
    print(f"machine: {support.machine()}")
    print(
        f"fake server: {args.messages} messages in each of {', '.join(CONVERSATIONS)}, in a child "
        f"process, 0 latency; {args.requests} API requests of {args.page_size} messages, "
        "newest pages and next pages alternating"
    )
    print()
    rows = [
        (name, f"{statistics.median(v) * ms:.2f}", f"{percentile(v, 0.9) * ms:.2f}")
        for name, v in (
            ("request (wall)", totals),
            ("upstream wait", upstream),
            ("added by the server", added),
        )
    ]
    print(support.table(("ms per request", "median", "p90"), rows))
    print()
    median_added = statistics.median(added) * ms
    print(
        f"server time added over the upstream wait: {median_added:.2f} ms median "
        f"(target <= {TARGET_MS:.0f} ms) {support.pass_miss(median_added <= TARGET_MS)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
