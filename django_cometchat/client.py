"""CometChatClient: the only code that speaks HTTP to CometChat's REST API v3.

One ``requests.Session`` per client (pooled keep-alive connections), the retry policy of
``retry.py`` mounted through an ``HTTPAdapter``, a timeout on every request, ids validated before
they are sent, and every HTTP failure mapped onto the error tree in ``exceptions.py`` in one
place (``_raise_for_error``). The client never imports models.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter

from . import __version__
from .conf import CometChatSettings, get_settings
from .exceptions import (
    CometChatAPIError,
    CometChatAuthError,
    CometChatBadRequest,
    CometChatNotFound,
    CometChatRateLimited,
    CometChatResponseError,
    CometChatServerError,
    CometChatTransportError,
    RateLimitInfo,
)
from .ids import path_segment, resolve_conversation_id, validate_id
from .ratelimit import parse_rate_limit, seconds_to_wait
from .retry import CometChatRetry, current_budget, retry_budget
from .types import (
    CONVERSATION_TYPES,
    Conversation,
    Pagination,
    PayloadShapeError,
    User,
    parse_conversation,
    parse_pagination,
    parse_user,
    unwrap_single,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger(__name__)

T = TypeVar("T")

NOT_FOUND_CODES = frozenset({"ERR_CONVERSATION_NOT_ACCESSIBLE", "ERR_API_NOT_FOUND"})


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list endpoint: its rows and the pagination CometChat reported."""

    number: int
    items: tuple[T, ...]
    pagination: Pagination | None


class CometChatClient:
    """A CometChat REST v3 client bound to one app (``settings.COMETCHAT`` by default).

    ``retry_budget`` bounds the seconds one call may spend waiting between retries (defaults to
    ``RETRY_BUDGET``); ``with client.budget(2): ...`` overrides it for a block. The latest
    rate-limit figures are on ``client.rate_limit``; ``on_rate_limit`` is called with each new
    reading (a seam for sharing the budget across processes).
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
        self.on_rate_limit = on_rate_limit
        self.rate_limit = RateLimitInfo()
        self.request_count = 0  # calls sent (retries inside one call are not counted again)
        self.retry_budget = retry_budget if retry_budget is not None else self.settings.retry_budget
        self.session = self._build_session(self.retry_budget)

    def _build_session(self, budget: float) -> requests.Session:
        s = self.settings
        retry = CometChatRetry.for_settings(
            max_retries=s.max_retries,
            backoff_factor=s.backoff_factor,
            backoff_max=s.backoff_max,
            server_wait_max=s.retry_after_max,
            budget=budget,
        )
        adapter = HTTPAdapter(
            max_retries=retry, pool_connections=1, pool_maxsize=s.pool_maxsize, pool_block=False
        )
        session = requests.Session()
        session.trust_env = False  # no .netrc auth or env proxies slipping into our requests
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update(
            {
                "apikey": s.api_key or "",
                "Accept": "application/json",
                "User-Agent": f"django-cometchat/{__version__}",
            }
        )
        return session

    def __repr__(self) -> str:  # never the key
        return f"<CometChatClient {self.base_url}>"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> CometChatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def budget(self, seconds: float) -> AbstractContextManager[None]:
        """Within the block, calls give up once retrying would sleep more than ``seconds``."""
        return retry_budget(seconds)

    # -- the HTTP core -----------------------------------------------------------------------

    def _get(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        on_behalf_of: str | None = None,
    ) -> tuple[Any, Mapping[str, Any]]:
        """GET ``path``; return the envelope's ``data`` and the whole decoded body."""
        endpoint = f"GET {path}"
        headers = {}
        if on_behalf_of is not None:
            headers["onBehalfOf"] = validate_id(on_behalf_of, "UID")
        self._pause_if_budget_low(endpoint)
        self.request_count += 1
        try:
            response = self.session.get(
                self.base_url + path,
                params=params,
                headers=headers,
                timeout=self.settings.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.ChunkedEncodingError as exc:
            raise CometChatResponseError(
                "the response body was cut off", endpoint=endpoint
            ) from exc
        except requests.exceptions.RequestException as exc:
            if _timed_out(exc):
                raise CometChatTransportError(
                    f"{endpoint}: CometChat did not answer within the timeout",
                    endpoint=endpoint,
                    timed_out=True,
                ) from exc
            raise CometChatTransportError(
                f"{endpoint}: could not reach CometChat ({type(exc).__name__})", endpoint=endpoint
            ) from exc

        self._record_rate_limit(response.headers)
        if response.status_code >= 300:
            self._raise_for_error(endpoint, response)
        return self._decode_success(endpoint, response)

    def _record_rate_limit(self, headers: Mapping[str, str]) -> None:
        info = parse_rate_limit(headers)
        if info == RateLimitInfo():
            return
        self.rate_limit = info
        if self.on_rate_limit is not None:
            self.on_rate_limit(info)

    def _pause_if_budget_low(self, endpoint: str) -> None:
        """Slow down on our own when CometChat says the minute's budget is nearly spent."""
        threshold = self.settings.rate_limit_min_remaining
        info = self.rate_limit
        if not threshold or info.remaining is None or info.remaining > threshold or not info.reset:
            return
        wait = info.reset - time.time()
        if wait <= 0:
            return
        if wait > min(self.settings.retry_after_max, current_budget(self.retry_budget)):
            raise CometChatRateLimited(
                f"only {info.remaining} requests left this minute; not sending until the reset",
                endpoint=endpoint,
                code="ERR_TOO_MANY_REQUESTS",
                retry_after=wait,
                rate_limit=info,
            )
        logger.info("CometChat budget low (%s left); pausing %.1fs", info.remaining, wait)
        time.sleep(wait)

    @staticmethod
    def _raise_for_error(endpoint: str, response: requests.Response) -> None:
        """Map an error status and CometChat's ``{"error": {...}}`` envelope onto the tree."""
        status = response.status_code
        code: str | None = None
        message = ""
        details: dict[str, Any] = {}
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            error = None
        if isinstance(error, Mapping):
            code = error.get("code") if isinstance(error.get("code"), str) else None
            message = str(error.get("message") or "")
            raw_details = error.get("details")
            details = raw_details if isinstance(raw_details, dict) else {}
        if not message:
            message = response.reason or ""
        kwargs: dict[str, Any] = {
            "endpoint": endpoint,
            "status": status,
            "code": code,
            "details": details,
            "rate_limit": parse_rate_limit(response.headers),
            "body": response.text[:2000],
        }
        if status == 429 or code == "ERR_TOO_MANY_REQUESTS":
            raise CometChatRateLimited(
                message, retry_after=seconds_to_wait(response.headers), **kwargs
            )
        if status == 401 or (code or "").startswith("AUTH_ERR"):
            raise CometChatAuthError(message, **kwargs)
        # ERR_CONVERSATION_NOT_ACCESSIBLE is a 4xx of unspecified status: branch on the code.
        if status == 404 or (code and (code.endswith("_NOT_FOUND") or code in NOT_FOUND_CODES)):
            raise CometChatNotFound(message, **kwargs)
        if status == 403:
            raise CometChatAuthError(message, **kwargs)
        if status in (400, 422):
            raise CometChatBadRequest(message, **kwargs)
        if status >= 500:
            raise CometChatServerError(message, **kwargs)
        raise CometChatAPIError(message, **kwargs)

    @staticmethod
    def _decode_success(
        endpoint: str, response: requests.Response
    ) -> tuple[Any, Mapping[str, Any]]:
        """A 2xx must be a JSON object with ``data``; anything else is a contract breach."""
        status = response.status_code
        if not response.content:
            raise CometChatResponseError("empty response body", endpoint=endpoint, status=status)
        content_type = response.headers.get("Content-Type", "")
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            kind = "an HTML page" if "html" in content_type else "invalid or truncated JSON"
            raise CometChatResponseError(
                f"expected JSON, got {kind} ({len(response.content)} bytes, {content_type!r})",
                endpoint=endpoint,
                status=status,
            ) from exc
        if not isinstance(body, dict) or "data" not in body:
            raise CometChatResponseError(
                'expected a JSON object with a "data" key', endpoint=endpoint, status=status
            )
        return body["data"], body

    def _parse(self, endpoint: str, parser: Callable[[Any], T], data: Any) -> T:
        try:
            return parser(data)
        except PayloadShapeError as exc:
            raise CometChatResponseError(str(exc), endpoint=endpoint) from exc

    # -- conversations -----------------------------------------------------------------------

    @staticmethod
    def _conversation_params(
        *,
        conversation_type: str | None = None,
        unread: bool | None = None,
        search_key: str | None = None,
        with_tags: bool | None = None,
        tags: Sequence[str] | None = None,
        with_user_and_group_tags: bool | None = None,
        per_page: int | None = None,
        page_size: int = 1000,
    ) -> dict[str, Any]:
        """Query parameters of ``GET /conversations``, refused before sending when invalid."""
        if conversation_type is not None and conversation_type not in CONVERSATION_TYPES:
            raise CometChatBadRequest(
                f"conversation_type must be 'user' or 'group', got {conversation_type!r}",
                code="ERR_BAD_REQUEST",
            )
        size = per_page or page_size
        if not 1 <= size <= 1000:
            raise CometChatBadRequest(
                f"per_page must be between 1 and 1000, got {size}", code="ERR_BAD_REQUEST"
            )
        optional = {
            "conversationType": conversation_type,
            "unread": _flag(unread),
            "searchKey": search_key,
            "withTags": _flag(with_tags),
            "tags": ",".join(tags) if tags else None,
            "withUserAndGroupTags": _flag(with_user_and_group_tags),
        }
        return {"perPage": size, **{k: v for k, v in optional.items() if v is not None}}

    def iter_conversation_pages(
        self, *, on_behalf_of: str, start_page: int = 1, prefetch: bool = False, **filters: Any
    ) -> Iterator[Page[Conversation]]:
        """Lazily yield the owner's conversation pages, newest first; one page in memory.

        Filters: ``conversation_type`` (user|group), ``unread``, ``search_key``, ``with_tags``,
        ``tags``, ``with_user_and_group_tags``, ``per_page`` (default ``PAGE_SIZE``, max 1000).
        ``prefetch=True`` fetches the next page while the caller works on this one.
        """
        params = self._conversation_params(page_size=self.settings.page_size, **filters)
        return self._iter_pages(
            "/conversations",
            params,
            parse_conversation,
            on_behalf_of=on_behalf_of,
            start_page=start_page,
            prefetch=prefetch,
        )

    def iter_raw_conversation_pages(
        self, *, on_behalf_of: str, start_page: int = 1, prefetch: bool = False, **filters: Any
    ) -> Iterator[Page[Mapping[str, Any]]]:
        """Like ``iter_conversation_pages`` but rows stay CometChat's JSON objects.

        Each row is only checked to be an object with a ``conversationId``; callers parse it with
        ``types.parse_conversation`` when they need it (the sync skips parsing rows whose content
        it already stored, which makes a no-change re-sync cheap).
        """
        params = self._conversation_params(page_size=self.settings.page_size, **filters)
        return self._iter_pages(
            "/conversations",
            params,
            _conversation_object,
            on_behalf_of=on_behalf_of,
            start_page=start_page,
            prefetch=prefetch,
        )

    def _iter_pages(
        self,
        path: str,
        params: Mapping[str, Any],
        parser: Callable[[Any], T],
        *,
        on_behalf_of: str | None = None,
        start_page: int = 1,
        prefetch: bool = False,
    ) -> Iterator[Page[T]]:
        """Lazily walk ``page=1..`` of a list endpoint, holding one page (two with prefetch).

        Stops at the last page (``current_page >= total_pages``), at an empty page, or (when no
        pagination comes back) at a short page. CometChat's ``total`` is not trusted.
        """
        endpoint = f"GET {path}"
        per_page = int(params["perPage"])

        def fetch(number: int) -> Page[T]:
            return self._fetch_page(
                endpoint=endpoint,
                path=path,
                params=params,
                parser=parser,
                number=number,
                on_behalf_of=on_behalf_of,
            )

        if prefetch:
            return _walk_prefetching(fetch, start_page, per_page)
        return _walk(fetch, start_page, per_page)

    def _fetch_page(
        self,
        *,
        endpoint: str,
        path: str,
        params: Mapping[str, Any],
        parser: Callable[[Any], T],
        number: int,
        on_behalf_of: str | None,
    ) -> Page[T]:
        data, body = self._get(path, params={**params, "page": number}, on_behalf_of=on_behalf_of)
        if not isinstance(data, list):
            raise CometChatResponseError(
                f"expected data to be a list, got {type(data).__name__}", endpoint=endpoint
            )
        pagination = self._parse(endpoint, parse_pagination, body.get("meta"))
        return Page(number, tuple(self._parse(endpoint, parser, row) for row in data), pagination)

    def list_conversations(self, *, on_behalf_of: str, **filters: Any) -> Iterator[Conversation]:
        """Every conversation of ``on_behalf_of``, lazily, page by page."""
        for page in self.iter_conversation_pages(on_behalf_of=on_behalf_of, **filters):
            yield from page.items

    def get_user_conversation(self, uid: str, *, on_behalf_of: str) -> Conversation:
        """``GET /users/{uid}/conversation``: the owner's one-to-one conversation with ``uid``."""
        return self._get_single_conversation(
            f"/users/{path_segment(uid, 'UID')}/conversation", on_behalf_of
        )

    def get_group_conversation(self, guid: str, *, on_behalf_of: str) -> Conversation:
        """``GET /groups/{guid}/conversation``: the owner's view of a group conversation."""
        return self._get_single_conversation(
            f"/groups/{path_segment(guid, 'GUID')}/conversation", on_behalf_of
        )

    def get_conversation_by_id_deprecated(
        self, conversation_id: str, *, on_behalf_of: str
    ) -> Conversation:
        """The deprecated ``GET /conversations/{conversationId}``; a fallback only."""
        return self._get_single_conversation(
            f"/conversations/{path_segment(conversation_id, 'conversation id')}", on_behalf_of
        )

    def get_conversation(self, conversation_id: str, *, on_behalf_of: str) -> Conversation:
        """One conversation by id, through the supported endpoint its id maps to."""
        target = resolve_conversation_id(conversation_id, owner_uid=on_behalf_of)
        if target.kind == "user":
            return self.get_user_conversation(target.identifier, on_behalf_of=on_behalf_of)
        if target.kind == "group":
            return self.get_group_conversation(target.identifier, on_behalf_of=on_behalf_of)
        return self.get_conversation_by_id_deprecated(target.identifier, on_behalf_of=on_behalf_of)

    def _get_single_conversation(self, path: str, on_behalf_of: str) -> Conversation:
        data, _ = self._get(path, on_behalf_of=on_behalf_of)
        endpoint = f"GET {path}"
        return self._parse(
            endpoint, parse_conversation, self._parse(endpoint, _single("conversation"), data)
        )

    # -- users -------------------------------------------------------------------------------

    def list_users(
        self, *, search_key: str | None = None, per_page: int | None = None
    ) -> Iterator[User]:
        """Every user of the app, lazily, page by page."""
        size = per_page or self.settings.page_size
        params: dict[str, Any] = {"perPage": size}
        if search_key:
            params["searchKey"] = search_key
        for page in self._iter_pages("/users", params, parse_user):
            yield from page.items

    def get_user(self, uid: str, *, on_behalf_of: str | None = None) -> User:
        path = f"/users/{path_segment(uid, 'UID')}"
        data, _ = self._get(path, on_behalf_of=on_behalf_of)
        endpoint = f"GET {path}"
        return self._parse(endpoint, parse_user, self._parse(endpoint, _single("user"), data))


def _is_last(page: Page[Any], per_page: int) -> bool:
    if not page.items or (page.pagination is not None and page.pagination.is_last):
        return True
    return page.pagination is None and len(page.items) < per_page


def _walk(fetch: Callable[[int], Page[T]], number: int, per_page: int) -> Iterator[Page[T]]:
    while True:
        page = fetch(number)
        if page.items:
            yield page
        if _is_last(page, per_page):
            return
        # Drop this page before fetching the next, so at most one page is held.
        page = None  # type: ignore[assignment]
        number += 1


def _walk_prefetching(
    fetch: Callable[[int], Page[T]], number: int, per_page: int
) -> Iterator[Page[T]]:
    """Fetch page n+1 on a worker thread while the caller works on page n.

    A sync spends about as long storing a page as fetching it, so overlapping the two nearly
    halves its time. At most two pages are held. The session is only ever used by one thread at
    a time (the worker), and the caller's context (a ``budget()`` block) is copied to it.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cometchat-prefetch") as pool:
        future = pool.submit(contextvars.copy_context().run, fetch, number)
        try:
            while True:
                page = future.result()
                last = _is_last(page, per_page)
                if not last:
                    future = pool.submit(contextvars.copy_context().run, fetch, number + 1)
                if page.items:
                    yield page
                if last:
                    return
                page = None  # type: ignore[assignment]
                number += 1
        finally:
            future.cancel()  # a fetch already running is waited for by the pool's exit


def _timed_out(exc: requests.exceptions.RequestException) -> bool:
    """requests reports a timeout that outlasted the retries as a ConnectionError."""
    if isinstance(exc, requests.exceptions.Timeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    # NewConnectionError (refused, DNS) subclasses ConnectTimeoutError for history's sake.
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return False
    return isinstance(reason, TimeoutError | urllib3.exceptions.TimeoutError)


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _conversation_object(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping) or not isinstance(data.get("conversationId"), str):
        raise PayloadShapeError("conversation must be an object with a string conversationId")
    return data


def _single(what: str) -> Callable[[Any], Any]:
    return lambda data: unwrap_single(data, what)
