"""Fixtures shared by the suites that sync: a small seeded CometChat and the Django user "alice".

Django users are named "<uid>-django" and mapped to CometChat UIDs by
``tests.resolvers.uid_from_username``, so a test can tell a username from a UID.
"""

from __future__ import annotations

import pytest

from django_cometchat.client import CometChatClient


@pytest.fixture
def fake(cometchat_fake):
    """alice, bob and carol; bob and carol wrote to alice; the three share "book-club"."""
    cometchat_fake.add_user("alice", "Alice Liddell")
    cometchat_fake.add_user("bob", "Bob Stone")
    cometchat_fake.add_user("carol", "Carol Danvers")
    cometchat_fake.add_group("book-club", "Book Club", members=["alice", "bob", "carol"])
    cometchat_fake.send_message("bob", to_user="alice", text="hi alice")
    cometchat_fake.send_message("carol", to_user="alice", text="hello")
    cometchat_fake.send_message("bob", to_group="book-club", text="chapter 3?")
    return cometchat_fake


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(username="alice-django", password="x")


CLIENT_FAST = {"BACKOFF_FACTOR": 0.01, "BACKOFF_MAX": 0.05}


@pytest.fixture
def client_for(settings, cometchat_fake):
    clients = []

    def make(**overrides):
        settings.COMETCHAT = {**settings.COMETCHAT, **CLIENT_FAST, **overrides}
        client = CometChatClient()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def chat(cometchat_fake):
    fake = cometchat_fake
    fake.add_user("alice", "Alice Liddell")
    fake.add_user("bob", "Bob Stone")
    fake.add_user("carol", "Carol Danvers")
    fake.add_group("book-club", "Book Club", members=["alice", "bob"])
    fake.send_message("bob", to_user="alice", text="hi alice")
    fake.send_message("carol", to_user="alice", text="hello from carol")
    fake.send_message("bob", to_group="book-club", text="chapter 3?")
    fake.clear_requests()
    return fake
