"""``manage.py cometchat_refresh_stale --older-than 15m``: enqueue syncs of stale owners.

For a host's cron: every owner whose last successful sync finished longer ago than the threshold
(or who never had one) gets one sync task for the task workers. Runs abandoned by a worker that
died are marked failed first (``SYNC_ABANDONED_AFTER``).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_cometchat import services, tasks
from django_cometchat.exceptions import CometChatError

from ..arguments import duration, inline_note
from ..reporting import skipped_line


class Command(BaseCommand):
    help = (
        "Enqueue a sync task for every owner whose last successful sync is older than "
        "--older-than (e.g. 90s, 15m, 2h, 1d), for the task workers. Meant for cron."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=duration,
            required=True,
            metavar="AGE",
            help="Sync owners not synced for this long: a number with s, m, h or d (15m).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            abandoned = services.mark_abandoned_runs()
            stale = services.stale_owners(options["older_than"])
            count = tasks.enqueue_syncs(stale.chat_users())
        except CometChatError as exc:
            raise CommandError(exc.describe()) from exc
        if options["verbosity"] > 0:
            if abandoned:
                self.stdout.write(f"Marked {abandoned} abandoned sync run(s) failed.")
            self.stdout.write(f"Enqueued {count} sync(s) of stale owners{inline_note()}.")
            if stale.skipped:
                self.stdout.write(skipped_line(stale.skipped))
