"""UID resolvers used by the tests through COMETCHAT["UID_RESOLVER"]."""

from __future__ import annotations

from typing import Any

NOT_CALLABLE = 42


def by_username(user: Any) -> str:
    return str(user.get_username())


def uid_from_username(user: Any) -> str:
    """Test users are named "<uid>-django"."""
    return str(user.get_username()).removesuffix("-django")


def none_for_staff(user: Any) -> str | None:
    """Staff and service accounts have no CometChat user; the others are "<uid>-django"."""
    if user.is_staff or str(user.get_username()).startswith("svc-"):
        return None
    return uid_from_username(user)
