"""Concurrent syncs of one user on PostgreSQL: no duplicates, no IntegrityError, no stale write."""

from __future__ import annotations

import random
import threading
import time
from itertools import pairwise

import pytest
from django.db import connection, connections

from django_cometchat.models import Conversation, ConversationSnapshot, SyncRun
from django_cometchat.services import owner_by_uid, sync_conversations

THREADS = 8
PEERS = 120


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency guarantees are proven on PostgreSQL")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_eight_threads_syncing_one_user_with_upstream_changes(cometchat_fake, settings):
    fake = cometchat_fake
    # Small pages so that the threads' page transactions interleave.
    settings.COMETCHAT = {**settings.COMETCHAT, "PAGE_SIZE": 25, "BACKOFF_FACTOR": 0.01}
    fake.add_user("owner", "Owner")
    for i in range(PEERS):
        fake.add_user(f"peer-{i}", f"Peer {i}")
        fake.send_message(f"peer-{i}", to_user="owner", text=f"hello {i}")

    start = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            start.wait()
            sync_conversations(owner_by_uid("owner"))
        except BaseException as exc:  # every failure is the test's business
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=sync) for _ in range(THREADS)]
    for worker in workers:
        worker.start()
    start.wait()
    rng = random.Random(7)
    # Upstream keeps changing while they run: new messages and reads move updatedAt/unread.
    while any(w.is_alive() for w in workers):
        peer = rng.randrange(PEERS)
        fake.send_message(f"peer-{peer}", to_user="owner", text=f"more {time.monotonic()}")
        time.sleep(0.002)
    for worker in workers:
        worker.join()

    assert errors == []
    assert SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).count() == THREADS
    ids = list(Conversation.objects.filter(owner_uid="owner").values_list("conversation_id"))
    assert len(ids) == len(set(ids))  # the unique constraint was never fought over by a dupe
    # Once upstream is quiet, one more sync holds every conversation and marks none missing.
    final = sync_conversations(owner_by_uid("owner"))
    assert final.missing == 0
    rows = list(Conversation.objects.filter(owner_uid="owner"))
    assert len(rows) == PEERS
    assert not any(r.missing_since for r in rows)

    # No stale overwrite: every stored row holds the newest payload any thread ever wrote.
    for row in rows:
        history = list(ConversationSnapshot.objects.filter(conversation=row))
        newest = max(s.payload["updatedAt"] for s in history)
        assert row.payload["updatedAt"] == newest
        # The last snapshot written is the stored content, and history (in write order) has
        # one row per change: never two identical neighbours.
        ordered = sorted(history, key=lambda s: s.pk)
        assert row.content_hash == ordered[-1].content_hash
        assert all(a.content_hash != b.content_hash for a, b in pairwise(ordered))
