"""Settings of the real task workers that tests/tasks/test_task_workers.py starts (and of the
command that enqueues for them): the test settings on PostgreSQL, with a task backend that queues.

The environment chooses:

* ``COMETCHAT_TEST_TASKS``: ``db`` (django-tasks-db: the queue is a table of the database, run
  by its ``db_worker`` command) or ``rq`` (django-tasks-rq: the queue is in Redis, run by
  django-rq's ``rqworker``);
* ``COMETCHAT_TEST_WORKER_DB``: the database, which is the pytest test database, so the workers
  see what the test committed (and the test sees what they did);
* ``COMETCHAT_TEST_REDIS_URL``: the Redis of the RQ queue and of the shared rate budget
  (default db 5; the budget's own test uses db 3);
* ``COMETCHAT_TEST_CONN_MAX_AGE``: the database's ``CONN_MAX_AGE`` (default 0), and
  ``COMETCHAT_TEST_APPLICATION_NAME`` the name PostgreSQL shows for the connections, for the
  site served by gunicorn.

What is added to ``tests.settings`` here is what docs/tasks.md tells a host to add.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .settings import *  # noqa: F403
from .settings import COMETCHAT, DATABASES, INSTALLED_APPS

ENGINE = os.environ.get("COMETCHAT_TEST_TASKS", "db")
REDIS_URL = os.environ.get("COMETCHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")

if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("task workers share a database: set COMETCHAT_TEST_DB=postgres")
_DATABASE: dict[str, Any] = {
    **DATABASES["default"],
    "NAME": os.environ["COMETCHAT_TEST_WORKER_DB"],
    # The site under gunicorn keeps its connections, as docs/webhooks.md discusses.
    "CONN_MAX_AGE": int(os.environ.get("COMETCHAT_TEST_CONN_MAX_AGE", "0")),
}
if "COMETCHAT_TEST_APPLICATION_NAME" in os.environ:  # PostgreSQL's name for these connections
    _DATABASE["OPTIONS"] = {
        **_DATABASE.get("OPTIONS", {}),
        "application_name": os.environ["COMETCHAT_TEST_APPLICATION_NAME"],
    }
DATABASES = {"default": _DATABASE}

# One rate budget for every worker: counted in Redis, not in each process's memory.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "cometchat": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
}
COMETCHAT = {
    **COMETCHAT,
    "RATE_LIMIT_CACHE": "cometchat",
    "UID_RESOLVER": "tests.resolvers.uid_from_username",
    "PAGE_SIZE": 3,  # several pages per owner: every sync walks pages
}
SILENCED_SYSTEM_CHECKS = ["django_cometchat.W001"]  # the fake's plain-http loopback BASE_URL

TASKS: dict[str, dict[str, Any]]
if ENGINE == "db":
    INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
elif ENGINE == "rq":
    INSTALLED_APPS = [*INSTALLED_APPS, "django_rq", "django_tasks_rq"]
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    RQ_QUEUES = {"default": {"URL": REDIS_URL}}
else:
    raise ImproperlyConfigured(f"COMETCHAT_TEST_TASKS must be 'db' or 'rq', not {ENGINE!r}")
