from __future__ import annotations

from typing import Any


def uid_for(user: Any) -> str:
    """The example project names its users after their CometChat UIDs."""
    return str(user.get_username())
