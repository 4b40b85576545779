"""The hardening faults: slow bodies, huge bodies, reset connections, hostile rewritten answers."""

from __future__ import annotations

import json
import socket
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from django_cometchat.testing import FakeCometChat, Fault
from tests.fake.test_fake_server import TIMEOUT, call

HEAD = b'{"data":[],"padding":"'


@pytest.fixture
def fake(cometchat_fake_server: FakeCometChat) -> Iterator[FakeCometChat]:
    fake = cometchat_fake_server
    fake.reset()
    fake.add_user("alice", "Alice")
    fake.add_user("bob", "Bob")
    fake.send_message("bob", to_user="alice", text="hello")
    yield fake
    fake.reset()


def raw_get(fake: FakeCometChat, path: str = "/users") -> bytes | OSError:
    """What a bare socket reads after sending a GET: bytes (b"" on a clean close) or the error."""
    with socket.create_connection((fake.host, fake.port), timeout=TIMEOUT) as sock:
        sock.sendall(
            f"GET /v3{path} HTTP/1.1\r\nHost: fake\r\napikey: {fake.api_key}\r\n\r\n".encode()
        )
        try:
            return sock.recv(65536)
        except OSError as error:
            return error


# -- trickle -------------------------------------------------------------------------------------


def test_trickle_sends_the_normal_answer_slowly_without_a_read_timeout(
    fake: FakeCometChat,
) -> None:
    normal = call(fake, "/users/alice")
    fake.inject(Fault("trickle", chunk_size=40, pause=0.05))
    started = time.monotonic()
    # A read timeout far below the whole answer's time: every single read gets bytes in time.
    slow = requests.get(
        f"{fake.base_url}/users/alice", headers={"apikey": fake.api_key}, timeout=(1, 0.5)
    )
    elapsed = time.monotonic() - started
    assert slow.status_code == 200
    assert slow.content == normal.content
    assert slow.headers["Content-Length"] == str(len(normal.content))
    pauses = (len(normal.content) - 1) // 40
    assert pauses >= 4
    assert elapsed >= pauses * 0.05
    assert fake.requests[-1].status == 200


def test_trickle_arrives_in_pieces(fake: FakeCometChat) -> None:
    fake.inject(Fault("trickle", chunk_size=16, pause=0.02, path="/users/bob"))
    with requests.get(
        f"{fake.base_url}/users/bob", headers={"apikey": fake.api_key}, timeout=5, stream=True
    ) as response:
        arrivals = [time.monotonic() for _ in response.iter_content(chunk_size=16)]
    assert len(arrivals) > 5
    assert arrivals[-1] - arrivals[0] >= 0.02 * (len(arrivals) - 2)


# -- oversize ------------------------------------------------------------------------------------


def test_oversize_is_exactly_n_bytes_of_valid_json(fake: FakeCometChat) -> None:
    fake.inject(Fault("oversize", size=3_000_000))
    response = call(fake, "/conversations", "alice")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "3000000"
    assert response.headers["Content-Type"] == "application/json"
    assert len(response.content) == 3_000_000
    assert response.content.startswith(HEAD)
    body = json.loads(response.content)
    assert body["data"] == []
    assert call(fake, "/conversations", "alice").json()["data"]  # consumed: normal again


def test_oversize_can_hide_its_size_behind_chunked_encoding(fake: FakeCometChat) -> None:
    fake.inject(Fault("oversize", size=1_000_000, chunked=True, chunk_size=1000))
    response = call(fake, "/users")
    assert "Content-Length" not in response.headers
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert len(response.content) == 1_000_000
    assert json.loads(response.content)["data"] == []
    assert call(fake, "/users").status_code == 200


def test_oversize_streams_300_mb_without_holding_it(fake: FakeCometChat) -> None:
    fake.inject(Fault("oversize", size=300_000_000))
    tracemalloc.start()  # traces every thread, the fake's writer included
    try:
        with requests.get(
            f"{fake.base_url}/users", headers={"apikey": fake.api_key}, timeout=5, stream=True
        ) as response:
            assert response.headers["Content-Length"] == "300000000"
            read = 0
            for chunk in response.iter_content(chunk_size=65536):
                read += len(chunk)
                if read >= 5_000_000:  # a client that decides from size stops here
                    break
            first = chunk
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read >= 5_000_000
    assert set(first) == {ord("x")}
    assert peak < 20_000_000
    assert call(fake, "/users").status_code == 200  # the server carries on


# -- reset -----------------------------------------------------------------------------------------


def test_reset_aborts_where_drop_closes(fake: FakeCometChat) -> None:
    fake.drop_next()
    assert raw_get(fake) == b""  # FIN: a clean end of stream
    fake.reset_next()
    assert isinstance(raw_get(fake), ConnectionResetError)  # RST
    fake.reset_next()
    with pytest.raises(requests.ConnectionError) as caught:
        call(fake, "/users")
    assert "reset" in repr(caught.value).lower()
    assert call(fake, "/users").status_code == 200
    assert [r.status for r in fake.requests] == [None, None, None, 200]


def test_reset_on_a_reused_connection(fake: FakeCometChat) -> None:
    with requests.Session() as session:
        assert call(fake, "/users", session=session).status_code == 200
        fake.inject(Fault("reset", path="/users/bob"))
        with pytest.raises(requests.ConnectionError):
            call(fake, "/users/bob", session=session)
        assert call(fake, "/users", session=session).status_code == 200


# -- transform -------------------------------------------------------------------------------------


def test_transform_turns_real_data_hostile(fake: FakeCometChat) -> None:
    def hostile(body: Any) -> Any:
        row = body["data"][0]
        row["conversationId"] = "x_user_ev/../il"
        row["unreadMessageCount"] = 10**20
        row["updatedAt"] = 99999999999999
        row["conversationWith"]["name"] = "nul\x00byte"
        row["conversationWith"]["uid"] = "\ud800"  # a lone surrogate
        del row["conversationType"]
        return body

    fake.transform_next(hostile, path="/conversations")
    response = call(fake, "/conversations", "alice")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    row = json.loads(response.content)["data"][0]
    assert row["conversationId"] == "x_user_ev/../il"
    assert row["unreadMessageCount"] == 10**20
    assert row["updatedAt"] == 99999999999999
    assert row["conversationWith"]["name"] == "nul\x00byte"
    assert row["conversationWith"]["uid"] == "\ud800"
    assert "conversationType" not in row
    assert row["lastMessage"]["data"]["text"] == "hello"  # the rest is the real answer
    assert response.json()["meta"]["pagination"]["total"] == 1


def test_transform_sends_text_and_bytes_as_they_are(fake: FakeCometChat) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    fake.transform_next(lambda body: deep)
    fake.transform_next(lambda body: b'{"data": [\xff]}')
    fake.inject(Fault("transform", transform=lambda body: body["data"], headers={"X-Extra": "1"}))
    assert call(fake, "/users").text == deep
    assert call(fake, "/users").content == b'{"data": [\xff]}'
    users = call(fake, "/users")
    assert [u["uid"] for u in users.json()] == ["alice", "bob"]
    assert users.headers["X-Extra"] == "1"
    assert users.headers["X-Rate-Limit"] == "20000"


def test_transform_sees_error_answers_and_answers_200(fake: FakeCometChat) -> None:
    seen: list[Any] = []

    def record(body: Any) -> Any:
        seen.append(body)
        return {"data": {"uid": "ghost"}}

    fake.transform_next(record)
    response = call(fake, "/users/ghost")
    assert response.status_code == 200
    assert response.json() == {"data": {"uid": "ghost"}}
    assert seen[0]["error"]["code"] == "ERR_UID_NOT_FOUND"


def test_a_failing_transform_answers_500_naming_the_error(fake: FakeCometChat) -> None:
    fake.transform_next(lambda body: body["no-such-key"])
    response = call(fake, "/users")
    assert response.status_code == 500
    assert "KeyError('no-such-key')" in response.text


def test_new_fault_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="transform"):
        Fault("transform")
    with pytest.raises(ValueError, match="chunk_size"):
        Fault("trickle", chunk_size=0)
    with pytest.raises(ValueError, match="pause"):
        Fault("trickle", pause=-1)
    with pytest.raises(ValueError, match="at least 24 bytes"):
        Fault("oversize", size=10)
    with pytest.raises(ValueError, match="'gzip_bomb' body is at least 24 bytes"):
        Fault("gzip_bomb", size=10)
    assert Fault("oversize").size == 300_000_000


# -- hold and after: when an answer is built vs when it is sent ----------------------------------


def test_a_held_answer_shows_the_data_of_when_it_was_asked_for(fake: FakeCometChat) -> None:
    import concurrent.futures

    conversation_id = fake.conversation_id("alice", "bob")
    hold = fake.hold_next(path="/users/bob/conversation", timeout=10)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        asked = pool.submit(call, fake, "/users/bob/conversation", "alice")
        assert hold.held.wait(5)
        fake.mark_read("alice", conversation_id)  # CometChat moves on while the answer waits
        fresh = call(fake, "/users/bob/conversation", "alice")  # the fault was used up
        assert not asked.done()
        hold.release.set()
        late = asked.result(timeout=5)
    # Both answers as API.md §2.4 shapes them (a list of one); the late one is the old state.
    assert late.status_code == fresh.status_code == 200
    assert late.json()["data"][0]["unreadMessageCount"] == "1"  # a string, API.md §8.1
    assert fresh.json()["data"][0]["unreadMessageCount"] == "0"


def test_reset_sends_an_answer_still_held(fake: FakeCometChat) -> None:
    import concurrent.futures

    hold = fake.hold_next(path="/users", timeout=30)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        asked = pool.submit(call, fake, "/users")
        assert hold.held.wait(5)
        started = time.monotonic()
        fake.reset()
        assert asked.result(timeout=5).status_code == 200
    assert time.monotonic() - started < 2


def test_an_after_action_runs_between_the_answer_and_the_next_request(
    fake: FakeCometChat,
) -> None:
    order: list[str] = []

    def leave() -> None:
        order.append("action")
        fake.deactivate_user("bob")  # API.md §5.3: deactivated users drop out of GET /users

    fake.after_next(leave, path="/users", query={"page": "1"})
    first = call(fake, "/users", page=1)
    order.append("answer")
    # Built before the action ran, so bob is on it; the action ran before the answer went out.
    assert [u["uid"] for u in first.json()["data"]] == ["alice", "bob"]
    assert order == ["action", "answer"]
    assert [u["uid"] for u in call(fake, "/users", page=1).json()["data"]] == ["alice"]


def test_a_failing_after_action_answers_500_naming_the_error(fake: FakeCometChat) -> None:
    def broken() -> None:
        raise KeyError("nope")

    fake.after_next(broken)
    response = call(fake, "/users")
    assert response.status_code == 500
    assert "KeyError('nope')" in response.text


def test_hold_and_after_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="action"):
        Fault("after")
    with pytest.raises(ValueError, match="hold_timeout"):
        Fault("hold", hold_timeout=0)
