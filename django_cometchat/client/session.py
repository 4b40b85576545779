"""The ``requests.Session`` a client sends through, and the hook hosts extend it with.

:func:`create_session` builds it: the retry policy of :mod:`..retry` mounted through a
:class:`~django_cometchat.socket_reads.ClippedReadsAdapter` (every socket read clipped to the
deadline), the ``apikey`` header added per request by an auth object (never in
``session.headers`` nor in any ``repr``), no cookies kept, the headers every request carries
(compressed answers asked for, see ``ACCEPT_ENCODING``), proxies and the CA bundle.

Proxies: ``COMETCHAT["PROXIES"]`` when set, else the environment's ``HTTPS_PROXY`` /
``HTTP_PROXY`` / ``NO_PROXY``; a CA bundle from ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``. The
session itself ignores the environment, so a ``.netrc`` can never add credentials to a request.

``COMETCHAT["SESSION_FACTORY"]`` names a callable with :func:`create_session`'s signature that
replaces it for every client (usually calling it, then adding a proxy or mounting an adapter).
"""

from __future__ import annotations

import os
from http.cookiejar import DefaultCookiePolicy
from typing import Protocol

import requests

from .. import __version__
from ..conf import CometChatSettings, import_callable
from ..redaction import Secret
from ..retry import CometChatRetry
from ..socket_reads import ClippedReadsAdapter

__all__ = ["ACCEPT_ENCODING", "SessionFactory", "create_session", "session_factory"]

# Asked for on every request (bandwidth matters for 1000-row pages) and decoded by urllib3 with
# bounded output. Set explicitly: requests' default adds br and zstd when those packages happen
# to be installed.
ACCEPT_ENCODING = "gzip, deflate"


class SessionFactory(Protocol):
    """What ``COMETCHAT["SESSION_FACTORY"]`` names: :func:`create_session`'s signature."""

    def __call__(
        self, settings: CometChatSettings, *, retry: CometChatRetry
    ) -> requests.Session: ...


def create_session(settings: CometChatSettings, *, retry: CometChatRetry) -> requests.Session:
    """A session for one client of the app ``settings`` describe, retrying with ``retry``.

    The default of ``COMETCHAT["SESSION_FACTORY"]``: a factory of your own usually calls this
    and changes what it returns. An adapter you mount should subclass ``ClippedReadsAdapter``
    and take ``max_retries=retry``, or requests on it lose the deadline and the retry policy.
    """
    adapter = ClippedReadsAdapter(
        max_retries=retry, pool_connections=1, pool_maxsize=settings.pool_maxsize, pool_block=False
    )
    session = requests.Session()
    # No environment lookups per request: they would read .netrc credentials. Proxies and the
    # CA bundle the environment names are applied here, once, instead.
    session.trust_env = False
    session.proxies.update(_proxies(settings))
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if ca_bundle:
        session.verify = ca_bundle
    session.auth = _ApiKeyAuth(settings.api_key)
    # A server-to-server API: no cookie is kept, so none an answer on one owner's behalf sets
    # (a load balancer's, say) is sent on another's over a kept client.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
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


def session_factory(settings: CometChatSettings) -> SessionFactory:
    """``COMETCHAT["SESSION_FACTORY"]``'s callable, or :func:`create_session` when unset."""
    if not settings.session_factory_path:
        return create_session
    return import_callable("SESSION_FACTORY", settings.session_factory_path)


def _proxies(settings: CometChatSettings) -> dict[str, str]:
    """``PROXIES`` when set; else the environment's, unless ``NO_PROXY`` covers the host."""
    if settings.proxies is not None:
        return dict(settings.proxies)
    found = requests.utils.get_environ_proxies(settings.base_url)
    return {scheme: url for scheme, url in found.items() if scheme != "no"}


class _ApiKeyAuth(requests.auth.AuthBase):
    """Adds the ``apikey`` header at send time, so the key never sits in ``session.headers``."""

    def __init__(self, key: Secret | None) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["apikey"] = self._key.reveal() if self._key else ""
        return request

    def __repr__(self) -> str:
        return "<apikey [redacted]>"
