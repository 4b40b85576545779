"""The test settings on a SQLite file that other processes share (``COMETCHAT_TEST_SQLITE``):
for tests that run a real command in a process of its own and read what it left in the
database (tests/commands/test_command_signals.py). PostgreSQL would do as well; a file needs no
server.
"""

from __future__ import annotations

import os

from .settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["COMETCHAT_TEST_SQLITE"],
    }
}
