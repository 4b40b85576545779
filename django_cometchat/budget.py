"""One rate budget for every process: requests per rate window, counted in Django's cache.

CometChat limits each app to a number of requests per calendar minute, across every process and
machine that uses the key (API.md §5.4). Each request takes a slot first: ``cache.incr`` on a key
named after the current window, which is atomic in Redis (``RedisCache``, the production setup)
and in one process's local memory (``LocMemCache``, when the host has nothing else). The budget
also learns:

* from ``X-Rate-Limit-Remaining``: what CometChat has left this window caps what we have left,
  so when it has fewer left than our budget minus our count (other clients of the key, a
  restart), our count is raised to match;
* from a 429: every process pauses until the time CometChat named (``Retry-After``, else the reset
  time, else the window's end).

When the window is spent, background work sleeps until the next one; on-demand work (inside a
``deadline``) waits only if the window ends before its deadline, else it raises
``CometChatBudgetExhausted`` (a ``CometChatRateLimited``: the API answers 503 with Retry-After)
and sends nothing. A cache that fails lets the request through: the budget protects CometChat's
limit, it must not take the site down with the cache.

Fairness: work a person waits for (inside :func:`on_demand_work`, which ``services.on_demand``
opens) may take at most ``ON_DEMAND_SHARE`` of each window, counted on a key of its own beside
the window's; past it, it is refused at once (nothing sent, ``retry_after`` the window's end),
so a few users spamming refresh never spend what background syncs and webhook refreshes need.
Background work takes from the whole window. Inside :func:`without_waiting` (an inline webhook,
answering CometChat within its 2 s) nothing waits for a window: what would wait is refused.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches

from . import deadline
from .conf import CometChatSettings
from .exceptions import CometChatBudgetExhausted
from .ratelimit import clamp_wait, parse_rate_limit, seconds_to_wait, window_end

logger = logging.getLogger(__name__)

# Follow the work into the page-prefetching thread (the client copies the context), and never
# into another request's thread.
_on_demand: ContextVar[bool] = ContextVar("cometchat_on_demand", default=False)
_no_wait: ContextVar[bool] = ContextVar("cometchat_no_wait", default=False)


@contextlib.contextmanager
def on_demand_work() -> Iterator[None]:
    """Requests inside the block are on-demand work: they take from ``ON_DEMAND_SHARE``."""
    token = _on_demand.set(True)
    try:
        yield
    finally:
        _on_demand.reset(token)


@contextlib.contextmanager
def without_waiting() -> Iterator[None]:
    """Requests inside the block never wait for a rate window (nor for CometChat's pause):
    where they would, they are refused (``CometChatBudgetExhausted``, nothing sent)."""
    token = _no_wait.set(True)
    try:
        yield
    finally:
        _no_wait.reset(token)


def waits_allowed() -> bool:
    """Whether work in this context may wait for a rate window (see :func:`without_waiting`)."""
    return not _no_wait.get()


@dataclass(frozen=True)
class BudgetUsage:
    """The current window's count, for a health page: all requests, and on-demand ones."""

    used: int
    limit: int
    on_demand_used: int
    on_demand_limit: int
    window_ends: float  # time.time() at which the window ends
    paused_until: float | None  # a 429's pause still running, else None
    rejected_last_hour: int = 0  # 429s CometChat answered in the last hour (by the minute)
    remaining: int | None = None  # the latest X-Rate-Limit-Remaining CometChat sent
    remaining_at: float | None = None  # time.time() at which it was read


REJECTIONS_KEPT = 60  # minutes of 429 counts kept, one key per minute
READING_TIMEOUT = 3600  # seconds the latest X-Rate-Limit-Remaining is kept
# A client writes its X-Rate-Limit-Remaining reading for the health page at most this often
# (a 429's, and the first after one, always): a cache write per answer cost a third of the
# budget's round trips.
READING_EVERY = 1.0
_OBSERVED = "_cometchat_budget_observed"


def first_sight(answer: Any) -> bool:
    """Whether the budget has not learnt from this answer (a urllib3 response) yet, marking it
    seen: the retry policy observes each answer it retries, and the client the one it gets,
    which is the retry policy's last when the retries ran out. A 429 counts once."""
    if getattr(answer, _OBSERVED, False):
        return False
    with contextlib.suppress(AttributeError):  # an object that takes no attribute: not marked
        setattr(answer, _OBSERVED, True)
    return True


class RateBudget:
    def __init__(
        self,
        *,
        per_window: int,
        window: float,
        cache_alias: str,
        app: str,
        pause_max: float = 60.0,
        on_demand_share: float = 1.0,
    ) -> None:
        self.per_window = per_window
        # At least one request, so a tiny budget still serves a person now and then.
        self.on_demand_limit = max(1, math.floor(per_window * on_demand_share))
        self.window = window
        self.cache_alias = cache_alias
        self.pause_max = pause_max  # RETRY_AFTER_MAX: the longest pause one 429 imposes
        self.prefix = f"django_cometchat:rate:{app}:{window:g}"
        # A request sent at the very end of a window may reach CometChat in the next one, so a
        # request taken in a window's last second (half a short test window) counts in both.
        self.edge = min(1.0, window / 2)
        self._reading_written = -math.inf  # when this client last wrote its reading
        self._reading_limited = False  # and whether that reading was a 429's

    @classmethod
    def for_settings(cls, settings: CometChatSettings) -> RateBudget | None:
        if settings.requests_per_minute is None:
            return None
        return cls(
            per_window=settings.requests_per_minute,
            window=settings.rate_limit_window,
            cache_alias=settings.rate_limit_cache,
            app=settings.app_id or "app",
            pause_max=settings.retry_after_max,
            on_demand_share=settings.on_demand_share,
        )

    @property
    def cache(self) -> Any:
        return caches[self.cache_alias]

    def _key(self, now: float) -> str:
        return f"{self.prefix}:{math.floor(now / self.window)}"

    def _share_key(self, now: float) -> str:
        """The on-demand count of the window ``now`` falls in."""
        return f"{self.prefix}:on-demand:{math.floor(now / self.window)}"

    def take(self, endpoint: str, *, max_wait: float | None = None) -> float:
        """Take one request's slot, waiting for the next window (or refusing) when it is spent;
        return the seconds it waited, for the caller's retry budget.

        Never waits past the on-demand deadline, nor longer than ``max_wait`` (the caller's
        retry budget) when given, nor at all inside ``without_waiting()``. A pause takes no
        slot; a slot taken in a spent window is given back before waiting, so waiting clients
        do not spend the next window's budget. On-demand work past its share of the window is
        refused at once (see the module's docstring).
        """
        if not waits_allowed():
            max_wait = 0.0
        on_demand = _on_demand.get()
        waited = 0.0
        while True:
            now = time.time()
            instants = (
                [now] if self._key(now) == self._key(now + self.edge) else [now, now + self.edge]
            )
            windows = [self._key(moment) for moment in instants]
            shares = [self._share_key(moment) for moment in instants] if on_demand else []
            try:
                paused = self.cache.get(f"{self.prefix}:paused")
                if _later(paused, now):
                    used: list[int] = []
                else:
                    share_used = [self._increment(key) for key in shares]
                    over = [n > self.on_demand_limit for n in share_used]
                    if any(over):
                        self._give_back(shares)
                        self._refuse_share(endpoint, now, instants[over.index(True)])
                    used = [self._increment(key) for key in windows]
            except CometChatBudgetExhausted:
                raise
            except Exception:  # a cache outage must not stop the site: let the request through
                logger.warning("The CometChat rate budget's cache failed", exc_info=True)
                return waited
            if not used:
                why, ends = "CometChat asked every client to pause", paused
            elif used[0] > self.per_window:
                why, ends = "the budget is spent", window_end(now, self.window)
            elif used[-1] > self.per_window:  # the next window, which this one may reach
                why, ends = (
                    "the next window's budget is spent",
                    window_end(now + self.edge, self.window),
                )
            else:
                logger.debug("CometChat rate budget: slot taken in window %s", windows[0])
                return waited
            self._give_back([*windows, *shares] if used else [])
            left = None if max_wait is None else max_wait - waited
            waited += self._wait(ends - now, endpoint, why, left)

    def _refuse_share(self, endpoint: str, now: float, moment: float) -> None:
        """On-demand work past its share: refused now, whatever its deadline would allow."""
        seconds = window_end(moment, self.window) - now
        logger.info(
            "CometChat rate budget: on-demand work used its share (%s of %s); refusing %s",
            self.on_demand_limit,
            self.per_window,
            endpoint,
        )
        raise CometChatBudgetExhausted(
            "on-demand work used its share of this rate window (ON_DEMAND_SHARE); not sending",
            endpoint=endpoint,
            code="ERR_TOO_MANY_REQUESTS",
            retry_after=seconds,
        )

    def usage(self) -> BudgetUsage:
        """The current window's counts (a cache failure is raised: a health page shows it)."""
        now = time.time()
        total, share, paused = self._key(now), self._share_key(now), f"{self.prefix}:paused"
        minute = math.floor(now / 60)
        rejections = [self._rejection_key(minute - back) for back in range(REJECTIONS_KEPT)]
        reading_key = f"{self.prefix}:remaining"
        found = self.cache.get_many([total, share, paused, reading_key, *rejections])
        pause = found.get(paused)
        reading = found.get(reading_key)
        remaining, remaining_at = reading if isinstance(reading, tuple | list) else (None, None)
        return BudgetUsage(
            used=int(found.get(total) or 0),
            limit=self.per_window,
            on_demand_used=int(found.get(share) or 0),
            on_demand_limit=self.on_demand_limit,
            window_ends=window_end(now, self.window),
            paused_until=float(pause) if _later(pause, now) else None,
            rejected_last_hour=sum(int(found.get(key) or 0) for key in rejections),
            remaining=remaining,
            remaining_at=remaining_at,
        )

    def _rejection_key(self, minute: int) -> str:
        """The count of 429s answered in one minute (epoch minutes)."""
        return f"{self.prefix}:429s:{minute}"

    def _give_back(self, keys: list[str]) -> None:
        # A key expired meanwhile, or a cache outage: nothing to give back.
        with contextlib.suppress(Exception):
            for key in keys:
                self.cache.decr(key)

    def _increment(self, key: str, timeout: int | None = None) -> int:
        # incr() first: the window's key exists for all but its first request, so the add()
        # that creates it (with its expiry) costs a round trip only then.
        cache = self.cache
        try:
            return int(cache.incr(key))
        except ValueError:  # the window's first request (or its key expired): start it
            cache.add(key, 0, timeout=timeout or math.ceil(self.window * 2) + 1)
            return int(cache.incr(key))

    def _wait(self, seconds: float, endpoint: str, why: str, max_wait: float | None) -> float:
        left = deadline.remaining()
        if (left is not None and seconds >= left) or (max_wait is not None and seconds > max_wait):
            raise CometChatBudgetExhausted(
                f"{why} for this rate window; not sending",
                endpoint=endpoint,
                code="ERR_TOO_MANY_REQUESTS",
                retry_after=seconds,
            )
        logger.info("CometChat rate budget: %s; waiting %.1fs", why, seconds)
        deadline.sleep(max(seconds, 0.0) + 0.001)
        return max(seconds, 0.0)

    def used(self) -> int:
        """Requests counted so far in the current window, as the shared cache holds them (0 at
        a window's start); raises what the cache raises when it fails (for metrics and health
        checks, which must tell a dead cache from an idle one)."""
        return int(self.cache.get(self._key(time.time())) or 0)

    def reset(self) -> None:
        """Forget the pause and the counts of the windows around now (for tests)."""
        now = time.time()
        moments = [now + offset * self.window for offset in (-1, 0, 1)]
        keys = [key(moment) for moment in moments for key in (self._key, self._share_key)]
        try:
            self.cache.delete_many([f"{self.prefix}:paused", *keys])
        except Exception:
            logger.warning("The CometChat rate budget's cache failed", exc_info=True)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from an answer's rate-limit headers (and from a 429, pause everyone). Each
        answer once (see :func:`first_sight`): a 429 is counted for the health page."""
        try:
            now = time.time()
            info = parse_rate_limit(headers)
            if info.remaining is not None and self._reading_due(status, now):
                self.cache.set(  # the health page's latest reading
                    f"{self.prefix}:remaining", (info.remaining, now), timeout=READING_TIMEOUT
                )
            if status == 429:
                minute = math.floor(now / 60)
                self._increment(self._rejection_key(minute), timeout=REJECTIONS_KEPT * 60 + 60)
                wait = seconds_to_wait(headers, now=now)
                until = now + (wait if wait is not None else window_end(now, self.window) - now)
                until = now + min(clamp_wait(until - now), self.pause_max)
                current = self.cache.get(f"{self.prefix}:paused")
                if current is None or current < until:
                    self.cache.set(
                        f"{self.prefix}:paused", until, timeout=math.ceil(until - now) + 1
                    )
                return
            if info.remaining is None:
                return
            # What CometChat has left this window caps what we have left: behind our count
            # (another client of the key, a restart) or behind a budget set above the plan.
            # Usually it has more left than our whole budget: nothing to learn, no cache read.
            floor = self.per_window - info.remaining
            if floor <= 0:
                return
            key = self._key(now)
            ours = self.cache.get(key) or 0
            if floor > ours:
                self._catch_up(key, floor, floor - ours)
        except Exception:
            logger.warning("The CometChat rate budget's cache failed", exc_info=True)

    def _reading_due(self, status: int, now: float) -> bool:
        """Whether this answer's remaining count is written for the health page: once per
        ``READING_EVERY`` a client, and always for a 429 and the answer after one (so the page
        never shows a pause's 0 once it is over)."""
        limited = status == 429
        if not (limited or self._reading_limited or now - self._reading_written >= READING_EVERY):
            return False
        self._reading_written, self._reading_limited = now, limited
        return True

    def _catch_up(self, key: str, floor: int, missing: int) -> None:
        """Raise the window's count to ``floor`` without one atomic "max": add what was missing,
        then give back what a racing learner had already added (two processes that read the
        same count would otherwise both add it, spending the window for everyone). Between the
        two the count is briefly high, and a request taken in that instant waits as if the
        window were spent: rare, and never an overrun."""
        cache = self.cache
        cache.add(key, 0, timeout=math.ceil(self.window * 2) + 1)
        counted = int(cache.incr(key, missing))
        excess = min(missing, counted - floor)
        if excess > 0:
            cache.decr(key, excess)


def _later(paused: Any, now: float) -> bool:
    """Whether a stored pause (a timestamp, or None) is still running."""
    return paused is not None and paused > now
