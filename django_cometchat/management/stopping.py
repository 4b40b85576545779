"""SIGTERM and SIGINT to a command that runs syncs: record every run in progress as failed, then
exit with 128 + the signal's number (143 for SIGTERM, 130 for SIGINT).

A supervisor (systemd, Kubernetes, a deploy) stops a cron job with SIGTERM; without this its run
would stay "running" until ``SYNC_ABANDONED_AFTER`` and keep the owner's next sync waiting. On
the first signal :func:`stop` interrupts all the process's work, on every thread, through
:func:`..deadline.interrupt`: each request, socket read (blocked ones are woken), retry or wait
raises :class:`Interrupted`, and ``services.sync_conversations`` records its run failed with
``ERR_INTERRUPTED`` and "interrupted (SIGTERM)". Without worker threads the signal also raises
:class:`Interrupted` in the main thread at once; with them (``--concurrency``) the main thread
only stops handing out owners and waits for the workers to record their runs. A second signal
changes nothing: the runs are being recorded.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO

from django.core.management.base import CommandError, OutputWrapper

from .. import deadline
from ..services.errors import INTERRUPTED_CODE

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Caught:
    signum: int | None = None  # the first signal this process's command received


_caught = _Caught()


class Interrupted(KeyboardInterrupt):
    """A signal stopped the command; what it interrupted records this as its failure."""

    code = INTERRUPTED_CODE

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted ({signal.Signals(signum).name})")


def stop(signum: int) -> None:
    """Interrupt every sync of this process, on every thread (the first signal counts)."""
    if _caught.signum is None:
        _caught.signum = signum
        deadline.interrupt(lambda: Interrupted(signum))


def on_signals(callback: Callable[[int], None]) -> dict[int, Any] | None:
    """Call ``callback(signum)`` on SIGTERM and SIGINT (main thread only; None elsewhere);
    returns the handlers to put back with :func:`restore`."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {number: signal.signal(number, lambda n, _: callback(n)) for number in SIGNALS}


def restore(previous: dict[int, Any] | None) -> None:
    for number, handler in (previous or {}).items():
        signal.signal(number, handler)


@contextmanager
def stopping(stderr: OutputWrapper | TextIO) -> Iterator[None]:
    """Run a command's work so that SIGTERM or SIGINT records its runs failed and exits with
    128 + the signal's number (the command's closing message still goes to ``stderr``)."""

    def interrupt(signum: int, frame: FrameType | None = None) -> None:
        first = _caught.signum is None
        stop(signum)
        if first:
            raise Interrupted(signum)

    previous = on_signals(interrupt)
    try:
        try:
            yield
        except (CommandError, KeyboardInterrupt) as exc:
            if _caught.signum is None:
                raise
            if isinstance(exc, CommandError):
                stderr.write(f"CommandError: {exc}")
        if _caught.signum is not None:
            raise SystemExit(128 + _caught.signum)
    finally:
        restore(previous)
        _caught.signum = None
        deadline.interrupt(None)
