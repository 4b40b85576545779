"""Session factories used by the tests through COMETCHAT["SESSION_FACTORY"] (see docs/client.md).

Each calls the default ``create_session`` and changes what it returns, as a host's would.
"""

from __future__ import annotations

from typing import Any

import requests

from django_cometchat.client import create_session
from django_cometchat.conf import CometChatSettings
from django_cometchat.retry import CometChatRetry
from django_cometchat.socket_reads import ClippedReadsAdapter

PROXY_URL = ""  # set by the test that routes through a proxy
sent_urls: list[str] = []  # URLs the counting adapter sent (its retries happen inside one send)


def through_proxy(settings: CometChatSettings, *, retry: CometChatRetry) -> requests.Session:
    session = create_session(settings, retry=retry)
    session.proxies["http"] = PROXY_URL
    return session


class CountingAdapter(ClippedReadsAdapter):
    """Keeps the deadline's clipped reads; counts the calls it sends."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        sent_urls.append(request.url or "")
        return super().send(request, *args, **kwargs)


def with_counting_adapter(
    settings: CometChatSettings, *, retry: CometChatRetry
) -> requests.Session:
    session = create_session(settings, retry=retry)
    session.mount(settings.base_url, CountingAdapter(max_retries=retry))
    return session
