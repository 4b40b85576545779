"""Fixtures shared by the suites that sync: a small seeded CometChat and the Django user "alice".

Django users are named "<uid>-django" and mapped to CometChat UIDs by
``tests.resolvers.uid_from_username``, so a test can tell a username from a UID.
"""

from __future__ import annotations

import pytest


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
