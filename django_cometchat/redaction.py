"""The one home of secret handling: a masked value type and the one redaction rule.

* :class:`Secret` holds the API key (and webhook passwords) in the settings object. Its ``repr``
  and ``str`` are masked, so ``print(settings)``, ``dataclasses.asdict(settings)`` and tracebacks
  that show locals never reveal it; code that must send it calls :meth:`Secret.reveal`.
* :func:`redact` replaces every secret the process has been configured with by ``[redacted]``.
  Every text that leaves the app goes through it: exception messages built from CometChat's
  answers (``client``), error descriptions (``exceptions``), what a ``SyncRun`` stores, what the
  services log, what the API and the admin show.

Stdlib only: the settings (``conf``) register their secrets here when they are built, so lower
layers can redact without reading Django settings.
"""

from __future__ import annotations

import threading

REDACTED = "[redacted]"
# Shorter values are not secrets worth the name, and replacing them would garble ordinary text.
MIN_SECRET_LENGTH = 6

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()


class Secret:
    """A string that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        remember(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{REDACTED}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __deepcopy__(self, memo: object) -> Secret:  # dataclasses.asdict copies values
        return self

    def __reduce__(self) -> tuple[object, ...]:  # never pickled into a task queue or cache
        raise TypeError("a Secret cannot be pickled")


def remember(value: str | None) -> None:
    """Add ``value`` to the secrets that :func:`redact` removes (once configured, never forgotten:
    an old key in an old message must stay hidden after a settings change)."""
    global _secrets  # noqa: PLW0603 - one process-wide set, replaced atomically
    if not value or len(value) < MIN_SECRET_LENGTH or value in _secrets:
        return
    with _lock:
        _secrets = _secrets | {value}


def redact(text: str) -> str:
    """``text`` with every known secret replaced by ``[redacted]``, longest first."""
    secrets = _secrets
    if not secrets or not text:
        return text
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text
