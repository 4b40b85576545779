"""Reading CometChat's rate-limit headers, in both spellings the sources use.

Official docs: ``X-Rate-Limit``, ``X-Rate-Limit-Remaining``, ``X-Rate-Limit-Reset``; the unofficial
docs: ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Reset``. Header lookups on
``requests``/``urllib3`` objects are case-insensitive already.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping

from .exceptions import RateLimitInfo

LIMIT_HEADERS = ("X-Rate-Limit", "X-Rate-Limit-Limit", "X-RateLimit-Limit", "X-RateLimit")
REMAINING_HEADERS = ("X-Rate-Limit-Remaining", "X-RateLimit-Remaining")
RESET_HEADERS = ("X-Rate-Limit-Reset", "X-RateLimit-Reset")

_DIGITS = re.compile(r"^\s*\d+\s*$")


def _first_int(headers: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = headers.get(name)
        if value is not None and _DIGITS.match(value):
            return int(value)
    return None


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimitInfo:
    return RateLimitInfo(
        limit=_first_int(headers, LIMIT_HEADERS),
        remaining=_first_int(headers, REMAINING_HEADERS),
        reset=_first_int(headers, RESET_HEADERS),
    )


def seconds_to_wait(
    headers: Mapping[str, str], *, now: float | None = None, use_reset: bool = True
) -> float | None:
    """How long the server asked us to wait: ``Retry-After``, else the rate-limit reset time.

    ``Retry-After`` may be delta-seconds or an HTTP date (RFC 9110). Returns None when neither
    header says anything usable.
    """
    now = time.time() if now is None else now
    retry_after = headers.get("Retry-After")
    if retry_after is not None:
        if _DIGITS.match(retry_after):
            return float(int(retry_after))
        parsed = email.utils.parsedate_tz(retry_after)
        if parsed is not None:
            return max(0.0, email.utils.mktime_tz(parsed) - now)
    reset = _first_int(headers, RESET_HEADERS) if use_reset else None
    if reset is not None:
        return max(0.0, reset - now)
    return None
