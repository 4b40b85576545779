"""CometChat webhook deliveries (API.md §7): the envelope parsed into what to refresh.

Stdlib only, the same layer as :mod:`..types`, and the same kind of boundary: a delivery comes
from the network, so every id in it is held to the rules of the ids we send (``ids.validate_id``)
before anything is stored or used, and the envelope must be JSON every supported database stores
(``types.check_storable``). Anything else raises :class:`WebhookPayloadError`, a
:class:`~django_cometchat.exceptions.CometChatResponseError`, whose text never repeats the value
it refused (a hostile id is neither stored nor used, not even in an error message).

:func:`parse_webhook` returns a frozen :class:`Delivery`: the trigger, how to deduplicate it, the
app it is for, and what to refresh: (owner UID, conversation id) pairs, or a group whose stored
conversations fan out to the owners holding one. Which owners this site knows is the services'
business, not this one's.

One module per job, every public name importable from here:

* :mod:`.triggers`: the trigger families this app acts on and every trigger CometChat publishes;
* :mod:`.delivery`: ``Delivery``, ``Target``, the dedupe key, ``foreign_app()``, the error;
* :mod:`.fields`: reading one field of a body (an object, an id, users, a time);
* :mod:`.parse`: ``parse_webhook()``, one parser per trigger family, and what each accepts.
"""

from __future__ import annotations

from .delivery import (
    RETRY_HORIZON_SECONDS,
    Delivery,
    Target,
    WebhookPayloadError,
    dedupe_key,
    digest,
    foreign_app,
    pair_conversation_id,
)
from .parse import (
    BLOCK_TIME_KEYS,
    BLOCKED_KEYS,
    BLOCKER_KEYS,
    MAX_BLOCKED,
    MAX_MEMBERS,
    parse_webhook,
)
from .triggers import (
    ACTION_TRIGGERS,
    BLOCK_TRIGGERS,
    GROUP_DELETED,
    GROUP_TRIGGERS,
    HANDLED_TRIGGERS,
    KNOWN_TRIGGERS,
    LEGACY_MESSAGE_TRIGGERS,
    MAX_TRIGGER_LENGTH,
    MEMBER_GAINED_TRIGGERS,
    MEMBER_LOST_TRIGGERS,
    MESSAGE_TRIGGERS,
    RECEIPT_TRIGGERS,
    trigger_of,
)

__all__ = [
    "ACTION_TRIGGERS",
    "BLOCKED_KEYS",
    "BLOCKER_KEYS",
    "BLOCK_TIME_KEYS",
    "BLOCK_TRIGGERS",
    "GROUP_DELETED",
    "GROUP_TRIGGERS",
    "HANDLED_TRIGGERS",
    "KNOWN_TRIGGERS",
    "LEGACY_MESSAGE_TRIGGERS",
    "MAX_BLOCKED",
    "MAX_MEMBERS",
    "MAX_TRIGGER_LENGTH",
    "MEMBER_GAINED_TRIGGERS",
    "MEMBER_LOST_TRIGGERS",
    "MESSAGE_TRIGGERS",
    "RECEIPT_TRIGGERS",
    "RETRY_HORIZON_SECONDS",
    "Delivery",
    "Target",
    "WebhookPayloadError",
    "dedupe_key",
    "digest",
    "foreign_app",
    "pair_conversation_id",
    "parse_webhook",
    "trigger_of",
]
