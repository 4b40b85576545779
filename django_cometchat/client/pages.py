"""Walking a list endpoint's pages: lazily, one page held (two when prefetching).

:func:`iter_pages` asks for ``page=1..`` and checks each answer (a list of rows, a pagination
that says whether another page follows, a cap on the pages); :func:`walk_pages` is the one
walker under it, which may fetch the next page on a worker thread while the caller works on
this one.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, Generic, TypeVar

from ..conversation_types import Pagination, parse_pagination
from ..exceptions import CometChatResponseError, CometChatTooManyPages
from .responses import Answer, parse_payload

__all__ = ["Page", "Pages", "iter_pages", "walk_pages"]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list endpoint: its rows, the pagination CometChat reported, and when the
    request that was answered left (``sent_at``; see :class:`~django_cometchat.client.Fetched`)."""

    number: int
    items: tuple[T, ...]
    pagination: Pagination | None
    sent_at: datetime
    last: bool = False  # the walk asks for no page after this one (``walk_pages``)


# A lazy walk over a list endpoint's pages; close() it when stopping early.
Pages = Generator[Page[T], None, None]


def iter_pages(
    get: Callable[..., Answer],
    path: str,
    params: Mapping[str, Any],
    parser: Callable[[Any], T],
    *,
    on_behalf_of: str | None = None,
    start_page: int = 1,
    prefetch: bool = False,
    max_pages: int | None = None,
) -> Pages[T]:
    """Lazily walk ``page=1..`` of a list endpoint through ``get`` (the client's one-request
    GET), holding one page (two with prefetch).

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
        data, body, sent_at = get(
            path, params={**params, "page": number}, on_behalf_of=on_behalf_of
        )  # list endpoints: no ids in the path
        if not isinstance(data, list):
            raise CometChatResponseError(
                f"expected data to be a list, got {type(data).__name__}", endpoint=endpoint
            )
        pagination = parse_payload(endpoint, parse_pagination, body.get("meta"))
        page = Page(
            number,
            tuple(parse_payload(endpoint, parser, row) for row in data),
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
        with closing(walk_pages(fetch, is_last, start_page, prefetch=prefetch)) as pages:
            yield from pages
        if capped:
            raise CometChatTooManyPages(
                f"CometChat still claimed another page after {max_pages} pages of "
                f'{per_page}; stopped there. That is the cap COMETCHAT["SYNC_MAX_PAGES"] '
                "sets: raise it if this list really is longer",
                endpoint=endpoint,
            )

    return walk()


def walk_pages(
    fetch: Callable[[int], Page[T]],
    is_last: Callable[[Page[T]], bool],
    number: int,
    *,
    prefetch: bool = False,
) -> Pages[T]:
    """Yield ``fetch(number)``, ``fetch(number + 1)``, … up to the page ``is_last`` accepts,
    leaving out empty pages. A page is dropped before the next is fetched, so at most one is
    held.

    With ``prefetch``, page n+1 is fetched on a worker thread while the caller works on page n
    (the first page on the caller's own thread): a sync spends about as long storing a page as
    fetching it, so overlapping the two nearly halves its time, and at most two pages are held.
    See :class:`_Prefetcher`.
    """
    # The first page is fetched here, on the caller's thread: the caller would only wait for it,
    # and an owner with one page (most of them) never starts the worker.
    prefetcher: _Prefetcher | None = None
    try:
        upcoming: Callable[[], Page[T]] = partial(fetch, number)
        while True:
            page = upcoming()
            last = is_last(page)
            if not last:  # on the worker this starts now; without one, once the caller is back
                following = number + 1
                if prefetch and prefetcher is None:
                    prefetcher = _Prefetcher()
                upcoming = (
                    prefetcher.submit(fetch, following) if prefetcher else partial(fetch, following)
                )
            if page.items:
                yield replace(page, last=True) if last else page
            if last:
                return
            page = None  # type: ignore[assignment]
            number += 1
    finally:
        if prefetcher is not None:
            prefetcher.stop()


class _Prefetcher:
    """One worker thread that fetches the next page.

    The session is only ever used by one thread at a time (the worker), and the caller's context
    (a retry budget, a deadline) is copied to it with each fetch.

    Callers close the walk when they stop early (``contextlib.closing``), which waits for a
    fetch still running. If it is left to the garbage collector instead, it may be finalized on
    any thread, even one that is starting up inside ``threading``'s locks, where waiting for the
    worker would deadlock: there it lets the worker finish on its own.
    """

    def __init__(self) -> None:
        self._creator = threading.get_ident()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cometchat-prefetch")
        self._future: Future[Any] | None = None

    def submit(self, fetch: Callable[[int], Page[T]], number: int) -> Callable[[], Page[T]]:
        """Start ``fetch(number)`` on the worker; the returned callable waits for its page."""
        future = self._pool.submit(contextvars.copy_context().run, fetch, number)
        self._future = future
        return future.result

    def stop(self) -> None:
        if self._future is not None:
            self._future.cancel()
        self._pool.shutdown(wait=threading.get_ident() == self._creator, cancel_futures=True)
