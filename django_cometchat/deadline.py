"""One overall deadline for on-demand work: connects, reads, retries and every page.

A person waiting on the API or the admin must get an answer within ``WEB_DEADLINE`` seconds,
whatever CometChat does: a slow first byte, a trickling body, a run of 429s, ten pages. The
services open ``with deadline(seconds):`` around on-demand work; inside it the client clips every
timeout to what is left, the retry policy never sleeps past it, and the body reader checks it
between chunks. Background work runs without one (and waits as long as its retry budget allows).

Held in a context variable, so it follows the work into the page-prefetching thread (the client
copies the context) and never leaks into another request's thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .exceptions import CometChatDeadlineExceeded

# (monotonic time at which the deadline passes, its length in seconds)
_deadline: ContextVar[tuple[float, float] | None] = ContextVar("cometchat_deadline", default=None)

MIN_TIMEOUT = 0.05  # never hand a socket a zero or negative timeout


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Work inside the block must finish within ``seconds`` (None: no deadline). Nested blocks
    keep the earlier of the two deadlines."""
    if seconds is None:
        yield
        return
    end = time.monotonic() + seconds
    current = _deadline.get()
    token = _deadline.set(current if current is not None and current[0] <= end else (end, seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the deadline (may be negative), or None outside any deadline."""
    current = _deadline.get()
    return None if current is None else current[0] - time.monotonic()


def check(endpoint: str = "") -> None:
    """Raise ``CometChatDeadlineExceeded`` once the deadline has passed."""
    current = _deadline.get()
    if current is not None and current[0] - time.monotonic() <= 0:
        raise CometChatDeadlineExceeded(endpoint=endpoint, seconds=current[1])


def clip(seconds: float) -> float:
    """``seconds``, or what is left of the deadline if that is less."""
    left = remaining()
    return seconds if left is None else max(MIN_TIMEOUT, min(seconds, left))
