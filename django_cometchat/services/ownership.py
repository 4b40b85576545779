"""Owners: a Django user's CometChat UID, bound to one account; owners chosen in bulk."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import IntegrityError, transaction

from ..conf import get_settings
from ..exceptions import (
    CometChatInvalidId,
    CometChatNoChatUser,
    CometChatOwnerConflict,
    CometChatUnknownOwner,
    CometChatUserError,
)
from ..ids import validate_id
from ..models import Conversation, SyncRun, UIDBinding

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Owner:
    """Whose conversations: a CometChat UID and the Django user bound to it (None if none).

    ``problem`` is set instead of a UID when a Django user cannot act in CometChat (no valid UID,
    or its UID belongs to another account); :func:`sync_conversations` raises it.
    """

    uid: str
    user: Any = field(default=None, compare=False)
    problem: CometChatUserError | None = field(default=None, compare=False, repr=False)
    bound_now: bool = field(default=False, compare=False)  # owner_for bound the UID just now

    @property
    def user_id(self) -> Any:
        return None if self.user is None else self.user.pk

    @property
    def label(self) -> str:
        """How a person names this owner: the username, with the UID when it differs."""
        if self.user is None:
            return self.uid
        name = str(self.user.get_username())
        return name if not self.uid or name == self.uid else f"{name} (uid {self.uid})"

    @property
    def no_chat_user(self) -> bool:
        """UID_RESOLVER says this account has no CometChat user: skipped, not failed."""
        return isinstance(self.problem, CometChatNoChatUser)

    def checked(self) -> Owner:
        if self.problem is not None:
            raise self.problem
        return self


def resolve_uid(user: Any) -> str:
    """The CometChat UID for a Django user, through ``UID_RESOLVER``; lowercased and validated."""
    if user is None or not getattr(user, "is_authenticated", False):
        raise CometChatUserError("An anonymous user has no CometChat UID; sign in first")
    settings = get_settings()
    raw = settings.uid_resolver()(user)
    if raw is None:
        raise CometChatNoChatUser(
            f"{settings.uid_resolver_label} returned None for Django user {_name(user)}: the "
            "account has no CometChat user"
        )
    if not raw:
        raise CometChatUserError(
            f"{settings.uid_resolver_label} returned no UID for Django user {_name(user)} "
            "(return None for an account that has no CometChat user)"
        )
    try:
        return validate_id(str(raw), "UID")
    except CometChatInvalidId as exc:
        raise CometChatUserError(
            f"{settings.uid_resolver_label} returned an invalid CometChat UID for Django user "
            f"{_name(user)}: {exc.api_message}",
            code="ERR_INVALID_ID",
        ) from exc


def _name(user: Any) -> str:
    """A Django user as operators know it: the username, and the pk (it may be blank)."""
    return f"{user.get_username()!r} (pk={user.pk})"


def has_no_chat_user(user: Any) -> bool:
    """Whether ``UID_RESOLVER`` says a bound account has no CometChat user (now): batch work
    skips its UID. A resolver that fails is not asked here; the sync names its failure."""
    if user is None:
        return False
    try:
        return get_settings().uid_resolver()(user) is None
    except Exception:
        return False


def owner_for(user: Any) -> Owner:
    """The owner a Django user acts as: its UID, bound to it on first use.

    Raises ``CometChatOwnerConflict`` when the UID is already bound to another account (the
    operator's log line names both users; see ``rebind_uid``).
    """
    uid = resolve_uid(user)
    binding = UIDBinding.objects.filter(uid=uid).only("user_id").first()
    bound_now = False
    if binding is None:
        try:
            with transaction.atomic():
                binding = UIDBinding.objects.create(uid=uid, user=user)
            bound_now = True
        except IntegrityError:  # bound by a concurrent request a moment ago
            binding = UIDBinding.objects.only("user_id").get(uid=uid)
    if binding.user_id != user.pk:
        # Operators know accounts by username: name both (the bound one costs a query, once).
        holder = get_user_model()._default_manager.filter(pk=binding.user_id).first()
        holder_name = _name(holder) if holder is not None else f"pk={binding.user_id}"
        logger.warning(
            "Refused Django user %s: its CometChat UID %r is bound to Django user %s "
            "(see cometchat_rebind)",
            _name(user),
            uid,
            holder_name,
        )
        raise CometChatOwnerConflict(
            f"The CometChat UID {uid!r} of Django user {_name(user)} is bound to Django user "
            f"{holder_name}; one UID belongs to one account. Fix UID_RESOLVER, or move "
            "the UID on purpose with `manage.py cometchat_rebind`.",
            uid=uid,
            bound_user_id=binding.user_id,
        )
    return Owner(uid, user, bound_now=bound_now)


def owner_by_uid(uid: str) -> Owner:
    """The owner of a bare CometChat UID, with the Django user bound to it if there is one."""
    return owners_by_uid([uid])[validate_id(uid, "UID")]


def owners_by_uid(uids: Iterable[str]) -> dict[str, Owner]:
    """``uid -> Owner`` for several UIDs, with their bound users, in two queries."""
    valid = {validate_id(uid, "UID") for uid in uids}
    # No order (the model's is by UID): a dict needs none, and the ORDER BY cost a webhook
    # event's task about 2% of its CPU to compile.
    bindings = UIDBinding.objects.filter(uid__in=valid).select_related("user").order_by()
    bound = {b.uid: b.user for b in bindings}
    return {uid: Owner(uid, bound.get(uid)) for uid in valid}


def as_owner(who: Any) -> Owner:
    """An ``Owner`` as is, or a Django user's owner (:func:`owner_for`)."""
    return who.checked() if isinstance(who, Owner) else owner_for(who)


def _owner_or_problem(user: Any) -> Owner:
    try:
        return owner_for(user)
    except CometChatUserError as exc:
        return Owner("", user, problem=exc)


@dataclass
class OwnerSelection:
    """Owners chosen by username, UID or "every active user", streamed; ``total`` is known
    before the first one is read (for progress reports)."""

    total: int
    items: Iterator[Owner]
    skipped: int = 0  # owners chat_users() passed over so far
    already_queued: int = 0  # owners left out: a sync of theirs is queued or running

    def __iter__(self) -> Iterator[Owner]:
        return self.items

    def chat_users(self) -> Iterator[Owner]:
        """The owners, less those with no CometChat user (``Owner.no_chat_user``), counted in
        ``skipped``: batch work records no run and sends no request for them."""
        for owner in self.items:
            if owner.no_chat_user:
                self.skipped += 1
                continue
            yield owner


def owners(
    *,
    usernames: Iterable[str] = (),
    uids: Iterable[str] = (),
    all_users: bool = False,
    batch_size: int = 500,
) -> OwnerSelection:
    """The owners a command, a task fan-out or an admin action works through.

    ``usernames`` are Django users (``USERNAME_FIELD``; an unknown one is refused before anything
    happens), ``uids`` bare CometChat UIDs (validated up front), ``all_users`` every active user
    in primary-key order, read ``batch_size`` at a time: no server-side cursor stays open for the
    hours a large run can take. A user who cannot act in CometChat comes with ``problem`` set.
    """
    if uids:
        chosen = list(dict.fromkeys(validate_id(uid, "UID") for uid in uids))
        found = owners_by_uid(chosen)
        return OwnerSelection(len(chosen), iter([found[uid] for uid in chosen]))
    get_settings().uid_resolver()  # a broken UID_RESOLVER fails once, here, not once per user
    if usernames:
        users = users_by_name(list(dict.fromkeys(usernames)))
        return OwnerSelection(len(users), (_owner_or_problem(user) for user in users))
    if not all_users:
        return OwnerSelection(0, iter(()))
    users = _active_users()
    return OwnerSelection(
        users.count(), (_owner_or_problem(u) for u in _in_batches(users, batch_size))
    )


def users_by_name(names: list[str]) -> list[Any]:
    """Django users by ``USERNAME_FIELD``, in the order given; an unknown name is refused."""
    user_model = get_user_model()
    field_name = user_model.USERNAME_FIELD
    found = {
        str(u.get_username()): u
        for u in user_model._default_manager.filter(**{f"{field_name}__in": names})
    }
    unknown = [name for name in names if name not in found]
    if unknown:
        raise CometChatUserError(
            f"No Django user with {field_name} {', '.join(map(repr, unknown))}",
            code="ERR_NO_USER",
        )
    return [found[name] for name in names]


def _active_users() -> Any:
    user_model = get_user_model()
    users = user_model._default_manager.all()
    try:
        user_model._meta.get_field("is_active")
    except FieldDoesNotExist:
        return users
    return users.filter(is_active=True)


def _in_batches(users: Any, batch_size: int) -> Iterator[Any]:
    after: Any = None
    while True:
        page = users.order_by("pk")
        if after is not None:
            page = page.filter(pk__gt=after)
        batch = list(page[:batch_size])
        yield from batch
        if len(batch) < batch_size:
            return
        after = batch[-1].pk


def rebind_uid(uid: str, user: Any) -> int:
    """Move a UID to ``user`` on purpose, with its stored rows; returns the conversations moved.

    The one way rows change owner: a sync never reassigns them.
    """
    uid = validate_id(uid, "UID")
    with transaction.atomic():
        UIDBinding.objects.update_or_create(uid=uid, defaults={"user": user})
        SyncRun.objects.owned_by(uid).update(owner=user)
        moved = Conversation.objects.owned_by(uid).update(owner=user)
    logger.info("CometChat UID %r rebound to Django user pk=%s", uid, user.pk)
    return moved


def release_uid(uid: str) -> bool:
    """Forget which account a UID belongs to (its rows keep their owner link); True if bound."""
    deleted, _ = UIDBinding.objects.filter(uid=validate_id(uid, "UID")).delete()
    return bool(deleted)


def explain_unknown_owner(exc: BaseException, owner: Owner) -> None:
    """Say where an unknown owner's UID came from, for the operator reading the message."""
    if isinstance(exc, CometChatUnknownOwner) and owner.user is not None:
        exc.resolved_from = (
            f"the one {get_settings().uid_resolver_label} gives Django user "
            f"{owner.user.get_username()!r} (pk {owner.user.pk})"
        )


def unless_no_chat_user(owner: Owner) -> Owner:
    """The owner, flagged ``no_chat_user`` when its account's resolver now returns None."""
    if not has_no_chat_user(owner.user):
        return owner
    problem = CometChatNoChatUser(
        f"UID_RESOLVER returned None for Django user {_name(owner.user)}, bound to UID "
        f"{owner.uid!r}: the account has no CometChat user"
    )
    return Owner(owner.uid, owner.user, problem=problem)
