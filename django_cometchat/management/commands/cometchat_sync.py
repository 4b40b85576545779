"""``manage.py cometchat_sync``: sync CometChat conversations for some or all users.

A thin adapter: ``services.owners`` picks the owners, :class:`..batch.BatchRunner` runs
``services.sync_conversations`` for each (inline or on a thread pool), :mod:`..reporting` prints
what happened. Exits with status 1 when any owner failed, or at once, with one message, on a
failure that every owner would hit. SIGTERM or SIGINT records the runs in progress as failed
and exits with 143 or 130 (:mod:`..stopping`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_cometchat import services, tasks
from django_cometchat.batches import Totals
from django_cometchat.conversation_filters import ConversationFilters
from django_cometchat.exceptions import CometChatError
from django_cometchat.models import SyncRun
from django_cometchat.redaction import redact

from ..arguments import inline_note, int_at_least
from ..batch import BatchRunner
from ..reporting import Outcome, Reporter, plural, skipped_line
from ..stopping import stopping

if TYPE_CHECKING:  # annotations only: services create and use the client
    from ...client import CometChatClient

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Fetch CometChat conversations on behalf of users and store them. "
        "Choose the owners with --user, --uid or --all. Exits with status 1 if any owner failed."
    )

    # Users read per query by --all (keyset pagination on pk); tests shrink it.
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
            help="A CometChat UID (with the Django user bound to it, if any). Repeatable.",
        )
        who.add_argument(
            "--all",
            action="store_true",
            dest="all_users",
            help="Every active Django user, read in batches by primary key.",
        )
        parser.add_argument(
            "--concurrency",
            type=int_at_least(1),
            default=1,
            metavar="N",
            help="Sync N users at a time on N threads (default 1).",
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
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="Fetch nothing here: enqueue one sync task per owner for the task workers "
            "(Django's TASKS setting).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with stopping(self.stderr):  # SIGTERM, SIGINT: runs in progress recorded failed
            self.sync(options)

    def sync(self, options: dict[str, Any]) -> None:
        try:
            selection = services.owners(
                usernames=options["usernames"] or (),
                uids=options["uids"] or (),
                all_users=options["all_users"],
                batch_size=self.batch_size,
            )
        except CometChatError as exc:  # an unknown username, an invalid UID, a broken resolver
            raise CommandError(f"Nothing was synced: {exc.describe()}") from exc
        if options["enqueue"]:
            self.enqueue(selection, options)
            return
        self.filters = ConversationFilters(conversation_type=options["conversation_type"])
        self.dry_run: bool = options["dry_run"]
        reporter = Reporter(
            self.stdout,
            self.stderr,
            total=selection.total,
            tty=self.stdout.isatty(),
            verbosity=options["verbosity"],
            dry_run=self.dry_run,
        )
        if self.dry_run and options["verbosity"] > 0:
            self.stdout.write("Dry run: nothing will be written.")
        runner = BatchRunner(
            self.sync_one,
            concurrency=options["concurrency"],
            report=reporter.add,
            note=reporter.note,
            totals=reporter.totals,
        )
        try:
            totals = runner.run(reporter.skipping(selection))
        except CometChatError as exc:  # no client at all: a missing or broken setting
            raise CommandError(f"Nothing was synced: {exc.describe()}") from exc
        reporter.summary()
        self.conclude(totals, selection.total)

    def conclude(self, totals: Totals, total: int) -> None:
        """Fail the command, naming why, unless every selected owner synced (or was skipped)."""
        failures = "".join(f"\n  {label}: {reason}" for label, reason in totals.failures)
        rest = (
            " Run the command again to sync the rest."
            if totals.tried + totals.skipped < total
            else ""
        )
        if totals.interrupted:
            raise CommandError(
                f"Interrupted after {totals.tried} of {plural(total, 'user')} "
                f"({totals.failed} failed); pages already stored are kept.{rest}{failures}"
            )
        if totals.stopped_by is not None:
            # One call to action: the rest are synced by the same rerun that follows the fix.
            raise CommandError(
                f"Stopped after {totals.tried} of {plural(total, 'user')}: "
                f"{totals.stop_reason}\nEvery other user would fail the same way; fix that and run "
                "the command again."
            )
        if totals.failed:
            raise CommandError(
                f"{totals.failed} of {plural(totals.tried, 'user')} failed:{failures}"
            )

    def enqueue(self, selection: services.OwnerSelection, options: dict[str, Any]) -> None:
        if options["dry_run"] or options["conversation_type"] or options["concurrency"] != 1:
            raise CommandError("--enqueue takes no --dry-run, --conversation-type or --concurrency")
        refused: list[str] = []
        try:
            outcome = tasks.enqueue_syncs(
                selection.chat_users(),
                trigger=SyncRun.Trigger.COMMAND,
                skipped=lambda owner, reason: refused.append(f"\n  {owner.label}: {reason}"),
            )
        except CometChatError as exc:  # the queue refused: that owner's run is failed
            raise CommandError(f"Enqueuing stopped: {exc.describe()}") from exc
        if options["verbosity"] > 0:
            note = inline_note()
            already = ""
            if outcome.already_queued:
                already = f" ({outcome.already_queued} already queued or running)"
            self.stdout.write(
                f"Enqueued {plural(outcome.succeeded, 'sync')} of {selection.total}{already}{note}."
            )
            if selection.skipped:
                self.stdout.write(skipped_line(selection.skipped))
        refused += (f"\n  {label}: {reason}" for label, reason in outcome.failures)
        if refused:
            raise CommandError(f"{len(refused)} owner(s) could not be enqueued:{''.join(refused)}")

    def sync_one(self, owner: services.Owner, client: CometChatClient) -> Outcome:
        started = time.monotonic()
        try:
            with services.background():  # SYNC_DEADLINE, per owner
                result = services.sync_conversations(
                    owner,
                    filters=self.filters,
                    client=client,
                    trigger=SyncRun.Trigger.COMMAND,
                    dry_run=self.dry_run,
                    raise_errors=False,
                )
        except CometChatError as exc:  # the owner cannot act: no valid or a taken UID
            return Outcome(owner, None, _reason(exc), time.monotonic() - started, exc)
        except KeyboardInterrupt as exc:  # the service has recorded the run as failed
            return Outcome(owner, None, "interrupted", time.monotonic() - started, exc)
        except Exception as exc:  # one owner's surprise must not stop the others
            logger.exception("cometchat_sync: syncing %s failed", owner.label)
            reason = f"{type(exc).__name__} {redact(str(exc))}".strip()
            return Outcome(owner, None, reason, time.monotonic() - started, exc)
        elapsed = time.monotonic() - started
        if result.error is not None:
            error = result.error
            return Outcome(owner, result, _reason(error), elapsed, error)
        return Outcome(owner, result, "", elapsed)


def _reason(exc: CometChatError) -> str:
    code = getattr(exc, "code", None)
    text = exc.describe()
    return f"{code} {text}" if code and not text.startswith(code) else text
