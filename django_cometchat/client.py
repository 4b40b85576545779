"""CometChatClient: the only code that speaks HTTP to CometChat's REST API v3.

One ``requests.Session`` per client (pooled keep-alive connections), the retry policy of
``retry.py`` mounted through an ``HTTPAdapter``, a timeout on every request and on each socket
read of its answer (clipped to the deadline: :mod:`.deadline`, :mod:`.socket_reads`), ids
validated before they are sent, bodies (gzip or deflate when the server compresses) read in
chunks up to ``MAX_RESPONSE_BYTES`` decompressed,
and every HTTP failure mapped onto the error tree in ``exceptions.py`` in one place
(``_raise_for_error``). The client never imports models.

Proxies: ``COMETCHAT["PROXIES"]`` when set, else the environment's ``HTTPS_PROXY`` /
``HTTP_PROXY`` / ``NO_PROXY``; a CA bundle from ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``. The
session itself ignores the environment, so a ``.netrc`` can never add credentials to a request.
The API key travels in the ``apikey`` header, added per request by an auth object: it is neither
in ``session.headers`` nor in any ``repr``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Generic, NamedTuple, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3

from . import __version__, deadline
from .budget import RateBudget, first_sight, waits_allowed
from .conf import MAX_PAGE_SIZE, CometChatSettings, get_settings
from .exceptions import (
    CometChatAPIError,
    CometChatAuthError,
    CometChatBadRequest,
    CometChatForbidden,
    CometChatInvalidFilter,
    CometChatNotFound,
    CometChatRateLimited,
    CometChatResponseError,
    CometChatServerError,
    CometChatTimeout,
    CometChatTooManyPages,
    CometChatTransportError,
    CometChatUnknownOwner,
    RateLimitInfo,
    TransportReason,
)
from .filters import ConversationFilters
from .ids import path_segment, resolve_conversation_id, validate_id
from .ratelimit import parse_rate_limit, seconds_to_wait, window_end
from .redaction import Secret, redact
from .retry import CometChatRetry, attempt_clock, current_budget, retry_budget
from .signals import upstream_request_answered
from .socket_reads import ClippedReadsAdapter
from .types import (
    Conversation,
    Pagination,
    PayloadShapeError,
    User,
    conversation_id_of,
    parse_conversation,
    parse_pagination,
    parse_user,
    unwrap_single,
)

__all__ = ["CometChatClient", "Fetched", "Page", "Pages", "retry_budget"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

NOT_FOUND_CODES = frozenset({"ERR_CONVERSATION_NOT_ACCESSIBLE", "ERR_API_NOT_FOUND"})
CHUNK_SIZE = 64 * 1024  # bytes per read, after decompression
# Asked for on every request (bandwidth matters for 1000-row pages) and decoded by urllib3 with
# bounded output. Set explicitly: requests' default adds br and zstd when those packages happen
# to be installed.
ACCEPT_ENCODING = "gzip, deflate"
DECODABLE_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate", "identity"})
# Every conversation list asks for conversations with blocked users too (CometChat leaves them
# out by default, and a complete sync would mark them missing) and for the block status.
CONVERSATION_LIST_PARAMS = {"includeBlockedUsers": "true", "withBlockedInfo": "true"}
MAX_ERROR_TEXT = 500  # characters of CometChat's error message kept on an exception
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,100}")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list endpoint: its rows, the pagination CometChat reported, and when the
    request that was answered left (``sent_at``; see :class:`Fetched`)."""

    number: int
    items: tuple[T, ...]
    pagination: Pagination | None
    sent_at: datetime


@dataclass(frozen=True)
class Fetched(Generic[T]):
    """A single object and when the request that was answered left.

    ``sent_at`` is taken just before the request is handed to the connection; for a retried
    request it is the retry that was answered (the answer reflects CometChat's state from then
    on, not from the first try). Our clock, not CometChat's: the sync orders stored rows by it.
    """

    value: T
    sent_at: datetime


class _Answer(NamedTuple):
    data: Any
    body: Mapping[str, Any]
    sent_at: datetime


# A lazy walk over a list endpoint's pages; close() it when stopping early.
Pages = Generator[Page[T], None, None]


class _ApiKeyAuth(requests.auth.AuthBase):
    """Adds the ``apikey`` header at send time, so the key never sits in ``session.headers``."""

    def __init__(self, key: Secret | None) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["apikey"] = self._key.reveal() if self._key else ""
        return request

    def __repr__(self) -> str:
        return "<apikey [redacted]>"


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
        self.session = self._build_session(self.retry_budget)

    def _build_session(self, budget: float) -> requests.Session:
        s = self.settings
        retry = CometChatRetry.for_settings(
            max_retries=s.max_retries,
            backoff_factor=s.backoff_factor,
            backoff_max=s.backoff_max,
            server_wait_max=s.retry_after_max,
            budget=budget,
            rate_budget=self.rate_budget,
        )
        adapter = ClippedReadsAdapter(
            max_retries=retry, pool_connections=1, pool_maxsize=s.pool_maxsize, pool_block=False
        )
        session = requests.Session()
        # No environment lookups per request: they would read .netrc credentials. Proxies and the
        # CA bundle the environment names are applied here, once, instead.
        session.trust_env = False
        session.proxies.update(self._proxies())
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            session.verify = ca_bundle
        session.auth = _ApiKeyAuth(s.api_key)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update(
            {
                "Accept": "application/json",
                "Accept-Encoding": ACCEPT_ENCODING,
                "User-Agent": f"django-cometchat/{__version__}",
            }
        )
        return session

    def _proxies(self) -> dict[str, str]:
        """``PROXIES`` when set; else the environment's, unless ``NO_PROXY`` covers the host."""
        if self.settings.proxies is not None:
            return dict(self.settings.proxies)
        found = requests.utils.get_environ_proxies(self.base_url)
        return {scheme: url for scheme, url in found.items() if scheme != "no"}

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
    ) -> _Answer:
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
            raise self._transport_error(endpoint, exc) from exc
        with response:
            try:
                self._record_rate_limit(response.headers)
                if self.rate_budget is not None and first_sight(response.raw):
                    self.rate_budget.observe(response.status_code, response.headers)
                content = self._read_body(endpoint, response)
            finally:  # the whole answer read, or cut short (too large, too slow)
                clock.answered(response.status_code)
        if response.status_code >= 300:
            self._raise_for_error(endpoint, response, content, path, on_behalf_of)
        data, body = self._decode_success(endpoint, response, content)
        return _Answer(data, body, clock.sent_at)

    def _read_body(self, endpoint: str, response: requests.Response) -> bytes:
        """The body, decompressed and read in chunks: never more than ``MAX_RESPONSE_BYTES``
        *after* decompression, never past the deadline (a socket that trickles a byte at a time
        never trips a read timeout: each socket read is clipped to the deadline, see
        :mod:`.socket_reads`, however many one chunk takes).

        urllib3 (2.6+) decodes gzip and deflate with a bounded output per read, so a small
        compressed body that expands without end costs at most one chunk over the cap.
        """
        limit = self.settings.max_response_bytes
        status = response.status_code
        encodings = _content_encodings(response.headers)
        unknown = [name for name in encodings if name not in DECODABLE_ENCODINGS]
        if unknown:
            if status >= 300:  # the status says what went wrong; the body cannot be read
                return b""
            raise CometChatResponseError(
                f"the body is encoded with {', '.join(unknown)!r}, which the client cannot "
                f"decode (it asks for {ACCEPT_ENCODING})",
                endpoint=endpoint,
                status=status,
            )
        compressed = any(name != "identity" for name in encodings)
        declared = response.headers.get("Content-Length", "")
        # Content-Length counts the bytes on the wire: a cap on them only holds uncompressed.
        if not compressed and declared.isdigit() and int(declared) > limit:
            raise self._too_large(endpoint, status, int(declared), compressed=False)
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := response.raw.read1(CHUNK_SIZE, decode_content=True):
                size += len(chunk)
                if size > limit:
                    raise self._too_large(endpoint, status, size, compressed=compressed)
                chunks.append(chunk)
                deadline.check(endpoint)
        except urllib3.exceptions.ReadTimeoutError as exc:
            deadline.check(endpoint)
            raise CometChatTimeout(
                endpoint=endpoint, host=self.host, reason="read_timeout", detail="in the body"
            ) from exc
        except urllib3.exceptions.DecodeError as exc:
            raise CometChatResponseError(
                f"the {', '.join(encodings)} body could not be decompressed",
                endpoint=endpoint,
                status=status,
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise CometChatResponseError(
                f"the response body was cut off ({type(exc).__name__})",
                endpoint=endpoint,
                status=status,
            ) from exc
        return b"".join(chunks)

    def _too_large(
        self, endpoint: str, status: int, size: int, *, compressed: bool
    ) -> CometChatResponseError:
        limit = self.settings.max_response_bytes
        what = "decompressed response body" if compressed else "response body"
        return CometChatResponseError(
            f"the {what} is larger than {limit} bytes (at least {size}); raise "
            'COMETCHAT["MAX_RESPONSE_BYTES"] if CometChat really sends that much',
            endpoint=endpoint,
            status=status,
        )

    def _transport_error(
        self, endpoint: str, exc: requests.exceptions.RequestException
    ) -> CometChatTransportError:
        reason, detail = _transport_reason(exc)
        timed_out = reason in ("connect_timeout", "read_timeout")
        cls = CometChatTimeout if timed_out else CometChatTransportError
        return cls(endpoint=endpoint, host=self.host, reason=reason, detail=detail)

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

    def _raise_for_error(
        self,
        endpoint: str,
        response: requests.Response,
        content: bytes,
        path: str,
        on_behalf_of: str | None,
    ) -> None:
        """Map an error status and CometChat's ``{"error": {...}}`` envelope onto the tree."""
        status = response.status_code
        envelope = _error_envelope(content)
        code = _error_code(envelope.get("code"))
        message = _clean(envelope.get("message")) or _clean(response.reason)
        kwargs: dict[str, Any] = {
            "endpoint": endpoint,
            "status": status,
            "code": code,
            "details": _clean_details(envelope.get("details")),
            "rate_limit": parse_rate_limit(response.headers),
            "body": _clean(content[:10_000].decode("utf-8", "replace"), limit=2000),
            "dev_message": _clean(envelope.get("devMessage")),
        }
        if status == 429 or code == "ERR_TOO_MANY_REQUESTS":
            raise CometChatRateLimited(
                message, retry_after=seconds_to_wait(response.headers), **kwargs
            )
        if status == 401 or (code or "").startswith("AUTH_ERR"):
            raise CometChatAuthError(message, **kwargs)
        if code == "ERR_UID_NOT_FOUND" and _about_owner(path, message, on_behalf_of):
            raise CometChatUnknownOwner(message, uid=on_behalf_of or "", **kwargs)
        # ERR_CONVERSATION_NOT_ACCESSIBLE is a 4xx of unspecified status: branch on the code.
        if status == 404 or (code and (code.endswith("_NOT_FOUND") or code in NOT_FOUND_CODES)):
            raise CometChatNotFound(message, **kwargs)
        if status == 403:  # not AUTH_ERR_*: a plan restriction, a pinning rule, …
            raise CometChatForbidden(message, **kwargs)
        if status in (400, 422):
            raise CometChatBadRequest(message, **kwargs)
        if status >= 500:
            raise CometChatServerError(message, **kwargs)
        raise CometChatAPIError(message, **kwargs)

    @staticmethod
    def _decode_success(
        endpoint: str, response: requests.Response, content: bytes
    ) -> tuple[Any, Mapping[str, Any]]:
        """A 2xx must be a JSON object with ``data``; anything else is a contract breach."""
        status = response.status_code
        if not content:
            raise CometChatResponseError("empty response body", endpoint=endpoint, status=status)
        content_type = response.headers.get("Content-Type", "")
        try:
            body = json.loads(content, parse_constant=_refuse_constant)
        except RecursionError:
            raise CometChatResponseError(
                "the JSON is nested too deeply", endpoint=endpoint, status=status
            ) from None
        except ValueError as exc:
            kind = "an HTML page" if "html" in content_type else "invalid or truncated JSON"
            raise CometChatResponseError(
                f"expected JSON, got {kind} ({len(content)} bytes, {content_type[:60]!r})",
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
            raise CometChatResponseError(exc.describe(), endpoint=endpoint) from exc

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

        Rows are parsed :class:`~django_cometchat.types.Conversation` values, or with
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
        return self._iter_pages(
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
        with closing(self._iter_pages("/users", params, parse_user)) as pages:
            for page in pages:
                yield from page.items

    def _iter_pages(
        self,
        path: str,
        params: Mapping[str, Any],
        parser: Callable[[Any], T],
        *,
        on_behalf_of: str | None = None,
        start_page: int = 1,
        prefetch: bool = False,
        max_pages: int | None = None,
    ) -> Pages[T]:
        """Lazily walk ``page=1..`` of a list endpoint, holding one page (two with prefetch).

        Stops at an empty or short page, or when ``current_page >= total_pages`` (which may only
        mean "is there another page"). A full page without ``current_page``/``total_pages`` is
        a malformed answer, never taken for the last page. CometChat's ``total`` is not trusted,
        and neither is an endless "another page": after ``max_pages`` pages the walk yields the
        last one it has, then raises ``CometChatTooManyPages`` without asking for more.
        """
        endpoint = f"GET {path}"
        per_page = int(params["perPage"])
        capped: list[Page[T]] = []  # the page at the cap that still claimed another

        def fetch(number: int) -> Page[T]:
            data, body, sent_at = self._get(
                path, params={**params, "page": number}, on_behalf_of=on_behalf_of
            )  # list endpoints: no ids in the path
            if not isinstance(data, list):
                raise CometChatResponseError(
                    f"expected data to be a list, got {type(data).__name__}", endpoint=endpoint
                )
            pagination = self._parse(endpoint, parse_pagination, body.get("meta"))
            page = Page(
                number,
                tuple(self._parse(endpoint, parser, row) for row in data),
                pagination,
                sent_at,
            )
            if len(page.items) >= per_page and (pagination is None or not pagination.is_complete):
                raise CometChatResponseError(
                    f"page {number} is full but meta.pagination lacks current_page or "
                    "total_pages, so there is no telling whether another page follows",
                    endpoint=endpoint,
                )
            return page

        def is_last(page: Page[T]) -> bool:
            if len(page.items) < per_page:
                return True
            assert page.pagination is not None  # checked in fetch
            if page.pagination.is_last:
                return True
            if max_pages is not None and page.number - start_page + 1 >= max_pages:
                capped.append(page)
                return True  # the walker stops here: the next page is never asked for
            return False

        def walk() -> Pages[T]:
            pages = (_walk_prefetching if prefetch else _walk)(fetch, is_last, start_page)
            with closing(pages):
                yield from pages
            if capped:
                raise CometChatTooManyPages(
                    f"CometChat still claimed another page after {max_pages} pages of "
                    f'{per_page}; stopped there. That is the cap COMETCHAT["SYNC_MAX_PAGES"] '
                    "sets: raise it if this list really is longer",
                    endpoint=endpoint,
                )

        return walk()

    # -- single objects --------------------------------------------------------------------------

    def _get_one(
        self, where: _Path, parser: Callable[[Any], T], what: str, *, on_behalf_of: str | None
    ) -> Fetched[T]:
        """A single-object GET: ``data`` is an object, or (as the examples show) a list of one."""
        data, _, sent_at = self._get(where.path, on_behalf_of=on_behalf_of, template=where.template)
        endpoint = f"GET {where.path}"
        value = self._parse(endpoint, lambda value: parser(unwrap_single(value, what)), data)
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


def _walk(
    fetch: Callable[[int], Page[T]], is_last: Callable[[Page[T]], bool], number: int
) -> Pages[T]:
    while True:
        page = fetch(number)
        last = is_last(page)
        if page.items:
            yield page
        if last:
            return
        # Drop this page before fetching the next, so at most one page is held.
        page = None  # type: ignore[assignment]
        number += 1


def _walk_prefetching(
    fetch: Callable[[int], Page[T]], is_last: Callable[[Page[T]], bool], number: int
) -> Pages[T]:
    """Fetch page n+1 on a worker thread while the caller works on page n.

    A sync spends about as long storing a page as fetching it, so overlapping the two nearly
    halves its time. At most two pages are held. The session is only ever used by one thread at
    a time (the worker), and the caller's context (a retry budget, a deadline) is copied to it.

    Callers close the iterator when they stop early (``contextlib.closing``), which waits for a
    fetch still running. If it is left to the garbage collector instead, it may be finalized on
    any thread, even one that is starting up inside ``threading``'s locks, where waiting for the
    worker would deadlock: there it lets the worker finish on its own.
    """
    creator = threading.get_ident()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cometchat-prefetch")
    future = pool.submit(contextvars.copy_context().run, fetch, number)
    try:
        while True:
            page = future.result()
            last = is_last(page)
            if not last:
                future = pool.submit(contextvars.copy_context().run, fetch, number + 1)
            if page.items:
                yield page
            if last:
                return
            page = None  # type: ignore[assignment]
            number += 1
    finally:
        future.cancel()
        pool.shutdown(wait=threading.get_ident() == creator, cancel_futures=True)


# Most telling first: a DNS failure also surfaces as a failed connection, and so on.
_TRANSPORT_REASONS: tuple[tuple[TransportReason, Callable[[BaseException], bool]], ...] = (
    ("dns", lambda e: isinstance(e, urllib3.exceptions.NameResolutionError)),
    ("refused", lambda e: isinstance(e, ConnectionRefusedError)),
    ("tls", lambda e: isinstance(e, requests.exceptions.SSLError | urllib3.exceptions.SSLError)),
    (
        "connect_timeout",
        # NewConnectionError subclasses ConnectTimeoutError for history's sake only.
        lambda e: (
            isinstance(
                e, requests.exceptions.ConnectTimeout | urllib3.exceptions.ConnectTimeoutError
            )
            and not isinstance(e, urllib3.exceptions.NewConnectionError)
        ),
    ),
    (
        "read_timeout",
        lambda e: isinstance(
            e, requests.exceptions.ReadTimeout | urllib3.exceptions.ReadTimeoutError
        ),
    ),
    ("reset", lambda e: isinstance(e, ConnectionResetError | urllib3.exceptions.ProtocolError)),
)


def _transport_reason(exc: requests.exceptions.RequestException) -> tuple[TransportReason, str]:
    """Which transport failure this was (DNS, refused, TLS, timeout, reset) and a short detail.

    requests wraps urllib3's errors (often in a MaxRetryError after the retries), so the chain of
    causes is searched for the most telling one.
    """
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending and len(chain) < 20:
        item = pending.pop()
        if item is None or item in chain:
            continue
        chain.append(item)
        related = [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
        pending.extend(other for other in related if isinstance(other, BaseException))
    for reason, matches in _TRANSPORT_REASONS:
        for item in chain:
            if matches(item):
                return reason, _short(item) if reason == "tls" else ""
    return "other", type(exc).__name__


def _content_encodings(headers: Mapping[str, str]) -> list[str]:
    """The codings named by ``Content-Encoding``, in the order they were applied."""
    value = headers.get("Content-Encoding", "")
    return [name.strip().lower() for name in value.split(",") if name.strip()]


def _short(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r"\[SSL: [A-Z_]+\][^(')]*", text)
    return (match.group(0) if match else text)[:120].strip()


def _about_owner(path: str, message: str, owner: str | None) -> bool:
    """Whether an ``ERR_UID_NOT_FOUND`` is about the ``onBehalfOf`` owner rather than a peer."""
    if not owner:
        return False
    if path == "/conversations":  # no other UID is involved in listing the owner's conversations
        return True
    return re.search(rf"\bUID {re.escape(owner)}\b", message, re.IGNORECASE) is not None


def _error_envelope(content: bytes) -> Mapping[str, Any]:
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError, RecursionError):
        return {}
    return error if isinstance(error, Mapping) else {}


def _clean(value: Any, *, limit: int = MAX_ERROR_TEXT) -> str:
    """Upstream text fit for a message: a string, printable, redacted, bounded (redacted
    before it is cut, or a key straddling the cut would survive in halves)."""
    if not isinstance(value, str):
        return ""
    text = value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
    return redact(text)[:limit]


def _clean_details(value: Any) -> dict[str, Any]:
    """CometChat's ``details`` ({field: [messages]}), as JSON with every text redacted."""
    if not isinstance(value, dict):
        return {}
    try:
        text = json.dumps(value, ensure_ascii=False)
        if len(text) > 10_000:
            return {}
        # Redacted as JSON text (a "[redacted]" never breaks it, a cut could); NULs dropped.
        cleaned = json.loads(redact(text).replace("\\u0000", ""))
    except (TypeError, ValueError, RecursionError):
        return {}
    return cleaned if isinstance(cleaned, dict) else {}


def _error_code(value: Any) -> str | None:
    """CometChat's error code, if it looks like one: it is stored, logged and compared."""
    if isinstance(value, str) and _ERROR_CODE.fullmatch(value):
        return value
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _checked_row(data: Any) -> Mapping[str, Any]:
    """A raw conversation row whose ``conversationId`` passes the id rules (it will be looked up
    and remembered before the row itself is parsed)."""
    conversation_id_of(data)
    return data  # type: ignore[no-any-return]
