"""CometChatClient: the only code that speaks HTTP to CometChat's REST API v3.

This module sends one request (:meth:`CometChatClient._get`): ids validated before they are
sent, the rate window and the shared budget asked first, a timeout on the connect and on each
socket read clipped to the deadline (:mod:`..deadline`, :mod:`..socket_reads`), and the answer
read, decoded and mapped by :mod:`.responses` and :mod:`.errors`. On it sit the endpoints: the
list walks of :mod:`.pages` and the single-object GETs. The session comes from
:mod:`.session`. The client never imports models.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Generic, NamedTuple, TypeVar
from urllib.parse import urlsplit

import requests

from .. import deadline
from ..budget import RateBudget, first_sight, waits_allowed
from ..conf import MAX_PAGE_SIZE, CometChatSettings, get_settings
from ..conversation_filters import ConversationFilters
from ..conversation_types import (
    Conversation,
    User,
    conversation_id_of,
    parse_conversation,
    parse_user,
    unwrap_single,
)
from ..exceptions import CometChatInvalidFilter, CometChatRateLimited, RateLimitInfo
from ..ids import path_segment, resolve_conversation_id, validate_id
from ..messages_types import Affix, MessagePage, ReceiverType, parse_message_page
from ..ratelimit import parse_rate_limit, window_end
from ..retry import CometChatRetry, attempt_clock, current_budget
from ..signals import upstream_request_answered
from .errors import raise_for_error, transport_error
from .pages import Pages, iter_pages
from .responses import Answer, decode_success, parse_payload, read_body
from .session import session_factory

__all__ = ["CometChatClient", "Fetched"]

logger = logging.getLogger("django_cometchat.client")

T = TypeVar("T")

# Every conversation list asks for conversations with blocked users too (CometChat leaves them
# out by default, and a complete sync would mark them missing) and for the block status.
CONVERSATION_LIST_PARAMS = {"includeBlockedUsers": "true", "withBlockedInfo": "true"}
MAX_MESSAGE_LIMIT = 1000  # a message list's `limit` maximum (API.md §4.3)


@dataclass(frozen=True)
class Fetched(Generic[T]):
    """A single object and when the request that was answered left.

    ``sent_at`` is taken just before the request is handed to the connection; for a retried
    request it is the retry that was answered (the answer reflects CometChat's state from then
    on, not from the first try). Our clock, not CometChat's: the sync orders stored rows by it.
    """

    value: T
    sent_at: datetime


class CometChatClient:
    """A CometChat REST v3 client bound to one app (``settings.COMETCHAT`` by default).

    ``retry_budget`` bounds the seconds one call may spend waiting between retries (defaults to
    ``RETRY_BUDGET``; ``with retry_budget(2): ...`` lowers it for a block). The latest rate-limit
    figures are on ``client.rate_limit``; ``on_rate_limit`` is called with each new reading.
    """

    def __init__(
        self,
        *,
        settings: CometChatSettings | None = None,
        retry_budget: float | None = None,
        on_rate_limit: Callable[[RateLimitInfo], None] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.settings.require_credentials()
        self.base_url = self.settings.base_url
        self.host = urlsplit(self.base_url).hostname or ""
        self.on_rate_limit = on_rate_limit
        self.rate_limit = RateLimitInfo()
        self._rate_limit_at = 0.0  # time.time() of the reading in rate_limit
        self.request_count = 0  # calls sent (retries inside one call are not counted again)
        self.retry_budget = retry_budget if retry_budget is not None else self.settings.retry_budget
        self.rate_budget = RateBudget.for_settings(self.settings)
        self.session = self._open_session()

    def _open_session(self) -> requests.Session:
        """The session of ``COMETCHAT["SESSION_FACTORY"]`` (default :func:`.create_session`),
        retrying by this client's retry policy."""
        s = self.settings
        retry = CometChatRetry.for_settings(
            max_retries=s.max_retries,
            backoff_factor=s.backoff_factor,
            backoff_max=s.backoff_max,
            server_wait_max=s.retry_after_max,
            budget=self.retry_budget,
            rate_budget=self.rate_budget,
        )
        return session_factory(s)(s, retry=retry)

    def __repr__(self) -> str:  # never the key
        return f"<CometChatClient {self.base_url}>"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> CometChatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the HTTP core -----------------------------------------------------------------------

    def _get(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        on_behalf_of: str | None = None,
        template: str | None = None,
    ) -> Answer:
        """GET ``path``: the envelope's ``data``, the whole decoded body, and when the attempt
        that was answered left. ``template`` is the path with its ids as placeholders (default
        ``path``, which then has none), for the ``upstream_request_answered`` signal."""
        endpoint = f"GET {path}"
        answered = partial(_announce_answer, f"GET {template or path}")
        headers = {}
        if on_behalf_of is not None:
            headers["onBehalfOf"] = validate_id(on_behalf_of, "UID")
        deadline.check(endpoint)
        self._pause_if_window_spent(endpoint)
        if self.rate_budget is not None:
            self.rate_budget.take(endpoint, max_wait=current_budget(self.retry_budget))
        connect, read = self.settings.timeout
        self.request_count += 1
        try:
            # The retry policy moves the clock to each retry's send, and reports each attempt
            # it retries; the last attempt is reported here.
            with attempt_clock(answered) as clock:
                response = self.session.get(
                    self.base_url + path,
                    params=params,
                    headers=headers,
                    timeout=(deadline.clip(connect), deadline.clip(read)),
                    allow_redirects=False,
                    stream=True,
                )
        except requests.exceptions.RequestException as exc:
            clock.answered(None)
            deadline.check(endpoint)  # a timeout cut short by the deadline says so
            raise transport_error(endpoint, self.host, exc) from exc
        with response:
            try:
                self._record_rate_limit(response.headers)
                if self.rate_budget is not None and first_sight(response.raw):
                    self.rate_budget.observe(response.status_code, response.headers)
                content = read_body(endpoint, self.host, response, self.settings.max_response_bytes)
            finally:  # the whole answer read, or cut short (too large, too slow)
                clock.answered(response.status_code)
        if response.status_code >= 300:
            raise_for_error(endpoint, response, content, path, on_behalf_of)
        data, body = decode_success(endpoint, response, content)
        return Answer(data, body, clock.sent_at)

    def _record_rate_limit(self, headers: Mapping[str, str]) -> None:
        info = parse_rate_limit(headers)
        if info == RateLimitInfo():
            return
        self.rate_limit = info
        self._rate_limit_at = time.time()
        if self.on_rate_limit is not None:
            self.on_rate_limit(info)

    def _pause_if_window_spent(self, endpoint: str) -> None:
        """Slow down on our own when CometChat said this window's budget is nearly spent.

        Normal answers carry only ``X-Rate-Limit-Remaining`` (no reset time), and the window is
        the calendar minute: when the remaining count read in the current window is at or
        below ``RATE_LIMIT_MIN_REMAINING``, wait for the window to end (or, if that wait is
        longer than the call may wait, refuse without sending).
        """
        threshold = self.settings.rate_limit_min_remaining
        info = self.rate_limit
        if not threshold or info.remaining is None or info.remaining > threshold:
            return
        window = self.settings.rate_limit_window
        now = time.time()
        end = window_end(self._rate_limit_at, window)
        if info.reset and info.reset > end:  # a 429 named a later time
            end = float(info.reset)
        wait = end - now
        if wait <= 0:
            return  # that reading belongs to a window that is over
        allowed = min(self.settings.retry_after_max, current_budget(self.retry_budget))
        if not waits_allowed():
            allowed = 0.0
        left = deadline.remaining()
        if wait > allowed or (left is not None and wait >= left):
            raise CometChatRateLimited(
                f"only {info.remaining} requests left in this rate window; not sending until "
                "it ends",
                endpoint=endpoint,
                code="ERR_TOO_MANY_REQUESTS",
                retry_after=wait,
                rate_limit=info,
            )
        logger.info("CometChat window nearly spent (%s left); pausing %.1fs", info.remaining, wait)
        deadline.sleep(wait)

    # -- lists ---------------------------------------------------------------------------------

    def _page_size(self, per_page: int | None) -> int:
        size = per_page or self.settings.page_size
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise CometChatInvalidFilter(
                f"per_page must be between 1 and {MAX_PAGE_SIZE}, got {size}"
            )
        return size

    def iter_conversation_pages(
        self,
        *,
        on_behalf_of: str,
        filters: ConversationFilters | None = None,
        per_page: int | None = None,
        start_page: int = 1,
        prefetch: bool = False,
        parsed: bool = True,
        max_pages: int | None = None,
    ) -> Pages[Any]:
        """Lazily yield the owner's conversation pages, newest first; one page in memory (two
        with ``prefetch``, which fetches the next page while the caller works on this one).

        Rows are parsed :class:`~django_cometchat.conversation_types.Conversation` values, or with
        ``parsed=False`` CometChat's JSON objects whose ``conversationId`` alone is checked (the
        sync parses only rows whose content it does not hold yet).

        After ``max_pages`` pages (default ``SYNC_MAX_PAGES``) that still claim another one,
        the walk raises ``CometChatTooManyPages`` instead of asking for the next.
        """
        params = {
            "perPage": self._page_size(per_page),
            **CONVERSATION_LIST_PARAMS,
            **(filters or ConversationFilters()).as_params(),
        }
        parser: Callable[[Any], Any] = parse_conversation if parsed else _checked_row
        return iter_pages(
            self._get,
            "/conversations",
            params,
            parser,
            on_behalf_of=on_behalf_of,
            start_page=start_page,
            prefetch=prefetch,
            max_pages=self.settings.sync_max_pages if max_pages is None else max_pages,
        )

    def iter_raw_conversation_pages(
        self, *, on_behalf_of: str, **options: Any
    ) -> Pages[Mapping[str, Any]]:
        """``iter_conversation_pages(parsed=False)``: rows stay CometChat's JSON objects."""
        return self.iter_conversation_pages(on_behalf_of=on_behalf_of, parsed=False, **options)

    def list_conversations(
        self,
        *,
        on_behalf_of: str,
        filters: ConversationFilters | None = None,
        per_page: int | None = None,
    ) -> Iterator[Conversation]:
        """Every conversation of ``on_behalf_of``, lazily, page by page."""
        pages = self.iter_conversation_pages(
            on_behalf_of=on_behalf_of, filters=filters, per_page=per_page
        )
        with closing(pages):
            for page in pages:
                yield from page.items

    def list_users(
        self, *, search_key: str | None = None, per_page: int | None = None
    ) -> Iterator[User]:
        """Every user of the app, lazily, page by page."""
        params: dict[str, Any] = {"perPage": self._page_size(per_page)}
        if search_key:
            params["searchKey"] = search_key
        with closing(iter_pages(self._get, "/users", params, parse_user)) as pages:
            for page in pages:
                yield from page.items

    # -- messages ------------------------------------------------------------------------------

    def get_message_page(
        self,
        *,
        receiver_type: ReceiverType,
        receiver: str,
        on_behalf_of: str,
        limit: int,
        affix: Affix = "prepend",
        message_id: str | None = None,
    ) -> Fetched[MessagePage]:
        """One page of a conversation's messages, one request: ``GET /users/{uid}/messages``
        (``receiver`` is the owner's peer) or ``GET /groups/{guid}/messages`` (API.md §4.3).

        ``affix="prepend"`` reads older messages (from the newest without ``message_id``),
        ``"append"`` newer ones; ``message_id`` is CometChat's ``id`` cursor, sent as given.
        Messages are parsed and checked, in the order CometChat listed them; ``next`` is the
        answer's cursor in either published meta shape.
        """
        if not 1 <= limit <= MAX_MESSAGE_LIMIT:
            raise CometChatInvalidFilter(
                f"limit must be between 1 and {MAX_MESSAGE_LIMIT}, got {limit}"
            )
        if affix not in ("append", "prepend"):
            raise CometChatInvalidFilter(f"affix must be 'append' or 'prepend', got {affix!r}")
        if receiver_type == "user":
            where = _Path(
                f"/users/{path_segment(receiver, 'UID')}/messages", "/users/{uid}/messages"
            )
        else:
            where = _Path(
                f"/groups/{path_segment(receiver, 'GUID')}/messages", "/groups/{guid}/messages"
            )
        params: dict[str, Any] = {"limit": limit, "affix": affix}
        if message_id is not None:
            if not message_id.isascii() or not message_id.isdigit():
                raise CometChatInvalidFilter("a message id is decimal digits")
            params["id"] = message_id
        _, body, sent_at = self._get(
            where.path, params=params, on_behalf_of=on_behalf_of, template=where.template
        )
        page = parse_payload(f"GET {where.path}", parse_message_page, body)
        return Fetched(page, sent_at)

    # -- single objects --------------------------------------------------------------------------

    def _get_one(
        self, where: _Path, parser: Callable[[Any], T], what: str, *, on_behalf_of: str | None
    ) -> Fetched[T]:
        """A single-object GET: ``data`` is an object, or (as the examples show) a list of one."""
        data, _, sent_at = self._get(where.path, on_behalf_of=on_behalf_of, template=where.template)
        endpoint = f"GET {where.path}"
        value = parse_payload(endpoint, lambda value: parser(unwrap_single(value, what)), data)
        return Fetched(value, sent_at)

    def get_user_conversation(self, uid: str, *, on_behalf_of: str) -> Conversation:
        """``GET /users/{uid}/conversation``: the owner's one-to-one conversation with ``uid``."""
        path = _user_conversation_path(uid)
        return self._get_one(
            path, parse_conversation, "conversation", on_behalf_of=on_behalf_of
        ).value

    def get_group_conversation(self, guid: str, *, on_behalf_of: str) -> Conversation:
        """``GET /groups/{guid}/conversation``: the owner's view of a group conversation."""
        path = _group_conversation_path(guid)
        return self._get_one(
            path, parse_conversation, "conversation", on_behalf_of=on_behalf_of
        ).value

    def get_conversation_by_id_deprecated(
        self, conversation_id: str, *, on_behalf_of: str
    ) -> Conversation:
        """The deprecated ``GET /conversations/{conversationId}``; a fallback only."""
        path = _deprecated_conversation_path(conversation_id)
        return self._get_one(
            path, parse_conversation, "conversation", on_behalf_of=on_behalf_of
        ).value

    def get_conversation(self, conversation_id: str, *, on_behalf_of: str) -> Conversation:
        """One conversation by id, through the supported endpoint its id maps to."""
        return self.get_conversation_timed(conversation_id, on_behalf_of=on_behalf_of).value

    def get_conversation_timed(
        self, conversation_id: str, *, on_behalf_of: str
    ) -> Fetched[Conversation]:
        """:meth:`get_conversation`, with when the answered request left (``sent_at``)."""
        target = resolve_conversation_id(conversation_id, owner_uid=on_behalf_of)
        if target.kind == "user":
            path = _user_conversation_path(target.identifier)
        elif target.kind == "group":
            path = _group_conversation_path(target.identifier)
        else:
            path = _deprecated_conversation_path(target.identifier)
        return self._get_one(path, parse_conversation, "conversation", on_behalf_of=on_behalf_of)

    def get_user(self, uid: str, *, on_behalf_of: str | None = None) -> User:
        path = _Path(f"/users/{path_segment(uid, 'UID')}", "/users/{uid}")
        return self._get_one(path, parse_user, "user", on_behalf_of=on_behalf_of).value


class _Path(NamedTuple):
    """A request path, and its template with placeholders for the ids (for metrics)."""

    path: str
    template: str


def _user_conversation_path(uid: str) -> _Path:
    return _Path(f"/users/{path_segment(uid, 'UID')}/conversation", "/users/{uid}/conversation")


def _group_conversation_path(guid: str) -> _Path:
    return _Path(
        f"/groups/{path_segment(guid, 'GUID')}/conversation", "/groups/{guid}/conversation"
    )


def _deprecated_conversation_path(conversation_id: str) -> _Path:
    return _Path(
        f"/conversations/{path_segment(conversation_id, 'conversation id')}",
        "/conversations/{conversationId}",
    )


def _announce_answer(endpoint: str, status: int | None, seconds: float) -> None:
    """``upstream_request_answered`` for one attempt (a dictionary lookup when nobody listens)."""
    upstream_request_answered.send_robust(
        sender=CometChatClient, endpoint=endpoint, status=status, seconds=seconds
    )


def _checked_row(data: Any) -> Mapping[str, Any]:
    """A raw conversation row whose ``conversationId`` passes the id rules (it will be looked up
    and remembered before the row itself is parsed)."""
    conversation_id_of(data)
    return data  # type: ignore[no-any-return]
