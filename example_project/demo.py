"""Create the demo logins, sync each one's conversations and print what was stored.

Run by ``scripts/demo`` after ``migrate``; the CometChat it talks to comes from the environment.
"""

from __future__ import annotations

import os
import sys
from itertools import islice

DEMO_UIDS = ("alice", "bob", "carol", "dave")
DEMO_PASSWORD = "demo-password"  # noqa: S105 - a demo login on a local SQLite file


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from django_cometchat.exceptions import CometChatError
    from django_cometchat.models import Conversation, SyncRun
    from django_cometchat.services import sync_conversations

    user_model = get_user_model()
    uids = demo_uids()
    admin, created = user_model.objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True}
    )
    if created:
        admin.set_password(DEMO_PASSWORD)
        admin.save()
    print(f"Staff login: admin / {DEMO_PASSWORD}")
    failed = 0
    for uid in uids:
        user, created = user_model.objects.get_or_create(username=uid)
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        try:
            result = sync_conversations(user, trigger=SyncRun.Trigger.COMMAND)
        except CometChatError as exc:
            failed += 1
            print(f"  {uid}: sync FAILED: {exc}")
            continue
        print(
            f"Login {uid} / {DEMO_PASSWORD}: synced {result.created} new, {result.updated} "
            f"updated, {result.unchanged} unchanged ({result.pages} page(s))"
        )
        newest = Conversation.objects.filter(owner_uid=uid).order_by("-updated_at")[:3]
        for conversation in newest:
            text = (conversation.last_message or {}).get("data", {}).get("text", "")
            print(
                f"    {conversation.updated_at:%Y-%m-%d %H:%M}  {conversation.peer_name:<22} "
                f"unread {conversation.unread_message_count:<3} {text[:40]}"
            )
    total = Conversation.objects.count()
    print(f"{total} conversations stored in {Conversation._meta.db_table}")
    return 1 if failed == len(uids) else 0


def demo_uids() -> list[str]:
    """alice, bob, carol, dave on the bundled fake; on a real app, its first few users."""
    if os.environ.get("COMETCHAT_BASE_URL"):
        return list(DEMO_UIDS)
    from django_cometchat.client import CometChatClient

    with CometChatClient() as client:
        users = islice(client.list_users(per_page=10), len(DEMO_UIDS))
        return [user.uid for user in users]


if __name__ == "__main__":
    sys.exit(main())
