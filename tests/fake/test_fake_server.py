"""The fake CometChat server, exercised over real HTTP with ``requests``."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from django_cometchat.conversation_types import parse_conversation, parse_pagination
from django_cometchat.testing import FakeCometChat, Fault
from django_cometchat.testing.render import (
    ConversationRenderer,
    RenderOptions,
    conversation_json,
    dumps,
)

TIMEOUT = 5


@pytest.fixture
def fake(cometchat_fake_server: FakeCometChat) -> Iterator[FakeCometChat]:
    """The session's fake server, emptied, with alice, bob, carol and dave (no conversations)."""
    fake = cometchat_fake_server
    fake.reset()
    fake.add_user("alice", "Alice Martin")
    fake.add_user("bob", "Bob Nguyen")
    fake.add_user("carol", "Carol Okafor")
    fake.add_user("dave", "Dave Kowalski")
    yield fake
    fake.reset()


def call(
    fake: FakeCometChat,
    path: str,
    owner: str | None = None,
    *,
    method: str = "GET",
    session: Any = requests,
    **params: Any,
) -> requests.Response:
    headers = {"apikey": fake.api_key}
    if owner is not None:
        headers["onBehalfOf"] = owner
    response: requests.Response = session.request(
        method, f"{fake.base_url}{path}", headers=headers, params=params, timeout=TIMEOUT
    )
    return response


def error_of(response: requests.Response) -> dict[str, Any]:
    assert response.headers["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    return body["error"]  # type: ignore[no-any-return]


def settle_in_window(window: float, needed: float) -> None:
    """Sleep into the next rate-limit window unless ``needed`` seconds are left in this one.

    The fake's windows are aligned to multiples of ``window`` seconds since the epoch, so a test
    that counts requests must not straddle a boundary."""
    left = window - time.time() % window
    if left < needed:
        time.sleep(left + 0.01)


def ids(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["conversationId"] for c in response.json()["data"]]


# -- authentication and errors -----------------------------------------------------------------


def test_missing_api_key_is_401(fake: FakeCometChat) -> None:
    response = requests.get(f"{fake.base_url}/conversations", timeout=TIMEOUT)
    assert response.status_code == 401
    assert error_of(response)["code"] == "AUTH_ERR_EMPTY_APIKEY"


def test_wrong_api_key_is_401_and_never_echoed(fake: FakeCometChat) -> None:
    response = requests.get(
        f"{fake.base_url}/conversations", headers={"apikey": "guess-123"}, timeout=TIMEOUT
    )
    assert response.status_code == 401
    assert error_of(response)["code"] == "AUTH_ERR_APIKEY_NOT_FOUND"
    assert "guess-123" not in response.text
    assert fake.api_key not in response.text


def test_api_key_header_name_is_case_insensitive(fake: FakeCometChat) -> None:
    response = requests.get(
        f"{fake.base_url}/users", headers={"APIKEY": fake.api_key}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert [u["uid"] for u in response.json()["data"]] == ["alice", "bob", "carol", "dave"]


def test_unknown_endpoint_is_404_err_api_not_found(fake: FakeCometChat) -> None:
    for path, method in [("/nothing-here", "GET"), ("/conversations", "POST")]:
        response = call(fake, path, method=method)
        assert response.status_code == 404
        text = "The API endpoint is invalid. Please verify the API call."
        assert error_of(response) == {
            "code": "ERR_API_NOT_FOUND",
            "message": text,
            "devMessage": text,
            "source": "chat-api",
        }
    outside = requests.get(
        f"{fake.base_url.removesuffix('/v3')}/v2/users",
        headers={"apikey": fake.api_key},
        timeout=TIMEOUT,
    )
    assert outside.status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/users/bob/conversation", "/groups/team/conversation", "/conversations/alice_user_bob"],
)
def test_on_behalf_of_is_required_for_single_gets(fake: FakeCometChat, path: str) -> None:
    response = call(fake, path)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "ERR_BAD_REQUEST"
    assert error["details"] == {"onBehalfOf": ["The onBehalfOf header is required."]}


def test_not_found_codes(fake: FakeCometChat) -> None:
    fake.send_message("bob", to_user="alice")
    cases = [
        ("/conversations", "ghost", "ERR_UID_NOT_FOUND"),
        ("/users/bob/conversation", "ghost", "ERR_UID_NOT_FOUND"),
        ("/users/ghost/conversation", "alice", "ERR_UID_NOT_FOUND"),
        ("/groups/ghosts/conversation", "alice", "ERR_GUID_NOT_FOUND"),
        ("/conversations/alice_user_ghost", "alice", "ERR_CONVERSATION_NOT_FOUND"),
        ("/users/ghost", None, "ERR_UID_NOT_FOUND"),
    ]
    for path, owner, code in cases:
        response = call(fake, path, owner)
        assert (response.status_code, error_of(response)["code"]) == (404, code), path
    message = error_of(call(fake, "/users/Ghost"))["message"]
    assert message == (
        "The UID ghost does not exist, please make sure you have created a user with UID ghost."
    )


def test_deactivated_user_is_not_found(fake: FakeCometChat) -> None:
    fake.deactivate_user("dave")
    assert error_of(call(fake, "/users/dave"))["code"] == "ERR_UID_NOT_FOUND"
    assert [u["uid"] for u in call(fake, "/users").json()["data"]] == ["alice", "bob", "carol"]


def test_conversation_not_accessible(fake: FakeCometChat) -> None:
    fake.add_group("team", members=["alice", "bob"])
    fake.send_message("alice", to_group="team")
    fake.send_message("alice", to_user="bob")
    cases = [
        ("/users/carol/conversation", "alice"),  # never exchanged a message
        ("/groups/team/conversation", "carol"),  # not a member
        ("/conversations/alice_user_bob", "carol"),  # someone else's conversation
    ]
    for path, owner in cases:
        response = call(fake, path, owner)
        assert response.status_code == 403, path
        assert error_of(response)["code"] == "ERR_CONVERSATION_NOT_ACCESSIBLE"
    fake.configure(not_accessible_status=404)
    assert call(fake, "/users/carol/conversation", "alice").status_code == 404


def test_ids_in_paths_are_decoded_and_lowercased(fake: FakeCometChat) -> None:
    fake.send_message("bob", to_user="alice", text="hey")
    response = call(fake, "/users/B%4FB/conversation", "ALICE")  # %4F is "O"
    assert response.status_code == 200
    assert response.json()["data"][0]["conversationId"] == "alice_user_bob"
    assert call(fake, "/users/Alice").json()["data"]["uid"] == "alice"


def test_single_as_list_switch(fake: FakeCometChat) -> None:
    fake.send_message("bob", to_user="alice")
    assert isinstance(call(fake, "/users/bob/conversation", "alice").json()["data"], list)
    fake.configure(single_as_list=False)
    data = call(fake, "/users/bob/conversation", "alice").json()["data"]
    assert isinstance(data, dict)
    assert data["conversationWith"]["uid"] == "bob"


# -- conversations ---------------------------------------------------------------------------


def test_conversations_newest_first_and_reordered_by_new_messages(fake: FakeCometChat) -> None:
    fake.send_message("bob", to_user="alice")
    fake.send_message("alice", to_user="carol")
    fake.send_message("dave", to_user="alice")
    assert ids(call(fake, "/conversations", "alice")) == [
        "alice_user_dave",
        "alice_user_carol",
        "alice_user_bob",
    ]
    fake.send_message("alice", to_user="bob", text="back to you")
    listed = call(fake, "/conversations", "alice").json()["data"]
    assert [c["conversationId"] for c in listed] == [
        "alice_user_bob",
        "alice_user_dave",
        "alice_user_carol",
    ]
    assert listed[0]["lastMessage"]["data"]["text"] == "back to you"
    assert listed[0]["updatedAt"] > listed[1]["updatedAt"] > listed[2]["updatedAt"]


def test_equal_updated_at_ties_break_on_peer_id(fake: FakeCometChat) -> None:
    for peer in ("dave", "bob", "carol"):
        fake.send_message(peer, to_user="alice", sent_at=1_700_000_000)
    assert ids(call(fake, "/conversations", "alice")) == [
        "alice_user_bob",
        "alice_user_carol",
        "alice_user_dave",
    ]


def test_app_wide_listing_orders_by_owner(fake: FakeCometChat) -> None:
    fake.send_message("bob", to_user="alice")
    fake.send_message("carol", to_user="bob")
    listed = call(fake, "/conversations").json()["data"]
    seen = [(c["conversationId"], c["conversationWith"]["uid"]) for c in listed]
    assert seen == [
        ("alice_user_bob", "bob"),  # alice's
        ("bob_user_carol", "carol"),  # bob's, newest first
        ("alice_user_bob", "alice"),
        ("bob_user_carol", "bob"),  # carol's
    ]
    assert [c["unreadMessageCount"] for c in listed] == ["1", "1", "0", "0"]


def test_filters(fake: FakeCometChat) -> None:
    fake.add_group("book-club", "Book Club", members=["alice", "bob"])
    fake.send_message("bob", to_user="alice")
    fake.send_message("alice", to_user="carol")
    fake.send_message("bob", to_group="book-club")
    fake.send_message("alice", to_user="dave")

    def listed(**params: Any) -> list[str]:
        return ids(call(fake, "/conversations", "alice", **params))

    assert listed(conversationType="group") == ["group_book-club"]
    assert listed(conversationType="user") == [
        "alice_user_dave",
        "alice_user_carol",
        "alice_user_bob",
    ]
    assert listed(unread="true") == ["group_book-club", "alice_user_bob"]
    assert listed(unread="1", conversationType="user") == ["alice_user_bob"]
    assert listed(unread="false") == listed()
    assert listed(searchKey="KOW") == ["alice_user_dave"]  # substring of "Dave Kowalski"
    assert listed(searchKey="club") == ["group_book-club"]
    assert listed(searchKey="zzz") == []
    bad = call(fake, "/conversations", "alice", conversationType="channel")
    assert bad.status_code == 400
    assert set(error_of(bad)["details"]) == {"conversationType"}


def test_conversation_tags(fake: FakeCometChat) -> None:
    fake.send_message("bob", to_user="alice")
    fake.send_message("carol", to_user="alice")
    fake.set_conversation_tags("alice", "alice_user_bob", ["work"])
    assert ids(call(fake, "/conversations", "alice", tags="work,misc")) == ["alice_user_bob"]
    tagged = call(fake, "/conversations", "alice", withTags="true").json()["data"]
    assert [c["tags"] for c in tagged] == [[], ["work"]]
    assert "tags" not in call(fake, "/conversations", "alice").json()["data"][0]


def test_pagination_meta_and_page_past_the_end(fake: FakeCometChat) -> None:
    for peer in ("bob", "carol", "dave"):
        fake.send_message(peer, to_user="alice")
    first = call(fake, "/conversations", "alice", perPage=2).json()
    assert len(first["data"]) == 2
    assert first["meta"] == {
        "pagination": {"total": 3, "count": 2, "per_page": 2, "current_page": 1, "total_pages": 2}
    }
    second = call(fake, "/conversations", "alice", perPage=2, page=2).json()
    assert [c["conversationId"] for c in second["data"]] == ["alice_user_bob"]
    assert second["meta"]["pagination"]["count"] == 1
    past = call(fake, "/conversations", "alice", perPage=2, page=9).json()
    assert past["data"] == []
    assert past["meta"] == {
        "pagination": {"total": 3, "count": 0, "per_page": 2, "current_page": 9, "total_pages": 2}
    }
    default = call(fake, "/conversations", "alice").json()["meta"]["pagination"]
    assert (default["per_page"], default["current_page"]) == (100, 1)
    fake.add_user("erin")
    empty = call(fake, "/conversations", "erin").json()
    assert empty["data"] == []
    pagination = parse_pagination(empty["meta"])
    assert pagination is not None
    assert (pagination.total, pagination.total_pages, pagination.is_last) == (0, 1, True)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"perPage": 1001}, "perPage", "The per page may not be greater than 1000."),
        ({"perPage": 0}, "perPage", "The per page must be at least 1."),
        ({"page": "two"}, "page", "The page must be an integer."),
        ({"unread": "maybe"}, "unread", "The unread field must be true or false."),
    ],
)
def test_bad_query_parameters_are_400(
    fake: FakeCometChat, params: dict[str, Any], field: str, message: str
) -> None:
    response = call(fake, "/conversations", "alice", **params)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "ERR_BAD_REQUEST"
    assert error["details"] == {field: [message]}
    assert call(fake, "/conversations", "alice", perPage=1000).status_code == 200


def test_unread_counts_mark_read_and_deleted_last_message(fake: FakeCometChat) -> None:
    for text in ("one", "two", "three"):
        fake.send_message("bob", to_user="alice", text=text)

    def seen_by(owner: str, peer: str) -> dict[str, Any]:
        data: dict[str, Any] = call(fake, f"/users/{peer}/conversation", owner).json()["data"][0]
        return data

    assert seen_by("alice", "bob")["unreadMessageCount"] == "3"
    assert seen_by("bob", "alice")["unreadMessageCount"] == "0"  # the sender's count never grows
    assert fake.unread_count("alice", "alice_user_bob") == 3
    fake.mark_read("alice", "alice_user_bob")
    assert seen_by("alice", "bob")["unreadMessageCount"] == "0"

    fake.add_group("team", members=["alice", "bob", "carol"])
    fake.send_message("alice", to_group="team")
    team = {
        uid: call(fake, "/groups/team/conversation", uid).json()["data"][0]["unreadMessageCount"]
        for uid in ("alice", "bob", "carol")
    }
    assert team == {"alice": "0", "bob": "1", "carol": "1"}

    before = seen_by("alice", "bob")
    fake.delete_last_message("alice_user_bob")
    for owner, peer in (("alice", "bob"), ("bob", "alice")):
        after = seen_by(owner, peer)
        assert "lastMessage" not in after
        assert after["updatedAt"] == before["updatedAt"]
        assert parse_conversation(after).last_message is None
    listed = call(fake, "/conversations", "alice").json()["data"]
    assert [("lastMessage" in c) for c in listed] == [True, False]


def test_mark_read_endpoint_keeps_cometchats_capital_m(fake: FakeCometChat) -> None:
    fake.send_message("bob", to_user="alice")
    response = call(fake, "/users/bob/conversation/read", "alice", method="POST")
    assert response.status_code == 200
    assert response.json()["data"]["success"] is True
    assert set(response.json()["data"]) == {"success", "Message"}
    assert fake.unread_count("alice", "alice_user_bob") == 0


def test_list_users_paging_and_search(fake: FakeCometChat) -> None:
    body = call(fake, "/users", perPage=3, page=2).json()
    assert [u["uid"] for u in body["data"]] == ["dave"]
    assert body["meta"]["pagination"]["total"] == 4
    assert [u["uid"] for u in call(fake, "/users", searchKey="Ca").json()["data"]] == ["carol"]


# -- rate limits -------------------------------------------------------------------------------


def test_rate_limit_headers_and_429(fake: FakeCometChat) -> None:
    settle_in_window(60, 3)
    fake.configure(rate_limit_per_minute=3)
    remaining = []
    for _ in range(3):
        response = call(fake, "/users")
        assert response.status_code == 200
        assert response.headers["X-Rate-Limit"] == "3"
        assert "X-Rate-Limit-Reset" not in response.headers  # only with the 429
        assert "Retry-After" not in response.headers
        remaining.append(response.headers["X-Rate-Limit-Remaining"])
    assert remaining == ["2", "1", "0"]
    limited = call(fake, "/users")
    assert limited.status_code == 429
    assert error_of(limited)["code"] == "ERR_TOO_MANY_REQUESTS"
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    reset = int(limited.headers["X-Rate-Limit-Reset"])
    assert time.time() - 1 <= reset <= time.time() + 61
    assert limited.headers["X-Rate-Limit-Remaining"] == "0"
    # Refused for a bad key: does not use the budget, still carries the headers.
    fake.configure(rate_limit_per_minute=1)
    anonymous = requests.get(f"{fake.base_url}/users", timeout=TIMEOUT)
    assert anonymous.status_code == 401
    assert anonymous.headers["X-Rate-Limit-Remaining"] == "1"
    assert call(fake, "/users").status_code == 200


def test_rate_limit_compact_headers_and_short_window() -> None:
    with FakeCometChat(
        rate_limit_per_minute=1, rate_limit_window=0.3, header_style="compact"
    ) as fake:
        settle_in_window(0.3, 0.2)
        ok = call(fake, "/users")
        assert ok.status_code == 200
        assert ok.headers["X-RateLimit-Limit"] == "1"
        assert ok.headers["X-RateLimit-Remaining"] == "0"
        assert "X-Rate-Limit" not in ok.headers
        assert "X-RateLimit-Reset" not in ok.headers
        limited = call(fake, "/users")
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "1"  # never below one second
        assert "X-RateLimit-Reset" in limited.headers
        time.sleep(0.35)
        assert call(fake, "/users").status_code == 200


def test_unlimited_still_sends_rate_limit_headers(fake: FakeCometChat) -> None:
    response = call(fake, "/users")
    assert response.headers["X-Rate-Limit"] == "20000"
    assert response.headers["X-Rate-Limit-Remaining"] == "20000"
    assert "X-Rate-Limit-Reset" not in response.headers
    fake.configure(reset_header="always")
    reset = int(call(fake, "/users").headers["X-Rate-Limit-Reset"])
    assert reset >= int(time.time())


# -- faults ------------------------------------------------------------------------------------


def test_status_fault_default_bodies(fake: FakeCometChat) -> None:
    fake.fail_next(status=503)
    fake.rate_limit_next(retry_after=7)
    fake.inject(Fault("status", status=502, body="<h1>Bad gateway</h1>"))
    first = call(fake, "/users")
    assert first.status_code == 503
    assert error_of(first)["code"] == "ERR_MISSION_FAILED"
    second = call(fake, "/users")
    assert (second.status_code, second.headers["Retry-After"]) == (429, "7")
    assert error_of(second)["code"] == "ERR_TOO_MANY_REQUESTS"
    assert "X-Rate-Limit-Reset" in second.headers
    third = call(fake, "/users")
    assert third.status_code == 502
    assert third.text == "<h1>Bad gateway</h1>"
    assert call(fake, "/users").status_code == 200  # all consumed


def test_delay_fault(fake: FakeCometChat) -> None:
    fake.delay_next(0.3)
    started = time.monotonic()
    assert call(fake, "/users").status_code == 200
    assert time.monotonic() - started >= 0.3
    fake.delay_next(0.5)
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{fake.base_url}/users", headers={"apikey": fake.api_key}, timeout=(1, 0.1))
    # The server still answers (into a closed socket); wait so it cannot log into the next test.
    deadline = time.monotonic() + 3
    while len(fake.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r.status for r in fake.requests] == [200, 200]


def test_drop_fault_on_fresh_and_reused_connections(fake: FakeCometChat) -> None:
    fake.drop_next()
    with pytest.raises(requests.ConnectionError):
        call(fake, "/users")
    with requests.Session() as session:
        assert call(fake, "/users", session=session).status_code == 200
        fake.drop_next()
        with pytest.raises(requests.ConnectionError):
            call(fake, "/users", session=session)
        assert call(fake, "/users", session=session).status_code == 200
    assert [r.status for r in fake.requests] == [None, 200, None, 200]


def test_truncate_fault(fake: FakeCometChat) -> None:
    whole = call(fake, "/users").content
    fake.inject(Fault("truncate"))
    response = call(fake, "/users")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content) == len(whole) // 2
    assert whole.startswith(response.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_html_empty_and_wrong_shape_faults(fake: FakeCometChat) -> None:
    fake.send_message("bob", to_user="alice")
    fake.inject(Fault("html"))
    html = call(fake, "/conversations", "alice")
    assert html.status_code == 200
    assert html.headers["Content-Type"].startswith("text/html")
    assert html.text.startswith("<!DOCTYPE html>")

    fake.inject(Fault("empty"))
    empty = call(fake, "/conversations", "alice")
    assert (empty.status_code, empty.content, empty.headers["Content-Length"]) == (200, b"", "0")

    fake.inject(Fault("wrong_shape", times=2))
    assert call(fake, "/conversations", "alice").json() == {"data": {"unexpected": True}}
    assert call(fake, "/users/bob/conversation", "alice").json() == {"data": "nope"}
    assert len(call(fake, "/conversations", "alice").json()["data"]) == 1


def test_path_matched_faults_times_and_order(fake: FakeCometChat) -> None:
    fake.send_message("bob", to_user="alice")
    fake.fail_next(2, status=500, path="/users/")
    fake.fail_next(1, status=502, path="/v3/users/bob")  # "/v3" in a path is ignored
    fake.inject(Fault("status", status=504, path=re.compile(r"^/conversations$")))
    assert call(fake, "/users").status_code == 200  # "/users" lacks the slash
    assert call(fake, "/conversations/alice_user_bob", "alice").status_code == 200
    assert call(fake, "/conversations", "alice").status_code == 504
    assert call(fake, "/conversations", "alice").status_code == 200
    statuses = [call(fake, "/users/bob/conversation", "alice").status_code for _ in range(4)]
    assert statuses == [500, 500, 502, 200]  # first match wins, then the next one
    assert fake.pending_faults == []
    fake.inject(Fault("status", status=503, query={"page": "2"}, method="GET"))
    assert call(fake, "/conversations", "alice", page=1).status_code == 200
    assert call(fake, "/conversations", "alice", page=2).status_code == 503
    fake.fail_next(5)
    fake.clear_faults()
    assert call(fake, "/users").status_code == 200


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        Fault("status", times=0)
    with pytest.raises(ValueError, match="delay"):
        Fault("delay")


# -- request log and connections ---------------------------------------------------------------


def test_request_log(fake: FakeCometChat) -> None:
    fake.send_message("bob", to_user="alice")
    call(fake, "/conversations", "alice", perPage=5, unread="true")
    requests.get(f"{fake.base_url}/users/bob", timeout=TIMEOUT)
    first, second = fake.requests
    assert (first.method, first.path, first.status) == ("GET", "/v3/conversations", 200)
    assert first.query == {"perPage": "5", "unread": "true"}
    assert first.headers["apikey"] == fake.api_key
    assert first.headers["onbehalfof"] == "alice"
    assert (second.path, second.status) == ("/v3/users/bob", 401)
    fake.clear_requests()
    assert fake.requests == []


def test_connections_opened_shows_keep_alive(fake: FakeCometChat) -> None:
    with requests.Session() as session:
        for _ in range(5):
            assert call(fake, "/users", session=session).status_code == 200
    assert fake.connections_opened == 1
    for _ in range(3):
        assert call(fake, "/users").status_code == 200  # a new session, a new connection
    assert fake.connections_opened == 4
    assert len(fake.requests) == 8


def test_stop_closes_idle_keep_alive_connections() -> None:
    fake = FakeCometChat().start()
    with requests.Session() as session:
        assert call(fake, "/users", session=session).status_code == 200
        fake.stop()
        assert not fake.running
        with pytest.raises(requests.ConnectionError):
            session.get(f"http://127.0.0.1:{fake.port}/v3/users", timeout=TIMEOUT)
    with pytest.raises(RuntimeError, match="start"):
        _ = fake.base_url
    assert "test-api-key" not in repr(fake)


# -- volume ------------------------------------------------------------------------------------


def test_bulk_conversations_fifty_pages(fake: FakeCometChat) -> None:
    started = time.monotonic()
    fake.bulk_conversations("owner", 50_000)
    assert time.monotonic() - started < 5
    seen: list[str] = []
    unread = 0
    with requests.Session() as session:
        for page in range(1, 51):
            body = call(fake, "/conversations", "owner", session=session, perPage=1000, page=page)
            payload = body.json()
            assert payload["meta"]["pagination"] == {
                "total": 50_000,
                "count": 1000,
                "per_page": 1000,
                "current_page": page,
                "total_pages": 50,
            }
            seen += [c["conversationId"] for c in payload["data"]]
            unread += sum(int(c["unreadMessageCount"]) for c in payload["data"])
        tail = call(fake, "/conversations", "owner", session=session, perPage=1000, page=51)
        assert tail.json()["data"] == []
    assert len(seen) == len(set(seen)) == 50_000
    assert seen[0] == "owner_user_peer-50000"  # the newest
    assert seen[-1] == "owner_user_peer-00001"
    assert unread == 25_000  # odd peers wrote last
    assert fake.connections_opened == 1
    only_unread = call(fake, "/conversations", "owner", unread="true", perPage=1)
    assert only_unread.json()["meta"]["pagination"]["total"] == 25_000


def test_fast_renderer_matches_dict_rendering(fake: FakeCometChat) -> None:
    """Byte for byte, for every option combination the fast path serves."""
    fake.seed_demo()
    fake.bulk_conversations("alice", 50, prefix="fan")
    fake.update_user("bob", name='Bob "the builder" Nguyen', link="https://example.com/b")
    fake.update_user("carol", tags=["vip", "ünïcode"])
    fake.update_user("fan-02", name="Zoë \u2028 \x00 <tag>")
    fake.delete_last_message("alice_user_bob")
    fake.set_conversation_tags("alice", "alice_user_carol", ["work"])
    fake.block_user("alice", "fan-01")
    fake.block_user("fan-02", "alice")
    fake.block_user("bob", "alice")
    state = fake.state
    renderer = ConversationRenderer(state)
    combinations = [
        RenderOptions(
            receipts=True, with_tags=tags, with_peer_tags=peer_tags, with_blocked_info=blocked
        )
        for tags in (False, True)
        for peer_tags in (False, True)
        for blocked in (False, True)
    ]
    assert all(renderer.serves(options) for options in combinations)
    assert not renderer.serves(RenderOptions(receipts=False))  # single GETs use the dict path
    pairs = [
        (owner, row)
        for owner in ("alice", "bob", "carol", "fan-01", "fan-02")
        for row in state.owner_conversations(owner)
    ]
    for options in combinations:
        for owner, row in pairs:
            text = renderer.conversation(row, owner, options)
            assert text == dumps(conversation_json(state, row, owner, options)), (owner, row)
    assert len(pairs) > 100
    # The option the sync sends shows through.
    sync = RenderOptions(receipts=True, with_blocked_info=True)
    fan = next(
        row for row in state.owner_conversations("alice") if row.peer_for("alice") == "fan-02"
    )
    assert (
        json.loads(renderer.conversation(fan, "alice", sync))["conversationWith"]["hasBlockedMe"]
        is True
    )


def test_seed_demo(fake: FakeCometChat) -> None:
    seeded = fake.seed_demo()
    # alice … dave existed already (the fixture's), so they are reused, not reported.
    assert seeded.uids[:4] == ("erin", "frank", "grace", "heidi")
    assert len(seeded.uids) == 84
    assert seeded.guids == ("engineering", "design", "random", "support-eu")
    listed = call(fake, "/conversations", "alice", perPage=1000).json()
    assert listed["meta"]["pagination"]["total"] == len(listed["data"]) >= 30
    types = {c["conversationType"] for c in listed["data"]}
    assert types == {"user", "group"}
    assert any(c["unreadMessageCount"] != "0" for c in listed["data"])
    assert any(c["unreadMessageCount"] == "0" for c in listed["data"])
    updated = [c["updatedAt"] for c in listed["data"]]
    assert updated == sorted(updated, reverse=True)
    everyone = call(fake, "/conversations", perPage=1000).json()["meta"]["pagination"]["total"]
    assert everyone > 300  # a few hundred conversations, counted once per owner
    for raw in listed["data"]:
        parse_conversation(raw)
    # a message sent now sorts first
    fake.send_message("grace", to_user="alice", text="newest")
    assert ids(call(fake, "/conversations", "alice", perPage=1)) == ["alice_user_grace"]
    assert fake.seed_demo().uids == ()  # all there now
    assert fake.bulk_conversations("alice", 3, prefix="fan") == ["fan-1", "fan-2", "fan-3"]


# -- plugin and command line -------------------------------------------------------------------


def test_cometchat_fake_fixture_points_settings_at_the_fake(
    cometchat_fake: FakeCometChat, settings: Any
) -> None:
    assert settings.COMETCHAT["BASE_URL"] == cometchat_fake.base_url
    assert settings.COMETCHAT["API_KEY"] == cometchat_fake.api_key
    assert settings.COMETCHAT["APP_ID"] == "testapp"
    assert settings.COMETCHAT["REGION"] == "us"  # the rest of the dict is kept
    assert cometchat_fake.state.users == {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_command_line_server() -> None:
    port = free_port()
    secret = "cli-key-not-printed-123"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django_cometchat.testing",
            "--port",
            str(port),
            "--seed",
            "demo",
            "--api-key",
            secret,
            "--bulk-owner",
            "zed",
            "--bulk",
            "10",
            "--header-style",
            "compact",
            "--compression",
            "deflate",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}/v3"
        deadline = time.monotonic() + 10
        while True:
            try:
                response = requests.get(
                    f"{base}/users/alice", headers={"apikey": secret}, timeout=1
                )
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the fake never came up"
                time.sleep(0.05)
        assert response.status_code == 200
        assert response.json()["data"]["name"] == "Alice Martin"
        assert "X-RateLimit-Limit" in response.headers
        assert response.headers["Content-Encoding"] == "deflate"  # requests decoded it
        zed = requests.get(
            f"{base}/conversations",
            headers={"apikey": secret, "onBehalfOf": "zed"},
            timeout=TIMEOUT,
        )
        assert zed.json()["meta"]["pagination"]["total"] == 10
        everyone = requests.get(
            f"{base}/users", headers={"apikey": secret}, params={"perPage": 1000}, timeout=TIMEOUT
        ).json()["data"]
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert f"at {base}" in out
    assert "--api-key" in out
    assert secret not in out + err
    # The seeded UIDs and GUIDs are printed, so a developer can map Django users to them.
    printed = dict(
        re.findall(r"^(Demo users|Demo groups) \(\d+ G?UIDs\): (.*?)(?=^\S|\Z)", out, re.M | re.S)
    )
    uids = [uid.strip() for uid in printed["Demo users"].split(",")]
    guids = [guid.strip() for guid in printed["Demo groups"].split(",")]
    assert uids[:3] == ["alice", "bob", "carol"]
    assert f"Demo users ({len(uids)} UIDs)" in out
    assert guids == ["engineering", "design", "random", "support-eu"]
    peers = [f"peer-{n:02d}" for n in range(1, 11)]
    assert sorted([*uids, "zed", *peers]) == [u["uid"] for u in everyone]
    assert "Bulk: zed has 10 conversations, with peer-01 to peer-10" in out


@pytest.mark.django_db
def test_the_demo_seed_is_fixed_in_time_and_in_the_past(
    cometchat_fake: FakeCometChat, settings: Any, django_user_model: Any
) -> None:
    """scripts/demo seeds a fresh fake at every run: a rerun a day later must find nothing to
    update, and no seeded conversation may be newer than now."""
    from django.utils import timezone

    from django_cometchat.models import Conversation
    from django_cometchat.services import sync_conversations

    settings.COMETCHAT = {**settings.COMETCHAT, "UID_RESOLVER": "tests.resolvers.by_username"}
    alice = django_user_model.objects.create_user("alice")
    cometchat_fake.seed_demo()
    first = sync_conversations(alice)
    assert first.created >= 30
    newest = Conversation.objects.order_by("-updated_at").values_list("updated_at", flat=True)[0]
    assert newest < timezone.now()

    cometchat_fake.reset()
    cometchat_fake.state.clock.last = int(time.time()) + 86_400  # the fake's clock, a day on
    cometchat_fake.seed_demo()
    again = sync_conversations(alice)
    assert (again.created, again.updated, again.missing) == (0, 0, 0)
    assert again.unchanged == first.created
