"""The fake's switchable behaviour, as one frozen value.

:class:`FakeCometChat` keeps the constructor's choices as its default :class:`FakeOptions` and,
when a property is set, swaps in a changed copy (``dataclasses.replace``). A request reads the
current value once, so it never sees half of a change, and ``reset()`` restores the defaults by
assignment.

Stdlib only; no Django.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, TypedDict, get_args

from .ratelimit import HEADER_STYLES, RESET_HEADERS, HeaderStyle, ResetHeader

PaginationMode = Literal["exact", "lookahead"]
PAGINATION_MODES: tuple[str, ...] = get_args(PaginationMode)
PAGINATION_KEYS = ("total", "count", "per_page", "current_page", "total_pages")
# How JSON answers go out when the request's Accept-Encoding admits it (a real server compresses):
# "gzip" (the default), "deflate" (zlib format, RFC 9110 §8.4.1.2) or "off" (always identity).
Compression = Literal["gzip", "deflate", "off"]
COMPRESSIONS: tuple[str, ...] = get_args(Compression)
# The message lists' meta: "next" ({current, next}, API.md §4.3) or "cursor" ({pagination,
# cursor}, the other shape CometChat publishes for cursor lists, API.md §4.1).
MessagesMeta = Literal["next", "cursor"]
MESSAGES_METAS: tuple[str, ...] = get_args(MessagesMeta)
# A message list's limit above 1000: "reject" (400 ERR_BAD_REQUEST, as perPage above its maximum)
# or "clamp" (served as 1000). API.md gives the maximum, not what CometChat does past it.
LimitAboveMax = Literal["reject", "clamp"]
LIMITS_ABOVE_MAX: tuple[str, ...] = get_args(LimitAboveMax)


@dataclass(frozen=True)
class FakeOptions:
    rate_limit_per_minute: int | None = None  # None: no budget
    rate_limit_window: float = 60.0
    header_style: HeaderStyle = "hyphen"
    reset_header: ResetHeader = "429"  # "always": X-Rate-Limit-Reset on every answer
    single_as_list: bool = True  # single GETs answer a list of one, as the examples do
    not_accessible_status: int = 403
    # "lookahead": total_pages only says whether another page follows; total is 0 (API.md §0.5)
    pagination_mode: PaginationMode = "exact"
    omit_pagination_keys: frozenset[str] = field(default_factory=frozenset)  # from lists' meta
    compression: Compression = "gzip"
    messages_meta: MessagesMeta = "next"
    messages_limit_above_max: LimitAboveMax = "reject"

    def __post_init__(self) -> None:
        keys = frozenset(self.omit_pagination_keys)  # any iterable of names is accepted
        object.__setattr__(self, "omit_pagination_keys", keys)
        if not keys <= set(PAGINATION_KEYS):
            unknown = ", ".join(sorted(keys - set(PAGINATION_KEYS)))
            raise ValueError(f"unknown pagination keys {unknown}; use {', '.join(PAGINATION_KEYS)}")
        if self.pagination_mode not in PAGINATION_MODES:
            raise ValueError(f"pagination_mode must be one of {', '.join(PAGINATION_MODES)}")
        if self.header_style not in HEADER_STYLES:
            raise ValueError(f"header_style must be one of {', '.join(HEADER_STYLES)}")
        if self.reset_header not in RESET_HEADERS:
            raise ValueError(f"reset_header must be one of {', '.join(RESET_HEADERS)}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}")
        if self.messages_meta not in MESSAGES_METAS:
            raise ValueError(f"messages_meta must be one of {', '.join(MESSAGES_METAS)}")
        if self.messages_limit_above_max not in LIMITS_ABOVE_MAX:
            raise ValueError(
                f"messages_limit_above_max must be one of {', '.join(LIMITS_ABOVE_MAX)}"
            )
        if self.rate_limit_window <= 0:
            raise ValueError("rate_limit_window must be positive")


class OptionChanges(TypedDict, total=False):
    """The keyword arguments of ``FakeCometChat.configure()`` (and of its constructor), for type
    checkers: the fields of :class:`FakeOptions`, each optional."""

    rate_limit_per_minute: int | None
    rate_limit_window: float
    header_style: HeaderStyle
    reset_header: ResetHeader
    single_as_list: bool
    not_accessible_status: int
    pagination_mode: PaginationMode
    omit_pagination_keys: Iterable[str]
    compression: Compression
    messages_meta: MessagesMeta
    messages_limit_above_max: LimitAboveMax
