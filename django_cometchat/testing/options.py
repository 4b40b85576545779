"""The fake's switchable behaviour, as one frozen value.

:class:`FakeCometChat` keeps the constructor's choices as its default :class:`FakeOptions` and,
when a property is set, swaps in a changed copy (``dataclasses.replace``). A request reads the
current value once, so it never sees half of a change, and ``reset()`` restores the defaults by
assignment.

Stdlib only; no Django.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ratelimit import HEADER_STYLES, RESET_HEADERS, HeaderStyle, ResetHeader


@dataclass(frozen=True)
class FakeOptions:
    rate_limit_per_minute: int | None = None  # None: no budget
    rate_limit_window: float = 60.0
    header_style: HeaderStyle = "hyphen"
    reset_header: ResetHeader = "429"  # "always": X-Rate-Limit-Reset on every answer
    single_as_list: bool = True  # single GETs answer a list of one, as the examples do
    not_accessible_status: int = 403

    def __post_init__(self) -> None:
        if self.header_style not in HEADER_STYLES:
            raise ValueError(f"header_style must be one of {', '.join(HEADER_STYLES)}")
        if self.reset_header not in RESET_HEADERS:
            raise ValueError(f"reset_header must be one of {', '.join(RESET_HEADERS)}")
        if self.rate_limit_window <= 0:
            raise ValueError("rate_limit_window must be positive")
