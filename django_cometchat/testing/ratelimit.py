"""The fake server's per-app request budget and its ``X-Rate-Limit*`` headers.

CometChat counts every call of an app against one budget per minute (API.md §5.4). Here the budget
is a fixed window that opens at the first request and lasts ``window`` seconds (60 by default; tests
shrink it). Without a budget (``per_minute=None``) nothing is refused and the headers advertise
CometChat's standard 20,000/min with a remaining count that never drops, so a client's own
slow-down never kicks in.

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

UNLIMITED_NOMINAL = 20_000

_NAMES: dict[str, tuple[str, str, str]] = {
    # official docs: X-Rate-Limit, X-Rate-Limit-Remaining, X-Rate-Limit-Reset
    "hyphen": ("X-Rate-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"),
    # the unofficial docs: X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset
    "compact": ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"),
}


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # Unix epoch seconds at which the window ends
    retry_after: int  # whole seconds until then, at least 1

    def headers(self, style: HeaderStyle) -> list[tuple[str, str]]:
        """The rate-limit headers in ``style`` (plus ``Retry-After`` when refused)."""
        styles = ("hyphen", "compact") if style == "both" else (style,)
        out: list[tuple[str, str]] = []
        for name in styles:
            limit_h, remaining_h, reset_h = _NAMES[name]
            out += [
                (limit_h, str(self.limit)),
                (remaining_h, str(self.remaining)),
                (reset_h, str(self.reset_at)),
            ]
        if not self.allowed:
            out.append(("Retry-After", str(self.retry_after)))
        return out


class RateLimiter:
    """A fixed-window request budget shared by every request to the fake."""

    def __init__(self, per_minute: int | None = None, *, window: float = 60.0) -> None:
        if window <= 0:
            raise ValueError("rate_limit_window must be positive")
        self._lock = threading.Lock()
        self.window = float(window)
        self.per_minute = _check_budget(per_minute)
        self._start: float | None = None
        self._used = 0

    def configure(self, per_minute: int | None, *, window: float | None = None) -> None:
        """Set a new budget (None = unlimited) and start a fresh window."""
        with self._lock:
            self.per_minute = _check_budget(per_minute)
            if window is not None:
                if window <= 0:
                    raise ValueError("rate_limit_window must be positive")
                self.window = float(window)
            self._start = None
            self._used = 0

    def hit(self, *, consume: bool = True) -> RateDecision:
        """Count one request (unless ``consume`` is False) and say whether it may proceed."""
        with self._lock:
            now = time.monotonic()
            if self._start is None or now >= self._start + self.window:
                self._start = now
                self._used = 0
            left = self._start + self.window - now
            reset_at = math.ceil(time.time() + left)
            retry_after = max(1, math.ceil(left))
            budget = self.per_minute
            if budget is None:
                return RateDecision(
                    True, UNLIMITED_NOMINAL, UNLIMITED_NOMINAL, reset_at, retry_after
                )
            if consume:
                if self._used >= budget:
                    return RateDecision(False, budget, 0, reset_at, retry_after)
                self._used += 1
            return RateDecision(True, budget, budget - self._used, reset_at, retry_after)


def _check_budget(per_minute: int | None) -> int | None:
    if per_minute is not None and (isinstance(per_minute, bool) or per_minute < 0):
        raise ValueError("rate limit must be a non-negative integer or None")
    return per_minute
