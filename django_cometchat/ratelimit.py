"""CometChat's rate-limit headers, in both spellings the sources use, and how long they ask us to
wait.

Official docs: ``X-Rate-Limit``, ``X-Rate-Limit-Remaining``, ``X-Rate-Limit-Reset``; the unofficial
docs: ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Reset``. Header lookups on
``requests``/``urllib3`` objects are case-insensitive already. Normal answers carry only the limit
and what remains of the current window; ``Retry-After`` and the reset time come with a 429
(API.md §0.2). The window is the calendar minute, per app.

Every wait read from a header is clamped (``MAX_WAIT``): an upstream that asks for a billion
seconds gets an hour at most, and fractional seconds are honoured.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping

from .exceptions import RateLimitInfo

LIMIT_HEADERS = ("X-Rate-Limit", "X-Rate-Limit-Limit", "X-RateLimit-Limit", "X-RateLimit")
REMAINING_HEADERS = ("X-Rate-Limit-Remaining", "X-RateLimit-Remaining")
RESET_HEADERS = ("X-Rate-Limit-Reset", "X-RateLimit-Reset")

MAX_WAIT = 3600.0  # the longest wait any header can make us (or our callers) observe

# ASCII digits, blanks around them: \s and \d would also accept characters int() refuses.
_DIGITS = re.compile(r"[ \t]*[0-9]{1,20}[ \t]*")
_SECONDS = re.compile(r"[ \t]*[0-9]{1,12}(?:\.[0-9]{1,9})?[ \t]*")


def _first_int(headers: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = headers.get(name)
        if value is not None and _DIGITS.fullmatch(value):
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

    ``Retry-After`` may be (fractional) delta-seconds or an HTTP date (RFC 9110). The result is
    clamped to ``[0, MAX_WAIT]``; None when neither header says anything usable.
    """
    now = time.time() if now is None else now
    retry_after = headers.get("Retry-After")
    if retry_after is not None:
        if _SECONDS.fullmatch(retry_after):
            return clamp_wait(float(retry_after))
        parsed = email.utils.parsedate_tz(retry_after)
        if parsed is not None:
            try:
                return clamp_wait(email.utils.mktime_tz(parsed) - now)
            except (OverflowError, ValueError):
                return MAX_WAIT
    reset = _first_int(headers, RESET_HEADERS) if use_reset else None
    if reset is not None:
        return clamp_wait(reset - now)
    return None


def clamp_wait(seconds: float) -> float:
    return min(MAX_WAIT, max(0.0, seconds))


def whole_seconds(seconds: float | None, *, default: int = 60) -> int:
    """A wait as the whole seconds a ``Retry-After`` header carries: rounded up, at least 1,
    at most ``MAX_WAIT``."""
    if seconds is None or seconds <= 0:
        return default
    return int(min(MAX_WAIT, max(1, math.ceil(seconds))))


def window_end(now: float, window: float) -> float:
    """When the rate window holding ``now`` ends (windows are aligned to multiples of ``window``
    seconds since the epoch: calendar minutes for 60)."""
    return (math.floor(now / window) + 1) * window
