"""The OpenAPI 3 schema drf-spectacular generates for the API: valid, complete, no warnings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from openapi_spec_validator import validate

from tests import ROOT

READ = {"400", "401", "403", "404", "409"}
REFRESH = READ | {"429", "502", "503", "504"}
MESSAGES = READ | {"502", "503", "504"}  # read live from CometChat; no refresh throttle
OPERATIONS = {
    ("/cometchat/conversations/", "get"): ("200", READ),
    ("/cometchat/conversations/{conversation_id}/", "get"): ("200", READ),
    ("/cometchat/conversations/{conversation_id}/history/", "get"): ("200", READ),
    ("/cometchat/conversations/{conversation_id}/messages/", "get"): ("200", MESSAGES),
    ("/cometchat/conversations/refresh/", "post"): ({"201", "202"}, REFRESH),
    ("/cometchat/conversations/{conversation_id}/refresh/", "post"): ({"200", "202"}, REFRESH),
    ("/cometchat/sync-runs/", "get"): ("200", READ),
    ("/cometchat/sync-runs/{id}/", "get"): ("200", READ),
}
ERROR_REF = "#/components/schemas/CometChatError"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    # Through JSON, as a client would read it (drops lazy strings and tuples).
    loaded: dict[str, Any] = json.loads(json.dumps(generated, default=str))
    return loaded


def test_the_command_validates_the_schema_without_a_single_warning(tmp_path):
    out = tmp_path / "schema.json"
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", out
    )
    assert json.loads(out.read_text())["openapi"].startswith("3.")


def test_the_schema_is_valid_openapi_3(schema):
    validate(schema)


def test_every_operation_is_documented_with_its_errors(schema):
    ours = {
        (path, method)
        for path, item in schema["paths"].items()
        if path.startswith("/cometchat/")
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert ours == set(OPERATIONS)
    for (path, method), (success, errors) in OPERATIONS.items():
        operation = schema["paths"][path][method]
        assert operation["operationId"].startswith("cometchat_")
        assert operation["description"]
        successes = {success} if isinstance(success, str) else set(success)
        assert set(operation["responses"]) == successes | errors, (path, method)
        for status in errors:
            response = operation["responses"][status]
            assert response["description"], (path, method, status)
            assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}


def test_the_error_shape(schema):
    components = schema["components"]["schemas"]
    assert components["CometChatError"]["required"] == ["error"]
    detail = components["CometChatErrorDetail"]
    assert set(detail["properties"]) == {"code", "message", "status", "retry_after", "details"}
    assert set(detail["required"]) == {"code", "message", "status"}


def test_list_parameters(schema):
    parameters = {
        p["name"]: p for p in schema["paths"]["/cometchat/conversations/"]["get"]["parameters"]
    }
    assert set(parameters) == {
        "conversation_type",
        "unread",
        "search",
        "missing",
        "cursor",
        "page_size",
    }
    assert parameters["conversation_type"]["schema"]["enum"] == ["group", "user"]
    assert parameters["unread"]["schema"]["type"] == "boolean"
    assert parameters["missing"]["schema"]["type"] == "boolean"
    assert parameters["search"]["schema"]["type"] == "string"
    assert all(p["in"] == "query" and p.get("description") for p in parameters.values())


@pytest.mark.parametrize(
    "path",
    [
        "/cometchat/conversations/{conversation_id}/",
        "/cometchat/conversations/{conversation_id}/history/",
        "/cometchat/conversations/{conversation_id}/messages/",
        "/cometchat/conversations/{conversation_id}/refresh/",
    ],
)
def test_the_conversation_id_parameter(schema, path):
    operation = next(iter(schema["paths"][path].values()))
    (parameter,) = (p for p in operation["parameters"] if p["in"] == "path")
    assert parameter["name"] == "conversation_id"
    assert parameter["required"] is True
    assert parameter["schema"] == {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,206}$"}


def test_response_bodies(schema):
    components = schema["components"]["schemas"]
    paths = schema["paths"]

    def body(path, method, status):
        return paths[path][method]["responses"][status]["content"]["application/json"]["schema"]

    page = body("/cometchat/conversations/", "get", "200")["$ref"].rsplit("/", 1)[-1]
    assert set(components[page]["properties"]) == {"next", "previous", "results"}
    assert components[page]["properties"]["results"]["items"] == {
        "$ref": "#/components/schemas/CometChatConversation"
    }
    conversation = components["CometChatConversation"]["properties"]
    assert conversation["unread_message_count"]["type"] == "integer"
    assert conversation["conversation_with"]["type"] == "object"
    assert conversation["last_message"]["nullable"] is True
    detail = components["CometChatConversationDetail"]["properties"]
    assert detail["payload"]["type"] == "object"
    assert detail["history"]["format"] == "uri"
    assert body("/cometchat/conversations/refresh/", "post", "201") == {
        "$ref": "#/components/schemas/CometChatSyncRun"
    }
    messages = body("/cometchat/conversations/{conversation_id}/messages/", "get", "200")
    assert messages == {"$ref": "#/components/schemas/CometChatMessagePage"}
    message_page = components["CometChatMessagePage"]["properties"]
    assert set(message_page) == {"next", "previous", "results"}
    assert message_page["results"]["items"] == {"$ref": "#/components/schemas/CometChatMessage"}
    message = components["CometChatMessage"]["properties"]
    assert set(message) == {
        "id",
        "sender",
        "receiver",
        "receiver_type",
        "category",
        "type",
        "text",
        "sent_at",
        "edited_at",
        "deleted_at",
        "data",
    }
    assert message["data"]["type"] == "object"
    assert message["deleted_at"]["nullable"] is True
    run = components["CometChatSyncRun"]["properties"]
    assert {"status", "trigger", "error_code", "error_message", "url"} <= set(run)


def test_the_published_schema_in_docs_is_current(tmp_path):
    """docs/openapi.yaml is what the code generates; regenerate it when the API changes:
    DJANGO_SETTINGS_MODULE=tests.settings python -m django spectacular --file docs/openapi.yaml
    """

    out = tmp_path / "openapi.yaml"
    call_command("spectacular", "--file", out)
    published = ROOT / "docs" / "openapi.yaml"
    assert out.read_text() == published.read_text()
