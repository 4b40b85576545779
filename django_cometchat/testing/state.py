"""In-memory CometChat data for the fake server, and how conversations derive from it.

Users, groups and messages are stored; a conversation is the per-pair (or per-group) record the
messages create, seen from each *owner* (the ``onBehalfOf`` user) with that owner's unread count.
Records are compact (JSON shapes are built from them on demand, in :mod:`.render`), so 50,000
conversations cost little memory. Each owner's sorted conversation list is cached and invalidated
when one of its conversations changes.

Rules mirrored from CometChat:

- UIDs and GUIDs are lowercased on creation and on lookup.
- A conversation exists only after its first message. One-to-one ids are ``<uidA>_user_<uidB>``
  with the two UIDs in ascending order; group ids are ``group_<guid>``.
- A message adds one unread message for every recipient owner, never for the sender; in groups,
  for every member but the sender (not at all in groups over ``large_group_threshold`` members,
  which CometChat documents as not updated).
- ``updatedAt`` of a conversation is its latest message's ``sentAt``; deleting the last message
  drops ``lastMessage`` for everyone and leaves ``updatedAt`` as it was.
- Blocking is one-way: an owner's conversation list leaves out one-to-one conversations with users
  the owner blocked (unless asked to include them); being blocked hides nothing (API.md §0.1).

Stdlib only; no Django. All access goes through :attr:`State.lock` (re-entrant).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

JSON = dict[str, Any]
ConversationType = Literal["user", "group"]

SCOPES = ("admin", "moderator", "participant")
GROUP_TYPES = ("public", "password", "private")
ID_RE = re.compile(r"^[a-z0-9_-]{1,100}$")
AVATAR_URL = "https://assets.fake-cometchat.invalid/avatars/{uid}.png"
GROUP_ICON_URL = "https://assets.fake-cometchat.invalid/groups/{guid}.png"


def normalize_id(value: str) -> str:
    """CometChat lowercases UIDs and GUIDs."""
    return value.strip().lower()


def validate_id(value: str, what: str) -> str:
    uid = normalize_id(value)
    if not ID_RE.match(uid):
        raise ValueError(f"{what} {value!r} must be 1-100 characters of a-z, 0-9, '-' or '_'")
    return uid


def direct_conversation_id(uid_a: str, uid_b: str) -> str:
    """``<uidA>_user_<uidB>`` with the two UIDs in ascending order."""
    first, second = sorted((normalize_id(uid_a), normalize_id(uid_b)))
    return f"{first}_user_{second}"


def group_conversation_id(guid: str) -> str:
    return f"group_{normalize_id(guid)}"


def default_name(identifier: str) -> str:
    return " ".join(part.capitalize() for part in re.split(r"[-_]+", identifier) if part) or (
        identifier
    )


class Clock:
    """Whole Unix seconds; :meth:`tick` is strictly increasing so later messages sort newer."""

    def __init__(self) -> None:
        self.last = 0

    def now(self) -> int:
        return max(int(time.time()), self.last)

    def tick(self) -> int:
        self.last = max(int(time.time()), self.last + 1)
        return self.last

    def block(self, count: int) -> int:
        """Reserve ``count`` consecutive ticks; returns the first."""
        first = max(int(time.time()), self.last + 1)
        self.last = first + max(count, 1) - 1
        return first

    def observe(self, timestamp: int) -> None:
        self.last = max(self.last, timestamp)


@dataclass(slots=True)
class UserRecord:
    uid: str
    name: str
    fields: JSON  # avatar, status, role, createdAt, updatedAt, lastActiveAt, link, metadata, ...
    tags: list[str] = field(default_factory=list)
    deactivated: bool = False


@dataclass(slots=True)
class Member:
    scope: str
    joined_at: int


@dataclass(slots=True)
class GroupRecord:
    guid: str
    name: str
    type: str
    fields: JSON  # description, icon, owner, createdAt, updatedAt, updatedBy, ...
    members: dict[str, Member] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class MessageRecord:
    id: int
    conversation_id: str
    sender: str
    receiver: str
    receiver_type: str
    text: str
    sent_at: int
    category: str = "message"
    type: str = "text"
    # Set by :mod:`.messages` for anything but a plain text message: ``fields`` are top-level
    # keys added to the message object (editedAt, deletedAt, ...), ``data`` replaces its "data".
    fields: JSON | None = None
    data: JSON | None = None


@dataclass(slots=True)
class ConversationRecord:
    conversation_id: str
    type: ConversationType
    peer_ids: tuple[str, str]  # the two UIDs (user) or (guid, guid) (group)
    created_at: int
    updated_at: int
    last_message: MessageRecord | None
    unread: dict[str, int] = field(default_factory=dict)
    tags: dict[str, list[str]] = field(default_factory=dict)  # per owner

    def peer_for(self, owner: str) -> str:
        """The other party seen from ``owner``: a UID, or the GUID for groups."""
        first, second = self.peer_ids
        return second if first == owner else first


class State:
    """Everything the fake server knows. Hold :attr:`lock` for compound operations."""

    def __init__(self, *, large_group_threshold: int = 300) -> None:
        self.lock = threading.RLock()
        self.large_group_threshold = large_group_threshold
        self.clock = Clock()
        self.users: dict[str, UserRecord] = {}
        self.groups: dict[str, GroupRecord] = {}
        self.conversations: dict[str, ConversationRecord] = {}
        self.by_owner: dict[str, set[str]] = {}
        self.blocked: dict[str, set[str]] = {}  # blocker UID -> the UIDs they blocked
        self._owner_cache: dict[str, list[ConversationRecord]] = {}
        self._app_cache: list[tuple[str, ConversationRecord]] | None = None
        self._next_message_id = 1
        # Every message of each conversation, by conversation id, in the order they were sent
        # (ascending ids): what GET /users/{uid}/messages and /groups/{guid}/messages page through.
        self.history: dict[str, list[MessageRecord]] = {}
        # Bumped whenever a user or group changes, so cached JSON fragments are dropped.
        self.generation = 0

    # -- mutation ------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.clock = Clock()
            self.users.clear()
            self.groups.clear()
            self.conversations.clear()
            self.by_owner.clear()
            self.blocked.clear()
            self._owner_cache.clear()
            self._app_cache = None
            self._next_message_id = 1
            self.history.clear()
            self.generation += 1

    def add_user(self, uid: str, name: str | None = None, **extra: Any) -> UserRecord:
        with self.lock:
            uid = validate_id(uid, "UID")
            if uid in self.users:
                raise ValueError(f"user {uid!r} already exists")
            user = self.users[uid] = self.new_user(uid, name, self.clock.now(), extra)
            return user

    @staticmethod
    def new_user(uid: str, name: str | None, now: int, extra: Mapping[str, Any]) -> UserRecord:
        extra = dict(extra)
        tags = [str(tag) for tag in extra.pop("tags", ())]
        fields: JSON = {
            "avatar": AVATAR_URL.format(uid=uid),
            "status": "offline",
            "role": "default",
            "lastActiveAt": now,
            "createdAt": now,
            "updatedAt": now,
        }
        fields.update(extra)
        return UserRecord(uid=uid, name=name or default_name(uid), fields=fields, tags=tags)

    def update_user(self, uid: str, **changes: Any) -> UserRecord:
        with self.lock:
            user = self.get_user(uid)
            if "name" in changes:
                user.name = str(changes.pop("name"))
            if "tags" in changes:
                user.tags = [str(tag) for tag in changes.pop("tags")]
            user.fields.update(changes)
            user.fields["updatedAt"] = self.clock.now()
            self.changed()
            return user

    def deactivate_user(self, uid: str) -> None:
        """Deactivated users answer ``ERR_UID_NOT_FOUND`` and drop out of ``GET /users``."""
        with self.lock:
            self.get_user(uid).deactivated = True
            self.changed()

    def add_group(
        self,
        guid: str,
        name: str | None = None,
        *,
        members: Iterable[str | tuple[str, str]] = (),
        group_type: str = "public",
        **extra: Any,
    ) -> GroupRecord:
        with self.lock:
            guid = validate_id(guid, "GUID")
            if guid in self.groups:
                raise ValueError(f"group {guid!r} already exists")
            if group_type not in GROUP_TYPES:
                raise ValueError(f"group_type must be one of {', '.join(GROUP_TYPES)}")
            pairs = [(m, "participant") if isinstance(m, str) else m for m in members]
            for uid, _scope in pairs:
                self.get_user(uid)  # fail before anything is stored
            now = self.clock.now()
            extra = dict(extra)
            tags = [str(tag) for tag in extra.pop("tags", ())]
            owner = normalize_id(str(extra.pop("owner", pairs[0][0] if pairs else "app_system")))
            fields: JSON = {
                "description": "",
                "icon": GROUP_ICON_URL.format(guid=guid),
                "owner": owner,
                "createdAt": now,
                "updatedAt": now,
                "updatedBy": owner,
            }
            fields.update(extra)
            group = GroupRecord(
                guid=guid,
                name=name or default_name(guid),
                type=group_type,
                fields=fields,
                tags=tags,
            )
            self.groups[guid] = group
            if owner in self.users and owner not in {normalize_id(uid) for uid, _ in pairs}:
                pairs.insert(0, (owner, "admin"))
            for uid, scope in pairs:
                self.add_member(guid, uid, "admin" if normalize_id(uid) == owner else scope)
            return group

    def add_member(self, guid: str, uid: str, scope: str = "participant") -> None:
        with self.lock:
            group = self.get_group(guid)
            user = self.get_user(uid)
            if scope not in SCOPES:
                raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
            current = group.members.get(user.uid)
            if current is not None:
                current.scope = scope
            else:
                group.members[user.uid] = Member(scope=scope, joined_at=self.clock.now())
            conversation_id = group_conversation_id(group.guid)
            if conversation_id in self.conversations:
                self.by_owner.setdefault(user.uid, set()).add(conversation_id)
            self.changed()  # membersCount shows in every render of the group

    def remove_member(self, guid: str, uid: str) -> None:
        """``uid`` leaves the group (kicked, banned or gone of their own accord): its
        conversation drops out of their list and ``GET /groups/{guid}/conversation`` on their
        behalf answers ``ERR_CONVERSATION_NOT_ACCESSIBLE`` (API.md §5.3: not a group member)."""
        with self.lock:
            group = self.get_group(guid)
            if group.members.pop(normalize_id(uid), None) is None:
                raise KeyError(f"{normalize_id(uid)!r} is not a member of {group.guid!r}")
            self.changed()

    def delete_group(self, guid: str) -> None:
        """The group and its conversation are gone for everyone: ``GET
        /groups/{guid}/conversation`` answers 404 ``ERR_GUID_NOT_FOUND`` (API.md §2.10)."""
        with self.lock:
            group = self.get_group(guid)
            del self.groups[group.guid]
            conversation_id = group_conversation_id(group.guid)
            self.conversations.pop(conversation_id, None)
            self.history.pop(conversation_id, None)
            for conversation_ids in self.by_owner.values():
                conversation_ids.discard(conversation_id)
            self.changed()

    def send_message(
        self,
        sender_uid: str,
        *,
        to_user: str | None = None,
        to_group: str | None = None,
        text: str = "hi",
        sent_at: int | None = None,
    ) -> MessageRecord:
        if (to_user is None) == (to_group is None):
            raise ValueError("pass exactly one of to_user or to_group")
        with self.lock:
            sender = self.get_user(sender_uid)
            if sent_at is None:
                sent_at = self.clock.tick()
            else:
                self.clock.observe(sent_at)
            if to_user is not None:
                receiver = self.get_user(to_user)
                if receiver.uid == sender.uid:
                    raise ValueError("a user cannot message themselves")
                conversation_id = direct_conversation_id(sender.uid, receiver.uid)
                peer_ids = (min(sender.uid, receiver.uid), max(sender.uid, receiver.uid))
                recipients: Iterable[str] = (receiver.uid,)
                owners: Iterable[str] = peer_ids
                message = self._new_message(conversation_id, sender.uid, receiver.uid, "user", text)
            else:
                assert to_group is not None
                group = self.get_group(to_group)
                if sender.uid not in group.members:
                    raise ValueError(f"{sender.uid!r} is not a member of group {group.guid!r}")
                conversation_id = group_conversation_id(group.guid)
                peer_ids = (group.guid, group.guid)
                owners = tuple(group.members)
                large = len(group.members) > self.large_group_threshold
                recipients = () if large else [u for u in owners if u != sender.uid]
                message = self._new_message(conversation_id, sender.uid, group.guid, "group", text)
            message.sent_at = sent_at
            conversation = self.conversations.get(conversation_id)
            if conversation is None:
                conversation = ConversationRecord(
                    conversation_id=conversation_id,
                    type="user" if to_user is not None else "group",
                    peer_ids=peer_ids,
                    created_at=sent_at,
                    updated_at=sent_at,
                    last_message=message,
                )
                self.conversations[conversation_id] = conversation
            elif sent_at >= conversation.updated_at or conversation.last_message is None:
                conversation.last_message = message
                conversation.updated_at = max(conversation.updated_at, sent_at)
            self.history.setdefault(conversation_id, []).append(message)
            for uid in recipients:
                conversation.unread[uid] = conversation.unread.get(uid, 0) + 1
            for uid in owners:
                self.by_owner.setdefault(uid, set()).add(conversation_id)
            self._invalidate(owners)
            return message

    def _new_message(
        self, conversation_id: str, sender: str, receiver: str, receiver_type: str, text: str
    ) -> MessageRecord:
        message = MessageRecord(
            id=self._next_message_id,
            conversation_id=conversation_id,
            sender=sender,
            receiver=receiver,
            receiver_type=receiver_type,
            text=text,
            sent_at=0,
        )
        self._next_message_id += 1
        return message

    def reserve_message_ids(self, count: int) -> int:
        with self.lock:
            first = self._next_message_id
            self._next_message_id += count
            return first

    def load_bulk(
        self, users: Iterable[UserRecord], conversations: Iterable[ConversationRecord]
    ) -> None:
        """Insert prebuilt records in one go (see ``seed.bulk_conversations``)."""
        users = list(users)
        conversations = list(conversations)
        with self.lock:
            taken = [user.uid for user in users if user.uid in self.users]
            taken += [
                c.conversation_id for c in conversations if c.conversation_id in self.conversations
            ]
            if taken:
                raise ValueError(f"already exist: {', '.join(taken[:5])}")
            for user in users:
                self.users[user.uid] = user
            for conversation in conversations:
                self.conversations[conversation.conversation_id] = conversation
                if conversation.last_message is not None:
                    self.history[conversation.conversation_id] = [conversation.last_message]
                for uid in set(conversation.peer_ids):
                    self.by_owner.setdefault(uid, set()).add(conversation.conversation_id)
            self.changed()

    def block_user(self, blocker_uid: str, blocked_uid: str) -> None:
        with self.lock:
            blocker, blocked = self.get_user(blocker_uid), self.get_user(blocked_uid)
            if blocker.uid == blocked.uid:
                raise ValueError("a user cannot block themselves")
            self.blocked.setdefault(blocker.uid, set()).add(blocked.uid)

    def unblock_user(self, blocker_uid: str, blocked_uid: str) -> None:
        with self.lock:
            blocker, blocked = self.get_user(blocker_uid), self.get_user(blocked_uid)
            self.blocked.get(blocker.uid, set()).discard(blocked.uid)

    def mark_read(self, owner_uid: str, conversation_id: str) -> None:
        with self.lock:
            owner = normalize_id(owner_uid)
            conversation = self.owned_conversation(owner, conversation_id)
            conversation.unread[owner] = 0

    def delete_last_message(self, conversation_id: str) -> None:
        with self.lock:
            conversation = self.get_conversation(conversation_id)
            message = conversation.last_message
            if message is not None:  # still listed among the messages, marked deleted
                self.mark_deleted(message, by=message.sender)
            conversation.last_message = None
            self._invalidate(self._owners_of(conversation))

    def mark_deleted(self, message: MessageRecord, *, by: str, at: int | None = None) -> None:
        """``message`` stays in the history with ``deletedAt``/``deletedBy``; rendering drops its
        text and attachments (see :func:`.render.message_json`)."""
        with self.lock:
            when = self.clock.now() if at is None else at
            message.fields = {**(message.fields or {}), "deletedAt": when, "deletedBy": by}
            self.changed()

    def set_conversation_tags(
        self, owner_uid: str, conversation_id: str, tags: Iterable[str]
    ) -> None:
        with self.lock:
            owner = normalize_id(owner_uid)
            conversation = self.owned_conversation(owner, conversation_id)
            conversation.tags[owner] = [str(tag) for tag in tags]

    # -- lookup --------------------------------------------------------------------------------

    def get_user(self, uid: str) -> UserRecord:
        user = self.users.get(normalize_id(uid))
        if user is None:
            raise KeyError(f"no user {normalize_id(uid)!r}; add it with add_user() first")
        return user

    def find_user(self, uid: str) -> UserRecord | None:
        """An active user, or None (CometChat treats deactivated users as missing)."""
        user = self.users.get(normalize_id(uid))
        return None if user is None or user.deactivated else user

    def get_group(self, guid: str) -> GroupRecord:
        group = self.groups.get(normalize_id(guid))
        if group is None:
            raise KeyError(f"no group {normalize_id(guid)!r}; add it with add_group() first")
        return group

    def delete_message(self, message: MessageRecord, *, by: str, at: int | None = None) -> None:
        """Mark ``message`` deleted; when it was its conversation's last message, the
        conversation loses ``lastMessage`` (API.md §3) as with :meth:`delete_last_message`."""
        with self.lock:
            self.mark_deleted(message, by=by, at=at)
            conversation = self.conversations.get(message.conversation_id)
            if conversation is not None and conversation.last_message is message:
                conversation.last_message = None
                self._invalidate(self._owners_of(conversation))

    def find_message(self, message_id: int) -> MessageRecord:
        for messages in self.history.values():
            for message in messages:
                if message.id == message_id:
                    return message
        raise KeyError(f"no message {message_id}")

    def get_conversation(self, conversation_id: str) -> ConversationRecord:
        conversation = self.conversations.get(normalize_id(conversation_id))
        if conversation is None:
            raise KeyError(f"no conversation {normalize_id(conversation_id)!r}")
        return conversation

    def owned_conversation(self, owner: str, conversation_id: str) -> ConversationRecord:
        conversation = self.get_conversation(conversation_id)
        if not self.can_see(owner, conversation):
            raise KeyError(
                f"{owner!r} is not part of conversation {conversation.conversation_id!r}"
            )
        return conversation

    def can_see(self, owner: str, conversation: ConversationRecord) -> bool:
        if conversation.type == "user":
            return owner in conversation.peer_ids
        group = self.groups.get(conversation.peer_ids[0])
        return group is not None and owner in group.members

    def unread_count(self, owner_uid: str, conversation_id: str) -> int:
        with self.lock:
            return self.get_conversation(conversation_id).unread.get(normalize_id(owner_uid), 0)

    def owner_conversations(self, owner: str) -> list[ConversationRecord]:
        """``owner``'s conversations, newest ``updatedAt`` first, then by the peer's id."""
        with self.lock:
            cached = self._owner_cache.get(owner)
            if cached is None:
                rows = [self.conversations[cid] for cid in self.by_owner.get(owner, ())]
                rows = [row for row in rows if self.can_see(owner, row)]
                rows.sort(key=lambda row: row.peer_for(owner))
                rows.sort(key=lambda row: row.updated_at, reverse=True)
                cached = self._owner_cache[owner] = rows
            return cached

    def app_conversations(self) -> list[tuple[str, ConversationRecord]]:
        """Every (owner, conversation) of the app: by owner UID, newest first, then peer id."""
        with self.lock:
            if self._app_cache is None:
                self._app_cache = [
                    (owner, row)
                    for owner in sorted(self.by_owner)
                    if owner in self.users
                    for row in self.owner_conversations(owner)
                ]
            return self._app_cache

    def has_blocked(self, blocker: str, uid: str) -> bool:
        blocked = self.blocked.get(blocker)
        return blocked is not None and uid in blocked

    def hides_blocked(self, owner: str, conversation: ConversationRecord) -> bool:
        """Whether ``owner``'s list leaves ``conversation`` out unless ``includeBlockedUsers``."""
        return conversation.type == "user" and self.has_blocked(owner, conversation.peer_for(owner))

    def listed_conversations(
        self, owner: str, *, include_blocked: bool
    ) -> list[ConversationRecord]:
        """:meth:`owner_conversations` as ``GET /conversations`` lists them."""
        rows = self.owner_conversations(owner)
        if include_blocked or not self.blocked.get(owner):
            return rows  # the cached list itself: nothing to filter
        return [row for row in rows if not self.hides_blocked(owner, row)]

    def listed_app_conversations(
        self, *, include_blocked: bool
    ) -> list[tuple[str, ConversationRecord]]:
        """:meth:`app_conversations` as ``GET /conversations`` without ``onBehalfOf`` lists them:
        each (owner, conversation) pair is left out as it would be from that owner's list."""
        pairs = self.app_conversations()
        if include_blocked or not any(self.blocked.values()):
            return pairs
        return [(owner, row) for owner, row in pairs if not self.hides_blocked(owner, row)]

    def _owners_of(self, conversation: ConversationRecord) -> Iterable[str]:
        if conversation.type == "user":
            return conversation.peer_ids
        group = self.groups.get(conversation.peer_ids[0])
        return tuple(group.members) if group else ()

    def _invalidate(self, owners: Iterable[str]) -> None:
        for owner in owners:
            self._owner_cache.pop(owner, None)
        self._app_cache = None

    def changed(self) -> None:
        """Drop every cache; call after editing records directly."""
        with self.lock:
            self._owner_cache.clear()
            self._app_cache = None
            self.generation += 1

    # -- peers (lookups the list filters use) -------------------------------------------------

    def peer_name(self, conversation: ConversationRecord, owner: str) -> str:
        peer_id = conversation.peer_for(owner)
        if conversation.type == "user":
            return self.users[peer_id].name
        return self.groups[peer_id].name

    def peer_tags(self, conversation: ConversationRecord, owner: str) -> list[str]:
        peer_id = conversation.peer_for(owner)
        if conversation.type == "user":
            return self.users[peer_id].tags
        return self.groups[peer_id].tags
