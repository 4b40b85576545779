"""``manage.py cometchat_refresh_stale --older-than 15m``: enqueue syncs of stale owners.

For a host's cron: every owner whose last successful sync finished longer ago than the threshold
(or who never had one) gets one sync task for the task workers. Runs abandoned by a worker that
died are marked failed first (``SYNC_ABANDONED_AFTER``). Webhook events left waiting are taken up
again: those the rate budget deferred, and those received or processing for longer than
``SYNC_ABANDONED_AFTER``; each is taken once however many of these commands run at a time.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_cometchat import services, tasks
from django_cometchat.exceptions import CometChatError

from ..arguments import duration, inline_note
from ..reporting import skipped_line
from ..stopping import stopping


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
        # With the immediate backend the syncs run here: SIGTERM or SIGINT records the one in
        # progress as failed.
        with stopping(self.stderr):
            self.refresh(options)

    def refresh(self, options: dict[str, Any]) -> None:
        try:
            abandoned = services.mark_abandoned_runs()
            events = services.take_waiting_webhook_events()
            for event_id in events.ids:
                tasks.process_webhook_event.enqueue(event_id)
            stale = services.stale_owners(options["older_than"])
            count = tasks.enqueue_syncs(stale.chat_users()).succeeded
        except CometChatError as exc:  # a broken setting, or the queue refused (run failed)
            raise CommandError(exc.describe()) from exc
        if options["verbosity"] > 0:
            if abandoned:
                self.stdout.write(f"Marked {abandoned} abandoned sync run(s) failed.")
            if events.ids:
                self.stdout.write(
                    f"Took {len(events.ids)} waiting webhook event(s) "
                    f"({len(events.deferred)} deferred by the rate budget, {len(events.stuck)} "
                    f"left by a worker){inline_note()}."
                )
            line = f"Enqueued {count} sync(s) of stale owners{inline_note()}"
            if stale.already_queued:  # stale, but a sync of theirs is already on its way
                line += f"; {stale.already_queued} already queued or running"
            self.stdout.write(f"{line}.")
            if stale.skipped:
                self.stdout.write(skipped_line(stale.skipped))
