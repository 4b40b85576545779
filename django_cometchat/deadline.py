"""One overall deadline for a unit of work: connects, reads, retries and every page.

A person waiting on the API or the admin must get an answer within ``WEB_DEADLINE`` seconds,
whatever CometChat does: a slow first byte, a trickling body, a run of 429s, ten pages; a sync,
refresh or webhook event run by a command or a task must end within ``SYNC_DEADLINE``. The
services open ``with deadline(seconds, setting=...):`` around such work; inside it the client
clips every timeout, down to each socket read's, to what is left, and the retry policy never
sleeps past it. The setting's name goes into the error, so an operator knows what to raise.

Held in a context variable, so it follows the work into the page-prefetching thread (the client
copies the context) and never leaks into another request's thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .exceptions import CometChatDeadlineExceeded

# (monotonic time at which the deadline passes, its length in seconds, the setting naming it)
_deadline: ContextVar[tuple[float, float, str] | None] = ContextVar("cometchat_deadline", default=None)

MIN_TIMEOUT = 0.05  # never hand a socket a zero or negative timeout


@contextmanager
def deadline(seconds: float | None, *, setting: str = "") -> Iterator[None]:
    """Work inside the block must finish within ``seconds`` (None: no deadline); ``setting``
    names where the limit comes from (``"SYNC_DEADLINE"``), for the error. Nested blocks keep
    the earlier of the two deadlines."""
    if seconds is None:
        yield
        return
    end = time.monotonic() + seconds
    current = _deadline.get()
    token = _deadline.set(current if current is not None and current[0] <= end else (end, seconds, setting))
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
        raise CometChatDeadlineExceeded(endpoint=endpoint, seconds=current[1], setting=current[2])


def clip(seconds: float) -> float:
    """``seconds``, or what is left of the deadline if that is less."""
    left = remaining()
    return seconds if left is None else max(MIN_TIMEOUT, min(seconds, left))
