"""One conversation fetched live and stored: on demand, for a webhook event, as a task; which
failures prove it gone."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..client import CometChatClient, Fetched
from ..conversation_types import Conversation as RemoteConversation
from ..exceptions import CometChatAPIError, CometChatError, CometChatUnknownOwner
from ..ids import validate_id
from ..models import Conversation
from ..storage import FetchedConversation, mark_gone, store_fetched_together
from ..webhook_types import Target
from .clients import background, kept_client, on_demand
from .ownership import Owner, as_owner, explain_unknown_owner, owner_by_uid
from .runs import announce_changes, release_refresh

logger = logging.getLogger(__name__)


# What a single-conversation GET answers when the owner no longer has the conversation (API.md
# §0.4, §2.2, §2.4, §2.10, §5.3, §8.12, §8.13): not accessible (not their one-to-one, not a
# member, no messages), the deprecated endpoint's not found, the peer user (deleted, or
# deactivated) or the group gone, the owner out of the group. Nothing else proves it.
GONE_CODES = frozenset(
    {
        "ERR_CONVERSATION_NOT_ACCESSIBLE",
        "ERR_CONVERSATION_NOT_FOUND",
        "ERR_UID_NOT_FOUND",
        "ERR_GUID_NOT_FOUND",
        "ERR_NOT_A_MEMBER",
        "ERR_GROUP_NOT_JOINED",
        "ERR_BANNED_GROUPMEMBER",
    }
)


def proves_gone(exc: CometChatError) -> bool:
    """Whether a failed single-conversation GET proves the owner no longer has it.

    An unknown *owner* is not about the conversation, nor is an unknown user asked about a
    group's conversation (only its owner could be meant); a 5xx, a 429, a transport failure or a
    broken body proves nothing either.
    """
    if not isinstance(exc, CometChatAPIError) or isinstance(exc, CometChatUnknownOwner):
        return False
    if exc.code == "ERR_UID_NOT_FOUND" and not exc.endpoint.startswith("GET /users/"):
        return False
    return exc.code in GONE_CODES and (exc.status is None or exc.status < 500)


def fetch_conversation(
    owner: Any,
    conversation_id: str,
    *,
    client: CometChatClient | None = None,
    peer_flag: tuple[str, bool] | None = None,
) -> Conversation:
    """Fetch one conversation live (through the supported endpoint its id maps to) and store it.

    An invalid id raises ``CometChatInvalidId`` before anything is sent. Returns the stored row,
    which stays the newer one if CometChat answered with an older payload. ``peer_flag`` is a
    block event's news of a user peer (see ``with_list_only_fields``).
    """
    owner = as_owner(owner)
    stored_as = fetch_and_store(owner, conversation_id, client=client, peer_flag=peer_flag)
    return _stored(owner, stored_as)


def fetch_and_store(
    owner: Owner,
    conversation_id: str,
    *,
    client: CometChatClient | None = None,
    peer_flag: tuple[str, bool] | None = None,
) -> str:
    """``fetch_conversation`` without reading the stored row back (a webhook event's refreshes
    need only to know it is stored): the id the conversation is stored under."""
    validate_id(conversation_id, "conversation id")
    with nullcontext(client) if client is not None else kept_client() as active:
        answer = _fetch(owner, conversation_id, active)
    return _store(owner, answer, peer_flag)


def _fetch(
    owner: Owner, conversation_id: str, client: CometChatClient
) -> Fetched[RemoteConversation]:
    """The GET of a valid id, a failure told where the owner's UID came from."""
    try:
        return client.get_conversation_timed(conversation_id, on_behalf_of=owner.uid)
    except CometChatError as exc:
        explain_unknown_owner(exc, owner)
        raise


def _store(
    owner: Owner, answer: Fetched[RemoteConversation], peer_flag: tuple[str, bool] | None
) -> str:
    _store_answers([(owner, answer, peer_flag)])
    return answer.value.conversation_id


# An owner, CometChat's answer for one of their conversations, and its event's block flag.
Answer = tuple[Owner, Fetched[RemoteConversation], tuple[str, bool] | None]


def _store_answers(
    answers: Sequence[Answer], *, lock_also: Sequence[str] = (), savepoint: bool = True
) -> None:
    """Store CometChat's answers together (``store_fetched_together``: every owner's lock
    first, in UID order; each ordered by when its request left, not when it landed), then
    announce what changed (``conversation_changed``, on commit)."""
    pages = store_fetched_together(
        [
            FetchedConversation(owner.user_id, owner.uid, answer.value, answer.sent_at, flag)
            for owner, answer, flag in answers
        ],
        lock_also=lock_also,
        savepoint=savepoint,
    )
    for (owner, _, _), page in zip(answers, pages, strict=True):
        announce_changes(owner.uid, page)


def refresh_on_demand(
    owner: Any, conversation_id: str, *, client: CometChatClient | None = None
) -> Conversation:
    """Fetch one conversation live, on demand, within ``WEB_DEADLINE``, and store it."""
    with on_demand(client) as active:
        return fetch_conversation(owner, conversation_id, client=active)


def refresh_target(
    owner: Any, target: Target, *, client: CometChatClient | None = None
) -> Conversation | None:
    """Refresh one conversation a webhook event names (``fetch_conversation``, with the
    event's block flag); None when the event said the owner lost it (``expect_gone``) and
    CometChat's answer proves it (``proves_gone``): the stored copy is then marked missing,
    its history kept. Any other failure is raised, and marks nothing."""
    owner = as_owner(owner)
    stored_as = _refresh_or_confirm_gone(owner, target, client=client)
    return None if stored_as is None else _stored(owner, stored_as)


def _stored(owner: Owner, conversation_id: str) -> Conversation:
    return Conversation.objects.owned_by(owner.uid).get(conversation_id=conversation_id)


def _refresh_or_confirm_gone(
    owner: Owner, target: Target, *, client: CometChatClient | None
) -> str | None:
    """``refresh_target`` without reading the row back: the id stored under, or None when
    confirmed gone (and marked missing)."""
    asked_at = timezone.now()
    try:
        return fetch_and_store(
            owner, target.conversation_id, client=client, peer_flag=target.peer_flag
        )
    except CometChatAPIError as exc:
        _confirm_gone(owner, target, exc, asked_at)
    return None


def _confirm_gone(owner: Owner, target: Target, exc: CometChatError, asked_at: datetime) -> None:
    """Mark the target's copy missing when the event said the owner lost it and the failure of
    the GET sent at ``asked_at`` proves it; otherwise raise the failure."""
    if not (target.expect_gone and proves_gone(exc)):
        raise exc
    assert isinstance(exc, CometChatAPIError)  # proves_gone says so
    logger.info(
        "CometChat confirms %s no longer holds %s (%s): marked missing",
        owner.uid,
        target.conversation_id,
        exc.code,
    )
    mark_gone(owner.uid, [target.conversation_id], proven_at=asked_at)


@dataclass(frozen=True)
class RefreshOutcome:
    """What one refresh of a target did: stored (``row``, when it was read back), confirmed
    gone and marked missing (``gone``), or failed with ``error`` (logged)."""

    target: Target
    row: Conversation | None = None
    error: CometChatError | None = None
    gone: bool = False

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        return "missing" if self.gone else "succeeded"


@dataclass(frozen=True)
class FetchedTarget:
    """A target's GET, not stored yet: CometChat's ``answer`` or the ``error``, and when the
    request was asked for (what a proven "gone" is dated by)."""

    owner: Owner
    target: Target
    asked_at: datetime
    answer: Fetched[RemoteConversation] | None = None
    error: CometChatError | None = None


def fetch_target(owner: Owner, target: Target, *, client: CometChatClient) -> FetchedTarget:
    """GET one target's conversation, storing nothing; a CometChat failure is returned, not
    raised (an invalid id is one, and reaches no one)."""
    asked_at = timezone.now()
    try:
        validate_id(target.conversation_id, "conversation id")
        answer = _fetch(owner, target.conversation_id, client)
    except CometChatError as exc:
        return FetchedTarget(owner, target, asked_at, error=exc)
    return FetchedTarget(owner, target, asked_at, answer=answer)


def store_targets(
    fetched: Sequence[FetchedTarget], *, read_back: bool = False, savepoint: bool = True
) -> list[RefreshOutcome]:
    """Store fetched targets, all in one transaction (``store_fetched_together``: every owner's
    lock first, in UID order), each with its event's block flag, the stored row read back with
    ``read_back``; or mark a target's copy missing when its failure proves it gone
    (``refresh_target``'s rule); any other CometChat failure is logged and returned. The
    outcomes come in the order given. ``savepoint=False`` inside the caller's transaction, as
    ``store_fetched_together``'s: a database error is raised and rolls it all back."""
    answered = [(i, one, one.answer) for i, one in enumerate(fetched) if one.answer is not None]
    outcomes: dict[int, RefreshOutcome] = {}
    with transaction.atomic(savepoint=savepoint):
        _store_answers(
            [(one.owner, answer, one.target.peer_flag) for _, one, answer in answered],
            # a failure may prove its copy gone: marked below, under its owner's lock too
            lock_also=[one.owner.uid for one in fetched if one.answer is None],
            savepoint=False,
        )
        for i, one, answer in answered:
            stored_as = answer.value.conversation_id
            outcomes[i] = RefreshOutcome(
                one.target, _stored(one.owner, stored_as) if read_back else None
            )
        for i, one in enumerate(fetched):
            if i not in outcomes:
                outcomes[i] = _failed_or_gone(one)
    return [outcomes[i] for i in range(len(fetched))]


def _failed_or_gone(fetched: FetchedTarget) -> RefreshOutcome:
    owner, target = fetched.owner, fetched.target
    assert fetched.error is not None
    try:
        _confirm_gone(owner, target, fetched.error, fetched.asked_at)
    except CometChatError as exc:
        logger.warning(
            "CometChat refresh of %s for %s failed: %s", target.conversation_id, owner.uid, exc
        )
        return RefreshOutcome(target, error=exc)
    return RefreshOutcome(target, gone=True)


def refresh_one(
    owner: Owner,
    target: Target,
    *,
    client: CometChatClient | None = None,
    read_back: bool = True,
) -> RefreshOutcome:
    """``refresh_target``, with a CometChat failure logged and returned, not raised: one
    refresh never fails a batch. ``read_back=False``: the stored row is not read back (the
    outcome's ``row`` stays None), a statement saved where only the status matters."""
    with nullcontext(client) if client is not None else kept_client() as active:
        fetched = fetch_target(owner, target, client=active)
    return store_targets([fetched], read_back=read_back)[0]


def refresh_in_background(target: Target) -> RefreshOutcome:
    """A queued refresh carried out (the ``refresh_conversation`` task): its claim given back
    first (a later request queues anew), then the refresh within ``SYNC_DEADLINE``."""
    release_refresh(target.uid, target.conversation_id)
    with background():
        return refresh_one(owner_by_uid(target.uid), target)
