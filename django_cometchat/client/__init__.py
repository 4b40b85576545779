"""CometChatClient: the only code that speaks HTTP to CometChat's REST API v3.

A package by job; every public name is importable from here:

* :mod:`.session` builds the ``requests.Session`` (retries, socket reads clipped to the
  deadline, auth header, compression, proxies) behind :func:`create_session`, the hook that
  ``COMETCHAT["SESSION_FACTORY"]`` replaces;
* :mod:`.core` holds :class:`CometChatClient`: sending one request (deadline, rate window,
  budget) and the endpoints;
* :mod:`.responses` reads and decodes an answer (``decode_json`` is the one JSON decoder);
* :mod:`.pages` walks a list endpoint's pages (:class:`Page`), prefetching or not;
* :mod:`.errors` maps HTTP failures onto the error tree of ``exceptions.py``.

The client never imports models.
"""

from __future__ import annotations

from ..retry import retry_budget
from .core import CometChatClient, Fetched
from .pages import Page, Pages
from .session import create_session

__all__ = ["CometChatClient", "Fetched", "Page", "Pages", "create_session", "retry_budget"]
