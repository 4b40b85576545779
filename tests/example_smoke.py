"""Run by tests/project/test_example_project.py in a subprocess under example_project.settings."""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    os.environ["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0)
    call_command("check", fail_level="WARNING")
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("alice", password="pw")
    anonymous = Client()
    alice = Client()
    alice.login(username="alice", password="pw")
    statuses = {
        "home": anonymous.get("/").status_code,
        "admin": anonymous.get("/admin/login/").status_code,
        "api_anonymous": anonymous.get("/api/cometchat/conversations/").status_code,
        "api": alice.get("/api/cometchat/conversations/").status_code,
        "schema": anonymous.get("/api/schema/").status_code,
        "swagger": anonymous.get("/api/docs/").status_code,
        "redoc": anonymous.get("/api/redoc/").status_code,
    }
    print(json.dumps(statuses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
