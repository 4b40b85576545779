"""The client over real HTTP against the shipped fake CometChat."""

from __future__ import annotations

import importlib
import logging
import sys
import time

import pytest

from django_cometchat.client import CometChatClient, retry_budget
from django_cometchat.conversation_filters import ConversationFilters
from django_cometchat.conversation_types import Group, User
from django_cometchat.exceptions import (
    CometChatAPIError,
    CometChatAuthError,
    CometChatBadRequest,
    CometChatBudgetExhausted,
    CometChatConfigurationError,
    CometChatNotFound,
    CometChatRateLimited,
    CometChatResponseError,
    CometChatServerError,
    CometChatTransportError,
    RateLimitInfo,
)
from django_cometchat.testing import FakeCometChat, Fault
from tests.conftest import CLIENT_FAST


def api_requests(fake):
    return [r for r in fake.requests if r.path.startswith("/v3/")]


# -- headers, pooling ---------------------------------------------------------------------------


def test_sends_key_on_behalf_of_and_accept_headers(chat, client_for):
    client = client_for()
    conversations = list(client.list_conversations(on_behalf_of="alice"))
    assert len(conversations) == 3
    (request,) = api_requests(chat)
    assert request.headers["apikey"] == chat.api_key
    assert request.headers["onbehalfof"] == "alice"
    assert request.headers["accept"] == "application/json"
    assert request.query["perPage"] == "1000"


def test_one_connection_is_reused_across_calls(chat, client_for):
    client = client_for()
    before = chat.connections_opened
    for _ in range(5):
        client.get_user("bob")
    assert chat.connections_opened - before == 1


def test_repr_and_errors_never_show_the_key(chat, client_for, caplog):
    client = client_for()
    caplog.set_level(logging.DEBUG)
    chat.inject(Fault("status", status=500, times=10))
    with pytest.raises(CometChatServerError) as info:
        client.get_user("bob")
    assert chat.api_key not in repr(client)
    assert chat.api_key not in str(info.value)
    assert chat.api_key not in repr(info.value.__dict__)
    assert chat.api_key not in caplog.text


def test_missing_key_is_a_configuration_error_before_sending(settings, cometchat_fake):
    settings.COMETCHAT = {**settings.COMETCHAT, "API_KEY": None}
    with pytest.raises(CometChatConfigurationError, match="API_KEY"):
        CometChatClient()
    assert api_requests(cometchat_fake) == []


# -- listing and pagination ---------------------------------------------------------------------


def test_newest_first_and_parsed(chat, client_for):
    conversations = list(client_for().list_conversations(on_behalf_of="alice"))
    assert [c.conversation_id for c in conversations] == [
        "group_book-club",
        "alice_user_carol",
        "alice_user_bob",
    ]
    group, _carol, bob = conversations
    assert isinstance(group.conversation_with, Group)
    assert isinstance(bob.conversation_with, User)
    assert bob.peer_name == "Bob Stone"
    assert bob.unread_message_count == 1
    assert bob.last_message is not None
    assert bob.last_message.text == "hi alice"


def test_pagination_is_lazy_and_stops_at_the_last_page(cometchat_fake, client_for):
    cometchat_fake.bulk_conversations("owner", 25)
    cometchat_fake.clear_requests()
    pages = client_for().iter_conversation_pages(on_behalf_of="owner", per_page=10)
    first = next(pages)
    assert len(api_requests(cometchat_fake)) == 1  # nothing fetched ahead
    rest = list(pages)
    assert [p.number for p in [first, *rest]] == [1, 2, 3]
    assert [len(p.items) for p in [first, *rest]] == [10, 10, 5]
    assert [r.query["page"] for r in api_requests(cometchat_fake)] == ["1", "2", "3"]
    ids = [c.conversation_id for p in [first, *rest] for c in p.items]
    assert len(set(ids)) == 25


def test_empty_page_stops(cometchat_fake, client_for):
    cometchat_fake.add_user("loner")
    assert list(client_for().list_conversations(on_behalf_of="loner")) == []
    assert len(api_requests(cometchat_fake)) == 1


def test_filters_are_sent(chat, client_for):
    client = client_for()
    groups = list(
        client.list_conversations(
            on_behalf_of="alice",
            filters=ConversationFilters(conversation_type="group", unread=True, search_key="book"),
        )
    )
    assert [c.conversation_id for c in groups] == ["group_book-club"]
    query = api_requests(chat)[-1].query
    assert query["conversationType"] == "group"
    assert query["unread"] == "true"
    assert query["searchKey"] == "book"


def test_bad_filter_values_are_refused_before_sending(chat, client_for):
    client = client_for()
    with pytest.raises(CometChatBadRequest):
        ConversationFilters(conversation_type="channel")
    with pytest.raises(CometChatBadRequest):
        ConversationFilters(user_tags=("a,b",))
    with pytest.raises(CometChatBadRequest):
        next(client.iter_conversation_pages(on_behalf_of="alice", per_page=1001))
    with pytest.raises(CometChatBadRequest):
        next(client.list_conversations(on_behalf_of="alice\r\nX-Admin: 1"))
    assert api_requests(chat) == []


def test_the_old_filters_module_still_gives_conversation_filters_and_warns(monkeypatch):
    """docs/client.md named ``django_cometchat.filters`` before it was ``conversation_filters``
    (apart from ``admin.filters`` and ``api.filters``)."""
    monkeypatch.delitem(sys.modules, "django_cometchat.filters", raising=False)
    with pytest.warns(DeprecationWarning, match=r"django_cometchat\.conversation_filters"):
        old = importlib.import_module("django_cometchat.filters")
    assert old.ConversationFilters is ConversationFilters
    assert old.ConversationFilters(unread=True).as_params() == {"unread": "true"}


def test_the_old_types_module_still_imports_with_a_warning(monkeypatch):
    """docs/client.md named ``django_cometchat.types`` before it was ``conversation_types``."""
    from django_cometchat import conversation_types

    monkeypatch.delitem(sys.modules, "django_cometchat.types", raising=False)
    with pytest.warns(DeprecationWarning, match=r"django_cometchat\.conversation_types"):
        old = importlib.import_module("django_cometchat.types")
    assert old.parse_conversation is conversation_types.parse_conversation
    assert old.PayloadShapeError is conversation_types.PayloadShapeError


def test_list_users(chat, client_for):
    users = list(client_for().list_users(per_page=2))
    assert {u.uid for u in users} >= {"alice", "bob", "carol"}


# -- single conversations -----------------------------------------------------------------------


def test_get_conversation_uses_the_supported_endpoints(chat, client_for):
    client = client_for()
    bob = client.get_conversation("alice_user_bob", on_behalf_of="alice")
    group = client.get_conversation("group_book-club", on_behalf_of="alice")
    assert bob.peer_id == "bob"
    assert group.peer_id == "book-club"
    assert [r.path for r in api_requests(chat)] == [
        "/v3/users/bob/conversation",
        "/v3/groups/book-club/conversation",
    ]


def test_get_conversation_strips_the_owner_not_the_first_separator(cometchat_fake, client_for):
    fake = cometchat_fake
    fake.add_user("a_user_b", "Tricky")
    fake.add_user("c", "See")
    fake.send_message("c", to_user="a_user_b", text="hey")
    fake.clear_requests()
    client = client_for()
    conversation = client.get_conversation("a_user_b_user_c", on_behalf_of="c")
    assert conversation.peer_id == "a_user_b"
    assert api_requests(fake)[-1].path == "/v3/users/a_user_b/conversation"


def test_unresolvable_id_falls_back_to_the_deprecated_endpoint(chat, client_for):
    client = client_for()
    with pytest.raises(CometChatNotFound):
        client.get_conversation("carol_user_bob", on_behalf_of="alice")
    assert api_requests(chat)[-1].path == "/v3/conversations/carol_user_bob"


def test_single_get_accepts_object_or_list_of_one(client_for, settings):
    for single_as_list in (True, False):
        with FakeCometChat(api_key="k", single_as_list=single_as_list) as fake:
            fake.add_user("alice")
            fake.add_user("bob")
            fake.send_message("bob", to_user="alice")
            client = client_for(BASE_URL=fake.base_url, API_KEY="k")
            conversation = client.get_user_conversation("bob", on_behalf_of="alice")
            assert conversation.conversation_id == "alice_user_bob"
            assert client.get_user("bob").uid == "bob"


def test_invalid_ids_never_reach_cometchat(chat, client_for):
    client = client_for()
    for bad in ["../users", "bob/conversation", "bob?x=1", "", "b" * 300, "bob%2F"]:
        with pytest.raises(CometChatBadRequest):
            client.get_conversation(bad, on_behalf_of="alice")
        with pytest.raises(CometChatBadRequest):
            client.get_user_conversation(bad, on_behalf_of="alice")
        with pytest.raises(CometChatBadRequest):
            client.get_group_conversation(bad, on_behalf_of="alice")
    assert api_requests(chat) == []


# -- error mapping ------------------------------------------------------------------------------


def test_wrong_key_is_an_auth_error(chat, client_for):
    client = client_for(API_KEY="wrong-key")
    with pytest.raises(CometChatAuthError) as info:
        client.get_user("bob")
    error = info.value
    assert error.status == 401
    assert error.code == "AUTH_ERR_APIKEY_NOT_FOUND"
    assert "GET /users/bob" in str(error)
    assert "wrong-key" not in str(error)


def test_not_found_names_endpoint_status_and_code(chat, client_for):
    with pytest.raises(CometChatNotFound) as info:
        client_for().get_user_conversation("nobody", on_behalf_of="alice")
    text = str(info.value)
    assert "GET /users/nobody/conversation" in text
    assert "404" in text
    assert "ERR_UID_NOT_FOUND" in text
    assert info.value.code == "ERR_UID_NOT_FOUND"


def test_pair_that_never_talked_is_not_accessible(chat, client_for):
    with pytest.raises(CometChatNotFound) as info:
        client_for().get_user_conversation("carol", on_behalf_of="bob")
    assert info.value.code == "ERR_CONVERSATION_NOT_ACCESSIBLE"


def test_bad_request_keeps_details(chat, client_for):
    chat.inject(
        Fault(
            "status",
            status=400,
            body={
                "error": {"code": "ERR_BAD_REQUEST", "message": "bad", "details": {"uid": ["x"]}}
            },
        )
    )
    with pytest.raises(CometChatBadRequest) as info:
        client_for().get_user("bob")
    assert info.value.details == {"uid": ["x"]}
    assert isinstance(info.value, ValueError)


def test_non_json_error_body_still_maps(chat, client_for):
    chat.inject(Fault("status", status=418, body="<html>teapot</html>"))
    with pytest.raises(CometChatAPIError) as info:
        client_for().get_user("bob")
    assert info.value.status == 418
    assert info.value.code is None


# -- retries ------------------------------------------------------------------------------------


def test_5xx_is_retried_then_succeeds(chat, client_for):
    chat.inject(Fault("status", status=503, times=2))
    assert client_for().get_user("bob").uid == "bob"
    assert [r.status for r in api_requests(chat)] == [503, 503, 200]


def test_5xx_exhausted_raises_server_error(chat, client_for):
    chat.inject(Fault("status", status=500, times=100))
    with pytest.raises(CometChatServerError) as info:
        client_for(MAX_RETRIES=2).get_user("bob")
    assert info.value.code == "ERR_MISSION_FAILED"
    assert len(api_requests(chat)) == 3


def test_4xx_is_not_retried(chat, client_for):
    with pytest.raises(CometChatNotFound):
        client_for().get_user("nobody")
    assert len(api_requests(chat)) == 1


def test_sent_at_is_when_the_answered_request_left(chat, client_for):
    """Pages and single fetches say when their request left: the first send, or the retry that
    was answered (its answer shows CometChat's data from then on)."""
    client = client_for()
    before = time.time()
    fetched = client.get_conversation_timed("alice_user_bob", on_behalf_of="alice")
    (request,) = api_requests(chat)
    assert before <= fetched.sent_at.timestamp() <= request.at
    assert fetched.value.conversation_id == "alice_user_bob"

    chat.clear_requests()
    chat.inject(Fault("status", status=503, times=2, path="/conversations"))
    (page,) = client.iter_conversation_pages(on_behalf_of="alice", prefetch=True)
    first, retry, answered = api_requests(chat)
    assert [first.status, retry.status, answered.status] == [503, 503, 200]
    assert retry.at < page.sent_at.timestamp() <= answered.at


def test_dropped_connection_is_retried(chat, client_for):
    chat.inject(Fault("drop", times=2))
    assert client_for().get_user("bob").uid == "bob"


def test_connection_failure_is_a_transport_error(settings, client_for):
    with FakeCometChat() as fake:
        dead_url = fake.base_url
    client = client_for(BASE_URL=dead_url, MAX_RETRIES=1)
    with pytest.raises(CometChatTransportError) as info:
        client.get_user("bob")
    assert info.value.__cause__ is not None
    assert not info.value.timed_out


def test_drops_exhausted_are_a_transport_error(chat, client_for):
    chat.inject(Fault("drop", times=100))
    with pytest.raises(CometChatTransportError):
        client_for(MAX_RETRIES=2).get_user("bob")


def test_read_timeout(chat, client_for):
    chat.inject(Fault("delay", delay=1.0, times=100))
    client = client_for(TIMEOUT=(1, 0.2), MAX_RETRIES=1)
    started = time.monotonic()
    with pytest.raises(CometChatTransportError) as info:
        client.get_user("bob")
    assert info.value.timed_out
    assert time.monotonic() - started < 1.5


def test_429_honours_retry_after(chat, client_for):
    chat.inject(Fault("status", status=429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    assert client_for().get_user("bob").uid == "bob"
    assert time.monotonic() - started >= 0.95


def test_429_falls_back_to_rate_limit_reset(chat, client_for):
    reset = int(time.time()) + 2
    chat.inject(Fault("status", status=429, headers={"X-Rate-Limit-Reset": str(reset)}))
    started = time.time()
    assert client_for().get_user("bob").uid == "bob"
    assert time.time() >= reset - 0.05
    assert time.time() - started < 3


def test_server_wait_is_capped(chat, client_for):
    chat.inject(Fault("status", status=429, headers={"Retry-After": "3600"}))
    started = time.monotonic()
    assert client_for(RETRY_AFTER_MAX=0.3).get_user("bob").uid == "bob"
    assert 0.25 <= time.monotonic() - started < 2


def test_budget_makes_a_web_call_fail_fast(chat, client_for):
    chat.inject(Fault("status", status=429, headers={"Retry-After": "30"}, times=10))
    client = client_for()
    started = time.monotonic()
    with retry_budget(1.0), pytest.raises(CometChatRateLimited) as info:
        client.get_user("bob")
    assert time.monotonic() - started < 1
    assert info.value.retry_after == 30
    assert info.value.code == "ERR_TOO_MANY_REQUESTS"
    assert len(api_requests(chat)) == 1


def test_constructor_budget(chat, client_for, settings):
    chat.inject(Fault("status", status=503, headers={"Retry-After": "5"}, times=10))
    settings.COMETCHAT = {**settings.COMETCHAT, **CLIENT_FAST}
    with CometChatClient(retry_budget=0) as client, pytest.raises(CometChatServerError):
        client.get_user("bob")
    assert len(api_requests(chat)) == 1


def test_fake_rate_limit_budget_end_to_end(cometchat_fake, client_for):
    fake = cometchat_fake
    fake.add_user("bob")
    fake.configure(rate_limit_per_minute=2)
    client = client_for(REQUESTS_PER_MINUTE=None)  # without our own budget: CometChat's 429
    client.get_user("bob")
    client.get_user("bob")
    with retry_budget(0), pytest.raises(CometChatRateLimited) as info:
        client.get_user("bob")
    assert info.value.retry_after is not None
    assert info.value.retry_after >= 1
    assert info.value.rate_limit.remaining == 0
    assert [r.status for r in api_requests(fake)] == [200, 200, 429]


def test_the_shared_budget_learns_cometchats_remaining_and_sends_nothing_more(
    cometchat_fake, client_for
):
    fake = cometchat_fake
    fake.add_user("bob")
    fake.configure(rate_limit_per_minute=2)
    client = client_for()  # a budget far above the fake's 2: CometChat's count wins
    client.get_user("bob")
    client.get_user("bob")
    with retry_budget(0), pytest.raises(CometChatBudgetExhausted):
        client.get_user("bob")
    assert [r.status for r in api_requests(fake)] == [200, 200]  # the third was never sent


# -- broken 2xx bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["html", "empty", "truncate", "wrong_shape"])
def test_broken_success_bodies_raise_response_error(chat, client_for, kind):
    chat.inject(Fault(kind, times=1))
    client = client_for()
    with pytest.raises(CometChatResponseError) as info:
        list(client.list_conversations(on_behalf_of="alice"))
    assert "GET /conversations" in str(info.value)
    assert len(api_requests(chat)) == 1  # a 2xx is never retried


def test_html_error_message_says_html(chat, client_for):
    chat.inject(Fault("html"))
    with pytest.raises(CometChatResponseError, match="HTML"):
        client_for().get_user("bob")


# -- rate-limit headers -------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["hyphen", "compact"])
def test_rate_limit_headers_in_both_spellings(client_for, style):
    with FakeCometChat(api_key="k", header_style=style) as fake:
        fake.add_user("bob")
        fake.configure(rate_limit_per_minute=700)
        seen: list[RateLimitInfo] = []
        client = client_for(BASE_URL=fake.base_url, API_KEY="k")
        client.on_rate_limit = seen.append
        client.get_user("bob")
        client.get_user("bob")
        assert client.rate_limit.limit == 700
        assert client.rate_limit.remaining == 698
        assert client.rate_limit.reset is None  # CometChat sends the reset time with a 429 only
        assert [info.remaining for info in seen] == [699, 698]


def test_low_budget_slow_down_refuses_when_wait_exceeds_budget(cometchat_fake, client_for):
    fake = cometchat_fake
    fake.add_user("bob")
    fake.configure(rate_limit_per_minute=3)
    client = client_for(RATE_LIMIT_MIN_REMAINING=1)
    client.get_user("bob")
    client.get_user("bob")  # remaining is now 1: the next call would spend the last one
    with retry_budget(0), pytest.raises(CometChatRateLimited):
        client.get_user("bob")
    assert len(api_requests(fake)) == 2


# -- prefetching --------------------------------------------------------------------------------


def test_prefetch_yields_the_same_pages(cometchat_fake, client_for):
    cometchat_fake.bulk_conversations("owner", 25)
    client = client_for()
    plain = [
        [c.conversation_id for c in p.items]
        for p in client.iter_conversation_pages(on_behalf_of="owner", per_page=10)
    ]
    ahead = [
        [c.conversation_id for c in p.items]
        for p in client.iter_conversation_pages(on_behalf_of="owner", per_page=10, prefetch=True)
    ]
    assert ahead == plain
    assert [len(p) for p in ahead] == [10, 10, 5]


def test_prefetch_fetches_the_next_page_while_the_caller_works(cometchat_fake, client_for):
    cometchat_fake.bulk_conversations("owner", 25)
    cometchat_fake.clear_requests()
    pages = client_for().iter_conversation_pages(on_behalf_of="owner", per_page=10, prefetch=True)
    next(pages)
    deadline = time.monotonic() + 2
    while len(api_requests(cometchat_fake)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [r.query["page"] for r in api_requests(cometchat_fake)] == ["1", "2"]
    pages.close()  # stops without fetching page 3
    assert len(api_requests(cometchat_fake)) == 2


def test_prefetch_keeps_the_callers_budget_and_errors(cometchat_fake, client_for):
    cometchat_fake.bulk_conversations("owner", 25)
    cometchat_fake.inject(
        Fault("status", status=429, headers={"Retry-After": "30"}, times=10, query={"page": "2"})
    )
    client = client_for()
    started = time.monotonic()
    with retry_budget(0):
        pages = client.iter_conversation_pages(on_behalf_of="owner", per_page=10, prefetch=True)
        assert len(next(pages).items) == 10
        with pytest.raises(CometChatRateLimited):
            next(pages)
    assert time.monotonic() - started < 2
