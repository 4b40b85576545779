"""Compressed answers on the real wire: the fake compresses as a real server does, the client
decodes gzip and deflate, caps the *decompressed* size, and refuses what it cannot decode.

API.md says nothing about compression; CometChat's answers are taken to behave as any HTTP/1.1
server's do (RFC 9110 §8.4: ``Content-Encoding`` gzip or deflate when ``Accept-Encoding`` admits
it). Error bodies follow API.md §5.1 (the published ``pin-user-conversation.403.json`` example
and the fake's ``ERR_MISSION_FAILED`` envelope, §5.2).
"""

from __future__ import annotations

import gzip
import http.client
import json
import tracemalloc
import zlib
from typing import Any

import pytest
import requests

from django_cometchat.client import CometChatClient
from django_cometchat.exceptions import (
    CometChatForbidden,
    CometChatNotFound,
    CometChatResponseError,
    CometChatServerError,
)
from django_cometchat.models import Conversation
from django_cometchat.services import sync_conversations
from django_cometchat.testing import FakeCometChat, Fault
from django_cometchat.testing.answer import accepts
from tests.client.test_client import api_requests
from tests.fake.test_fake_contract import load_fixture

TIMEOUT = 5
MIB = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
# zlib (RFC 1950) streams start with CMF 0x78 (deflate, 32 KiB window)
ZLIB_MAGIC = b"\x78"


def encodings_seen(client: CometChatClient) -> list[str | None]:
    """The ``Content-Encoding`` of every answer the client's session receives (requests' own
    response hook: it runs before the body is read)."""
    seen: list[str | None] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append(response.headers.get("Content-Encoding"))

    client.session.hooks["response"].append(hook)
    return seen


def raw_get(
    fake: FakeCometChat, path: str = "/users/bob", accept_encoding: str | None = "gzip, deflate"
) -> tuple[http.client.HTTPResponse, bytes]:
    """The answer and its body exactly as sent (http.client decodes nothing and adds no
    ``Accept-Encoding`` of its own here)."""
    connection = http.client.HTTPConnection(fake.host, fake.port, timeout=TIMEOUT)
    try:
        connection.putrequest("GET", f"/v3{path}", skip_accept_encoding=True)
        connection.putheader("apikey", fake.api_key)
        if accept_encoding is not None:
            connection.putheader("Accept-Encoding", accept_encoding)
        connection.endheaders()
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


# -- the fake compresses as a real server does -----------------------------------------------------


def test_the_fake_gzips_every_answer_the_client_gets_by_default(chat, client_for):
    """The suite exercises compression everywhere only if this holds: the shipped fixture's
    fake gzips, and the client asks for gzip, deflate (never br or zstd, even if installed)."""
    client = client_for()
    seen = encodings_seen(client)
    assert client.get_user("bob").name == "Bob Stone"
    assert len(list(client.list_conversations(on_behalf_of="alice"))) == 3
    assert seen == ["gzip", "gzip"]
    assert {r.headers["accept-encoding"] for r in api_requests(chat)} == {"gzip, deflate"}
    response, body = raw_get(chat)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert int(response.headers["Content-Length"]) == len(body)
    assert body.startswith(GZIP_MAGIC)
    assert json.loads(gzip.decompress(body))["data"]["uid"] == "bob"


@pytest.mark.parametrize(
    ("compression", "accept_encoding", "sent"),
    [
        ("gzip", "gzip, deflate", "gzip"),
        ("gzip", "x-gzip", "gzip"),
        ("gzip", "*", "gzip"),
        ("gzip", "deflate", None),
        ("gzip", "gzip;q=0, deflate", None),
        ("gzip", "*, gzip;q=0", None),
        ("gzip", "identity", None),
        ("gzip", None, None),  # no Accept-Encoding at all: identity
        ("deflate", "gzip, deflate", "deflate"),
        ("deflate", "gzip", None),
        ("off", "gzip, deflate", None),
    ],
)
def test_the_fake_compresses_only_what_the_request_accepts(
    chat, compression, accept_encoding, sent
):
    chat.configure(compression=compression)
    response, body = raw_get(chat, accept_encoding=accept_encoding)
    assert response.headers.get("Content-Encoding") == sent
    plain = gzip.decompress(body) if sent == "gzip" else zlib.decompress(body) if sent else body
    assert json.loads(plain)["data"]["uid"] == "bob"
    if sent == "deflate":
        assert body.startswith(ZLIB_MAGIC)  # HTTP's "deflate" is the zlib format


def test_accept_encoding_weights():
    assert accepts("gzip;q=0.5", "gzip")
    assert accepts("GZIP ; Q=1", "gzip")
    assert not accepts("gzip;q=0.0", "gzip")
    assert not accepts("gzip;q=nonsense", "gzip")
    assert not accepts("", "gzip")


def test_compression_is_an_option_that_reset_restores(cometchat_fake_server):
    fake = cometchat_fake_server
    fake.configure(compression="off")
    assert fake.options.compression == "off"
    fake.reset()
    assert fake.options.compression == "gzip"
    with pytest.raises(ValueError, match="compression must be one of gzip, deflate, off"):
        FakeCometChat(compression="br")  # type: ignore[arg-type]


# Which faults are compressed: those about the content are, those about the bytes are not.
FAULTS = [
    (Fault("status", status=404), "gzip"),
    (Fault("status", status=200, body=b'{"data": []}'), None),  # bytes go out as given
    (Fault("wrong_shape"), "gzip"),
    (Fault("transform", transform=lambda body: {"data": [body["data"]]}), "gzip"),
    (Fault("truncate"), None),
    (Fault("trickle", chunk_size=4096, pause=0), None),
    (Fault("html"), None),
    (Fault("empty"), None),
    (Fault("oversize", size=1000), None),
    (Fault("gzip_bomb", size=1000), "gzip"),
]


@pytest.mark.parametrize(("fault", "sent"), FAULTS, ids=[f.kind for f, _ in FAULTS])
def test_which_faults_are_compressed(chat, fault, sent):
    chat.inject(fault)
    response, body = raw_get(chat)
    assert response.headers.get("Content-Encoding") == sent
    assert body.startswith(GZIP_MAGIC) == (sent == "gzip")


def test_a_gzip_bomb_is_valid_gzip_a_thousandth_of_its_size_whatever_was_accepted(chat):
    size = 5 * MIB + 3
    chat.inject(Fault("gzip_bomb", size=size))
    response, body = raw_get(chat, accept_encoding="identity")
    assert response.status == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert int(response.headers["Content-Length"]) == len(body) < size // 500
    plain = gzip.decompress(body)  # checks the CRC and length in the trailer too
    assert len(plain) == size
    assert json.loads(plain)["data"] == []
    chat.inject(Fault("gzip_bomb", size=size, chunked=True))
    response, chunked_body = raw_get(chat)
    assert "Content-Length" not in response.headers
    assert chunked_body == body


# -- the client reads compressed answers ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("compression", ["gzip", "deflate", "off"])
def test_a_multi_page_sync_reads_every_compression(
    cometchat_fake, client_for, django_user_model, compression
):
    cometchat_fake.configure(compression=compression)
    peers = cometchat_fake.bulk_conversations("owner", 25)
    owner = django_user_model.objects.create_user(username="owner-django")
    client = client_for(PAGE_SIZE=10, UID_RESOLVER="tests.resolvers.uid_from_username")
    seen = encodings_seen(client)
    result = sync_conversations(owner, client=client)
    assert (result.pages, result.created) == (3, 25)
    assert seen == [None if compression == "off" else compression] * 3
    stored = Conversation.objects.filter(owner=owner)
    assert sorted(c.peer_uid for c in stored) == sorted(peers)
    assert all(c.payload["conversationWith"]["uid"] == c.peer_uid for c in stored)


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_a_compressed_cometchat_error_is_mapped_like_any_other(chat, client_for, compression):
    chat.configure(compression=compression)
    client = client_for(MAX_RETRIES=0)
    seen = encodings_seen(client)
    published = load_fixture("pin-user-conversation.403.json")  # API.md §5.1
    chat.fail_next(status=403, body=published)
    with pytest.raises(CometChatForbidden) as forbidden:
        client.get_user("bob")
    assert forbidden.value.code == "ERR_SYSTEM_PINNED_CONVERSATION"
    assert str(forbidden.value).startswith(
        "ERR_SYSTEM_PINNED_CONVERSATION (HTTP 403) on GET /users/bob: The conversation is pinned"
    )
    chat.fail_next(status=500)  # the fake's ERR_MISSION_FAILED envelope (API.md §5.2)
    with pytest.raises(CometChatServerError) as failed:
        client.get_user("bob")
    assert failed.value.code == "ERR_MISSION_FAILED"
    assert seen == [compression, compression]


def test_a_compressed_503_is_retried_and_the_retry_read(chat, client_for):
    chat.fail_next(status=503)
    client = client_for(MAX_RETRIES=1)
    seen = encodings_seen(client)
    assert client.get_user("bob").uid == "bob"
    assert seen == ["gzip"]  # the hook sees the last answer; the 503 was compressed too
    assert [r.status for r in api_requests(chat)] == [503, 200]


def gzip_of(document: Any) -> bytes:
    return gzip.compress(json.dumps(document).encode())


@pytest.mark.parametrize(
    ("encoding", "body", "problem"),
    [
        ("br", b"\x1b\x07\x00\xf8", r"encoded with 'br', which the client cannot decode"),
        ("zstd", b"(\xb5/\xfd", r"encoded with 'zstd', which the client cannot decode"),
        ("gzip, br", gzip_of({"data": []}), r"encoded with 'br'"),
        ("gzip", b"\x1f\x8b\x08\x00 this is not gzip", r"the gzip body could not be decompressed"),
        ("deflate", b"no zlib here at all", r"the deflate body could not be decompressed"),
        # A gzip stream cut short, on a complete HTTP message: what was decoded is not JSON.
        ("gzip", gzip_of({"data": {"uid": "bob"}})[:-12], r"invalid or truncated JSON"),
    ],
)
def test_a_body_that_cannot_be_decoded_is_a_response_error(
    chat, client_for, encoding, body, problem
):
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    chat.fail_next(status=200, body=body, headers=headers)
    with pytest.raises(CometChatResponseError, match=problem) as info:
        client_for().get_user("bob")
    assert str(info.value).startswith("GET /users/bob: ")


def test_an_error_in_an_unknown_encoding_is_still_mapped_by_its_status(chat, client_for):
    headers = {"Content-Type": "application/json", "Content-Encoding": "br"}
    chat.fail_next(status=404, body=b"\x1b\x07\x00\xf8", headers=headers)
    with pytest.raises(CometChatNotFound, match=r"\(HTTP 404\) on GET /users/bob: Not Found"):
        client_for().get_user("bob")


# -- decompression bombs ---------------------------------------------------------------------


def deflate_bomb(size: int) -> bytes:
    """A zlib ("deflate") body that expands to ``size`` bytes of JSON."""
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(b'{"data":[],"padding":"')]
    block = b"x" * MIB
    parts += [compressor.compress(block) for _ in range(size // MIB)]
    parts.append(compressor.compress(b'"}') + compressor.flush())
    return b"".join(parts)


def bomb(kind: str) -> Fault:
    if kind == "deflate":
        headers = {"Content-Type": "application/json", "Content-Encoding": "deflate"}
        return Fault("status", status=200, body=deflate_bomb(64 * MIB), headers=headers)
    # 300 MB from ~300 KB on the wire: its Content-Length is below the cap, only the
    # decompressed size can tell.
    return Fault("gzip_bomb", size=300_000_000, chunked=kind == "gzip, chunked")


@pytest.mark.parametrize("kind", ["gzip", "gzip, chunked", "deflate"])
def test_a_decompression_bomb_stops_at_the_cap_without_growing_memory(chat, client_for, kind):
    cap = MIB
    client = client_for(MAX_RESPONSE_BYTES=cap, MAX_RETRIES=0)
    chat.inject(bomb(kind))
    tracemalloc.start()
    try:
        with pytest.raises(CometChatResponseError) as info:
            client.get_user("bob")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(info.value).startswith(
        f"GET /users/bob: the decompressed response body is larger than {cap} bytes (at least "
    )
    assert 'COMETCHAT["MAX_RESPONSE_BYTES"]' in str(info.value)
    # Everything Python allocated meanwhile (the body so far, urllib3's and zlib's buffers, the
    # fake's writes): about one 64 KiB chunk over the cap plus small change, never the 64-300 MB
    # the body expands to (urllib3 before 2.6 decoded a whole raw read at once: ~64 MB).
    print(f"\n{kind} bomb under a {cap} byte cap: tracemalloc peak {peak} bytes")
    assert peak < cap + MIB
