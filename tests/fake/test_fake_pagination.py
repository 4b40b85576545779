"""The fake can page like CometChat's older reference says it does (API.md §0.5): ``total_pages``
only telling whether another page follows, ``total`` useless, keys missing altogether."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from django_cometchat.testing import FakeCometChat
from tests.fake.test_fake_server import call

PEERS = ("bob", "carol", "dave", "erin", "frank")


@pytest.fixture
def fake(cometchat_fake_server: FakeCometChat) -> Iterator[FakeCometChat]:
    """alice has five conversations; the app has six users."""
    fake = cometchat_fake_server
    fake.reset()
    fake.add_user("alice")
    for peer in PEERS:
        fake.add_user(peer)
        fake.send_message(peer, to_user="alice")
    yield fake
    fake.reset()


def pagination(fake: FakeCometChat, path: str = "/conversations", **params: Any) -> Any:
    response = call(fake, path, "alice", **params)
    assert response.status_code == 200, response.text
    return response.json()["meta"]["pagination"]


def test_exact_is_the_default(fake: FakeCometChat) -> None:
    assert fake.options.pagination_mode == "exact"
    assert pagination(fake, perPage=2, page=2) == {
        "total": 5,
        "count": 2,
        "per_page": 2,
        "current_page": 2,
        "total_pages": 3,
    }


def test_lookahead_says_only_whether_another_page_follows(fake: FakeCometChat) -> None:
    fake.configure(pagination_mode="lookahead")
    seen = [
        (p["total"], p["count"], p["current_page"], p["total_pages"])
        for p in (pagination(fake, perPage=2, page=page) for page in (1, 2, 3, 4))
    ]
    assert seen == [(0, 2, 1, 2), (0, 2, 2, 3), (0, 1, 3, 3), (0, 0, 4, 4)]
    # A last page that is full: total_pages stops there too.
    assert pagination(fake, perPage=5, page=1)["total_pages"] == 1
    users = pagination(fake, "/users", perPage=4, page=1)
    assert (users["total"], users["total_pages"]) == (0, 2)
    assert pagination(fake, "/users", perPage=4, page=2)["total_pages"] == 2


def test_lookahead_walk_ends_on_current_page_reaching_total_pages(fake: FakeCometChat) -> None:
    fake.configure(pagination_mode="lookahead")
    ids: list[str] = []
    announced: list[int] = []
    page = 1
    while True:
        body = call(fake, "/conversations", "alice", perPage=2, page=page).json()
        ids += [c["conversationId"] for c in body["data"]]
        meta = body["meta"]["pagination"]
        announced.append(meta["total_pages"])
        if meta["current_page"] >= meta["total_pages"]:
            break
        page += 1
    assert announced == [2, 3, 3]
    assert sorted(ids) == sorted(f"alice_user_{peer}" for peer in PEERS)


def test_chosen_keys_can_be_left_out(fake: FakeCometChat) -> None:
    fake.configure(omit_pagination_keys={"total_pages"})
    assert fake.options.omit_pagination_keys == frozenset({"total_pages"})
    assert set(pagination(fake, perPage=2)) == {"total", "count", "per_page", "current_page"}
    fake.configure(omit_pagination_keys=["current_page", "total_pages"])
    full_page = pagination(fake, perPage=2)
    assert full_page == {"total": 5, "count": 2, "per_page": 2}
    assert set(pagination(fake, "/users")) == {"total", "count", "per_page"}
    fake.configure(pagination_mode="lookahead")
    assert pagination(fake, perPage=2) == {"total": 0, "count": 2, "per_page": 2}


def test_pagination_options_come_back_on_reset(fake: FakeCometChat) -> None:
    fake.configure(pagination_mode="lookahead")
    fake.configure(omit_pagination_keys={"total"})
    fake.reset()
    assert (fake.options.pagination_mode, fake.options.omit_pagination_keys) == (
        "exact",
        frozenset(),
    )
    with FakeCometChat(pagination_mode="lookahead", omit_pagination_keys=["total"]) as other:
        other.add_user("alice")
        assert pagination(other, perPage=2) == {
            "count": 0,
            "per_page": 2,
            "current_page": 1,
            "total_pages": 1,
        }
        other.configure(pagination_mode="exact")
        other.reset()
        assert (
            str(other.options.pagination_mode) == "lookahead"
        )  # str(): mypy narrowed it to "exact"


def test_pagination_options_are_checked(fake: FakeCometChat) -> None:
    with pytest.raises(ValueError, match="pagination_mode"):
        fake.configure(pagination_mode="cursor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown pagination keys next"):
        fake.configure(omit_pagination_keys={"next"})
    with pytest.raises(ValueError, match="pagination_mode"):
        FakeCometChat(pagination_mode="pages")  # type: ignore[arg-type]
    assert fake.options.pagination_mode == "exact"
