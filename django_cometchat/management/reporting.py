"""What ``cometchat_sync`` prints: a line per owner (or a progress bar on a terminal) and a summary.

Kept apart from the command so the command stays an adapter: pick the owners, run the service for
each, hand every outcome to the reporter.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.core.management.base import OutputWrapper

from ..batches import Totals
from ..services import Owner, SyncResult


@dataclass(frozen=True)
class Outcome:
    """How syncing one owner went. ``reason`` is empty when it succeeded; ``error`` is what
    failed it (for the stop rule, :func:`~django_cometchat.batches.stops_batch`)."""

    owner: Owner
    result: SyncResult | None
    reason: str
    elapsed: float
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return not self.reason and self.error is None

    @property
    def interrupted(self) -> bool:
        return isinstance(self.error, KeyboardInterrupt)

    @property
    def label(self) -> str:
        return self.owner.label


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def skipped_line(count: int) -> str:
    return f"Skipped {count} (no CometChat user)."


class Reporter:
    """Per-owner lines (or a progress bar on a terminal) and the closing summary table."""

    BAR_WIDTH = 30

    def __init__(
        self,
        out: OutputWrapper,
        err: OutputWrapper,
        *,
        total: int,
        tty: bool,
        verbosity: int,
        dry_run: bool,
    ) -> None:
        self.out = out
        self.err = err
        self.total = total
        self.tty = tty and verbosity > 0
        self.verbosity = verbosity
        self.dry_run = dry_run
        self.totals = Totals(noun="owners")
        self.started = time.monotonic()
        self._bar_length = 0

    def skipping(self, owners: Iterable[Owner]) -> Iterator[Owner]:
        """The owners, less those with no CometChat user, which are counted (and named at
        verbosity 2) instead of synced."""
        for owner in owners:
            if not owner.no_chat_user:
                yield owner
                continue
            self.totals.skipped += 1
            if self.verbosity >= 2:
                self._clear_bar()
                self.out.write(f"{owner.label}: skipped (no CometChat user)")
            if self.tty:
                self._draw_bar()

    def add(self, outcome: Outcome) -> None:
        """Show one owner's outcome (the runner has counted it in ``totals``)."""
        if self.verbosity == 0:
            return
        if self.tty:
            if not outcome.ok or self.verbosity >= 2:  # failures stay on screen above the bar
                self._clear_bar()
                self.out.write(self.line(outcome))
            self._draw_bar()
        else:
            self.out.write(self.line(outcome))

    def line(self, outcome: Outcome) -> str:
        label = outcome.label
        if outcome.interrupted:
            return f"{label}: INTERRUPTED"
        if not outcome.ok:
            return f"{label}: FAILED {outcome.reason}"
        result = outcome.result
        assert result is not None
        unchanged = result.unchanged + result.stale
        if self.dry_run:
            counts = (
                f"would create {result.created}, would update {result.updated}, "
                f"unchanged {unchanged}"
            )
        else:
            counts = (
                f"created {result.created}, updated {result.updated}, "
                f"unchanged {unchanged}, missing {result.missing}"
            )
        if result.stale:
            counts += f" ({result.stale} stale)"
        return (
            f"{label}: {counts} ({plural(result.pages, 'page')}, "
            f"{plural(result.requests, 'request')}) in {outcome.elapsed:.2f}s"
        )

    def note(self, message: str) -> None:
        """A message on stderr that does not garble the progress bar."""
        if self.verbosity > 0:
            self._clear_bar()
            self.err.write(message)

    def _draw_bar(self) -> None:
        done = self.totals.tried + self.totals.skipped
        filled = self.BAR_WIDTH * done // self.total if self.total else self.BAR_WIDTH
        bar = "#" * filled + "." * (self.BAR_WIDTH - filled)
        text = (
            f"\r[{bar}] {done}/{self.total} users, {self.totals.failed} failed, "
            f"{time.monotonic() - self.started:.0f}s"
        )
        self._bar_length = len(text) - 1
        self.out.write(text, ending="")
        self.out.flush()

    def _clear_bar(self) -> None:
        if self._bar_length:
            self.out.write("\r" + " " * self._bar_length + "\r", ending="")
            self._bar_length = 0

    def summary(self) -> None:
        if self.verbosity == 0:
            return
        if self.tty and self._bar_length:
            self.out.write("")  # end the bar's line
            self._bar_length = 0
        t = self.totals
        columns = (
            ("users", t.tried),
            ("succeeded", t.succeeded),
            ("failed", t.failed),
            ("created", t.synced.created),
            ("updated", t.synced.updated),
            ("unchanged", t.synced.kept),
            ("missing", t.synced.missing),
            ("pages", t.synced.pages),
            ("requests", t.synced.requests),
            ("elapsed", f"{time.monotonic() - self.started:.2f}s"),
        )
        widths = [max(len(name), len(str(value))) for name, value in columns]
        header = "  ".join(name.rjust(w) for (name, _), w in zip(columns, widths, strict=True))
        values = "  ".join(str(v).rjust(w) for (_, v), w in zip(columns, widths, strict=True))
        title = "Summary (dry run: nothing was written)" if self.dry_run else "Summary"
        self.out.write(f"\n{title}\n{header}\n{values}")
        if t.skipped:
            self.out.write(skipped_line(t.skipped))
