"""The published schema (docs/openapi.yaml) against the running API, with Schemathesis 4.

Every operation of the schema is called in-process through Django's WSGI application by alice,
signed in with a DRF token, with the fake CometChat behind the app: refresh endpoints really call
CometChat on her behalf. Schemathesis generates valid and invalid inputs (its examples, coverage
and fuzzing phases; the conversation ids and cursors it makes up are garbage on purpose) and
checks each answer: never a 5xx from the app itself (502/503/504 are documented answers about
CometChat, and the fake is healthy, so none is expected either), a documented status, a documented
content type and headers, and a body that matches the schema.

The number of cases tried per operation is kept in ``CASES``; the last test asserts every
operation was tried (``MAX_EXAMPLES`` bounds the fuzzing phase of each operation). The bugs the
run found (Django's HTML 404 for paths no route took, 500s from hostile CometChat answers) are
fixed and kept as examples.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qs, urlsplit

import hypothesis
import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from django_cometchat.models import SyncRun
from django_cometchat.services import sync_conversations
from django_cometchat.testing import Fault
from tests import ROOT

MAX_EXAMPLES = 50  # fuzzed cases per operation, on top of the examples and coverage phases
PUBLISHED = ROOT / "docs" / "openapi.yaml"
OPERATIONS = {
    "GET /cometchat/conversations/",
    "GET /cometchat/conversations/{conversation_id}/",
    "GET /cometchat/conversations/{conversation_id}/history/",
    "GET /cometchat/conversations/{conversation_id}/messages/",
    "POST /cometchat/conversations/{conversation_id}/refresh/",
    "POST /cometchat/conversations/refresh/",
    "GET /cometchat/sync-runs/",
    "GET /cometchat/sync-runs/{id}/",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CASES: Counter[str] = Counter()  # cases sent per operation, in this run
STATUSES: Counter[tuple[str, int]] = Counter()  # (operation, status) answered, in this run

config = schemathesis.Config.from_dict(
    {
        "seed": 20241,  # the same cases on every run: a failure here is a bug, not bad luck
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "suppress-health-check": ["too_slow", "filter_too_much"],
    }
)
schema = schemathesis.openapi.from_path(PUBLISHED, config=config)
schema.app = get_wsgi_application()


@pytest.fixture
def token(fake, alice, settings):
    """alice's API token, after one sync: her rows, history and sync runs exist.

    Function-scoped, so one alice serves every case of an operation (Hypothesis' health check
    about that is suppressed below): the cases only read, or refresh what CometChat holds.
    """
    settings.COMETCHAT = {
        **settings.COMETCHAT,
        "UID_RESOLVER": "tests.resolvers.uid_from_username",  # "alice-django" -> "alice"
        "MAX_RETRIES": 0,
    }
    sync_conversations(alice)
    cache.clear()  # the refresh throttle counts in the default cache
    # The WSGI handler closes the database connection around each request, and with it the
    # test's transaction; Django's test client keeps it open the same way.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield Token.objects.create(user=alice).key
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)
        cache.clear()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


@schema.parametrize()
@hypothesis.settings(suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
def test_api_conforms_to_the_published_schema(case, token):
    CASES[case.operation.label] += 1
    response = case.call(headers=auth(token))
    STATUSES[case.operation.label, response.status_code] += 1
    case.validate_response(response, checks=CHECKS, headers=auth(token))


def call(token: str, path: str, method: str = "GET", *, checks=None, **parts):
    """One hand-made case, sent and checked like the generated ones; its answer."""
    case = schema[path][method].Case(**parts)
    response = case.call(headers=auth(token))
    case.validate_response(response, checks=checks or CHECKS, headers=auth(token))
    return response


def test_stored_rows_conform_to_the_published_schema(token):
    """The generated ids are garbage: here alice's real rows answer 200 and 201, checked too."""
    detail = "/cometchat/conversations/{conversation_id}/"
    for conversation_id in ("alice_user_bob", "group_book-club", "ALICE_USER_CAROL"):
        ids = {"conversation_id": conversation_id}
        assert call(token, detail, path_parameters=ids).status_code == 200
        assert call(token, detail + "history/", path_parameters=ids).status_code == 200
        messages = call(token, detail + "messages/", path_parameters=ids)
        assert messages.status_code == 200
        assert messages.json()["results"]
        refreshed = call(token, detail + "refresh/", "POST", path_parameters=ids)
        assert refreshed.status_code == 200
        assert refreshed.json()["conversation_id"] == conversation_id.lower()
    first = call(token, "/cometchat/conversations/", query={"page_size": 1})
    assert first.status_code == 200
    cursor = parse_qs(urlsplit(first.json()["next"]).query)["cursor"][0]
    second = call(token, "/cometchat/conversations/", query={"page_size": 1, "cursor": cursor})
    assert second.json()["results"] != first.json()["results"]
    synced = call(
        token, "/cometchat/conversations/refresh/", "POST", query={"conversation_type": "group"}
    )
    assert synced.status_code == 201
    runs = call(token, "/cometchat/sync-runs/").json()["results"]
    assert len(runs) == 2
    for run in runs:
        one = call(token, "/cometchat/sync-runs/{id}/", path_parameters={"id": run["id"]})
        assert one.json() == run
    assert SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).count() == 2


@pytest.mark.parametrize("run_id", ["abc", "-1", "1.5"])
def test_a_sync_run_id_that_is_not_a_number_is_a_json_404(token, run_id):
    call(token, "/cometchat/sync-runs/{id}/", path_parameters={"id": run_id})


@pytest.mark.parametrize("suffix", ["", "history/"])
def test_a_conversation_id_with_an_encoded_slash_is_a_json_400(token, suffix):
    path = "/cometchat/conversations/{conversation_id}/" + suffix
    call(token, path, path_parameters={"conversation_id": "a%2Fb"})


HOSTILE_ANSWERS = {
    # tests/parsing/test_parsers_properties.py::test_regression_several_minus_signs*
    "unread --5": (
        "/cometchat/conversations/{conversation_id}/refresh/",
        {"conversation_id": "alice_user_bob"},
        Fault(
            "wrong_shape",
            path="/users/bob/conversation",
            body={
                "data": {
                    "conversationId": "alice_user_bob",
                    "conversationType": "user",
                    "unreadMessageCount": "--5",
                    "updatedAt": 1,
                    "conversationWith": {"uid": "bob"},
                }
            },
        ),
    ),
    # tests/parsing/test_parsers_properties.py::test_regression_header_with_a_separator_character*
    "rate-limit header 5\\x1f": (
        "/cometchat/conversations/refresh/",
        {},
        Fault(
            "wrong_shape",
            path="/conversations",
            body={"data": []},
            headers={"X-Rate-Limit-Remaining": "5\x1f"},
        ),
    ),
}


@pytest.mark.parametrize("answer", list(HOSTILE_ANSWERS))
def test_a_hostile_cometchat_answer_is_a_documented_answer(token, fake, answer):
    path, path_parameters, fault = HOSTILE_ANSWERS[answer]
    fake.inject(fault)
    # A 502 is the documented answer to a broken upstream: every check but "no 5xx" applies.
    checks = [check for check in CHECKS if check is not not_a_server_error]
    response = call(token, path, "POST", checks=checks, path_parameters=path_parameters)
    assert response.status_code in (200, 201, 502)
    if response.status_code == 502:
        assert response.json()["error"]["code"] == "ERR_BAD_UPSTREAM_RESPONSE"


def test_every_operation_was_tried(request):
    """The schema's operations are the API's, and Schemathesis sent cases to each of them."""
    paths = schema.raw_schema["paths"]
    assert {f"{method.upper()} {path}" for path in paths for method in paths[path]} == OPERATIONS
    generated = "test_api_conforms_to_the_published_schema"
    ran = [item for item in request.session.items if item.originalname == generated]
    if len(ran) < len(OPERATIONS):
        pytest.skip("the Schemathesis tests were not all selected")
    assert set(CASES) == OPERATIONS
    assert all(count > 0 for count in CASES.values()), CASES
    # The refresh endpoints really went to CometChat: syncs ran, made-up ids were looked up.
    assert STATUSES["POST /cometchat/conversations/refresh/", 201] > 0
    assert STATUSES["POST /cometchat/conversations/{conversation_id}/refresh/", 404] > 0
    assert not [answer for answer in STATUSES if answer[1] >= 500]
