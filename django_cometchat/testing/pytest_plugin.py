"""pytest fixtures for the fake CometChat server (registered as the ``django_cometchat`` plugin).

- ``cometchat_fake_server`` (session): one running :class:`FakeCometChat` for the whole run.
- ``cometchat_fake`` (function): that server, ``reset()`` to empty, with ``settings.COMETCHAT``
  pointed at it through pytest-django's ``settings`` fixture (``BASE_URL``, ``API_KEY`` and, when
  missing, ``APP_ID``); the original settings come back after the test. Without pytest-django the
  fixture still yields the fake and leaves settings alone.

Nothing here imports Django at import time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .server import FakeCometChat


@pytest.fixture(scope="session")
def cometchat_fake_server() -> Iterator[FakeCometChat]:
    """A fake CometChat server shared by the whole session; call ``reset()`` between uses."""
    with FakeCometChat() as fake:
        yield fake


@pytest.fixture
def cometchat_fake(
    request: pytest.FixtureRequest, cometchat_fake_server: FakeCometChat
) -> Iterator[FakeCometChat]:
    """An empty fake CometChat server, with ``settings.COMETCHAT`` pointing at it."""
    fake = cometchat_fake_server
    fake.reset()
    try:
        settings: Any = request.getfixturevalue("settings")
    except pytest.FixtureLookupError:  # pytest-django is not installed
        settings = None
    if settings is not None:
        existing = dict(getattr(settings, "COMETCHAT", None) or {})
        settings.COMETCHAT = {
            **existing,
            "BASE_URL": fake.base_url,
            "API_KEY": fake.api_key,
            "APP_ID": existing.get("APP_ID") or fake.app_id,
        }
        _reset_rate_budget()
    try:
        yield fake
    finally:
        _drop_kept_client()
        fake.reset()
        if settings is not None:
            _reset_rate_budget()


def _drop_kept_client() -> None:
    """The test's kept background client closes with the test (its connections are to this
    test's settings)."""
    from django_cometchat.services.clients import drop_kept_client

    drop_kept_client()


def _reset_rate_budget() -> None:
    """A 429 one test provoked must not pause the next test's requests (the shared budget
    lives in the cache, which outlives a test)."""
    from django_cometchat.budget import RateBudget
    from django_cometchat.conf import get_settings

    budget = RateBudget.for_settings(get_settings())
    if budget is not None:
        budget.reset()
