"""One overall deadline for a unit of work: connects, reads, retries and every page.

A person waiting on the API or the admin must get an answer within ``WEB_DEADLINE`` seconds,
whatever CometChat does: a slow first byte, a trickling body, a run of 429s, ten pages; a sync,
refresh or webhook event run by a command or a task must end within ``SYNC_DEADLINE``. The
services open ``with deadline(seconds, setting=...):`` around such work; inside it the client
clips every timeout, down to each socket read's, to what is left, and the retry policy never
sleeps past it. The setting's name goes into the error, so an operator knows what to raise.

Held in a context variable, so it follows the work into the page-prefetching thread (the client
copies the context) and never leaks into another request's thread.

:func:`interrupt` is process-wide instead: a command's signal handler uses it to stop all work
on every thread at once, as if every deadline had passed, raising the exception it gives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .exceptions import CometChatDeadlineExceeded

# (monotonic time at which the deadline passes, its length in seconds, the setting naming it)
_deadline: ContextVar[tuple[float, float, str] | None] = ContextVar(
    "cometchat_deadline", default=None
)

MIN_TIMEOUT = 0.05  # never hand a socket a zero or negative timeout


class _Interruption:
    """Process-wide: what each interrupted check raises (see interrupt()); what wakes waiters."""

    def __init__(self) -> None:
        self.make: Callable[[], BaseException] | None = None
        self.woken = threading.Event()
        self.wakers: list[Callable[[], None]] = []


_interruption = _Interruption()


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
    keep = current is not None and current[0] <= end
    token = _deadline.set(current if keep else (end, seconds, setting))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the deadline (may be negative), or None outside any deadline; 0
    once the process is interrupted."""
    if _interruption.make is not None:
        return 0.0
    current = _deadline.get()
    return None if current is None else current[0] - time.monotonic()


def check(endpoint: str = "") -> None:
    """Raise ``CometChatDeadlineExceeded`` once the deadline has passed (the interruption,
    once the process is interrupted)."""
    if (stopped := interruption()) is not None:
        raise stopped
    current = _deadline.get()
    if current is not None and current[0] - time.monotonic() <= 0:
        raise CometChatDeadlineExceeded(endpoint=endpoint, seconds=current[1], setting=current[2])


def clip(seconds: float) -> float:
    """``seconds``, or what is left of the deadline if that is less."""
    left = remaining()
    return seconds if left is None else max(MIN_TIMEOUT, min(seconds, left))


def sleep(seconds: float) -> None:
    """``time.sleep``, cut short when the process is interrupted."""
    _interruption.woken.wait(max(seconds, 0.0))


def interrupt(make: Callable[[], BaseException] | None) -> None:
    """Stop all work of this process, every thread: each later check, socket read, retry or
    wait fails at once with ``make()``, and sleepers and blocked socket reads are woken.
    ``None`` lifts it."""
    _interruption.make = make
    if make is None:
        _interruption.woken.clear()
        return
    _interruption.woken.set()
    for wake in list(_interruption.wakers):
        wake()


def interruption() -> BaseException | None:
    """The exception work of this process is interrupted with, or None."""
    make = _interruption.make
    return None if make is None else make()


def on_interrupt(wake: Callable[[], None]) -> None:
    """Call ``wake()`` when the process is interrupted (to unblock what waits on a socket)."""
    _interruption.wakers.append(wake)
