"""Task backends for the tests, configured through ``settings.TASKS`` as a host would.

Django keeps one backend instance per thread, so what these record lives on the class: a live
server's request threads and the test see the same queue.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from django.db import connection

try:  # Django 6.x
    from django.tasks.backends.dummy import DummyBackend
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks.backends.dummy import (  # type: ignore[assignment,no-redef,unused-ignore]
        DummyBackend,
    )

BROKER_DOWN = "Error 111 connecting to 127.0.0.1:6379. Connection refused."


class RecordingBackend(DummyBackend):
    """Keeps every enqueued task (as a worker's queue would) and runs none; ``down`` makes it
    refuse every task as django-tasks-rq does when Redis is down."""

    enqueued: ClassVar[list[Any]] = []
    down: ClassVar[bool] = False
    error: ClassVar[str] = BROKER_DOWN
    _lock = threading.Lock()

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        if RecordingBackend.down:
            raise ConnectionError(RecordingBackend.error)
        result: Any = super().enqueue(task, args, kwargs)
        with RecordingBackend._lock:
            RecordingBackend.enqueued.append(result)
        return result

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls.enqueued.clear()
        cls.down = False
        cls.error = BROKER_DOWN


class UnmigratedBackend(DummyBackend):
    """django-tasks-db's situation when ``migrate`` was forgotten: enqueueing writes to a table
    that does not exist, and the database refuses (on PostgreSQL that also aborts the
    surrounding transaction, which must stay usable)."""

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO django_tasks_database_dbtaskresult (id) VALUES (1)")
        return super().enqueue(task, args, kwargs)  # pragma: no cover - never reached


class CommitCheckingBackend(RecordingBackend):
    """``RecordingBackend`` that looks, as each task reaches it, for what the task will read
    (a sync's queued run, a refresh's claim) from a database connection of its own, as a worker
    in another process would (RQ's, which takes a task as soon as Redis has it): ``committed``
    holds, per task, whether it was there. A task that reaches the queue before its run commits
    finds no run to take."""

    committed: ClassVar[list[bool]] = []

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        from django.db import connections

        from django_cometchat.models import QueuedRefresh, SyncRun

        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                if "run_id" in kwargs:  # sync_owner: its queued run
                    table, where = SyncRun._meta.db_table, "id = %s"
                    params = [kwargs["run_id"]]
                else:  # refresh_conversation(uid, conversation_id): its claim
                    table = QueuedRefresh._meta.db_table
                    where = "owner_uid = %s AND conversation_id = %s"
                    params = list(args[:2])
                cursor.execute(f"SELECT 1 FROM {table} WHERE {where}", params)  # noqa: S608
                found = cursor.fetchone() is not None
        finally:
            other.close()
        with RecordingBackend._lock:
            CommitCheckingBackend.committed.append(found)
        return super().enqueue(task, args, kwargs)

    @classmethod
    def reset(cls) -> None:
        super().reset()
        with cls._lock:
            cls.committed.clear()
