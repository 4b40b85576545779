"""Print a ``message_sent`` webhook body, as CometChat delivers it, for ``scripts/demo --worker``.

The message is the last one of the newest one-to-one conversation between two demo logins, as
CometChat sent it (``lastMessage`` of the stored payload). Delivered to the site's
``webhook/``, it makes a worker refresh that conversation for both of its users.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    import django

    django.setup()
    from django_cometchat.conf import get_settings
    from django_cometchat.models import Conversation

    owners = set(Conversation.objects.values_list("owner_uid", flat=True).distinct())
    candidates = (
        Conversation.objects.filter(conversation_type="user")
        .exclude(payload__lastMessage=None)
        .order_by("owner_uid", "-updated_at")
    )
    # Between two demo logins if there is one, so that both of their copies are refreshed.
    conversation = (
        next((c for c in candidates.iterator() if c.peer_uid in owners), None) or candidates.first()
    )
    if conversation is None or conversation.last_message is None:
        print("no stored conversation with a last message to announce", file=sys.stderr)
        return 1
    body = {
        "trigger": "message_sent",
        "appId": get_settings().app_id,
        "region": get_settings().region,
        "webhook": "demo",
        "data": {"message": conversation.last_message},
    }
    print(json.dumps(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
