"""The fake's error bodies look like the live API's (API.md §0.3), never carrying the API key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from django_cometchat.testing import FakeCometChat, Fault
from tests.fake.test_fake_server import TIMEOUT, call, error_of

WRONG_KEY = "wrong-key-never-echoed-42"


@pytest.fixture
def fake(cometchat_fake_server: FakeCometChat) -> Iterator[FakeCometChat]:
    fake = cometchat_fake_server
    fake.reset()
    fake.add_user("alice")
    fake.add_user("bob")
    fake.add_user("carol")
    fake.send_message("bob", to_user="alice")
    yield fake
    fake.reset()


def every_error(fake: FakeCometChat) -> list[requests.Response]:
    """One answer of each kind of error the fake produces."""
    base = fake.base_url
    answers = [
        requests.get(f"{base}/users", timeout=TIMEOUT),  # AUTH_ERR_EMPTY_APIKEY
        requests.get(f"{base}/users", headers={"apikey": WRONG_KEY}, timeout=TIMEOUT),
        call(fake, "/nowhere"),  # ERR_API_NOT_FOUND
        call(fake, "/conversations", "alice", perPage=0),  # ERR_BAD_REQUEST with details
        call(fake, "/users/bob/conversation"),  # onBehalfOf missing
        call(fake, "/users/ghost"),  # ERR_UID_NOT_FOUND
        call(fake, "/groups/ghost/conversation", "alice"),  # ERR_GUID_NOT_FOUND
        call(fake, "/users/carol/conversation", "alice"),  # ERR_CONVERSATION_NOT_ACCESSIBLE
        call(fake, "/conversations/nope", "alice"),  # ERR_CONVERSATION_NOT_FOUND
    ]
    fake.fail_next(status=503)
    answers.append(call(fake, "/users"))  # a status fault's default body
    fake.configure(rate_limit_per_minute=0)
    answers.append(call(fake, "/users"))  # the limiter's 429
    fake.configure(rate_limit_per_minute=None)
    return answers


def test_error_envelopes_carry_dev_message_and_source(fake: FakeCometChat) -> None:
    answers = every_error(fake)
    assert [a.status_code for a in answers] == [
        401,
        401,
        404,
        400,
        400,
        404,
        404,
        403,
        404,
        503,
        429,
    ]
    for answer in answers:
        error = error_of(answer)
        validation = error["code"] == "ERR_BAD_REQUEST"
        expected = {"code", "message", "devMessage", "source"} | (
            {"details"} if validation else set()
        )
        assert set(error) == expected, answer.text
        assert error["source"] == "chat-api"
        assert isinstance(error["devMessage"], str)
        assert error["devMessage"]
        if validation:
            assert all(isinstance(v, list) and v for v in error["details"].values())


def test_error_envelopes_never_echo_an_api_key(fake: FakeCometChat) -> None:
    for answer in every_error(fake):
        seen = answer.text + repr(dict(answer.headers))
        assert fake.api_key not in seen
        assert WRONG_KEY not in seen


def test_status_fault_with_a_body_keeps_it_verbatim(fake: FakeCometChat) -> None:
    fake.inject(Fault("status", status=400, body={"error": {"code": "X"}}))
    assert call(fake, "/users").json() == {"error": {"code": "X"}}
