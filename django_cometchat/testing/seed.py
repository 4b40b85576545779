"""Ready-made data for the fake server: a small realistic demo app, and bulk conversations.

``seed_demo`` is deterministic, times included: the same users, groups, messages, dates and
unread counts every run, all before ``DEMO_NOW`` (a fixed moment in the past), so a demo run again
against a fresh fake finds nothing changed and nothing is dated in the future.
``bulk_conversations`` inserts prebuilt records directly (no per-message rendering), so 50,000
conversations take well under a second. The demo also holds a message of every shape the
message lists serve (:data:`SHAPED_MESSAGES`: an action, attachments, edited and deleted ones).

Stdlib only; no Django.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from .messages import add_message
from .state import (
    AVATAR_URL,
    ConversationRecord,
    MessageRecord,
    State,
    UserRecord,
    default_name,
    validate_id,
)

DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("alice", "Alice Martin", "available"),
    ("bob", "Bob Nguyen", "offline"),
    ("carol", "Carol Okafor", "available"),
    ("dave", "Dave Kowalski", "offline"),
    ("erin", "Erin Schmidt", "offline"),
    ("frank", "Frank Moreau", "available"),
    ("grace", "Grace Tanaka", "offline"),
    ("heidi", "Heidi Larsen", "offline"),
)
_FIRST = (
    "Liam",
    "Olivia",
    "Noah",
    "Emma",
    "Mateo",
    "Amara",
    "Lucas",
    "Sofia",
    "Ethan",
    "Priya",
    "Hugo",
    "Yuki",
    "Omar",
    "Chloe",
    "Ivan",
    "Leila",
    "Diego",
    "Hannah",
    "Kofi",
    "Mei",
)
_LAST = (
    "Patel",
    "Garcia",
    "Smith",
    "Rossi",
    "Kim",
    "Dubois",
    "Mensah",
    "Novak",
    "Silva",
    "Cohen",
    "Jensen",
    "Haddad",
    "Ito",
    "Murphy",
    "Ferreira",
)
# (guid, name, type, members as (uid, scope)); the first member owns the group.
DEMO_GROUPS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "engineering",
        "Engineering",
        "private",
        (
            ("alice", "admin"),
            ("bob", "moderator"),
            ("carol", "participant"),
            ("dave", "participant"),
        ),
    ),
    (
        "design",
        "Design Crit",
        "private",
        (("carol", "admin"), ("erin", "participant"), ("alice", "participant")),
    ),
    ("random", "Random", "public", tuple((uid, "participant") for uid, _, _ in DEMO_USERS)),
    (
        "support-eu",
        "Support EU",
        "password",
        (
            ("frank", "admin"),
            ("grace", "participant"),
            ("heidi", "participant"),
            ("alice", "participant"),
        ),
    ),
)
TEXTS = (
    "Hey, do you have a minute?",
    "Sure, what's up?",
    "Can you review my pull request before lunch?",
    "The deploy went out fine, thanks!",
    "Running five minutes late, start without me.",
    "Did you see the new designs?",
    "Let's sync tomorrow at 10.",
    "I pushed a fix for the login bug.",
    "Thanks, that works for me.",
    "Could you send me the invoice again?",
    "Happy Friday! 🎉",
    "The customer replied, they're happy with the proposal.",
    "Where did we land on the pricing page?",
    "On my way.",
    "Can we move our 1:1 to Thursday?",
    "Great job on the demo today.",
)


@dataclass(frozen=True)
class Seeded:
    """What a seed created (existing users and groups it reused are not listed)."""

    uids: tuple[str, ...]
    guids: tuple[str, ...]


EXTRA_USERS = 80
PEERS_PER_CORE_USER = 30
DEMO_SPAN_SECONDS = 14 * 24 * 3600
# The demo's "now": 2025-06-01 12:00 UTC. Fixed, so that every seed dates alike (a rerun of the
# demo updates nothing), and past, so that no seeded message is newer than a real one.
DEMO_NOW = 1_748_779_200
# A group's messages follow each other by up to 7 x 1800 s; their first is this much earlier
# than a one-to-one conversation's could be, so that the last one is still before DEMO_NOW.
GROUP_LEAD_SECONDS = 4 * 3600


_DAY = 86400
_ENGINEERING = DEMO_NOW - 12 * _DAY
_ALICE_BOB = DEMO_NOW - 13 * _DAY
# Messages of every shape API.md §4.3 lists, in conversations the demo creates: an action, an
# attachment, an edited and a deleted message in "engineering" and between alice and bob.
# (sentAt, sender, to_user, to_group, the shape for messages.add_message)
SHAPED_MESSAGES: tuple[tuple[int, str, str | None, str | None, dict[str, Any]], ...] = (
    (
        _ENGINEERING,
        "alice",
        None,
        "engineering",
        {"category": "action", "action": "added", "on": "dave", "text": None},
    ),
    (
        _ENGINEERING + 60,
        "bob",
        None,
        "engineering",
        {
            "text": "Spec for the sync rewrite attached.",
            "type": "file",
            "attachments": [
                {
                    "url": "https://files.fake-cometchat.invalid/demo/sync-spec.pdf",
                    "name": "sync-spec.pdf",
                    "extension": "pdf",
                    "mimeType": "application/pdf",
                    "size": 182_340,
                }
            ],
        },
    ),
    (
        _ENGINEERING + 120,
        "carol",
        None,
        "engineering",
        {"text": "Standup moves to 9:30 tomorrow.", "edited_at": _ENGINEERING + 300},
    ),
    (
        _ENGINEERING + 240,
        "dave",
        None,
        "engineering",
        {"text": "wrong channel, sorry", "deleted_at": _ENGINEERING + 250},
    ),
    (
        _ALICE_BOB,
        "bob",
        "alice",
        None,
        {
            "text": None,
            "type": "image",
            "attachments": [
                {
                    "url": "https://files.fake-cometchat.invalid/demo/whiteboard.png",
                    "name": "whiteboard.png",
                    "extension": "png",
                    "mimeType": "image/png",
                    "size": 48_213,
                }
            ],
        },
    ),
    (
        _ALICE_BOB + 30,
        "alice",
        "bob",
        None,
        {"text": "Nice, I'll copy it into the doc.", "edited_at": _ALICE_BOB + 45},
    ),
    (
        _ALICE_BOB + 90,
        "alice",
        "bob",
        None,
        {"text": "(sent to the wrong person)", "deleted_at": _ALICE_BOB + 95},
    ),
)


def seed_demo(state: State) -> Seeded:
    """Users ``alice`` … ``heidi`` plus 80 more, four groups, ~270 conversations, some unread.

    Users or groups that already exist are reused, so a test may add ``alice`` itself first.
    Messages are spread over the two weeks before ``DEMO_NOW``; messages sent later without
    ``sent_at`` are newer.
    """
    rng = random.Random(20240601)
    with state.lock:
        extras, seeded = _demo_people(state, rng)
        plain = [(*event[:4], {"text": event[4]}) for event in _demo_events(rng, extras)]
        for when, sender, to_user, to_group, shape in sorted(
            [*plain, *SHAPED_MESSAGES], key=lambda event: event[0]
        ):
            if len(shape) == 1:
                state.send_message(
                    sender, to_user=to_user, to_group=to_group, text=shape["text"], sent_at=when
                )
            else:
                add_message(
                    state, sender, to_user=to_user, to_group=to_group, sent_at=when, **shape
                )
        # About half of the unread conversations have been read since.
        for conversation_id in sorted(state.conversations):
            conversation = state.conversations[conversation_id]
            for owner in sorted(conversation.unread):
                if rng.random() < 0.5:
                    conversation.unread[owner] = 0
        state.changed()
    return seeded


def _demo_people(state: State, rng: random.Random) -> tuple[list[str], Seeded]:
    """Add the demo users and groups (backdated before the first message); return the extra
    users' UIDs and what was created."""
    since = DEMO_NOW - DEMO_SPAN_SECONDS - 86400
    created: list[str] = []
    for uid, name, status in DEMO_USERS:
        if uid not in state.users:
            state.add_user(uid, name, status=status)
            created.append(uid)
    names = sorted(f"{first.lower()}-{last.lower()}" for first in _FIRST for last in _LAST)
    extras = sorted(rng.sample(names, EXTRA_USERS))
    for uid in extras:
        if uid not in state.users:
            state.add_user(uid, default_name(uid), role=rng.choice(("default", "customer")))
            created.append(uid)
    for uid in created:
        fields = state.users[uid].fields
        fields["createdAt"] = fields["updatedAt"] = fields["lastActiveAt"] = since
    groups: list[str] = []
    for guid, name, group_type, members in DEMO_GROUPS:
        if guid in state.groups:
            continue
        groups.append(guid)
        state.add_group(
            guid, name, members=members, group_type=group_type, description=f"{name} team chat"
        )
        group = state.groups[guid]
        group.fields["createdAt"] = group.fields["updatedAt"] = since
        for member in group.members.values():
            member.joined_at = since
    return extras, Seeded(tuple(created), tuple(groups))


_Event = tuple[int, str, str | None, str | None, str]


def _demo_events(rng: random.Random, extras: list[str]) -> list[_Event]:
    """(sentAt, sender, to_user, to_group, text) for every demo message, oldest first."""
    core = [uid for uid, _, _ in DEMO_USERS]
    pairs: set[tuple[str, str]] = set()
    for index, uid in enumerate(core):
        pairs.update((uid, other) for other in core[index + 1 :])
        pairs.update((uid, other) for other in rng.sample(extras, PEERS_PER_CORE_USER))
    now = DEMO_NOW
    events: list[_Event] = []
    for uid, other in sorted(pairs):
        start = now - rng.randrange(3600, DEMO_SPAN_SECONDS)
        for step in range(rng.randint(1, 4)):
            sender, receiver = (uid, other) if rng.random() < 0.5 else (other, uid)
            events.append(
                (start + step * rng.randint(30, 900), sender, receiver, None, rng.choice(TEXTS))
            )
    for guid, _, _, members in DEMO_GROUPS:
        start = now - rng.randrange(3600, DEMO_SPAN_SECONDS) - GROUP_LEAD_SECONDS
        for step in range(rng.randint(3, 8)):
            sender = rng.choice(members)[0]
            events.append(
                (start + step * rng.randint(60, 1800), sender, None, guid, rng.choice(TEXTS))
            )
    events.sort(key=lambda event: event[0])
    return events


def bulk_conversations(state: State, owner_uid: str, n: int, *, prefix: str = "peer") -> list[str]:
    """Create ``n`` users ``<prefix>-<i>`` and one one-to-one conversation each with the owner.

    Peers with an odd number (``peer-1``, ``peer-3``…) wrote last, so the owner has one unread
    message from each of them; the owner wrote last to the even ones. Each conversation is newer
    than the one before, so ``<prefix>-<n>`` comes first in the owner's list. The owner is created
    when missing. Returns the peers' UIDs.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    prefix = validate_id(prefix, "prefix")
    width = len(str(n))
    label = default_name(prefix)
    with state.lock:
        owner = validate_id(owner_uid, "UID")
        if owner not in state.users:
            state.add_user(owner)
        now = state.clock.now()
        first_ts = state.clock.block(n)
        first_id = state.reserve_message_ids(n)
        users: list[UserRecord] = []
        conversations: list[ConversationRecord] = []
        for i in range(n):
            number = i + 1
            uid = f"{prefix}-{number:0{width}d}"
            fields = {
                "avatar": AVATAR_URL.format(uid=uid),
                "status": "offline",
                "role": "default",
                "lastActiveAt": now,
                "createdAt": now,
                "updatedAt": now,
            }
            users.append(UserRecord(uid=uid, name=f"{label} {number}", fields=fields))
            low, high = (owner, uid) if owner < uid else (uid, owner)
            conversation_id = f"{low}_user_{high}"
            inbound = number % 2 == 1
            sender, receiver = (uid, owner) if inbound else (owner, uid)
            sent_at = first_ts + i
            message = MessageRecord(
                id=first_id + i,
                conversation_id=conversation_id,
                sender=sender,
                receiver=receiver,
                receiver_type="user",
                text=TEXTS[i % len(TEXTS)],
                sent_at=sent_at,
            )
            conversations.append(
                ConversationRecord(
                    conversation_id=conversation_id,
                    type="user",
                    peer_ids=(low, high),
                    created_at=sent_at,
                    updated_at=sent_at,
                    last_message=message,
                    unread={owner: 1} if inbound else {},
                )
            )
        state.load_bulk(users, conversations)
    return [user.uid for user in users]
