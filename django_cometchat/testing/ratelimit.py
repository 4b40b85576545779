"""The fake server's per-app request budget and its rate-limit headers.

CometChat counts every call of an app against one budget per calendar minute (API.md §0.2,
§5.4). Here windows are aligned to multiples of ``window`` seconds since the epoch (60 by
default, so calendar minutes; tests shrink it), and a request counts in the window of the moment
it was received. Without a budget (``per_minute=None``) nothing is refused and the headers
advertise CometChat's standard 20,000/min with a remaining count that never drops, so a
client's own slow-down never kicks in.

Headers follow the live API: every answer carries the limit and the remaining count; the reset
time (``X-Rate-Limit-Reset``, epoch seconds) and ``Retry-After`` (whole seconds, at least 1) come
only with a 429, unless the reset header is asked for on every answer (``always_reset``).

Stdlib only; no Django.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Literal, get_args

HeaderStyle = Literal["hyphen", "compact", "both"]
HEADER_STYLES: tuple[str, ...] = get_args(HeaderStyle)
ResetHeader = Literal["429", "always"]
RESET_HEADERS: tuple[str, ...] = get_args(ResetHeader)

UNLIMITED_NOMINAL = 20_000

_NAMES: dict[str, tuple[str, str, str]] = {
    # official docs: X-Rate-Limit, X-Rate-Limit-Remaining, X-Rate-Limit-Reset
    "hyphen": ("X-Rate-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"),
    # the unofficial docs: X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset
    "compact": ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"),
}


def header_names(style: HeaderStyle) -> list[tuple[str, str, str]]:
    """(limit, remaining, reset) header names for each spelling ``style`` sends."""
    return [_NAMES[name] for name in (("hyphen", "compact") if style == "both" else (style,))]


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # Unix epoch second at which the window ends
    retry_after: int  # whole seconds until then, at least 1

    def headers(self, style: HeaderStyle, *, always_reset: bool = False) -> list[tuple[str, str]]:
        """Limit and remaining in ``style``; the reset and ``Retry-After`` only when refused
        (the reset also with ``always_reset``)."""
        out: list[tuple[str, str]] = []
        for limit_h, remaining_h, reset_h in header_names(style):
            out += [(limit_h, str(self.limit)), (remaining_h, str(self.remaining))]
            if always_reset or not self.allowed:
                out.append((reset_h, str(self.reset_at)))
        if not self.allowed:
            out.append(("Retry-After", str(self.retry_after)))
        return out


class RateLimiter:
    """A request budget per epoch-aligned window, shared by every request to the fake."""

    def __init__(self, per_minute: int | None = None, *, window: float = 60.0) -> None:
        self._lock = threading.Lock()
        self.window = _check_window(window)
        self.per_minute = _check_budget(per_minute)
        self._used: dict[int, int] = {}  # window index -> requests counted

    def configure(self, per_minute: int | None, *, window: float | None = None) -> None:
        """Set a new budget (None = unlimited); counting starts again from zero."""
        with self._lock:
            self.per_minute = _check_budget(per_minute)
            if window is not None:
                self.window = _check_window(window)
            self._used.clear()

    def hit(self, *, consume: bool = True, now: float | None = None) -> RateDecision:
        """Count one request received at ``now`` (default: this moment) unless ``consume`` is
        False, and say whether it may proceed."""
        when = time.time() if now is None else now
        with self._lock:
            index = math.floor(when / self.window)
            end = (index + 1) * self.window
            reset_at = math.ceil(end)
            retry_after = max(1, math.ceil(end - when))
            budget = self.per_minute
            if budget is None:
                return RateDecision(
                    True, UNLIMITED_NOMINAL, UNLIMITED_NOMINAL, reset_at, retry_after
                )
            used = self._used.get(index, 0)
            if consume:
                if used >= budget:
                    return RateDecision(False, budget, 0, reset_at, retry_after)
                used = self._used[index] = used + 1
                # Threads may finish out of order, so keep the previous window's count too.
                for old in [key for key in self._used if key < index - 1]:
                    del self._used[old]
            return RateDecision(True, budget, budget - used, reset_at, retry_after)


def _check_budget(per_minute: int | None) -> int | None:
    if per_minute is not None and (isinstance(per_minute, bool) or per_minute < 0):
        raise ValueError("rate limit must be a non-negative integer or None")
    return per_minute


def _check_window(window: float) -> float:
    if window <= 0:
        raise ValueError("rate_limit_window must be positive")
    return float(window)
