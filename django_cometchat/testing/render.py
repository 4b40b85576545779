"""CometChat's JSON shapes (API.md §3, §4, the spec's examples), built from the fake's records.

Two ways to the same bytes:

- the dict functions (``user_json`` … ``conversation_json``) build plain dicts: clear, used for
  single GETs and anything unusual;
- :class:`ConversationRenderer` writes list rows straight to JSON text from fragments cached per
  user, because dicts plus ``json.dumps`` cost ~20 ms per 1,000 conversations and a page of 1,000
  should be mostly string joins. Its output is byte-identical to ``dumps(conversation_json(...))``
  (a test holds the two together). Group conversations, whose peer object depends on the owner's
  membership, go through the dict path.

Call everything here with ``State.lock`` held.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring

from .state import (
    JSON,
    ConversationRecord,
    GroupRecord,
    Member,
    MessageRecord,
    State,
    UserRecord,
    group_conversation_id,
)

# Fields of a user copied into message entities (the webhook example's sender/receiver entity).
_ENTITY_USER_KEYS = ("avatar", "link", "status", "role", "lastActiveAt")
# Fields of a group that are not per member.
_GROUP_KEYS = ("description", "icon", "owner", "createdAt", "updatedAt", "updatedBy")


@dataclass(frozen=True)
class RenderOptions:
    receipts: bool = False  # list endpoints' lastMessage carries receipts {"data": [[]]}
    with_tags: bool = False  # conversation tags
    with_peer_tags: bool = False  # user/group tags inside conversationWith
    with_blocked_info: bool = False  # blockedByMe / hasBlockedMe in a user conversationWith


LIST_OPTIONS = RenderOptions(receipts=True)

dumps: Callable[[object], str] = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_string: Callable[[str], str] = encode_basestring  # a JSON string literal, quotes included


# -- dict shapes -------------------------------------------------------------------------------


def user_json(
    user: UserRecord, *, conversation_id: str | None = None, with_tags: bool = False
) -> JSON:
    data: JSON = {"uid": user.uid, "name": user.name, **user.fields}
    if with_tags and user.tags:
        data["tags"] = list(user.tags)
    if conversation_id is not None:
        data["conversationId"] = conversation_id
    return data


def group_json(group: GroupRecord, member: Member | None, *, with_tags: bool = False) -> JSON:
    """A group as ``member`` sees it (``scope``, ``joinedAt``, ``hasJoined`` only for members)."""
    data: JSON = {
        "guid": group.guid,
        "name": group.name,
        "description": group.fields.get("description", ""),
        "icon": group.fields.get("icon"),
        "type": group.type,
    }
    if member is not None:
        data["scope"] = member.scope
    data["membersCount"] = len(group.members)
    if member is not None:
        data["joinedAt"] = member.joined_at
    data["conversationId"] = group_conversation_id(group.guid)
    if member is not None:
        data["hasJoined"] = True
    for key, value in group.fields.items():
        data.setdefault(key, value)
    if with_tags and group.tags:
        data["tags"] = list(group.tags)
    return data


def entity_user(state: State, uid: str, conversation_id: str | None = None) -> JSON:
    """A user as a message entity: fewer fields than ``user_json``."""
    user = state.users.get(uid)
    if user is None:  # e.g. "app_system"
        return {"uid": uid, "name": uid}
    entity: JSON = {"uid": user.uid, "name": user.name}
    for key in _ENTITY_USER_KEYS:
        if key in user.fields:
            entity[key] = user.fields[key]
    if conversation_id is not None:
        entity["conversationId"] = conversation_id
    return entity


def entity_group(state: State, guid: str) -> JSON:
    group = state.groups.get(guid)
    if group is None:
        return {"guid": guid, "name": guid}
    entity: JSON = {"guid": group.guid, "name": group.name, "type": group.type}
    for key in _GROUP_KEYS:
        if key in group.fields:
            entity[key] = group.fields[key]
    entity["membersCount"] = len(group.members)
    entity["conversationId"] = group_conversation_id(group.guid)
    return entity


def message_json(state: State, message: MessageRecord, *, receipts: bool = False) -> JSON:
    if message.receiver_type == "user":
        receiver = entity_user(state, message.receiver, message.conversation_id)
    else:
        receiver = entity_group(state, message.receiver)
    data: JSON = {
        "id": str(message.id),
        "conversationId": message.conversation_id,
        "sender": message.sender,
        "receiverType": message.receiver_type,
        "receiver": message.receiver,
        "category": message.category,
        "type": message.type,
        "data": {
            "text": message.text,
            "entities": {
                "sender": {"entity": entity_user(state, message.sender), "entityType": "user"},
                "receiver": {"entity": receiver, "entityType": message.receiver_type},
            },
        },
        "sentAt": message.sent_at,
        "updatedAt": message.sent_at,
    }
    if message.data is not None:
        data["data"] = dict(message.data)
    if message.fields:
        data.update(message.fields)
        if "deletedAt" in message.fields:  # a deleted message keeps no content (API.md silent)
            body = data["data"] = dict(data["data"])
            for key in ("text", "attachments", "url"):
                body.pop(key, None)
    if receipts:
        data["receipts"] = {"data": [[]]}
    return data


def peer_json(
    state: State, conversation: ConversationRecord, owner: str, options: RenderOptions
) -> JSON:
    """``conversationWith``: the other user, or the group as ``owner`` sees it."""
    peer_id = conversation.peer_for(owner)
    if conversation.type == "user":
        peer = user_json(
            state.users[peer_id],
            conversation_id=conversation.conversation_id,
            with_tags=options.with_peer_tags,
        )
        if options.with_blocked_info:
            peer["blockedByMe"] = state.has_blocked(owner, peer_id)
            peer["hasBlockedMe"] = state.has_blocked(peer_id, owner)
        return peer
    group = state.groups[peer_id]
    return group_json(group, group.members.get(owner), with_tags=options.with_peer_tags)


def conversation_json(
    state: State, conversation: ConversationRecord, owner: str, options: RenderOptions
) -> JSON:
    created_at = conversation.created_at
    if conversation.type == "group":  # a member sees the conversation from when they joined
        member = state.groups[conversation.peer_for(owner)].members.get(owner)
        if member is not None:
            created_at = max(created_at, member.joined_at)
    data: JSON = {
        "conversationId": conversation.conversation_id,
        "conversationType": conversation.type,
        "unreadMessageCount": str(conversation.unread.get(owner, 0)),
        "createdAt": created_at,
        "updatedAt": conversation.updated_at,
    }
    if conversation.last_message is not None:
        data["lastMessage"] = message_json(
            state, conversation.last_message, receipts=options.receipts
        )
    data["conversationWith"] = peer_json(state, conversation, owner, options)
    if options.with_tags:
        data["tags"] = list(conversation.tags.get(owner, ()))
    return data


# -- fast list rows ----------------------------------------------------------------------------


_BOOL = {True: "true", False: "false"}
_NOBODY_BLOCKED = ',"blockedByMe":false,"hasBlockedMe":false'  # the common case, precomputed


class ConversationRenderer:
    """Renders list rows to JSON text, for every option a list request can ask for."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._generation = -1
        # user objects without the closing brace, without and with their tags
        self._user_open: tuple[dict[str, str], dict[str, str]] = ({}, {})
        self._entity: dict[str, str] = {}  # message entity of a user, closed
        self._entity_open: dict[str, str] = {}  # the same without the closing brace

    @staticmethod
    def serves(options: RenderOptions) -> bool:
        """Whether :meth:`conversation` renders rows with ``options`` (list rows carry receipts;
        every combination of the other options is served)."""
        return options.receipts

    def _sync(self) -> None:
        if self._generation != self.state.generation:
            for cache in (*self._user_open, self._entity, self._entity_open):
                cache.clear()
            self._generation = self.state.generation

    def _user(self, uid: str, with_tags: bool) -> str:
        cache = self._user_open[with_tags]
        text = cache.get(uid)
        if text is None:
            text = dumps(user_json(self.state.users[uid], with_tags=with_tags))[:-1]
            cache[uid] = text
        return text

    def _entity_closed(self, uid: str) -> str:
        text = self._entity.get(uid)
        if text is None:
            text = dumps(entity_user(self.state, uid))
            self._entity[uid] = text
        return text

    def _entity_open_text(self, uid: str) -> str:
        text = self._entity_open.get(uid)
        if text is None:
            text = dumps(entity_user(self.state, uid))[:-1]
            self._entity_open[uid] = text
        return text

    def _message(self, message: MessageRecord, id_json: str) -> str:
        """``id_json``: the conversation id as a JSON string (the message's own, encoded once)."""
        sender = self._entity_closed(message.sender)
        receiver = self._entity_open_text(message.receiver)
        return (
            f'{{"id":"{message.id}","conversationId":{id_json},'
            f'"sender":{_string(message.sender)},"receiverType":"user",'
            f'"receiver":{_string(message.receiver)},"category":{_string(message.category)},'
            f'"type":{_string(message.type)},"data":{{"text":{_string(message.text)},'
            f'"entities":{{"sender":{{"entity":{sender},"entityType":"user"}},'
            f'"receiver":{{"entity":{receiver},"conversationId":{id_json}}},"entityType":"user"}}}}}},'
            f'"sentAt":{message.sent_at},"updatedAt":{message.sent_at},'
            f'"receipts":{{"data":[[]]}}}}'
        )

    def conversation(
        self, row: ConversationRecord, owner: str, options: RenderOptions = LIST_OPTIONS
    ) -> str:
        """JSON text of ``row`` seen by ``owner``; the same bytes as the dict path."""
        self._sync()
        message = row.last_message
        if (
            row.type != "user"
            or not options.receipts
            or (
                message is not None
                and (message.receiver_type != "user" or message.fields or message.data)
            )
        ):
            return dumps(conversation_json(self.state, row, owner, options))
        id_json = _string(row.conversation_id)
        last = "" if message is None else f'"lastMessage":{self._message(message, id_json)},'
        peer_uid = row.peer_for(owner)
        blocked = ""
        if options.with_blocked_info:
            state = self.state
            blocked = (
                (
                    f',"blockedByMe":{_BOOL[state.has_blocked(owner, peer_uid)]}'
                    f',"hasBlockedMe":{_BOOL[state.has_blocked(peer_uid, owner)]}'
                )
                if state.blocked
                else _NOBODY_BLOCKED
            )
        tags = f',"tags":{dumps(row.tags.get(owner, []))}' if options.with_tags else ""
        return (
            f'{{"conversationId":{id_json},"conversationType":"user",'
            f'"unreadMessageCount":"{row.unread.get(owner, 0)}",'
            f'"createdAt":{row.created_at},"updatedAt":{row.updated_at},{last}'
            f'"conversationWith":{self._user(peer_uid, options.with_peer_tags)},'
            f'"conversationId":{id_json}{blocked}}}{tags}}}'
        )
