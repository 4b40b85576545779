"""``manage.py cometchat_rebind``: move a CometChat UID to another Django account, on purpose.

One CometChat UID belongs to at most one Django user (``UIDBinding``): syncs and API requests of a
second account whose UID_RESOLVER gives the same UID are refused, and a sync never moves stored
rows from one account to another. This command is the deliberate way to do it, through
``services.rebind_uid`` / ``services.release_uid``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_cometchat import services
from django_cometchat.exceptions import CometChatError


class Command(BaseCommand):
    help = (
        "Bind a CometChat UID to a Django user (moving its stored conversations and sync runs "
        "to that user), or --release it so the next account to act with it binds it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("uid", metavar="UID", help="The CometChat UID.")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument(
            "--user", metavar="USERNAME", help="The Django user (USERNAME_FIELD) to bind it to."
        )
        target.add_argument(
            "--release",
            action="store_true",
            help="Forget the binding: the next account to act with this UID binds it. Stored "
            "rows keep their owner link (use --user to move them).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["release"]:
                released = services.release_uid(options["uid"])
                self.stdout.write(
                    f"Released {options['uid']!r}."
                    if released
                    else f"{options['uid']!r} was not bound."
                )
                return
            (user,) = services.users_by_name([options["user"]])
            moved = services.rebind_uid(options["uid"], user)
        except CometChatError as exc:
            raise CommandError(exc.describe()) from exc
        self.stdout.write(
            f"Bound {options['uid'].lower()!r} to {options['user']!r}; {moved} stored "
            "conversation(s) now belong to that user."
        )
