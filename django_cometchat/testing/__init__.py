"""A faithful fake of CometChat's REST API v3, shipped for the test suites of host projects.

``FakeCometChat`` serves real HTTP on loopback (stdlib only, no Django); ``Fault`` describes an
injected failure. The pytest plugin (:mod:`.pytest_plugin`, registered as ``django_cometchat``)
adds the ``cometchat_fake`` fixture, which also points ``settings.COMETCHAT`` at the fake.
``python -m django_cometchat.testing`` runs it stand-alone for local development.
"""

from __future__ import annotations

from .faults import Fault, FaultKind
from .options import Compression, PaginationMode
from .ratelimit import HeaderStyle, ResetHeader
from .seed import Seeded
from .server import DEFAULT_API_KEY, DEFAULT_APP_ID, FakeCometChat, RecordedRequest

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_APP_ID",
    "Compression",
    "FakeCometChat",
    "Fault",
    "FaultKind",
    "HeaderStyle",
    "PaginationMode",
    "RecordedRequest",
    "ResetHeader",
    "Seeded",
]
