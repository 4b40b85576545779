"""``ConversationFilters``: the filters of a conversation list, as one frozen, validated value.

Shared by the client (query parameters of ``GET /conversations``), the services (a sync's
filters, stored on its ``SyncRun``), the API's sync endpoint and the command. Invalid values are
refused here, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .exceptions import CometChatInvalidFilter

CONVERSATION_TYPES = ("user", "group")
MAX_TAGS = 25  # CometChat's limit per user, group or conversation
MAX_TAG_LENGTH = 100
MAX_SEARCH_LENGTH = 100


@dataclass(frozen=True)
class ConversationFilters:
    """What to ask ``GET /conversations`` for. The default value asks for everything.

    ``with_tags`` and ``with_user_and_group_tags`` only add fields to each row; the others narrow
    the list, and a sync narrowed by any of them never marks conversations missing.
    """

    conversation_type: str | None = None
    unread: bool | None = None
    search_key: str | None = None
    tags: tuple[str, ...] = ()
    user_tags: tuple[str, ...] = ()
    group_tags: tuple[str, ...] = ()
    with_tags: bool = False
    with_user_and_group_tags: bool = False

    def __post_init__(self) -> None:
        if self.conversation_type not in (None, *CONVERSATION_TYPES):
            raise CometChatInvalidFilter(
                f"conversation_type must be 'user' or 'group', got {self.conversation_type!r}"
            )
        if self.search_key is not None and (
            not isinstance(self.search_key, str) or len(self.search_key) > MAX_SEARCH_LENGTH
        ):
            raise CometChatInvalidFilter(
                f"search_key must be text of at most {MAX_SEARCH_LENGTH} characters"
            )
        for name in ("tags", "user_tags", "group_tags"):
            object.__setattr__(self, name, _tags(name, getattr(self, name)))

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ConversationFilters:
        """Build from keyword arguments, refusing names that are not filters."""
        unknown = set(kwargs) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown conversation filter(s): {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in kwargs.items() if v is not None})

    @property
    def narrows(self) -> bool:
        """Whether the list is a subset of the owner's conversations."""
        return bool(
            self.conversation_type
            or self.unread is not None
            or self.search_key
            or self.tags
            or self.user_tags
            or self.group_tags
        )

    def as_params(self) -> dict[str, str]:
        """CometChat's query parameters for these filters (unset ones left out)."""
        params = {
            "conversationType": self.conversation_type,
            "unread": _flag(self.unread),
            "searchKey": self.search_key,
            "tags": ",".join(self.tags) or None,
            "userTags": ",".join(self.user_tags) or None,
            "groupTags": ",".join(self.group_tags) or None,
            "withTags": "true" if self.with_tags else None,
            "withUserAndGroupTags": "true" if self.with_user_and_group_tags else None,
        }
        return {key: value for key, value in params.items() if value is not None}

    def as_json(self) -> dict[str, Any]:
        """The filters that are set, as JSON for ``SyncRun.filters``."""
        default = ConversationFilters()
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
            if value != getattr(default, key)
        }


def _tags(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part]
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise CometChatInvalidFilter(f"{name} must be a list of tags")
    tags = tuple(value)
    if len(tags) > MAX_TAGS or not all(
        isinstance(tag, str) and tag and len(tag) <= MAX_TAG_LENGTH and "," not in tag
        for tag in tags
    ):
        raise CometChatInvalidFilter(
            f"{name}: at most {MAX_TAGS} tags of 1-{MAX_TAG_LENGTH} characters, without commas"
        )
    return tags


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")
