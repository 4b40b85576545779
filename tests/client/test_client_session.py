"""COMETCHAT["SESSION_FACTORY"]: a host's factory builds each client's session (real HTTP to
the fake), and a bad path is a configuration error before anything is sent."""

from __future__ import annotations

import pytest

from django_cometchat.exceptions import CometChatConfigurationError
from tests import session_factories
from tests.client.test_client import api_requests
from tests.forward_proxy import ForwardProxy


def test_a_factory_that_adds_a_proxy_routes_every_request_through_it(chat, client_for, monkeypatch):
    with ForwardProxy() as proxy:
        monkeypatch.setattr(session_factories, "PROXY_URL", proxy.url)
        client = client_for(SESSION_FACTORY="tests.session_factories.through_proxy")
        assert client.get_user("bob").uid == "bob"
        assert [url for url, _ in proxy.seen] == [f"{chat.base_url}/users/bob"]
        # What create_session set up still holds: the key is added per request.
        assert proxy.seen[0][1]["apikey"] == chat.api_key


def test_a_mounted_adapter_sends_and_keeps_the_retry_policy(chat, client_for, monkeypatch):
    monkeypatch.setattr(session_factories, "sent_urls", [])
    chat.fail_next(status=503)  # API.md §5.4 (3): a 5xx is retried
    client = client_for(SESSION_FACTORY="tests.session_factories.with_counting_adapter")
    assert client.get_user("bob").uid == "bob"
    # One send through the mounted adapter; its retry policy (urllib3's, inside send) retried.
    assert session_factories.sent_urls == [f"{chat.base_url}/users/bob"]
    assert len(api_requests(chat)) == 2


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("tests.session_factories.missing", "cannot be imported"),
        ("tests.session_factories.PROXY_URL", "is not callable"),
    ],
)
def test_a_bad_factory_is_refused_when_the_client_is_made(client_for, path, says):
    with pytest.raises(CometChatConfigurationError, match=f'SESSION_FACTORY"\\] = .*{says}'):
        client_for(SESSION_FACTORY=path)
