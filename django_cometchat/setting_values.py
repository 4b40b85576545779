"""The parsers of ``COMETCHAT`` values, one per kind of value.

Each says in words what it accepts (``accepts``): the settings reference prints that text and a
refused value's error repeats it, so the two never disagree. ``conf`` names the key in front of
the text; a parser never does (one parser serves many keys).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from .redaction import Secret

T = TypeVar("T")

KNOWN_REGIONS = ("us", "eu", "in")
# Loose on purpose: a region CometChat adds tomorrow must work without a release.
REGION_RE = re.compile(r"^[a-z]{2,12}(?:-[a-z0-9]{1,12})*$")


class Invalid(ValueError):
    """A value a parser refuses. Without a text, the error says ``must be <accepts>``; with
    one, the text replaces that (it follows ``COMETCHAT["KEY"]``: start it with a verb or an
    index such as ``[2]``)."""


@dataclass(frozen=True)
class Parser(Generic[T]):
    accepts: str  # what a valid value is, in words ("an integer >= 0")
    convert: Callable[[Any], T]  # the typed value; raises Invalid

    def __call__(self, value: Any) -> T:
        return self.convert(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(*, minimum: float = 0.0) -> Parser[float]:
    def convert(value: Any) -> float:
        if not _is_number(value) or value < minimum:
            raise Invalid
        return float(value)

    return Parser(f"a number >= {minimum:g}", convert)


def share() -> Parser[float]:
    """A fraction in (0, 1]."""

    def convert(value: Any) -> float:
        if not _is_number(value) or not 0 < value <= 1:
            raise Invalid
        return float(value)

    return Parser("a number above 0 and at most 1 (such as 0.5)", convert)


def integer(*, minimum: int, maximum: int | None = None) -> Parser[int]:
    def convert(value: Any) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            raise Invalid
        return value

    bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
    return Parser(f"an integer {bounds}", convert)


def optional(parser: Parser[T], *, none_means: str) -> Parser[T | None]:
    """``parser``'s values, or None (``none_means`` says what None does)."""

    def convert(value: Any) -> T | None:
        return None if value is None else parser(value)

    return Parser(f"{parser.accepts}, or None ({none_means})", convert)


def text() -> Parser[str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise Invalid
        return value

    return Parser("a non-empty string", convert)


def optional_text() -> Parser[str | None]:
    """A string; empty or None is unset."""

    def convert(value: Any) -> str | None:
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise Invalid(f"must be a string; got {type(value).__name__}")
        return value

    return Parser("a string, or None", convert)


def secret() -> Parser[Secret | None]:
    """A string held as a :class:`Secret`; an error never shows the value."""

    def convert(value: Any) -> Secret | None:
        return Secret(value) if (value := optional_text()(value)) else None

    return Parser("a string, or None", convert)


def clean_region(region: Any) -> Any:
    """``REGION`` as CometChat's host names it: "EU" and " eu " are "eu"."""
    return region.strip().lower() if isinstance(region, str) else region


def region() -> Parser[str]:
    def convert(value: Any) -> str:
        value = clean_region(value)
        if not isinstance(value, str) or not REGION_RE.match(value):
            raise Invalid
        return value

    return Parser(f"a region code such as {', '.join(KNOWN_REGIONS)} (in any case)", convert)


def base_url_error(base_url: Any) -> str | None:
    """Why ``base_url`` is not an acceptable URL, or None."""
    if not isinstance(base_url, str):
        return f"must be a string URL, got {type(base_url).__name__}"
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an absolute http(s) URL such as https://host/v3; got {base_url!r}"
    if parts.query or parts.fragment:
        return "must not carry a query string or fragment"
    return None


def base_url() -> Parser[str | None]:
    def convert(value: Any) -> str | None:
        if value in (None, ""):
            return None
        if problem := base_url_error(value):
            raise Invalid(problem)
        return str(value)

    return Parser("an absolute http(s) URL without query or fragment, or None", convert)


def timeout() -> Parser[tuple[float, float]]:
    def convert(value: Any) -> tuple[float, float]:
        if _is_number(value) and value > 0:
            return (float(value), float(value))
        if (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(_is_number(v) and v > 0 for v in value)
        ):
            return (float(value[0]), float(value[1]))
        raise Invalid

    return Parser("a number of seconds above 0, or a (connect, read) pair of them", convert)


def proxies() -> Parser[Mapping[str, str] | None]:
    def convert(value: Any) -> Mapping[str, str] | None:
        if value is None:
            return None
        if isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) and not base_url_error(v)
            for k, v in value.items()
        ):
            return dict(value)
        raise Invalid

    return Parser(
        'a dict of scheme ("https", "http" or "all") to proxy URL such as '
        '"http://proxy.internal:3128", or None',
        convert,
    )


def basic_auth_credentials() -> Parser[tuple[tuple[str, Secret], ...]]:
    """``["user:password", ...]`` as (user, Secret(password)) pairs; a bad entry is named by
    its position, never by its content."""

    def convert(value: Any) -> tuple[tuple[str, Secret], ...]:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise Invalid
        pairs = []
        for index, entry in enumerate(value):
            user, _, password = entry.partition(":") if isinstance(entry, str) else ("", "", "")
            if not user or not password:
                raise Invalid(f'[{index}] must be a "user:password" string')
            pairs.append((user, Secret(password)))
        return tuple(pairs)

    return Parser('a list of "user:password" strings', convert)
