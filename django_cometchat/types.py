"""Deprecated: the conversation payloads' dataclasses and parsers live in
:mod:`django_cometchat.conversation_types`.

``django_cometchat.types`` was documented (docs/client.md), but shadowed the standard library's
name for a module that holds parsers. This alias warns on import and goes in a later release.
"""

from __future__ import annotations

import warnings
from typing import Any

from . import conversation_types as _moved

warnings.warn(
    "django_cometchat.types is deprecated: import from django_cometchat.conversation_types",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
