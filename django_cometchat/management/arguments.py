"""Argument types shared by the commands."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import timedelta

from .. import tasks

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum``, with a clear error."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
        return number

    return parse


def duration(value: str) -> timedelta:
    """An argparse type: a number and a unit, ``90s``, ``15m``, ``2h`` or ``1d``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", value)
    if not match:
        raise argparse.ArgumentTypeError(
            f"expected a number and a unit (s, m, h or d), such as 15m; got {value!r}"
        )
    return timedelta(seconds=int(match[1]) * DURATION_UNITS[match[2]])


def inline_note() -> str:
    """What a command that enqueues adds when no worker runs the tasks (they ran inline)."""
    return "" if tasks.queues() else " (no task worker is configured: they ran inline)"
