"""Fast JSON text for conversation lists.

``State.conversation_json`` builds dicts, which is clear but costs ~20 ms per 1,000 conversations
once ``json.dumps`` is added. Listing pages renders one-to-one conversations here instead, from JSON
fragments cached per user (the user object without its ``conversationId``, and the message
entity), so a page of 1,000 is mostly string joins. The output is the same JSON as
``json.dumps(state.conversation_json(...))`` (a test holds the two together); group
conversations, whose peer object depends on the owner's membership, go through the dict path.

Caches are dropped whenever ``State.generation`` moves (a user or group changed). Call with
``State.lock`` held.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring

from .state import ConversationRecord, MessageRecord, RenderOptions, State

LIST_OPTIONS = RenderOptions(receipts=True)


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_string: Callable[[str], str] = encode_basestring  # a JSON string literal, quotes included


def _with_conversation_id(prefix: str, conversation_id: str) -> str:
    """Close an object rendered without its last brace, adding ``conversationId``."""
    return f'{prefix},"conversationId":{_string(conversation_id)}}}'


class ConversationRenderer:
    """Renders conversations to JSON text, as a conversation list answers them."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._generation = -1
        self._user_open: dict[str, str] = {}  # user object without the closing brace
        self._entity: dict[str, str] = {}  # message entity of a user, closed
        self._entity_open: dict[str, str] = {}  # the same without the closing brace

    def _sync(self) -> None:
        if self._generation != self.state.generation:
            self._user_open.clear()
            self._entity.clear()
            self._entity_open.clear()
            self._generation = self.state.generation

    def _user(self, uid: str) -> str:
        text = self._user_open.get(uid)
        if text is None:
            text = _dumps(self.state.user_json(self.state.users[uid]))[:-1]
            self._user_open[uid] = text
        return text

    def _entity_closed(self, uid: str) -> str:
        text = self._entity.get(uid)
        if text is None:
            text = _dumps(self.state.entity_user(uid))
            self._entity[uid] = text
        return text

    def _entity_with_id(self, uid: str, conversation_id: str) -> str:
        text = self._entity_open.get(uid)
        if text is None:
            text = _dumps(self.state.entity_user(uid))[:-1]
            self._entity_open[uid] = text
        return _with_conversation_id(text, conversation_id)

    def _message(self, message: MessageRecord, conversation_id: str) -> str:
        sender = self._entity_closed(message.sender)
        receiver = self._entity_with_id(message.receiver, conversation_id)
        return (
            f'{{"id":"{message.id}","conversationId":{_string(message.conversation_id)},'
            f'"sender":{_string(message.sender)},"receiverType":"user",'
            f'"receiver":{_string(message.receiver)},"category":{_string(message.category)},'
            f'"type":{_string(message.type)},"data":{{"text":{_string(message.text)},'
            f'"entities":{{"sender":{{"entity":{sender},"entityType":"user"}},'
            f'"receiver":{{"entity":{receiver},"entityType":"user"}}}}}},'
            f'"sentAt":{message.sent_at},"updatedAt":{message.sent_at},'
            f'"receipts":{{"data":[[]]}}}}'
        )

    def conversation(self, row: ConversationRecord, owner: str) -> str:
        """JSON text of ``row`` seen by ``owner``, with the list endpoint's default options."""
        self._sync()
        message = row.last_message
        if row.type != "user" or (message is not None and message.receiver_type != "user"):
            return _dumps(self.state.conversation_json(row, owner, LIST_OPTIONS))
        conversation_id = row.conversation_id
        last = (
            "" if message is None else f'"lastMessage":{self._message(message, conversation_id)},'
        )
        peer = _with_conversation_id(self._user(row.peer_for(owner)), conversation_id)
        return (
            f'{{"conversationId":{_string(conversation_id)},"conversationType":"user",'
            f'"unreadMessageCount":"{row.unread.get(owner, 0)}",'
            f'"createdAt":{row.created_at},"updatedAt":{row.updated_at},'
            f'{last}"conversationWith":{peer}}}'
        )
