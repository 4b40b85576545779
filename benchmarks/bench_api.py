"""The API's conversation list beside a bare DRF ``ListAPIView`` over the same rows and query.

    python -m benchmarks.bench_api [--rows 100000] [--owner-rows 2000] [--requests 400]

Both views answer the same owner's first page (50 rows, newest first, cursor pagination) with the
same fields; the bare view is what a host would write by hand: ``ListAPIView`` over
``Conversation.objects.filter(owner_uid=...)`` with a ``ModelSerializer`` (a
``HyperlinkedIdentityField`` and two ``DictField``\\s). Requests go through DRF's request cycle
in-process (``APIRequestFactory`` with ``force_authenticate``, so no session or token lookups),
interleaved one by one so both see the same machine; the medians of Python time per request and
their ratio are printed. Needs PostgreSQL on 127.0.0.1:5432 (a scratch database is created and
dropped).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from . import support

OWNER = "alice"


def configure() -> support.Database:
    import django
    from django.conf import settings

    database = support.postgres_database()
    settings.configure(
        SECRET_KEY="benchmarks-only-not-secret",  # noqa: S106
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "rest_framework",
            "django_filters",
            "django_cometchat",
        ],
        DATABASES={"default": database.settings},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        REST_FRAMEWORK={"DEFAULT_AUTHENTICATION_CLASSES": []},
        COMETCHAT={
            "APP_ID": support.APP_ID,
            "API_KEY": support.API_KEY,
            "UID_RESOLVER": "benchmarks.bench_api.uid_for",
        },
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return database


def uid_for(user: Any) -> str:
    return str(user.get_username())


def __getattr__(name: str) -> Any:
    """``urlpatterns`` for ROOT_URLCONF, built once Django is set up (PEP 562)."""
    if name != "urlpatterns":
        raise AttributeError(name)
    from django.urls import include, path

    return [
        path("ours/", include("django_cometchat.urls")),
        path("bare/conversations/", bare_view(), name="bare-list"),
    ]


def bare_view() -> Any:
    from rest_framework import generics, serializers
    from rest_framework.pagination import CursorPagination

    from django_cometchat.models import Conversation

    class Pagination(CursorPagination):
        page_size = 50
        ordering = ("-updated_at", "-id")

    class Serializer(serializers.ModelSerializer[Conversation]):
        url = serializers.HyperlinkedIdentityField(
            view_name="django_cometchat:conversation-detail", lookup_field="conversation_id"
        )
        conversation_with = serializers.DictField(read_only=True)
        last_message = serializers.DictField(read_only=True, allow_null=True)

        class Meta:
            model = Conversation
            fields = (
                "url",
                "conversation_id",
                "conversation_type",
                "unread_message_count",
                "created_at",
                "updated_at",
                "conversation_with",
                "last_message",
                "fetched_at",
                "missing_since",
            )

    class BareList(generics.ListAPIView[Conversation]):
        serializer_class = Serializer
        pagination_class = Pagination

        def get_queryset(self) -> Any:
            return Conversation.objects.filter(owner_uid=OWNER).only(
                "id",
                "conversation_id",
                "conversation_type",
                "unread_message_count",
                "created_at",
                "updated_at",
                "payload",
                "fetched_at",
                "missing_since",
            )

    return BareList.as_view()


def payload(owner: str, peer: str, n: int, updated: int) -> dict[str, Any]:
    """A conversation object shaped like CometChat's (a user peer and a last message)."""
    conversation_id = "_user_".join(sorted((owner, peer)))
    return {
        "conversationId": conversation_id,
        "conversationType": "user",
        "unreadMessageCount": str(n % 5),
        "createdAt": updated - 3600,
        "updatedAt": updated,
        "lastMessage": {
            "id": str(n),
            "conversationId": conversation_id,
            "sender": peer,
            "receiverType": "user",
            "receiver": owner,
            "category": "message",
            "type": "text",
            "data": {"text": f"message {n} from {peer}", "entities": {}},
            "sentAt": updated,
            "updatedAt": updated,
        },
        "conversationWith": {
            "uid": peer,
            "name": peer.replace("-", " ").title(),
            "avatar": f"https://assets.example.invalid/{peer}.png",
            "status": "offline",
            "role": "default",
            "conversationId": conversation_id,
        },
    }


def load(rows: int, owner_rows: int) -> None:
    """``owner_rows`` conversations for the measured owner, the rest spread over others."""
    from django_cometchat.storage import Row, store_page

    now = int(time.time())
    owners = [(OWNER, owner_rows)]
    rest = rows - owner_rows
    owners += [(f"owner{n}", 1000) for n in range(rest // 1000)]
    for owner, count in owners:
        for start in range(0, count, 1000):
            page = []
            for n in range(start, min(count, start + 1000)):
                peer = f"peer-{n}"
                data = payload(owner, peer, n, now - n * 60)
                updated = datetime.fromtimestamp(data["updatedAt"], tz=timezone.utc)
                page.append(
                    Row(
                        conversation_id=data["conversationId"],
                        conversation_type="user",
                        unread_message_count=n % 5,
                        created_at=updated - timedelta(hours=1),
                        updated_at=updated,
                        peer_uid=peer,
                        peer_guid="",
                        peer_name=data["conversationWith"]["name"],
                        payload=data,
                        content_hash=f"{owner}-{n}",
                    )
                )
            store_page(
                owner_id=None, owner_uid=owner, rows=page, fetched_at=datetime.now(timezone.utc)
            )


def measure(requests: int) -> dict[str, list[float]]:
    from django.contrib.auth import get_user_model
    from django.urls import resolve
    from rest_framework.test import APIRequestFactory, force_authenticate

    user = get_user_model().objects.create_user(OWNER)
    factory = APIRequestFactory()
    paths = {"ours": "/ours/conversations/", "bare": "/bare/conversations/"}
    views = {name: resolve(path).func for name, path in paths.items()}
    bodies = {}
    for name, path in paths.items():  # warm up; both must answer the same JSON
        request = factory.get(path)
        force_authenticate(request, user=user)
        response = views[name](request)
        response.render()
        assert response.status_code == 200, response.content
        bodies[name] = response.data
    same = [dict(row) for row in bodies["ours"]["results"]] == [
        dict(row) for row in bodies["bare"]["results"]
    ]
    assert same, "the two views do not answer the same rows"
    times: dict[str, list[float]] = {"ours": [], "bare": []}
    gc.disable()
    try:
        for _ in range(requests):
            for name in ("ours", "bare"):
                request = factory.get(paths[name])
                force_authenticate(request, user=user)
                started = time.perf_counter()
                response = views[name](request)
                response.render()
                times[name].append(time.perf_counter() - started)
            gc.collect()
    finally:
        gc.enable()
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--owner-rows", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args(argv)
    database = configure()
    try:
        started = time.perf_counter()
        load(args.rows, args.owner_rows)
        print(f"Loaded {args.rows:,} rows in {time.perf_counter() - started:.1f}s")
        times = measure(args.requests)
    finally:
        database.cleanup()
    ours = statistics.median(times["ours"]) * 1000
    bare = statistics.median(times["bare"]) * 1000
    print(support.machine())
    print(
        support.table(
            ["view", "median ms", "p90 ms"],
            [
                [
                    name,
                    f"{statistics.median(t) * 1000:.2f}",
                    f"{sorted(t)[len(t) * 9 // 10] * 1000:.2f}",
                ]
                for name, t in times.items()
            ],
        )
    )
    print(f"ours / bare = {ours / bare:.3f} (1.000 is as fast; lower is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
