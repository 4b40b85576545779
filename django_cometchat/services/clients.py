"""Clients and the limits of work: on demand (a person waits) or in the background."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from .. import budget, deadline
from ..budget import BudgetUsage, RateBudget
from ..client import CometChatClient, retry_budget
from ..conf import get_settings
from ..exceptions import CometChatConfigurationError


def new_client(*, on_demand: bool = False) -> CometChatClient:
    """A client for background work, or (``on_demand``) with the web retry budget."""
    if on_demand:
        return CometChatClient(retry_budget=get_settings().web_retry_budget)
    return CometChatClient()


_kept = threading.local()


@contextmanager
def kept_client() -> Iterator[CometChatClient]:
    """The calling thread's background client, kept between calls so that its connections stay
    open: a worker's next sync or refresh reuses them instead of opening a connection (and, to
    CometChat, a TLS handshake) per task.

    One per thread and process (a forked child makes its own: no connection is shared across a
    fork or between threads), rebuilt when the settings change. The session keeps no
    cookies (see :func:`~django_cometchat.client.create_session`), so nothing one owner's answer
    set is sent for another. A call that raises drops the client and closes its connections:
    one cut off mid-answer is never reused."""
    settings = get_settings()
    client: CometChatClient | None = getattr(_kept, "client", None)
    if client is None or client.settings is not settings or _kept.pid != os.getpid():
        if client is not None and _kept.pid == os.getpid():
            client.close()  # settings changed: its connections go to the old address
        client = CometChatClient(settings=settings)
        _kept.client, _kept.pid = client, os.getpid()
    try:
        yield client
    except BaseException:
        _kept.client = None
        client.close()
        raise


def drop_kept_client() -> None:
    """Close the calling thread's kept client, if any (tests; a worker shutting down)."""
    client = getattr(_kept, "client", None)
    _kept.client = None
    if client is not None:
        client.close()


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
