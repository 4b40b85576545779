"""The retry policy: urllib3's ``Retry``, taught CometChat's rate-limit headers and a time budget.

Mounted on the client's ``requests`` session through ``HTTPAdapter``, so urllib3 does the loop;
we only decide how long to wait and when to give up:

* GETs are retried on connection errors, read timeouts, 429 and every 5xx;
* the wait is ``Retry-After``, else ``X-Rate-Limit-Reset`` minus now (capped by
  ``retry_after_max``), else exponential backoff with jitter (capped by ``backoff_max``);
* a *budget* bounds the total seconds one call may sleep, and the deadline (:mod:`.deadline`)
  bounds it further. A retry that would overrun either is not attempted: the last 429/5xx
  response is handed back (and mapped to an exception by the client), or the connection error
  is raised. A web request fails fast; a background sync waits;
* the answer being retried is drained (so its connection serves the retry) only up to
  ``DRAIN_MAX`` bytes on the wire, undecoded, and each read within the deadline; a longer one
  loses its connection instead. urllib3's own drain would read all of it, decompressed.

``retry_budget(seconds)`` lowers the budget for every call made inside its block, in this context
(thread or task), whichever client makes them.

``attempt_clock()`` tells the caller when the attempt that was answered left: its start, moved
forward each time a retry is about to be sent (after its wait). The sync orders stored rows by it.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.utils import timezone
from urllib3.exceptions import HTTPError, MaxRetryError
from urllib3.util.retry import Retry

from . import deadline
from .budget import first_sight, waits_allowed
from .ratelimit import seconds_to_wait

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

    from typing_extensions import Self
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

    from .budget import RateBudget

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, *range(500, 600)})
DRAIN_MAX = 64 * 1024  # bytes of an answer being retried read to keep its connection

# A per-call override of the budget (see retry_budget()); None means "the policy's".
_call_budget: ContextVar[float | None] = ContextVar("cometchat_retry_budget", default=None)


@contextmanager
def retry_budget(seconds: float) -> Iterator[None]:
    """Within this block, calls may sleep at most ``seconds`` in total between retries."""
    token = _call_budget.set(seconds)
    try:
        yield
    finally:
        _call_budget.reset(token)


class AttemptClock:
    """When the latest attempt of one call left: set before the first send, moved forward by
    :meth:`CometChatRetry.sleep` just before each retry goes out. :meth:`answered` reports each
    attempt's end to ``on_answer`` (status or None, seconds since that attempt left)."""

    def __init__(self, on_answer: Callable[[int | None, float], None] | None = None) -> None:
        self.on_answer = on_answer
        self.mark()

    def mark(self) -> None:
        self.sent_at: datetime = timezone.now()
        self.started = time.monotonic()

    def answered(self, status: int | None) -> None:
        if self.on_answer is not None:
            self.on_answer(status, time.monotonic() - self.started)


_attempt: ContextVar[AttemptClock | None] = ContextVar("cometchat_attempt", default=None)


@contextmanager
def attempt_clock(
    on_answer: Callable[[int | None, float], None] | None = None,
) -> Iterator[AttemptClock]:
    """Around one call: ``clock.sent_at`` is when the attempt that was answered left (the
    first send, or the last retry). Enter it right before the request is sent. The retry
    policy reports each attempt it retries to ``on_answer``; the caller reports the last."""
    clock = AttemptClock(on_answer)
    token = _attempt.set(clock)
    try:
        yield clock
    finally:
        _attempt.reset(token)


def current_budget(default: float) -> float:
    """The budget in force for this call: a ``retry_budget()`` block's, else ``default``."""
    override = _call_budget.get()
    return default if override is None else override


class CometChatRetry(Retry):
    def __init__(
        self,
        *args: Any,
        budget: float = 120.0,
        server_wait_max: float = 60.0,
        slept: float = 0.0,
        next_wait: float = 0.0,
        rate_budget: RateBudget | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget
        self.server_wait_max = server_wait_max
        self.slept = slept  # seconds already slept in this call's retry chain
        self.next_wait = next_wait  # decided in increment(), spent in sleep()
        # The shared request budget: every retry is a request too, and every 429 pauses all.
        self.rate_budget = rate_budget

    @classmethod
    def for_settings(
        cls,
        *,
        max_retries: int,
        backoff_factor: float,
        backoff_max: float,
        server_wait_max: float,
        budget: float,
        rate_budget: RateBudget | None = None,
    ) -> CometChatRetry:
        return cls(
            total=max_retries,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=backoff_factor,
            raise_on_status=False,  # hand the last 429/5xx back; the client maps it
            raise_on_redirect=False,
            redirect=0,
            budget=budget,
            server_wait_max=server_wait_max,
            rate_budget=rate_budget,
        )

    def new(self, **kw: Any) -> Self:
        kw.setdefault("budget", self.budget)
        kw.setdefault("server_wait_max", self.server_wait_max)
        kw.setdefault("slept", self.slept)
        kw.setdefault("rate_budget", self.rate_budget)
        return super().new(**kw)

    def _wait_for(self, response: BaseHTTPResponse | None) -> float:
        if response is not None and self.respect_retry_after_header:
            # The reset time is a wait instruction only on a 429; on a 5xx it is just the
            # window's end, and waiting for it would stall a retry for up to a minute.
            asked = seconds_to_wait(response.headers, use_reset=response.status == 429)
            if asked is not None:
                return min(asked, self.server_wait_max)
        return self.get_backoff_time()

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if response is not None and self.rate_budget is not None and first_sight(response):
            self.rate_budget.observe(response.status, response.headers)
        new_retry = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = new_retry._wait_for(response)
        budget = current_budget(self.budget)
        left = deadline.remaining()
        if response is not None and response.status == 429 and not waits_allowed():
            # A 429 is CometChat's window spent: work that may not wait for one stops here.
            logger.info("Not retrying %s: a 429, and this work does not wait", method)
            raise MaxRetryError(_pool, url or "", Exception("a 429; not waiting"))  # type: ignore[arg-type]
        if new_retry.slept + wait > budget or (left is not None and wait >= left):
            limit = (
                f"the {budget:g}s retry budget" if left is None or wait < left else "the deadline"
            )
            logger.info("Not retrying %s: waiting %.1fs would pass %s", method, wait, limit)
            reason = error or Exception(f"retrying would pass {limit}")
            raise MaxRetryError(_pool, url or "", reason) from reason  # type: ignore[arg-type]
        new_retry.next_wait = wait
        clock = _attempt.get()
        if clock is not None:  # an attempt that is retried ends here (the last: the caller's)
            clock.answered(None if response is None else response.status)
        if response is not None:
            drain(response)
        return new_retry

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        if self.next_wait > 0:
            deadline.sleep(self.next_wait)
            self.slept += self.next_wait
        self.next_wait = 0.0
        if self.rate_budget is not None:
            # The retry about to be sent takes a slot too, within what is left of the budget.
            # Its wait counts against the retry budget like a backoff does.
            left = current_budget(self.budget) - self.slept
            self.slept += self.rate_budget.take(self._endpoint(), max_wait=max(left, 0.0))
        clock = _attempt.get()
        if clock is not None:  # the retry leaves now: the answer, if one comes, is from here
            clock.mark()

    def _endpoint(self) -> str:
        """The request being retried, as errors name it (``GET /users/...``)."""
        if not self.history:
            return "a retry"
        last = self.history[-1]
        return f"{last.method or 'GET'} {urlsplit(last.url or '').path}"


def drain(response: BaseHTTPResponse) -> None:
    """Read what is left of an answer about to be retried, bounded in bytes and (by the
    clipped socket reads) in time; one that does not end within ``DRAIN_MAX`` bytes, or fails,
    is closed with its connection. urllib3's ``drain_conn()`` that follows then reads nothing."""
    try:
        ended = len(response.read(DRAIN_MAX + 1, decode_content=False)) <= DRAIN_MAX
    except (HTTPError, OSError):  # timed out (the deadline), cut off
        ended = False
    if not ended:
        logger.info("Not draining the answer before retrying: closing its connection")
        response.close()
