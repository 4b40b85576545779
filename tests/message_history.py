"""The message history the message tests page through, shared by the fake's, the service's and
the API's tests (API.md §4.3: messages of a one-to-one conversation and of a group)."""

from __future__ import annotations

from django_cometchat.testing import FakeCometChat


def seed_message_history(fake: FakeCometChat, total: int, *, elsewhere_to: str = "alice") -> None:
    """alice and bob with ``total`` messages, and the group "crew" (alice, bob) with ``total`` of
    its own, interleaved with carol's messages to ``elsewhere_to`` every 7th turn, so that each
    conversation's message ids have gaps."""
    for uid in ("alice", "bob", "carol"):
        fake.add_user(uid)
    fake.add_group("crew", members=["alice", "bob"])
    for n in range(total):
        sender, peer = ("alice", "bob") if n % 2 else ("bob", "alice")
        fake.send_message(sender, to_user=peer, text=f"direct {n}")
        fake.send_message(sender, to_group="crew", text=f"group {n}")
        if n % 7 == 0:
            fake.send_message("carol", to_user=elsewhere_to, text="elsewhere")
