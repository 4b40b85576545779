"""The one home of secret handling: a masked value type and the one redaction rule.

* :class:`Secret` holds the API key (and webhook passwords) in the settings object. Its ``repr``
  and ``str`` are masked, so ``print(settings)``, ``dataclasses.asdict(settings)`` and tracebacks
  that show locals never reveal it; code that must send it calls :meth:`Secret.reveal`.
* :func:`redact` replaces every secret the process has been configured with by ``[redacted]``,
  however an upstream echoed it: in any letter case, percent-encoded (``quote``, ``quote_plus``)
  or JSON-escaped character by character, and base64-encoded (standard or URL-safe, padded or
  not, alone or inside a longer base64 text such as a Basic ``user:password`` credential, where
  the whole base64 word goes). Every text that leaves the app goes through it: exception
  messages built from CometChat's answers (``client``), error descriptions (``exceptions``), what
  a ``SyncRun`` stores, what the services log, what the API and the admin show.

Stdlib only: the settings (``conf``) register their secrets here when they are built, so lower
layers can redact without reading Django settings. The patterns are compiled on the first use
after a new secret (so once per settings change), never per call.
"""

from __future__ import annotations

import base64
import json
import re
import string
import threading
from typing import NamedTuple

REDACTED = "[redacted]"
# Shorter values are not secrets worth the name, and replacing them would garble ordinary text.
MIN_SECRET_LENGTH = 6

# The characters of a base64 text, standard and URL-safe. A secret found inside one takes the
# whole run with it: the characters at its edges mix the secret's bits with their neighbours'.
_BASE64_ALPHABET = frozenset(string.ascii_letters + string.digits + "+/-_")
_URL_SAFE = str.maketrans("+/", "-_")
_ALNUM = frozenset(string.ascii_letters + string.digits)
_SIGMAS = frozenset("\u03a3\u03c3\u03c2")  # capital, small, final small


class _Rules(NamedTuple):
    secrets: frozenset[str]  # what the patterns were compiled for
    spelled: re.Pattern[str] | None  # the text itself, however cased or escaped
    encoded: re.Pattern[str] | None  # its base64 forms


_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_rules = _Rules(_secrets, None, None)


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
    """``text`` with every spelling of every known secret replaced by ``[redacted]``."""
    rules = _current_rules()
    if rules.spelled is None or not text:
        return text
    spans = [match.span() for match in rules.spelled.finditer(text)]
    if rules.encoded is not None:
        word_end = 0
        for match in rules.encoded.finditer(text):
            if match.start() >= word_end:  # not in the base64 word taken already
                spans.append(_base64_word(text, *match.span()))
                word_end = spans[-1][1]
    if not spans:
        return text
    pieces: list[str] = []
    done = 0
    for start, end in sorted(spans):
        if start >= done:
            pieces += [text[done:start], REDACTED]
        done = max(done, end)
    pieces.append(text[done:])
    return "".join(pieces)


def _current_rules() -> _Rules:
    """The patterns for the secrets known now, compiled on the first use after a new secret
    (once per settings change, not per settings object built or per call)."""
    global _rules  # noqa: PLW0603 - replaced atomically, under the lock
    rules = _rules
    if rules.secrets is not _secrets:
        with _lock:
            if _rules.secrets is not _secrets:
                _rules = _compile(_secrets)
            rules = _rules
    return rules


def _base64_word(text: str, start: int, end: int) -> tuple[int, int]:
    """The whole run of base64 characters (and its padding) around ``text[start:end]``."""
    while start > 0 and text[start - 1] in _BASE64_ALPHABET:
        start -= 1
    while end < len(text) and text[end] in _BASE64_ALPHABET:
        end += 1
    while end < len(text) and text[end] == "=":
        end += 1
    return start, end


def _compile(secrets: frozenset[str]) -> _Rules:
    # Longest first, so a secret that holds a shorter one is matched whole.
    ordered = sorted(secrets, key=lambda secret: (-len(secret), secret))
    spelled = "|".join(alternative for secret in ordered for alternative in _spelled(secret))
    cores = sorted({core for secret in ordered for core in _base64_cores(secret)}, key=len)
    encoded = "|".join(re.escape(core) for core in reversed(cores))
    return _Rules(secrets, re.compile(spelled), re.compile(encoded) if encoded else None)


def _spelled(secret: str) -> list[str]:
    """Patterns for ``secret`` with each character in any case, percent-encoded (``%2F`` or
    ``%2f``; ``+`` for a space, as ``quote_plus`` writes it) or JSON-escaped (``\\/``,
    ``\\"``, ``\\u00e9``): what ``quote``, ``quote_plus`` and JSON encoders produce, whatever
    they chose to leave alone. ``upper()``, ``lower()``, ``casefold()`` and ``swapcase()`` forms
    of another length (``ß`` and ``SS``) are added whole.

    Case is spelled out (``[kK]``) rather than left to ``re.IGNORECASE``, and each alternative
    starts with a literal character, so the regex engine skips every position that no spelling
    can start at instead of trying every alternative there (ten times faster on plain text).
    """
    first, *rest = [_character_forms(character) for character in secret]
    tail = "".join("(?:" + "|".join(forms) + ")" for forms in rest)
    whole = {secret.upper(), secret.lower(), secret.casefold(), secret.swapcase()}
    return [form + tail for form in first] + [
        re.escape(form) for form in sorted(whole) if len(form) != len(secret)
    ]


def _character_forms(character: str) -> list[str]:
    """Patterns for one character, each starting with a literal character."""
    forms = {re.escape(variant) for variant in _cases(character)}
    for variant in _cases(character):
        data = variant.encode("utf-8", "surrogatepass")
        forms.add("".join("%" + _hex(f"{byte:02x}") for byte in data))
    if character == " ":
        forms.add(re.escape("+"))
    if character not in _ALNUM:
        short = json.dumps(character)[1:-1]  # \" \\ \n ...; \uXXXX for the rest
        if short.startswith("\\") and not short.startswith("\\u"):
            forms.add(re.escape(short))
        if character == "/":
            forms.add(re.escape("\\/"))
        forms.add("".join(re.escape("\\u") + _hex(f"{unit:04x}") for unit in _utf16(character)))
    return sorted(forms, key=lambda form: (-len(form), form))


def _cases(character: str) -> set[str]:
    """The character and its other cases (single characters only; every sigma for a sigma)."""
    found = {character}
    for _ in range(2):
        found |= {
            changed
            for variant in found
            for changed in (variant.lower(), variant.upper(), variant.casefold())
            if len(changed) == 1
        }
    if found & _SIGMAS:  # str.lower() writes a final sigma at the end of a word
        found |= _SIGMAS
    return found


def _hex(digits: str) -> str:
    """Hexadecimal digits in either case: ``2f`` as ``2[fF]``."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in digits)


def _utf16(character: str) -> list[int]:
    data = character.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _base64_cores(secret: str) -> set[str]:
    """The base64 characters that only ``secret`` (as typed, upper- or lower-cased) decides,
    wherever its bytes start in a longer text (at each of the 3 byte offsets), in the standard
    and the URL-safe alphabets. Padding and the characters shared with a neighbour are left out,
    so a core is found in any base64 text that holds the secret."""
    cores = set()
    for form in {secret, secret.upper(), secret.lower()}:
        data = form.encode("utf-8", "surrogatepass")
        for shift in range(3):
            encoded = base64.b64encode(bytes(shift) + data).decode("ascii")
            first = -(-8 * shift // 6)  # the first character made of the secret's bits only
            last = 8 * (shift + len(data)) // 6  # and the one after the last such character
            core = encoded[first:last]
            cores.add(core)
            cores.add(core.translate(_URL_SAFE))
    return cores
