"""Against a real CometChat app: skipped unless COMETCHAT_TEST_APP_ID/REGION/API_KEY are set."""

from __future__ import annotations

import os
from itertools import islice

import pytest

from django_cometchat.client import CometChatClient

LIVE_ENV = ("COMETCHAT_TEST_APP_ID", "COMETCHAT_TEST_REGION", "COMETCHAT_TEST_API_KEY")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not all(os.environ.get(name) for name in LIVE_ENV),
        reason="set COMETCHAT_TEST_APP_ID, COMETCHAT_TEST_REGION and COMETCHAT_TEST_API_KEY",
    ),
]


def test_live_users_and_their_conversations_parse(settings):
    settings.COMETCHAT = {
        "APP_ID": os.environ["COMETCHAT_TEST_APP_ID"],
        "REGION": os.environ["COMETCHAT_TEST_REGION"],
        "API_KEY": os.environ["COMETCHAT_TEST_API_KEY"],
    }
    with CometChatClient(retry_budget=10) as client:
        users = list(islice(client.list_users(per_page=5), 5))
        for user in users[:2]:
            pages = client.iter_conversation_pages(on_behalf_of=user.uid, per_page=10)
            first = next(pages, None)
            if first is not None:
                assert all(c.conversation_id for c in first.items)
        # Every CometChat answer carries the minute's rate-limit figures in one spelling or other.
        assert client.rate_limit.limit is not None
