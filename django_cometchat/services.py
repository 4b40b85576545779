"""Use cases: the ONLY place the client and the models meet.

One function per use case, keyword-only options, no request-bound assumptions: the API, the
admin, the commands, tasks and webhooks all call these. Owners, client creation, transactions and
signals live here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Q, Subquery
from django.db.models.expressions import Window
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from . import budget, deadline
from .budget import BudgetUsage, RateBudget
from .client import CometChatClient, retry_budget
from .conf import get_settings
from .exceptions import (
    CometChatAPIError,
    CometChatConfigurationError,
    CometChatDeadlineExceeded,
    CometChatError,
    CometChatInvalidId,
    CometChatNoChatUser,
    CometChatOwnerConflict,
    CometChatResponseError,
    CometChatUnknownOwner,
    CometChatUserError,
)
from .filters import ConversationFilters
from .ids import validate_id
from .models import (
    Conversation,
    ConversationSnapshot,
    QueuedRefresh,
    SyncRun,
    UIDBinding,
    WebhookEvent,
)
from .redaction import redact
from .signals import (
    conversation_changed,
    conversations_synced,
    sync_run_finished,
    webhook_event_finished,
    webhook_processed,
)
from .storage import (
    PageOutcome,
    Row,
    SeenSet,
    StoredHash,
    clear_missing,
    content_hash,
    mark_gone,
    page_transaction,
    row_from,
    store_page,
    stored_hashes,
    with_list_only_fields,
)
from .types import Conversation as RemoteConversation
from .types import PayloadShapeError, conversation_id_of, parse_conversation, updated_at_of
from .webhook_types import Delivery, Target, foreign_app, parse_webhook

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .client import Page

logger = logging.getLogger(__name__)

Client = CometChatClient  # for the adapters' annotations: they never import the client itself

__all__ = [  # noqa: RUF022 - grouped by use case
    "Client",
    "CometChatUserError",  # re-exported: it lived here before exceptions.py
    "Owner",
    "OwnerSelection",
    "SyncResult",
    "as_owner",
    "new_client",
    "on_demand",
    "without_waiting",
    "rate_budget_usage",
    "owner_by_uid",
    "owner_for",
    "owners",
    "owners_by_uid",
    "mark_abandoned_runs",
    "fail_queued_run",
    "queue_sync_run",
    "claim_sync_run",
    "active_run",
    "claim_refresh",
    "release_refresh",
    "stale_owners",
    "rebind_uid",
    "users_by_name",
    "release_uid",
    "resolve_uid",
    "has_no_chat_user",
    "sync_conversations",
    "fetch_conversation",
    "request_sync",
    "request_refresh",
    "prune_history",
    "prune_sync_runs",
    "prune_webhook_events",
    "record_webhook",
    "record_refused_webhook",
    "claim_webhook_event",
    "take_waiting_webhook_events",
    "webhook_targets",
    "refresh_target",
    "proves_gone",
    "finish_webhook_event",
]


# -- owners ------------------------------------------------------------------------------------


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
    bound = {b.uid: b.user for b in UIDBinding.objects.filter(uid__in=valid).select_related("user")}
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


# -- clients and on-demand work -----------------------------------------------------------------


def new_client(*, on_demand: bool = False) -> CometChatClient:
    """A client for background work, or (``on_demand``) with the web retry budget."""
    if on_demand:
        return CometChatClient(retry_budget=get_settings().web_retry_budget)
    return CometChatClient()


@contextmanager
def on_demand(client: CometChatClient | None = None) -> Iterator[CometChatClient]:
    """Work a person waits for (the API, the admin): one deadline of ``WEB_DEADLINE`` seconds
    covers every connect, read, retry and page inside the block, retries sleep at most
    ``WEB_RETRY_BUDGET`` seconds, and requests take from ``ON_DEMAND_SHARE`` of the rate
    budget (past it: ``CometChatBudgetExhausted`` at once, nothing sent)."""
    settings = get_settings()
    with (
        deadline.deadline(settings.web_deadline, setting="WEB_DEADLINE"),
        retry_budget(settings.web_retry_budget),
        budget.on_demand_work(),
    ):
        if client is not None:
            yield client
        else:
            with new_client(on_demand=True) as own:
                yield own


@contextmanager
def background() -> Iterator[None]:
    """Background work (a command, a task): one deadline of ``SYNC_DEADLINE`` seconds covers
    every connect, socket read, retry and page of the sync, refresh or webhook event inside.

    Settings that do not load open no deadline: the work inside then fails on them, and records
    why where it records failures (the run, the event)."""
    try:
        seconds = get_settings().sync_deadline
    except CometChatConfigurationError:
        seconds = None
    with deadline.deadline(seconds, setting="SYNC_DEADLINE"):
        yield


def without_waiting() -> AbstractContextManager[None]:
    """Work inside never waits for a rate window (an inline webhook, answering CometChat within
    its 2 s): where it would, ``CometChatBudgetExhausted`` is raised and nothing is sent."""
    return budget.without_waiting()


def rate_budget_usage() -> BudgetUsage | None:
    """The shared rate budget's counts for the current window (all requests, and on-demand
    ones, each with its limit); None when ``REQUESTS_PER_MINUTE`` is None. A cache that fails
    is raised."""
    rate_budget = RateBudget.for_settings(get_settings())
    return None if rate_budget is None else rate_budget.usage()


# -- sync --------------------------------------------------------------------------------------


@dataclass
class SyncResult:
    """What one sync did. ``run`` is the saved SyncRun (unsaved on a dry run)."""

    run: SyncRun
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    missing: int = 0
    rechecked: int = 0  # candidates for a missing mark asked for one by one
    pages: int = 0
    requests: int = 0
    error: CometChatError | None = None

    @property
    def kept(self) -> int:
        """Rows left as stored: unchanged, or older than what is stored."""
        return self.unchanged + self.stale

    @property
    def ok(self) -> bool:
        return self.error is None and self.run.status != SyncRun.Status.FAILED

    def add(self, page: PageOutcome) -> None:
        self.created += len(page.created)
        self.updated += len(page.updated)
        self.unchanged += page.unchanged
        self.stale += page.stale


def sync_conversations(
    owner: Any,
    *,
    filters: ConversationFilters | None = None,
    client: CometChatClient | None = None,
    trigger: str = SyncRun.Trigger.CODE,
    dry_run: bool = False,
    raise_errors: bool = True,
    run: SyncRun | None = None,
) -> SyncResult:
    """Fetch every page of the owner's conversations on their behalf and store them.

    ``owner`` is a Django user (its UID from ``UID_RESOLVER``, bound to it on first use) or an
    :class:`Owner`. Each page is written in its own transaction; a failure part-way leaves what
    was stored before untouched, marks nothing missing, and records the failed ``SyncRun`` with
    the reason. After a complete sync not narrowed by ``filters``, stored conversations it did not
    return are re-checked, and those CometChat confirms gone get ``missing_since``.

    With ``raise_errors=False`` a CometChat failure is returned in ``result.error`` instead.
    ``run`` is a queued ``SyncRun`` (``queue_sync_run``) that this sync carries out.
    """
    owner = as_owner(owner)
    filters = filters or ConversationFilters()
    run = _start_run(owner, filters, trigger, run, dry_run=dry_run)
    result = SyncResult(run=run)
    try:
        # Inside the try: a missing setting is recorded on the run like any other failure.
        with nullcontext(client) if client is not None else new_client() as active:
            requests_before = active.request_count
            try:
                complete = not filters.narrows and not dry_run
                with SeenSet() if complete else nullcontext() as seen:
                    _Walk(active, run, result, seen, dry_run=dry_run).run(filters)
            finally:
                result.requests = active.request_count - requests_before
    except BaseException as exc:  # Ctrl-C too: the run is recorded as failed, then re-raised
        # A process being stopped (a command's SIGTERM) fails its runs with that, whatever
        # the interrupted request made of it (a timeout, an answer cut off).
        stopped = deadline.interruption()
        if stopped is not None:
            _finish(run, result, stopped, dry_run=dry_run)
            raise stopped from exc
        _explain(exc, owner)
        _finish(run, result, exc, dry_run=dry_run)
        if raise_errors or not isinstance(exc, CometChatError):
            raise
        result.error = exc
        return result
    _finish(run, result, None, dry_run=dry_run)
    return result


def _start_run(
    owner: Owner, filters: ConversationFilters, trigger: str, run: SyncRun | None, *, dry_run: bool
) -> SyncRun:
    """The running ``SyncRun`` of this sync: the queued one it carries out, or a new one."""
    if not dry_run:
        mark_abandoned_runs(owner.uid)
    if run is None:
        run = SyncRun(
            owner_id=owner.user_id,
            owner_uid=owner.uid,
            trigger=trigger,
            filters=filters.as_json(),
        )
    run.status = SyncRun.Status.RUNNING
    run.started_at = timezone.now()
    if not dry_run:
        run.save()
    return run


CATCH_UP_MAX_PAGES = 10
# Up to this many candidates (or as many as the walk had pages, if more) are re-checked one GET
# each before a missing mark; more than that take a second walk over the pages first.
RECHECK_MAX = 25
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


class _Walk:
    """One sync's walk over the owner's pages: store each, catch up, then prove what is missing."""

    def __init__(
        self,
        client: CometChatClient,
        run: SyncRun,
        result: SyncResult,
        seen: SeenSet | None,
        *,
        dry_run: bool,
    ) -> None:
        self.client = client
        self.run_record = run
        self.owner_uid = run.owner_uid
        self.result = result
        self.seen = seen
        self.dry_run = dry_run
        self.repeats = 0  # ids seen twice: the list shifted under the walk

    def run(self, filters: ConversationFilters) -> None:
        top_at_start: int | None = None
        pages = self.client.iter_raw_conversation_pages(
            on_behalf_of=self.owner_uid, filters=filters, prefetch=True
        )
        with closing(pages):  # a failure part-way stops the prefetching worker at once
            for page in pages:
                if top_at_start is None:
                    top_at_start = updated_at_of(page.items[0].get("updatedAt"))
                self.store(page)
        if self.seen is None:
            return
        self.run_record.complete = True
        if self.repeats and top_at_start is not None:
            self.catch_up(top_at_start)
        self.prove_missing(self.seen)

    def store(self, page: Page[Mapping[str, Any]], *, count_unchanged: bool = True) -> None:
        """Store one page. Rows whose content is already stored are neither parsed nor written.

        The catch-up and a second pass re-read rows the walk already counted: they count only
        what they write.
        """
        self.result.pages += 1
        digests = [(conversation_id_of(raw), content_hash(raw), raw) for raw in page.items]
        ids = [cid for cid, _, _ in digests]
        if self.dry_run:
            self.store_known(page, digests, stored_hashes(self.owner_uid, ids), count_unchanged)
            return
        # One transaction per page, the owner's lock taken with the read of the stored hashes.
        with page_transaction(self.owner_uid, ids) as known:
            self.store_known(page, digests, known, count_unchanged)

    def store_known(
        self,
        page: Page[Mapping[str, Any]],
        digests: list[tuple[str, str, Mapping[str, Any]]],
        known: dict[str, StoredHash],
        count_unchanged: bool,
    ) -> None:
        """``store`` once the stored hashes of the page's ids are known."""
        ids = [cid for cid, _, _ in digests]
        changed = [
            (cid, d, raw)
            for cid, d, raw in digests
            if cid not in known or known[cid].content_hash != d
        ]
        back = [
            cid for cid, d, _ in digests if cid in known and known[cid].unchanged_but_missing(d)
        ]
        if count_unchanged:
            self.result.unchanged += len(digests) - len(changed)
        # Parse (and check every value) before writing anything: one bad row fails the page.
        try:
            rows = [row_from(parse_conversation(raw), digest=d) for _, d, raw in changed]
        except PayloadShapeError as exc:
            raise CometChatResponseError(
                f"page {page.number}: {exc.describe()}", endpoint="GET /conversations"
            ) from exc
        if self.dry_run:  # count what a real sync would write
            created = sum(1 for row in rows if row.conversation_id not in known)
            self.result.created += created
            self.result.updated += len(rows) - created
            return
        if self.seen is not None:
            self.repeats += self.seen.add(ids)
        if rows:
            # Ordered by when the page's request left, not by when it is stored.
            self.write(rows, page.sent_at, locked=True)
        if back:
            clear_missing(self.owner_uid, back, before=page.sent_at)

    def write(self, rows: list[Row], sent_at: datetime, *, locked: bool = False) -> PageOutcome:
        outcome = store_page(
            owner_id=self.run_record.owner_id,
            owner_uid=self.owner_uid,
            rows=rows,
            fetched_at=sent_at,
            locked=locked,
        )
        self.result.add(outcome)
        _announce_changes(self.owner_uid, outcome)
        return outcome

    def catch_up(self, top_at_start: int) -> None:
        """Store what moved to the top of the list while the walk was under way.

        Offset paging over a list sorted by ``updatedAt`` skips a conversation that changes
        while the walk is under way: it jumps to page 1, which was already read, and the rows
        behind it shift by one, so the next page repeats a row already seen. That repeat is the
        sign. Everything that moved sits above the walk's first row, so re-reading pages until
        one reaches rows that old stores it (a conversation new since the walk began too, which
        no re-check would find: it is not stored yet).
        """
        pages = self.client.iter_raw_conversation_pages(on_behalf_of=self.owner_uid)
        with closing(pages):
            for number, page in enumerate(pages, start=1):
                self.store(page, count_unchanged=False)
                oldest = updated_at_of(page.items[-1].get("updatedAt"))
                if oldest < top_at_start or number >= CATCH_UP_MAX_PAGES:
                    break

    def prove_missing(self, seen: SeenSet) -> None:
        """Mark missing only what CometChat confirms is gone.

        A stored row the walk did not see is only a candidate: a conversation that left above
        the current page between two page requests shifts the rows below it up by one, and one
        of them is never served. Each candidate is asked for on its own (a GET on the owner's
        behalf): found, it is stored; gone (``GONE_CODES``), it is marked; anything else leaves
        it as it is. When there are more candidates than ``RECHECK_MAX`` (and than the walk had
        pages), a second walk over the pages comes first; if that still leaves too many, what
        both walks left out is marked.
        """
        started = self.run_record.started_at
        limit = max(RECHECK_MAX, self.result.pages)
        candidates = seen.unseen(self.owner_uid, before=started, limit=limit + 1)
        if len(candidates) > limit:
            logger.info(
                "More than %s conversations of %s were not seen; walking the pages again",
                limit,
                self.owner_uid,
            )
            second_started = timezone.now()
            pages = self.client.iter_raw_conversation_pages(
                on_behalf_of=self.owner_uid, prefetch=True
            )
            with closing(pages):
                for page in pages:
                    self.store(page, count_unchanged=False)
            candidates = seen.unseen(self.owner_uid, before=started, limit=limit + 1)
            if len(candidates) > limit:
                self.result.missing += seen.mark_missing(
                    self.owner_uid, before=started, proven_at=second_started
                )
                return
        if candidates:
            self.recheck(candidates)

    def recheck(self, candidates: list[str]) -> None:
        """One GET per candidate; mark those CometChat confirms gone, in one statement at the
        end (a failure before it marks nothing, as a failed walk does)."""
        # When the first re-check left, or earlier: the proof's time (conservative, as any
        # request sent after it that stored one of these rows keeps it).
        proven_at = timezone.now()
        gone: list[str] = []
        unproven = 0
        for index, conversation_id in enumerate(candidates):
            self.result.rechecked += 1
            try:
                fetched = self.client.get_conversation_timed(
                    conversation_id, on_behalf_of=self.owner_uid
                )
            except CometChatError as exc:
                if proves_gone(exc):
                    gone.append(conversation_id)
                    continue
                if isinstance(exc, CometChatUnknownOwner | CometChatDeadlineExceeded):
                    raise
                if exc.scope == "global":  # the key, the plan: nothing else will work either
                    raise
                unproven += 1
                if exc.scope == "outage":  # CometChat is struggling: ask it nothing more now
                    unproven += len(candidates) - index - 1
                    logger.warning(
                        "Re-checking conversations of %s stopped (%s); %s stay as they are",
                        self.owner_uid,
                        exc.code,
                        len(candidates) - index,
                    )
                    break
                logger.info(
                    "Re-check of %s for %s proved nothing (%s); it stays as it is",
                    conversation_id,
                    self.owner_uid,
                    exc.code,
                )
                continue
            self.write([self.single_row(fetched.value)], fetched.sent_at)
        if gone:
            self.result.missing += mark_gone(self.owner_uid, gone, proven_at=proven_at)
        logger.info(
            "Re-checked %s conversations of %s not seen by the sync: %s gone, %s live, %s unproven",
            self.result.rechecked,
            self.owner_uid,
            len(gone),
            len(candidates) - len(gone) - unproven,
            unproven,
        )

    def single_row(self, remote: RemoteConversation) -> Row:
        """The row for a single GET's answer, with the stored block flags (as
        ``fetch_conversation`` keeps them)."""
        payload = remote.raw
        if remote.conversation_type == "user":
            stored = Conversation.objects.owned_by(self.owner_uid).filter(
                conversation_id=remote.conversation_id
            )
            payload = with_list_only_fields(
                payload, stored.values_list("payload", flat=True).first()
            )
        return row_from(remote, payload=payload)


def _explain(exc: BaseException, owner: Owner) -> None:
    """Say where an unknown owner's UID came from, for the operator reading the message."""
    if isinstance(exc, CometChatUnknownOwner) and owner.user is not None:
        exc.resolved_from = (
            f"the one {get_settings().uid_resolver_label} gives Django user "
            f"{owner.user.get_username()!r} (pk {owner.user.pk})"
        )


def _finish(run: SyncRun, result: SyncResult, exc: BaseException | None, *, dry_run: bool) -> None:
    run.finished_at = timezone.now()
    run.created_count = result.created
    run.updated_count = result.updated
    run.unchanged_count = result.kept
    run.missing_count = result.missing
    run.rechecked_count = result.rechecked
    run.pages = result.pages
    run.requests = result.requests
    if exc is None:
        run.status = SyncRun.Status.SUCCEEDED
    else:
        _record_failure(run, exc)
    if not dry_run:
        run.save()
        transaction.on_commit(lambda: conversations_synced.send(sender=SyncRun, result=result))
        _announce_run(run)


def _announce_run(run: SyncRun, outcome: str | None = None) -> None:
    """``sync_run_finished`` for a run that ended (saved), once that is committed."""
    seconds = run.duration_seconds or 0.0
    transaction.on_commit(
        lambda: sync_run_finished.send_robust(
            sender=SyncRun,
            run=run,
            outcome=outcome or run.status,
            trigger=run.trigger,
            seconds=seconds,
        )
    )


def _record_failure(run: SyncRun, exc: BaseException) -> None:
    """Mark a run failed, with the reason for its operator and for its owner (not saved)."""
    run.status = SyncRun.Status.FAILED
    code = "ERR_INTERRUPTED" if isinstance(exc, KeyboardInterrupt) else getattr(exc, "code", None)
    run.error_code = str(code or type(exc).__name__)[:100]
    run.error_message = describe(exc)[:MAX_ERROR_LENGTH]
    public_length = SyncRun._meta.get_field("public_error_message").max_length
    run.public_error_message = public_message(exc)[:public_length]
    logger.warning("CometChat sync of %s failed: %s", run.owner_uid, run.error_message)


MAX_ERROR_LENGTH = 2000  # of an operator's error text, on a SyncRun or a WebhookEvent


def describe(exc: BaseException) -> str:
    """The operator's text for any failure (``CometChatError.describe()``, else its repr)."""
    if isinstance(exc, CometChatError):
        return exc.describe()
    if isinstance(exc, KeyboardInterrupt):  # a command's signal says which
        return str(exc) or "interrupted"
    return redact(str(exc)) or type(exc).__name__


def public_message(exc: BaseException) -> str:
    """The owner's text for any failure: nothing about settings, keys or CometChat's words."""
    if isinstance(exc, CometChatError):
        return exc.public_message
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED_MESSAGE
    return FAILED_MESSAGE


INTERRUPTED_MESSAGE = "The sync was interrupted. Try again."
FAILED_MESSAGE = "The sync failed. Try again later."
ABANDONED_MESSAGE = "The sync did not finish. Try again."


def _announce_changes(owner_uid: str, outcome: PageOutcome) -> None:
    """``conversation_changed`` once per created or updated row, after the page commits."""
    if not conversation_changed.has_listeners(Conversation):
        return
    changes = [(True, *c) for c in outcome.created] + [(False, *c) for c in outcome.updated]

    def send() -> None:
        for created, pk, conversation_id in changes:
            conversation_changed.send(
                sender=Conversation,
                owner_uid=owner_uid,
                conversation_id=conversation_id,
                pk=pk,
                created=created,
            )

    transaction.on_commit(send)


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
    validate_id(conversation_id, "conversation id")
    with nullcontext(client) if client is not None else new_client() as active:
        try:
            fetched = active.get_conversation_timed(conversation_id, on_behalf_of=owner.uid)
        except CometChatError as exc:
            _explain(exc, owner)
            raise
    remote = fetched.value
    payload = remote.raw
    if remote.conversation_type == "user":
        stored = Conversation.objects.owned_by(owner.uid).filter(
            conversation_id=remote.conversation_id
        )
        payload = with_list_only_fields(
            payload, stored.values_list("payload", flat=True).first(), peer_flag=peer_flag
        )
    outcome = store_page(
        owner_id=owner.user_id,
        owner_uid=owner.uid,
        rows=[row_from(remote, payload=payload)],
        fetched_at=fetched.sent_at,  # ordered by when the request left, not when it landed
    )
    _announce_changes(owner.uid, outcome)
    return Conversation.objects.owned_by(owner.uid).get(conversation_id=remote.conversation_id)


def request_sync(
    owner: Any,
    *,
    trigger: str,
    filters: ConversationFilters | None = None,
    client: CometChatClient | None = None,
) -> SyncRun:
    """Refresh an owner's conversations on demand (the API, the admin) and return the SyncRun.

    The one seam for on-demand refreshes: it syncs inline within ``WEB_DEADLINE`` so a waiting
    person gets an answer fast. A CometChat failure is recorded on the run and raised. Pass
    ``client`` to share one connection across a batch (inside the caller's ``on_demand()``).

    When a sync of the owner is already queued or running (``active_run``), nothing is fetched:
    that run is returned, its status still "queued" or "running" (a sync done here returns
    "succeeded"), so concurrent requests cost one walk over CometChat's pages.
    """
    owner = as_owner(owner)
    run, created = claim_sync_run(owner, trigger=trigger, filters=filters, queued=False)
    if not created:
        return run
    try:
        with on_demand(client) as active:
            return sync_conversations(
                owner, filters=filters, client=active, trigger=trigger, run=run
            ).run
    except BaseException as exc:
        if run.finished_at is None:  # failed before the sync took it over (no client, say)
            fail_queued_run(run, exc)
        raise


def request_refresh(
    owner: Any, conversation_id: str, *, client: CometChatClient | None = None
) -> Conversation:
    """Fetch one conversation live, on demand, within ``WEB_DEADLINE``, and store it."""
    with on_demand(client) as active:
        return fetch_conversation(owner, conversation_id, client=active)


ACTIVE_STATUSES = (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING)
CLAIM_ATTEMPTS = 3


def active_run(owner_uid: str) -> SyncRun | None:
    """The owner's sync on its way: queued or running and not abandoned; a requested one
    (``exclusive``) before one a command or code started; the oldest first."""
    runs = SyncRun.objects.owned_by(owner_uid).filter(
        status__in=ACTIVE_STATUSES, started_at__gte=_abandoned_before(timezone.now())
    )
    return runs.order_by("-exclusive", "started_at", "id").first()


def claim_sync_run(
    owner: Any, *, trigger: str, filters: ConversationFilters | None = None, queued: bool = True
) -> tuple[SyncRun, bool]:
    """The owner's sync already on its way (``active_run``), or a new requested one: ``(run,
    created)``. A new run is "queued" (for a task to carry out) or, with ``queued=False``,
    "running" (for the caller to carry out now, as ``sync_conversations(..., run=run)``).

    The database decides between concurrent requests: at most one requested run per owner is
    queued or running (a partial unique constraint), so the losers of a race get the winner's
    run. Runs abandoned past ``SYNC_ABANDONED_AFTER`` are marked failed first and never count.
    """
    owner = as_owner(owner)
    mark_abandoned_runs(owner.uid)
    status = SyncRun.Status.QUEUED if queued else SyncRun.Status.RUNNING
    for attempt in range(CLAIM_ATTEMPTS):
        active = active_run(owner.uid)
        if active is not None:
            return active, False
        try:
            with transaction.atomic():  # a savepoint: a lost race must not break the caller's
                run = SyncRun.objects.create(
                    owner_id=owner.user_id,
                    owner_uid=owner.uid,
                    trigger=trigger,
                    status=status,
                    filters=(filters or ConversationFilters()).as_json(),
                    started_at=timezone.now(),
                    exclusive=True,
                )
        except IntegrityError:
            # Another request's run won. Read it; it may have finished since: then try again.
            if attempt == CLAIM_ATTEMPTS - 1:
                raise
            continue
        return run, True
    raise AssertionError("unreachable")  # pragma: no cover


def queue_sync_run(
    owner: Any, *, trigger: str, filters: ConversationFilters | None = None
) -> SyncRun:
    """A ``SyncRun`` in state "queued", for a background task to carry out, or the owner's sync
    already on its way (see ``claim_sync_run``, which also says which): the caller can point a
    person at it (``sync-runs/<id>/``) at once."""
    return claim_sync_run(owner, trigger=trigger, filters=filters)[0]


def claim_refresh(owner_uid: str, conversation_id: str) -> bool:
    """Whether a refresh of this conversation may be queued now: False when one is already
    queued for the owner (and not abandoned). The database decides between concurrent
    requests (unique owner and conversation). ``release_refresh`` gives the claim back."""
    validate_id(conversation_id, "conversation id")
    now = timezone.now()
    claims = QueuedRefresh.objects.filter(owner_uid=owner_uid, conversation_id=conversation_id)
    claims.filter(queued_at__lt=_abandoned_before(now)).delete()  # never taken by a worker
    try:
        with transaction.atomic():
            QueuedRefresh.objects.create(
                owner_uid=owner_uid, conversation_id=conversation_id, queued_at=now
            )
    except IntegrityError:
        return False
    return True


def release_refresh(owner_uid: str, conversation_id: str) -> None:
    """The refresh's task started (or the queue refused it): the next request queues anew."""
    QueuedRefresh.objects.filter(owner_uid=owner_uid, conversation_id=conversation_id).delete()


def fail_queued_run(run: SyncRun, exc: BaseException) -> None:
    """A claimed run that never started (the queue refused its task, no client could be
    built): failed at once, with the reason, so that it stops answering requests."""
    run.finished_at = timezone.now()
    _record_failure(run, exc)
    run.save(
        update_fields=[
            "status",
            "finished_at",
            "error_code",
            "error_message",
            "public_error_message",
        ]
    )
    _announce_run(run)


def mark_abandoned_runs(owner_uid: str | None = None) -> int:
    """Runs "running" or "queued" for longer than ``SYNC_ABANDONED_AFTER``: their worker died
    (or never came). They are marked failed, so they stop looking busy; the owner's next sync
    proceeds either way. Returns how many were marked."""
    now = timezone.now()
    runs = SyncRun.objects.filter(
        status__in=(SyncRun.Status.RUNNING, SyncRun.Status.QUEUED),
        started_at__lt=_abandoned_before(now),
    )
    if owner_uid is not None:
        runs = runs.owned_by(owner_uid)
    marked = int(
        runs.update(
            status=SyncRun.Status.FAILED,
            finished_at=now,
            error_code="ERR_ABANDONED",
            error_message="Abandoned: no sync finished this run (its worker stopped, or no "
            'worker took it) within COMETCHAT["SYNC_ABANDONED_AFTER"] seconds.',
            public_error_message=ABANDONED_MESSAGE,
        )
    )
    if marked and sync_run_finished.has_listeners(SyncRun):
        # The rows just marked: this call's finished_at, to the microsecond.
        for run in SyncRun.objects.filter(finished_at=now, error_code="ERR_ABANDONED"):
            _announce_run(run, "abandoned")
    return marked


def _abandoned_before(now: datetime) -> datetime:
    """A queued or running run that started before this has been abandoned."""
    return now - timedelta(seconds=get_settings().sync_abandoned_after)


def stale_owners(older_than: timedelta) -> OwnerSelection:
    """Owners whose last successful sync finished before ``now - older_than``, or who never
    had one, and who have no sync queued or running: every UID bound to an account or holding
    stored conversations."""
    now = timezone.now()
    cutoff = now - older_than
    fresh = set(
        SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED, finished_at__gte=cutoff)
        .values_list("owner_uid", flat=True)
        .distinct()
    )
    # A sync still queued or running (and not abandoned) is on its way: not enqueued again.
    fresh |= set(
        SyncRun.objects.filter(
            status__in=(SyncRun.Status.QUEUED, SyncRun.Status.RUNNING),
            started_at__gte=_abandoned_before(now),
        )
        .values_list("owner_uid", flat=True)
        .distinct()
    )
    known = set(UIDBinding.objects.values_list("uid", flat=True)) | set(
        Conversation.objects.order_by().values_list("owner_uid", flat=True).distinct()
    )
    uids = sorted(known - fresh)
    found = owners_by_uid(uids)
    return OwnerSelection(len(uids), iter([_unless_no_chat_user(found[uid]) for uid in uids]))


def _unless_no_chat_user(owner: Owner) -> Owner:
    """The owner, flagged ``no_chat_user`` when its account's resolver now returns None."""
    if not has_no_chat_user(owner.user):
        return owner
    problem = CometChatNoChatUser(
        f"UID_RESOLVER returned None for Django user {_name(owner.user)}, bound to UID "
        f"{owner.uid!r}: the account has no CometChat user"
    )
    return Owner(owner.uid, owner.user, problem=problem)


# -- history -----------------------------------------------------------------------------------

DELETE_BATCH = 5000  # rows per DELETE statement of the prune functions


def prune_history(
    *,
    max_age_days: int | None = None,
    keep_per_conversation: int | None = None,
    dry_run: bool = False,
) -> int:
    """Delete old snapshots; each conversation's latest snapshot is always kept.

    Defaults come from ``HISTORY_MAX_AGE_DAYS`` and ``HISTORY_KEEP_PER_CONVERSATION``. Returns
    how many snapshots were (or, on a dry run, would be) deleted.
    """
    settings = get_settings()
    max_age_days = settings.history_max_age_days if max_age_days is None else max_age_days
    keep = (
        settings.history_keep_per_conversation
        if keep_per_conversation is None
        else keep_per_conversation
    )
    if max_age_days is None and keep is None:
        return 0
    ranked = ConversationSnapshot.objects.annotate(
        rank=Window(RowNumber(), partition_by="conversation_id", order_by=("-fetched_at", "-id"))
    )
    doomed: set[int] = set()
    if keep is not None:
        doomed.update(ranked.filter(rank__gt=keep).values_list("id", flat=True))
    if max_age_days is not None:
        cutoff = timezone.now() - timedelta(days=max_age_days)
        # Not ranked.filter(fetched_at__lt=...): that WHERE would run before the window ranks.
        latest = (
            ConversationSnapshot.objects.filter(conversation=OuterRef("conversation"))
            .order_by("-fetched_at", "-id")
            .values("id")[:1]
        )
        doomed.update(
            ConversationSnapshot.objects.filter(fetched_at__lt=cutoff)
            .exclude(id=Subquery(latest))
            .values_list("id", flat=True)
        )
    if not dry_run:
        ids = sorted(doomed)
        for start in range(0, len(ids), DELETE_BATCH):
            ConversationSnapshot.objects.filter(id__in=ids[start : start + DELETE_BATCH]).delete()
    return len(doomed)


def prune_sync_runs(
    *, max_age_days: int | None = None, dry_run: bool = False, batch_size: int = DELETE_BATCH
) -> int:
    """Delete finished sync runs started more than ``max_age_days`` ago (default
    ``SYNC_RUNS_MAX_AGE_DAYS``; None keeps them all), a batch at a time. Each owner's latest
    finished run (its last outcome: what the admin and ``stale_owners`` read) and every run
    still queued or running are kept whatever their age. Returns how many were (or, on a dry
    run, would be) deleted."""
    if max_age_days is None:
        max_age_days = get_settings().sync_runs_max_age_days
    if max_age_days is None:
        return 0
    finished = (SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED)
    latest = (
        SyncRun.objects.filter(owner_uid=OuterRef("owner_uid"), status__in=finished)
        .order_by("-started_at", "-id")
        .values("id")[:1]
    )
    # Both filters walk an index: (status, -started_at) for the old finished runs, and
    # (owner_uid, -started_at) for each one's owner's latest.
    old = SyncRun.objects.filter(
        status__in=finished, started_at__lt=timezone.now() - timedelta(days=max_age_days)
    ).exclude(id=Subquery(latest))
    if dry_run:
        return old.count()
    deleted = 0
    # An owner's latest finished run is never in a batch, so deleting one never changes it.
    while batch := list(old.order_by().values_list("pk", flat=True)[:batch_size]):
        deleted += SyncRun.objects.filter(pk__in=batch).delete()[0]
    return deleted


# -- webhooks ----------------------------------------------------------------------------------


# Attempts of record_webhook to settle one key against concurrent deliveries of it.
RECORD_ATTEMPTS = 3


def record_webhook(delivery: Delivery) -> WebhookEvent | None:
    """Record a parsed webhook delivery, and return the event to act on; None when it is a
    duplicate (CometChat retried it, or a second webhook delivered it too): the caller then
    does nothing more.

    * A delivery for another CometChat app (``webhook_types.foreign_app``) is recorded as
      ignored, with the reason and without a dedupe key: its ids are not this app's.
    * A trigger this app does not act on is recorded as ignored; any other waits, as received,
      for ``process_webhook_event``.
    * The key recorded already: a duplicate while that event is received, processing,
      processed or ignored. A failed one is taken over, back to received, and returned: the
      redelivery is processed again (one conditional UPDATE, so that of two concurrent
      redeliveries one takes it). A key with a ``horizon`` holds only that long after its event
      arrived, and only while no newer event of its ``topic`` arrived: past that, the old event
      gives its key up (again one conditional UPDATE) and the delivery is a new event.
    """
    now = timezone.now()
    settings = get_settings()
    # The region says which app it is only when it picks CometChat's host (BASE_URL unset).
    region = None if settings.base_url_override else settings.region
    reason = foreign_app(delivery, app_id=settings.app_id, region=region)
    if reason is not None:
        logger.info("CometChat webhook %s ignored: %s", delivery.trigger, reason)
        event = WebhookEvent.objects.create(
            trigger=delivery.trigger,
            received_at=now,
            status=WebhookEvent.Status.IGNORED,
            error=reason,
            payload=dict(delivery.raw),
        )
        _announce_event(event, delivery.occurred_at, now)
        return event
    status = WebhookEvent.Status.RECEIVED if delivery.handled else WebhookEvent.Status.IGNORED
    key = delivery.dedupe_key
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                event = WebhookEvent.objects.create(
                    trigger=delivery.trigger,
                    received_at=now,
                    dedupe_key=key,
                    status=status,
                    payload=dict(delivery.raw),
                    topic=delivery.topic or "",
                )
        except IntegrityError as exc:  # the unique key: a concurrent or earlier delivery has it
            refused = exc
        else:
            if status == WebhookEvent.Status.IGNORED:  # it ends here
                _announce_event(event, delivery.occurred_at, now)
            return event
        existing = WebhookEvent.objects.filter(dedupe_key=key).values("pk", "status").first()
        if existing is None:  # it gave its key up (or was pruned) meanwhile: record anew
            if attempt == RECORD_ATTEMPTS:
                raise refused  # not the key after all
            continue
        pk = existing["pk"]
        if _outlived(delivery, pk, now):
            WebhookEvent.objects.filter(pk=pk, dedupe_key=key).update(dedupe_key=None)
            continue
        if existing["status"] != WebhookEvent.Status.FAILED:
            return None
        taken = WebhookEvent.objects.filter(
            pk=pk, dedupe_key=key, status=WebhookEvent.Status.FAILED
        ).update(
            status=status,
            received_at=now,
            processed_at=None,
            error="",
            owners=[],
            payload=dict(delivery.raw),
        )
        if taken:
            logger.info("CometChat webhook event %s delivered again after failing: retried", pk)
            return WebhookEvent.objects.get(pk=pk)
    logger.warning(
        "CometChat webhook %s: its key stayed contended; answered as a duplicate", delivery.trigger
    )
    return None


def _outlived(delivery: Delivery, pk: int, now: datetime) -> bool:
    """Whether the recorded event ``pk`` with the delivery's key can no longer have been what
    CometChat retried: past the key's horizon, or followed by newer news of the same topic."""
    if delivery.horizon is None:
        return False
    recorded = WebhookEvent.objects.filter(pk=pk)
    if recorded.filter(received_at__lt=now - timedelta(seconds=delivery.horizon)).exists():
        return True
    return bool(
        delivery.topic and WebhookEvent.objects.filter(topic=delivery.topic, pk__gt=pk).exists()
    )


def record_refused_webhook(*, trigger: str, error: str) -> WebhookEvent:
    """Record a delivery refused as malformed (too large, not JSON, not the contract): failed,
    with the reason, and without its payload (nothing of what was refused is stored)."""
    event = WebhookEvent.objects.create(
        trigger=trigger,
        received_at=timezone.now(),
        status=WebhookEvent.Status.FAILED,
        error=redact(error)[:MAX_ERROR_LENGTH],
    )
    _announce_event(event, None, event.received_at)
    return event


def claim_webhook_event(event_id: int) -> WebhookEvent | None:
    """Take a received event for processing, once: a task delivered twice (queues deliver at
    least once) finds it taken and does nothing. None when it is not there to take."""
    claimed = WebhookEvent.objects.filter(pk=event_id, status=WebhookEvent.Status.RECEIVED).update(
        status=WebhookEvent.Status.PROCESSING, attempted_at=timezone.now()
    )
    return WebhookEvent.objects.filter(pk=event_id).first() if claimed else None


@dataclass(frozen=True)
class TakenEvents:
    """Webhook events ``take_waiting_webhook_events`` took, by why they were waiting."""

    deferred: list[int] = field(default_factory=list)
    stuck: list[int] = field(default_factory=list)  # received or processing, left by a worker

    @property
    def ids(self) -> list[int]:
        return sorted([*self.deferred, *self.stuck])


def take_waiting_webhook_events() -> TakenEvents:
    """Take back, for processing again, the webhook events left waiting: those the rate budget
    deferred, and those received or processing for longer than ``SYNC_ABANDONED_AFTER`` (the
    worker died, or the queue lost the task). Each goes back to received (``attempted_at``
    now), ready for ``process_webhook_event``; each is taken with one conditional UPDATE, so
    of two concurrent callers one takes it and the other skips it."""
    now = timezone.now()
    before = _abandoned_before(now)
    deferred = Q(status=WebhookEvent.Status.DEFERRED)
    stuck = Q(
        status__in=(WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING),
        last_attempt__lt=before,
    )
    waiting = WebhookEvent.objects.alias(last_attempt=Coalesce("attempted_at", "received_at"))
    taken = TakenEvents()
    for pk, status in waiting.filter(deferred | stuck).order_by("pk").values_list("pk", "status"):
        if status == WebhookEvent.Status.DEFERRED:
            still = deferred
        else:
            still = Q(status=status, last_attempt__lt=before)
        claimed = waiting.filter(still, pk=pk).update(
            status=WebhookEvent.Status.RECEIVED, attempted_at=now, error=""
        )
        if claimed:
            (taken.deferred if status == WebhookEvent.Status.DEFERRED else taken.stuck).append(pk)
    if taken.stuck:
        logger.warning(
            "CometChat webhook events left waiting by a worker, taken up again: %s", taken.stuck
        )
    return taken


def webhook_targets(event: WebhookEvent) -> list[Target]:
    """The conversations an event asks to refresh, one per affected owner this site knows.

    A group event: the owners holding a snapshot of that group's conversation, all of them (a
    group message; ``group_deleted``, whose copies not yet marked missing) or those among its
    members (a membership change). Otherwise the owners the event names (both parties of a
    message, a receipt or a block), kept only when they are known here (a UID bound to an
    account, or stored rows): webhook traffic never creates owners. Raises
    ``WebhookPayloadError`` if the stored payload does not parse.
    """
    delivery = parse_webhook(event.payload)
    group = delivery.group_conversation_id
    if group is not None:
        # One row per owner (unique on owner_uid, conversation_id), found by the conversation
        # id index.
        holders = Conversation.objects.filter(conversation_id=group)
        if delivery.members is not None:
            holders = holders.filter(owner_uid__in=delivery.members)
        if delivery.gone:  # marked already: nothing left to confirm
            holders = holders.filter(missing_since__isnull=True)
        holding = list(holders.order_by("owner_uid").values_list("owner_uid", flat=True))
        skip = _bound_to_no_chat_user(holding)
        return [Target(uid, group, expect_gone=delivery.gone) for uid in holding if uid not in skip]
    uids = {target.uid for target in delivery.targets}
    bound = set(UIDBinding.objects.filter(uid__in=uids).values_list("uid", flat=True))
    known = bound - _bound_to_no_chat_user(bound)
    known.update(
        Conversation.objects.filter(owner_uid__in=uids - bound)
        .order_by()
        .values_list("owner_uid", flat=True)
        .distinct()
    )
    return [target for target in delivery.targets if target.uid in known]


def _bound_to_no_chat_user(uids: Iterable[str]) -> set[str]:
    """Those of ``uids`` bound to an account the resolver now says has no CometChat user."""
    bindings = UIDBinding.objects.filter(uid__in=set(uids)).select_related("user")
    return {binding.uid for binding in bindings if has_no_chat_user(binding.user)}


def refresh_target(
    owner: Any, target: Target, *, client: CometChatClient | None = None
) -> Conversation | None:
    """Refresh one conversation a webhook event names (``fetch_conversation``, with the
    event's block flag); None when the event said the owner lost it (``expect_gone``) and
    CometChat's answer proves it (``proves_gone``): the stored copy is then marked missing,
    its history kept. Any other failure is raised, and marks nothing."""
    owner = as_owner(owner)
    asked_at = timezone.now()
    try:
        return fetch_conversation(
            owner, target.conversation_id, client=client, peer_flag=target.peer_flag
        )
    except CometChatAPIError as exc:
        if not (target.expect_gone and proves_gone(exc)):
            raise
        logger.info(
            "CometChat confirms %s no longer holds %s (%s): marked missing",
            owner.uid,
            target.conversation_id,
            exc.code,
        )
    mark_gone(owner.uid, [target.conversation_id], proven_at=asked_at)
    return None


def finish_webhook_event(
    event: WebhookEvent,
    *,
    owners: Iterable[str] = (),
    error: BaseException | None = None,
    deferred: bool = False,
) -> None:
    """Mark an event processed (its refreshes handed over), failed (with the reason), or
    ``deferred`` (the rate budget had no slot for it now, ``error`` says so: it waits for
    ``cometchat_refresh_stale``); a processed or failed one sends ``webhook_processed`` once
    that is committed."""
    if deferred:  # not finished: no processing time, no signal; it is processed all again
        event.status = WebhookEvent.Status.DEFERRED
        event.error = describe(error)[:MAX_ERROR_LENGTH] if error is not None else ""
        event.save(update_fields=["status", "error"])
        logger.info("CometChat webhook event %s deferred: %s", event.pk, event.error)
        return
    event.processed_at = ended = timezone.now()
    event.owners = sorted(set(owners))
    if error is None:
        event.status = WebhookEvent.Status.PROCESSED
    else:
        event.status = WebhookEvent.Status.FAILED
        event.error = describe(error)[:MAX_ERROR_LENGTH]
        logger.warning("CometChat webhook event %s failed: %s", event.pk, event.error)
    event.save(update_fields=["status", "processed_at", "error", "owners"])
    refreshed = list(event.owners)
    transaction.on_commit(
        lambda: webhook_processed.send(sender=WebhookEvent, event=event, owners=refreshed)
    )
    if webhook_event_finished.has_listeners(WebhookEvent):  # else the payload is not re-read
        _announce_event(event, _event_time(event), ended)


def _event_time(event: WebhookEvent) -> float | None:
    """CometChat's time of a recorded event (``Delivery.occurred_at``), if it has one."""
    try:
        return parse_webhook(event.payload).occurred_at
    except CometChatError:  # a payload that no longer parses has no time to tell
        return None


def _announce_event(event: WebhookEvent, occurred_at: float | None, ended: datetime) -> None:
    """``webhook_event_finished`` for an event that reached its end, once that is committed."""
    lag = None if occurred_at is None else ended.timestamp() - occurred_at
    status, trigger = str(event.status), event.trigger
    transaction.on_commit(
        lambda: webhook_event_finished.send_robust(
            sender=WebhookEvent, event=event, trigger=trigger, status=status, lag=lag
        )
    )


def prune_webhook_events(
    *, max_age_days: int | None = None, dry_run: bool = False, batch_size: int = DELETE_BATCH
) -> int:
    """Delete webhook events received more than ``max_age_days`` ago (default
    ``WEBHOOK_EVENTS_MAX_AGE_DAYS``; None keeps them all), a batch at a time so that no
    statement holds many rows; an event still waiting for a worker is kept whatever its age.
    Returns how many were (or, on a dry run, would be) deleted."""
    if max_age_days is None:
        max_age_days = get_settings().webhook_events_max_age_days
    if max_age_days is None:
        return 0
    cutoff = timezone.now() - timedelta(days=max_age_days)
    old = WebhookEvent.objects.filter(received_at__lt=cutoff).exclude(
        status__in=(WebhookEvent.Status.RECEIVED, WebhookEvent.Status.DEFERRED)
    )
    if dry_run:
        return old.count()
    deleted = 0
    while batch := list(old.order_by().values_list("pk", flat=True)[:batch_size]):
        deleted += WebhookEvent.objects.filter(pk__in=batch).delete()[0]
    return deleted
