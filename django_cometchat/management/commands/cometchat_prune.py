"""``manage.py cometchat_prune``: delete old conversation snapshots, sync runs, webhook events and
records of staff message reads.

A thin adapter over :func:`django_cometchat.services.prune_history`,
:func:`~django_cometchat.services.prune_sync_runs`,
:func:`~django_cometchat.services.prune_webhook_events` and
:func:`django_cometchat.message_reads.prune_message_access`. Each conversation's latest snapshot,
each owner's latest finished run, every run still queued or running and every webhook event
still waiting for a worker are always kept, whatever the options say.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_cometchat import services
from django_cometchat.conf import get_settings
from django_cometchat.exceptions import CometChatConfigurationError
from django_cometchat.message_reads import prune_message_access

from ..arguments import int_at_least
from ..reporting import plural


class Command(BaseCommand):
    help = (
        "Delete conversation snapshots older than --max-age-days and/or beyond the newest --keep "
        "per conversation (defaults: COMETCHAT['HISTORY_MAX_AGE_DAYS'] and "
        "COMETCHAT['HISTORY_KEEP_PER_CONVERSATION']), finished sync runs started more than "
        "--sync-runs-days ago (default: COMETCHAT['SYNC_RUNS_MAX_AGE_DAYS'], 30), and webhook "
        "events received more than --webhook-events-days ago (default: "
        "COMETCHAT['WEBHOOK_EVENTS_MAX_AGE_DAYS'], 30), and records of staff message reads "
        "older than --message-access-days (default: COMETCHAT['MESSAGE_ACCESS_MAX_AGE_DAYS'], "
        "None: kept). Each conversation's latest snapshot, "
        "each owner's latest finished run, any run queued or running and any event still "
        "waiting for a worker is kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-age-days",
            type=int_at_least(0),
            metavar="N",
            help="Delete snapshots fetched more than N days ago "
            "(default: COMETCHAT['HISTORY_MAX_AGE_DAYS']).",
        )
        parser.add_argument(
            "--keep",
            type=int_at_least(1),
            metavar="N",
            help="Keep only the newest N snapshots of each conversation "
            "(default: COMETCHAT['HISTORY_KEEP_PER_CONVERSATION']).",
        )
        parser.add_argument(
            "--sync-runs-days",
            type=int_at_least(0),
            metavar="N",
            help="Delete finished sync runs started more than N days ago "
            "(default: COMETCHAT['SYNC_RUNS_MAX_AGE_DAYS']).",
        )
        parser.add_argument(
            "--webhook-events-days",
            type=int_at_least(0),
            metavar="N",
            help="Delete webhook events received more than N days ago "
            "(default: COMETCHAT['WEBHOOK_EVENTS_MAX_AGE_DAYS']).",
        )
        parser.add_argument(
            "--message-access-days",
            type=int_at_least(0),
            metavar="N",
            help="Delete records of staff message reads (MessageAccess) made more than N days "
            "ago (default: COMETCHAT['MESSAGE_ACCESS_MAX_AGE_DAYS']; None keeps them).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be deleted; delete nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            conf = get_settings()
        except CometChatConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        dry_run: bool = options["dry_run"]
        self._prune_history(conf, options["max_age_days"], options["keep"], dry_run)
        self._prune_sync_runs(conf, options["sync_runs_days"], dry_run)
        self._prune_webhook_events(conf, options["webhook_events_days"], dry_run)
        days = options["message_access_days"]
        self._prune_older(
            days if days is not None else conf.message_access_max_age_days,
            setting="MESSAGE_ACCESS_MAX_AGE_DAYS",
            word="message access record",
            prune=prune_message_access,
            rule="staff message reads made more than {days} days ago",
            dry_run=dry_run,
        )

    def _prune_history(
        self, conf: Any, max_age_days: int | None, keep: int | None, dry_run: bool
    ) -> None:
        if max_age_days is None:
            max_age_days = conf.history_max_age_days
        if keep is None:
            keep = conf.history_keep_per_conversation
        if max_age_days is None and keep is None:
            self.stdout.write(
                "No snapshot retention is configured, so no snapshot was deleted. Set "
                "COMETCHAT['HISTORY_MAX_AGE_DAYS'] and/or "
                "COMETCHAT['HISTORY_KEEP_PER_CONVERSATION'], or pass --max-age-days / --keep."
            )
            return
        count = services.prune_history(
            max_age_days=max_age_days, keep_per_conversation=keep, dry_run=dry_run
        )
        noun = "snapshot" if count == 1 else "snapshots"
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(f"{verb} {count} {noun} ({_policy(max_age_days, keep)}).")

    def _prune_sync_runs(self, conf: Any, days: int | None, dry_run: bool) -> None:
        self._prune_older(
            days if days is not None else conf.sync_runs_max_age_days,
            setting="SYNC_RUNS_MAX_AGE_DAYS",
            word="sync run",
            prune=services.prune_sync_runs,
            rule="finished, started more than {days} days ago; each owner's latest finished run "
            "and runs queued or running are kept",
            dry_run=dry_run,
        )

    def _prune_webhook_events(self, conf: Any, days: int | None, dry_run: bool) -> None:
        self._prune_older(
            days if days is not None else conf.webhook_events_max_age_days,
            setting="WEBHOOK_EVENTS_MAX_AGE_DAYS",
            word="webhook event",
            prune=services.prune_webhook_events,
            rule="received more than {days} days ago; events waiting for a worker are kept",
            dry_run=dry_run,
        )

    def _prune_older(
        self,
        days: int | None,
        *,
        setting: str,
        word: str,
        prune: Callable[..., int],
        rule: str,
        dry_run: bool,
    ) -> None:
        """One table's age-based pruning: ``prune(max_age_days=, dry_run=)``, then one line."""
        if days is None:
            self.stdout.write(f"{word.capitalize()}s are kept: {setting} is None.")
            return
        count = prune(max_age_days=days, dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(f"{verb} {plural(count, word)} ({rule.format(days=days)}).")


def _policy(max_age_days: int | None, keep: int | None) -> str:
    rules = []
    if max_age_days is not None:
        rules.append(f"older than {max_age_days} days")
    if keep is not None:
        rules.append(f"beyond the newest {keep} per conversation")
    return " or ".join(rules) + "; each conversation's latest snapshot is kept"
