"""``manage.py cometchat_sync``: sync CometChat conversations for some or all users.

A thin adapter over :func:`django_cometchat.services.sync_conversations`: it picks the owners,
runs the service for each (serially or on a small thread pool), reports what happened and exits
with status 1 when any owner failed. All HTTP, transactions and ``SyncRun`` bookkeeping live in
the service.
"""

from __future__ import annotations

import argparse
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import connections

from django_cometchat import services
from django_cometchat.client import CometChatClient
from django_cometchat.conf import get_settings
from django_cometchat.exceptions import CometChatBadRequest, CometChatConfigurationError
from django_cometchat.ids import validate_id
from django_cometchat.models import SyncRun

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # how often idle threads look for work / the main thread for results


@dataclass(frozen=True)
class Target:
    """One owner to sync: a Django user (``uid`` None) or a bare CometChat ``uid``."""

    label: str
    user: Any = None
    uid: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How syncing one target went. ``reason`` is empty when it succeeded."""

    target: Target
    result: services.SyncResult | None
    reason: str
    elapsed: float
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.reason and not self.interrupted

    @property
    def label(self) -> str:
        uid = self.result.run.owner_uid if self.result is not None else None
        if uid and uid != self.target.label:
            return f"{self.target.label} (uid {uid})"
        return self.target.label


@dataclass
class Totals:
    users: int = 0
    succeeded: int = 0
    failed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0
    pages: int = 0
    requests: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.users += 1
        result = outcome.result
        if result is not None:
            self.created += result.created
            self.updated += result.updated
            self.unchanged += result.kept
            self.missing += result.missing
            self.pages += result.pages
            self.requests += result.requests
        if outcome.ok:
            self.succeeded += 1
        else:
            self.failed += 1
            self.failures.append((outcome.label, outcome.reason))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, CometChatBadRequest):  # CometChatUserError from resolve_uid
        return f"{exc.code or type(exc).__name__} {exc.api_message}".strip()
    return f"{type(exc).__name__} {exc}".strip()


class Reporter:
    """Per-user lines (or a progress bar on a terminal) and the closing summary table."""

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
        self.totals = Totals()
        self.started = time.monotonic()
        self._bar_length = 0

    def add(self, outcome: Outcome) -> None:
        self.totals.add(outcome)
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
            f"{label}: {counts} ({_plural(result.pages, 'page')}, "
            f"{_plural(result.requests, 'request')}) in {outcome.elapsed:.2f}s"
        )

    def _draw_bar(self) -> None:
        done = self.totals.users
        filled = self.BAR_WIDTH * done // self.total if self.total else self.BAR_WIDTH
        bar = "#" * filled + "." * (self.BAR_WIDTH - filled)
        text = (
            f"\r[{bar}] {done}/{self.total} users, {self.totals.failed} failed, "
            f"{time.monotonic() - self.started:.0f}s"
        )
        self._bar_length = len(text) - 1
        self.out.write(text, ending="")
        self.out.flush()

    def note(self, message: str) -> None:
        """A message on stderr that does not garble the progress bar."""
        if self.verbosity > 0:
            self._clear_bar()
            self.err.write(message)

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
        elapsed = f"{time.monotonic() - self.started:.2f}s"
        columns = (
            ("users", t.users),
            ("succeeded", t.succeeded),
            ("failed", t.failed),
            ("created", t.created),
            ("updated", t.updated),
            ("unchanged", t.unchanged),
            ("missing", t.missing),
            ("pages", t.pages),
            ("requests", t.requests),
            ("elapsed", elapsed),
        )
        widths = [max(len(name), len(str(value))) for name, value in columns]
        header = "  ".join(name.rjust(w) for (name, _), w in zip(columns, widths, strict=True))
        values = "  ".join(str(v).rjust(w) for (_, v), w in zip(columns, widths, strict=True))
        title = "Summary (dry run: nothing was written)" if self.dry_run else "Summary"
        self.out.write(f"\n{title}\n{header}\n{values}")


class Command(BaseCommand):
    help = (
        "Fetch CometChat conversations on behalf of users and store them. "
        "Choose the owners with --user, --uid or --all. Exits with status 1 if any owner failed."
    )

    # Users fetched per query by --all (keyset pagination on pk); tests shrink it.
    batch_size = 500

    def add_arguments(self, parser: CommandParser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument(
            "--user",
            action="append",
            dest="usernames",
            metavar="USERNAME",
            help="A Django user, by username (USERNAME_FIELD). Repeat for several users.",
        )
        who.add_argument(
            "--uid",
            action="append",
            dest="uids",
            metavar="UID",
            help="A CometChat UID with no Django user. Repeat for several UIDs.",
        )
        who.add_argument(
            "--all",
            action="store_true",
            dest="all_users",
            help="Every active Django user, read in batches by primary key.",
        )
        parser.add_argument(
            "--concurrency",
            type=_positive_int,
            default=1,
            metavar="N",
            help="Sync N users at a time on N threads, each with its own client (default 1).",
        )
        parser.add_argument(
            "--conversation-type",
            choices=("user", "group"),
            help="Only fetch one-to-one ('user') or group conversations. A filtered sync "
            "never marks conversations missing.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Fetch and compare, but write nothing (no conversations, no SyncRun rows).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        concurrency: int = options["concurrency"]
        sync_kwargs: dict[str, Any] = {"dry_run": dry_run}
        if options["conversation_type"]:
            sync_kwargs["conversation_type"] = options["conversation_type"]

        targets, total = self._targets(options)
        clients = self._clients(concurrency)
        reporter = Reporter(
            self.stdout,
            self.stderr,
            total=total,
            tty=self.stdout.isatty(),
            verbosity=options["verbosity"],
            dry_run=dry_run,
        )
        if dry_run and options["verbosity"] > 0:
            self.stdout.write("Dry run: nothing will be written.")
        interrupted = False
        try:
            if concurrency == 1:
                interrupted = self._run_serially(targets, clients[0], sync_kwargs, reporter)
            else:
                interrupted = self._run_threaded(targets, clients, sync_kwargs, reporter)
        except KeyboardInterrupt:  # between two users, or while waiting for the threads
            interrupted = True
        finally:
            for client in clients:
                client.close()
        reporter.summary()

        totals = reporter.totals
        failures = "".join(f"\n  {label}: {reason}" for label, reason in totals.failures)
        if interrupted:
            rest = " Run the command again to sync the rest." if totals.users < total else ""
            raise CommandError(
                f"Interrupted after {totals.users} of {_plural(total, 'user')} "
                f"({totals.failed} failed); pages already stored are kept.{rest}{failures}"
            )
        if totals.failed:
            raise CommandError(
                f"{totals.failed} of {_plural(totals.users, 'user')} failed:{failures}"
            )

    # -- who to sync ---------------------------------------------------------------------------

    def _targets(self, options: dict[str, Any]) -> tuple[Iterator[Target], int]:
        if options["uids"]:
            uids = list(dict.fromkeys(self._valid_uid(raw) for raw in options["uids"]))
            return iter([Target(uid, None, uid) for uid in uids]), len(uids)
        self._check_resolver()
        if options["usernames"]:
            users = self._users_by_name(list(dict.fromkeys(options["usernames"])))
            return iter([Target(str(u.get_username()), u) for u in users]), len(users)
        return self._all_active_users()

    @staticmethod
    def _valid_uid(raw: str) -> str:
        try:
            return validate_id(raw, "UID")
        except CometChatBadRequest as exc:
            raise CommandError(f"--uid: {exc.api_message}") from exc

    @staticmethod
    def _check_resolver() -> None:
        """Fail once, up front, when UID_RESOLVER cannot be imported (not once per user)."""
        try:
            get_settings().uid_resolver()
        except CometChatConfigurationError as exc:
            raise CommandError(str(exc)) from exc

    @staticmethod
    def _users_by_name(names: list[str]) -> list[Any]:
        user_model = get_user_model()
        field_name = user_model.USERNAME_FIELD
        found = {
            str(u.get_username()): u
            for u in user_model._default_manager.filter(**{f"{field_name}__in": names})
        }
        unknown = [name for name in names if name not in found]
        if unknown:
            raise CommandError(
                f"No user with {field_name} {', '.join(map(repr, unknown))}; nothing was synced."
            )
        return [found[name] for name in names]

    def _all_active_users(self) -> tuple[Iterator[Target], int]:
        """Active users in pk order, ``batch_size`` per query (keyset pagination).

        Each batch is a short query of its own: no server-side cursor is held open for the hours
        a large sync can take (which PgBouncer in transaction mode would not allow anyway).
        """
        user_model = get_user_model()
        users = user_model._default_manager.all()
        try:
            user_model._meta.get_field("is_active")
        except FieldDoesNotExist:
            pass
        else:
            users = users.filter(is_active=True)
        total = users.count()
        batch_size = self.batch_size

        def walk() -> Iterator[Target]:
            after: Any = None
            while True:
                page = users.order_by("pk")
                if after is not None:
                    page = page.filter(pk__gt=after)
                batch = list(page[:batch_size])
                for user in batch:
                    yield Target(str(user.get_username()), user)
                if len(batch) < batch_size:
                    return
                after = batch[-1].pk

        return walk(), total

    @staticmethod
    def _clients(n: int) -> list[CometChatClient]:
        try:
            return [CometChatClient() for _ in range(n)]
        except CometChatConfigurationError as exc:  # names the missing key, never a value
            raise CommandError(str(exc)) from exc

    # -- running -------------------------------------------------------------------------------

    @staticmethod
    def _sync_one(target: Target, client: CometChatClient, sync_kwargs: dict[str, Any]) -> Outcome:
        started = time.monotonic()
        try:
            result = services.sync_conversations(
                target.user,
                uid=target.uid,
                client=client,
                trigger=SyncRun.Trigger.COMMAND,
                raise_errors=False,
                **sync_kwargs,
            )
        except services.CometChatUserError as exc:  # the resolver gave no usable UID
            return Outcome(target, None, _failure_reason(exc), time.monotonic() - started)
        except KeyboardInterrupt:  # the service has recorded the run as failed
            return Outcome(target, None, "interrupted", time.monotonic() - started, True)
        except Exception as exc:  # one user's surprise must not stop the others
            logger.exception("cometchat_sync: syncing %s failed", target.label)
            return Outcome(target, None, _failure_reason(exc), time.monotonic() - started)
        elapsed = time.monotonic() - started
        if not result.ok:
            run = result.run
            reason = f"{run.error_code} {run.error_message}".strip() or "failed"
            return Outcome(target, result, reason, elapsed)
        return Outcome(target, result, "", elapsed)

    def _run_serially(
        self,
        targets: Iterator[Target],
        client: CometChatClient,
        sync_kwargs: dict[str, Any],
        reporter: Reporter,
    ) -> bool:
        """Sync one user after another; True when interrupted."""
        for target in targets:
            outcome = self._sync_one(target, client, sync_kwargs)
            reporter.add(outcome)
            if outcome.interrupted:
                return True
        return False

    def _run_threaded(
        self,
        targets: Iterator[Target],
        clients: list[CometChatClient],
        sync_kwargs: dict[str, Any],
        reporter: Reporter,
    ) -> bool:
        """Sync on ``len(clients)`` threads, each with its own client; True when interrupted."""
        return _ThreadedRun(self._sync_one, sync_kwargs, reporter, len(clients)).run(
            targets, clients
        )


class _ThreadedRun:
    """N workers pulling from a bounded queue; at most about 2N users are in flight.

    The main thread feeds the queue and reports results. On Ctrl-C it stops feeding, the
    workers finish the user they are on (each page is its own transaction) and skip the rest,
    and the partial results are reported.
    """

    def __init__(
        self,
        sync_one: Callable[[Target, CometChatClient, dict[str, Any]], Outcome],
        sync_kwargs: dict[str, Any],
        reporter: Reporter,
        workers: int,
    ) -> None:
        self.sync_one = sync_one
        self.sync_kwargs = sync_kwargs
        self.reporter = reporter
        self.work: queue.Queue[Target] = queue.Queue(maxsize=workers)
        self.results: queue.Queue[Outcome] = queue.Queue()
        self.no_more = threading.Event()  # every target has been queued
        self.stop = threading.Event()  # abandon what is still queued

    def run(self, targets: Iterator[Target], clients: list[CometChatClient]) -> bool:
        """Feed, wait and report; True when interrupted (Ctrl-C while feeding or waiting)."""
        with ThreadPoolExecutor(len(clients), thread_name_prefix="cometchat_sync") as pool:
            futures = [pool.submit(self.worker, client) for client in clients]
            try:
                try:
                    self.feed(targets)
                except KeyboardInterrupt:
                    self.interrupt()
                self.no_more.set()
                # Running syncs cannot be cut short from this thread, so further Ctrl-Cs only
                # stop the feeding; every finished user is still reported.
                while not all(f.done() for f in futures):
                    try:
                        self.report_ready(POLL_SECONDS)
                    except KeyboardInterrupt:
                        self.interrupt()
                self.report_ready()
            except BaseException:  # anything else: let the workers wind down, then go
                self.stop.set()
                raise
            finally:
                self.no_more.set()
        for future in futures:
            future.result()  # a bug in the worker loop itself is not swallowed
        return self.stop.is_set()

    def interrupt(self) -> None:
        if not self.stop.is_set():
            self.stop.set()
            self.reporter.note(
                "Interrupted: waiting for the users in progress to finish; the rest are skipped."
            )

    def feed(self, targets: Iterator[Target]) -> None:
        for target in targets:
            while True:
                try:
                    self.work.put(target, timeout=POLL_SECONDS)
                    break
                except queue.Full:
                    self.report_ready()
            self.report_ready()

    def worker(self, client: CometChatClient) -> None:
        try:
            while not self.stop.is_set():
                try:
                    target = self.work.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    # no_more is set only after the last put, so an empty queue stays empty.
                    if self.no_more.is_set() and self.work.empty():
                        return
                    continue
                self.results.put(self.sync_one(target, client, self.sync_kwargs))
        finally:
            connections.close_all()  # this thread's connections only

    def report_ready(self, timeout: float | None = None) -> None:
        """Report every finished user, waiting up to ``timeout`` for the first one."""
        try:
            first = self.results.get(timeout=timeout) if timeout else self.results.get_nowait()
            self.reporter.add(first)
            while True:
                self.reporter.add(self.results.get_nowait())
        except queue.Empty:
            pass


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number
