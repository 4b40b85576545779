"""Deprecated: ``ConversationFilters`` lives in :mod:`django_cometchat.conversation_filters`.

``django_cometchat.filters`` was documented (docs/client.md) before ``admin.filters`` and
``api.filters`` made the name ambiguous. This alias warns on import and goes in a later release.
"""

from __future__ import annotations

import warnings

from .conversation_filters import (
    CONVERSATION_TYPES,
    MAX_SEARCH_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    ConversationFilters,
)

__all__ = [
    "CONVERSATION_TYPES",
    "MAX_SEARCH_LENGTH",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "ConversationFilters",
]

warnings.warn(
    "django_cometchat.filters is deprecated: import ConversationFilters from "
    "django_cometchat.conversation_filters",
    DeprecationWarning,
    stacklevel=2,
)
