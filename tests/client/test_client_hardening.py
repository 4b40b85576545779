"""The client against a hostile or broken network and upstream: every failure is named and
bounded, nothing leaks the key, proxies and CA bundles from the environment are honoured."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import time

import pytest

from django_cometchat import deadline
from django_cometchat.client import CometChatClient, retry_budget
from django_cometchat.conf import get_settings
from django_cometchat.conversation_filters import ConversationFilters
from django_cometchat.exceptions import (
    CometChatAuthError,
    CometChatBadRequest,
    CometChatDeadlineExceeded,
    CometChatForbidden,
    CometChatNotFound,
    CometChatRateLimited,
    CometChatResponseError,
    CometChatServerError,
    CometChatTimeout,
    CometChatTransportError,
    CometChatUnknownOwner,
)
from django_cometchat.testing import FakeCometChat, Fault
from tests.client.test_client import api_requests
from tests.forward_proxy import ForwardProxy

# -- transport failures say what was tried --------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_connection_names_the_host_and_the_reason(client_for):
    client = client_for(BASE_URL=f"http://127.0.0.1:{closed_port()}/v3", MAX_RETRIES=0)
    with pytest.raises(CometChatTransportError) as info:
        client.get_user("bob")
    assert info.value.reason == "refused"
    assert str(info.value) == (
        "GET /users/bob: could not reach CometChat at 127.0.0.1: the connection was refused"
    )


def test_dns_failure_says_dns(client_for):
    client = client_for(BASE_URL="http://no-such-host.invalid/v3", MAX_RETRIES=0)
    with pytest.raises(CometChatTransportError) as info:
        client.get_user("bob")
    assert info.value.reason == "dns"
    assert "at no-such-host.invalid: the host name could not be resolved (DNS)" in str(info.value)


def test_tls_failure_says_tls(chat, client_for):
    # https:// to the fake's plain-HTTP port: the handshake fails.
    url = chat.base_url.replace("http://", "https://")
    client = client_for(BASE_URL=url, MAX_RETRIES=0)
    with pytest.raises(CometChatTransportError) as info:
        client.get_user("bob")
    assert info.value.reason == "tls"
    assert "the TLS handshake failed" in str(info.value)


def test_connect_timeout_says_so():
    """A listening socket whose backlog is full drops new SYNs: the connect times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    settings = dataclasses.replace(
        get_settings(),
        base_url_override=f"http://127.0.0.1:{port}/v3",
        timeout=(0.3, get_settings().read_timeout),
        max_retries=0,
    )
    try:
        with CometChatClient(settings=settings) as client, pytest.raises(CometChatTimeout) as info:
            client.get_user("bob")
    finally:
        for sock in (*fillers, server):
            sock.close()
    assert info.value.reason == "connect_timeout"
    assert info.value.timed_out


def test_read_timeout_says_so(chat, client_for):
    chat.delay_next(1.0, n=5)
    client = client_for(TIMEOUT=(1.0, 0.2), MAX_RETRIES=0)
    with pytest.raises(CometChatTimeout) as info:
        client.get_user("bob")
    assert info.value.reason == "read_timeout"
    assert "no answer came within the read timeout" in str(info.value)


# -- 403s, unknown owners -------------------------------------------------------------------------


def test_only_auth_err_codes_are_about_the_key(chat, client_for):
    client = client_for(MAX_RETRIES=0)
    chat.fail_next(status=403, body={"error": {"code": "AUTH_ERR_NO_ACCESS", "message": "x"}})
    with pytest.raises(CometChatAuthError):
        client.get_user("bob")
    plan = {"error": {"code": "ERR_PLAN_RESTRICTION", "message": "Upgrade your plan"}}
    chat.fail_next(status=403, body=plan)
    with pytest.raises(CometChatForbidden) as info:
        client.get_user("bob")
    assert not isinstance(info.value, CometChatAuthError)
    assert info.value.code == "ERR_PLAN_RESTRICTION"
    assert info.value.scope == "global"  # a plan restriction stops every owner alike
    assert str(info.value).startswith("ERR_PLAN_RESTRICTION (HTTP 403) on GET /users/bob")
    pinned = {"error": {"code": "ERR_SYSTEM_PINNED_CONVERSATION", "message": "pinned"}}
    chat.fail_next(status=403, body=pinned)
    with pytest.raises(CometChatForbidden) as info:
        client.get_user("bob")
    assert info.value.scope == "item"


def test_an_unknown_owner_is_told_from_an_unknown_peer(chat, client_for):
    client = client_for()
    with pytest.raises(CometChatUnknownOwner) as owner:
        list(client.list_conversations(on_behalf_of="ghost"))
    assert owner.value.uid == "ghost"
    with pytest.raises(CometChatUnknownOwner):
        client.get_user_conversation("bob", on_behalf_of="ghost")
    with pytest.raises(CometChatNotFound) as peer:
        client.get_user_conversation("ghost", on_behalf_of="alice")
    assert not isinstance(peer.value, CometChatUnknownOwner)


# -- rate limits ----------------------------------------------------------------------------------


def test_a_fractional_retry_after_is_honoured(chat, client_for):
    chat.fail_next(status=429, headers={"Retry-After": "0.6"})
    client = client_for()
    started = time.monotonic()
    assert client.get_user("bob").uid == "bob"
    assert 0.55 <= time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    "headers", [{"Retry-After": "1000000000"}, {"X-Rate-Limit-Reset": "99999999999999999999"}]
)
def test_an_absurd_wait_is_clamped_to_an_hour(chat, client_for, headers):
    chat.fail_next(status=429, headers=headers)
    client = client_for()
    with retry_budget(0), pytest.raises(CometChatRateLimited) as info:
        client.get_user("bob")
    assert info.value.retry_after is not None
    assert 3000 < info.value.retry_after <= 3600


def test_the_slow_down_waits_for_the_window_to_end_without_a_reset_header(client_for):
    """CometChat sends only X-Rate-Limit-Remaining on normal answers; the window is fixed."""
    with FakeCometChat(api_key="k", rate_limit_per_minute=3) as fake:  # its own, quiet server
        fake.add_user("bob")
        client = client_for(
            BASE_URL=fake.base_url, API_KEY="k", RATE_LIMIT_MIN_REMAINING=1, RATE_LIMIT_WINDOW=2.0
        )
        # Start early in one of our 2-second windows, and far from the fake's minute boundary.
        while time.time() % 2 > 0.3 or time.time() % 60 > 50:
            time.sleep(0.05)
        client.get_user("bob")
        client.get_user("bob")
        assert client.rate_limit.remaining == 1
        with retry_budget(0), pytest.raises(CometChatRateLimited) as info:
            client.get_user("bob")  # the wait (< 2 s) would pass a zero budget: refused
        assert 1.0 < (info.value.retry_after or 0) <= 2.0
        assert len(fake.requests) == 2  # not sent
        started = time.monotonic()
        client.get_user("bob")  # waits for the end of our window, then sends
        assert 1.0 < time.monotonic() - started <= 2.1
        assert len(fake.requests) == 3


# -- the deadline ---------------------------------------------------------------------------------


def test_a_deadline_bounds_a_slow_upstream(chat, client_for):
    chat.delay_next(5.0, n=10)
    client = client_for(TIMEOUT=(3.0, 15.0))
    started = time.monotonic()
    with deadline.deadline(0.8), pytest.raises(CometChatDeadlineExceeded) as info:
        client.get_user("bob")
    assert time.monotonic() - started < 1.5
    assert "the deadline (0.8 s) passed" in str(info.value)


def test_a_deadline_bounds_retries_and_pages(cometchat_fake, client_for):
    cometchat_fake.bulk_conversations("owner", 30)
    cometchat_fake.inject(Fault("status", status=503, headers={"Retry-After": "0.3"}, times=50))
    client = client_for(PAGE_SIZE=5)
    started = time.monotonic()
    # Retries stop when the next wait would pass the deadline: the last 503 is what is raised.
    with deadline.deadline(1.0), pytest.raises(CometChatServerError):
        list(client.list_conversations(on_behalf_of="owner"))
    assert time.monotonic() - started < 1.5


# -- bodies ---------------------------------------------------------------------------------------


def test_a_body_over_the_cap_is_refused(cometchat_fake, client_for):
    cometchat_fake.bulk_conversations("owner", 50)
    client = client_for(MAX_RESPONSE_BYTES=4096)
    with pytest.raises(CometChatResponseError) as info:
        list(client.list_conversations(on_behalf_of="owner"))
    assert "larger than 4096 bytes" in str(info.value)
    assert "MAX_RESPONSE_BYTES" in str(info.value)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"data": [], "x": NaN}', "invalid or truncated JSON"),
        ('{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ],
)
def test_json_that_is_not_json_is_a_response_error(chat, client_for, body, problem):
    chat.fail_next(status=200, body=body, headers={"Content-Type": "application/json"})
    with pytest.raises(CometChatResponseError, match=problem):
        client_for().get_user("bob")


def test_a_full_page_without_pagination_is_malformed_not_the_last(cometchat_fake, client_for):
    cometchat_fake.bulk_conversations("owner", 10)
    client = client_for(PAGE_SIZE=5)
    page = next(client.iter_conversation_pages(on_behalf_of="owner", parsed=False))
    rows = [dict(row) for row in page.items]
    body = {"data": rows, "meta": {"pagination": {"total": 10, "count": 5, "per_page": 5}}}
    cometchat_fake.fail_next(status=200, body=body, headers={"Content-Type": "application/json"})
    with pytest.raises(CometChatResponseError, match="lacks current_page or total_pages"):
        list(client.list_conversations(on_behalf_of="owner"))


def test_blocked_users_and_tag_filters_are_asked_for(chat, client_for):
    client = client_for()
    filters = ConversationFilters(user_tags=("vip", "gold"), group_tags=("books",))
    list(client.list_conversations(on_behalf_of="alice", filters=filters))
    query = api_requests(chat)[-1].query
    assert query["includeBlockedUsers"] == "true"
    assert query["withBlockedInfo"] == "true"
    assert query["userTags"] == "vip,gold"
    assert query["groupTags"] == "books"


# -- secrets --------------------------------------------------------------------------------------


def test_the_key_is_in_no_public_surface_of_settings_or_client(chat, client_for):
    client = client_for()
    key = chat.api_key
    settings = get_settings()
    for text in (
        repr(settings),
        str(dataclasses.asdict(settings)),
        repr(client),
        str(dict(client.session.headers)),
        repr(client.session.auth),
        repr(client.session.__dict__),
    ):
        assert key not in text
    client.get_user("bob")
    assert api_requests(chat)[-1].headers["apikey"] == key  # still sent, per request
    with pytest.raises(TypeError):
        json.dumps(settings.api_key)


def test_an_echoed_key_is_redacted_everywhere_the_error_goes(chat, client_for):
    key = chat.api_key
    echo = {"error": {"code": "ERR_BAD_REQUEST", "message": f"bad key {key}", "devMessage": key}}
    chat.fail_next(status=400, body=echo)
    with pytest.raises(CometChatBadRequest) as info:
        client_for().get_user("bob")
    error = info.value
    for text in (str(error), error.describe(), error.api_message, error.body, error.dev_message):
        assert key not in text
    assert "[redacted]" in str(error)


# -- proxies --------------------------------------------------------------------------------------


def test_http_proxy_from_the_environment_is_used(chat, client_for, monkeypatch):
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = client_for()
        assert client.get_user("bob").uid == "bob"
        assert [url for url, _ in proxy.seen] == [f"{chat.base_url}/users/bob"]


def test_no_proxy_bypasses_the_environments_proxy(chat, client_for, monkeypatch):
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        client_for().get_user("bob")
        assert proxy.seen == []
        assert len(api_requests(chat)) == 1


def test_the_proxies_setting_wins_over_the_environment(chat, client_for, monkeypatch):
    with ForwardProxy() as configured, ForwardProxy() as from_env:
        monkeypatch.setenv("HTTP_PROXY", from_env.url)
        client_for(PROXIES={"http": configured.url}).get_user("bob")
        assert len(configured.seen) == 1
        assert from_env.seen == []


def test_a_netrc_never_adds_credentials(chat, client_for, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        client_for().get_user("bob")
        (_, headers) = proxy.seen[0]
    assert "authorization" not in headers
    assert "authorization" not in api_requests(chat)[-1].headers


def test_a_ca_bundle_from_the_environment_is_used(chat, client_for, monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert client_for().session.verify == str(bundle)
