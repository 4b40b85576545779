"""``redaction.redact()``: every spelling of a secret an upstream could echo is removed.

Unit tests name each spelling (another case, percent-encoding, JSON escapes, base64 alone or
inside a longer base64 text); a property test (Hypothesis) then gives random secrets of any
Unicode content, spells them each way inside random text, and checks that no part of the output
outside a ``[redacted]`` marker still holds a spelling, and that no base64 run left decodes, at
any alignment, to bytes holding the secret. That last check does not reuse the module's idea of
a base64 "core": it decodes what is left.

The secrets are process-wide (a configured secret is never forgotten), so each test here works
on a set of its own and puts the process's set back afterwards: random secrets must not garble
other tests' texts.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from django_cometchat import redaction
from django_cometchat.redaction import REDACTED, Secret, redact, remember

KEY = "sk-live-4f1c9a7e2b6d8035c1e9a4f7"
PASSWORD = 'pa ss/w+rd%é~"q\\'  # a webhook password with everything an encoder touches


@contextmanager
def only(*secrets: str) -> Iterator[None]:
    """Redact with exactly these secrets, then give the process its own set back."""
    saved = redaction._secrets, redaction._rules
    redaction._secrets = frozenset()
    try:
        for secret in secrets:
            remember(secret)
        yield
    finally:
        redaction._secrets, redaction._rules = saved


@pytest.fixture
def secrets() -> Iterator[None]:
    with only(KEY, PASSWORD):
        yield


def b64(data: str | bytes, *, url_safe: bool = False, padded: bool = True) -> str:
    raw = data.encode() if isinstance(data, str) else data
    text = (base64.urlsafe_b64encode if url_safe else base64.b64encode)(raw).decode()
    return text if padded else text.rstrip("=")


# -- each spelling --------------------------------------------------------------------------------

SPELLINGS = [
    pytest.param(KEY, id="key as configured"),
    pytest.param(KEY.upper(), id="key upper-cased"),
    pytest.param("Sk-LiVe-4F1c9A7e2B6d8035C1e9A4f7", id="key in mixed case"),
    pytest.param(b64(KEY), id="key base64"),
    pytest.param(b64(KEY, padded=False), id="key base64 unpadded"),
    pytest.param(b64(KEY.upper()), id="upper-cased key base64"),
    pytest.param(b64("\xff" + KEY, url_safe=True), id="key url-safe base64 at byte 1"),
    pytest.param(b64("ab" + KEY + "!"), id="key base64 at byte 2 of a blob"),
    pytest.param(b64("apikey:" + KEY), id="key in a Basic credential"),
    pytest.param(PASSWORD, id="password as configured"),
    pytest.param(PASSWORD.upper(), id="password upper-cased"),
    pytest.param(quote(PASSWORD), id="password quote()"),
    pytest.param(quote(PASSWORD, safe=""), id="password quote(safe='')"),
    pytest.param(quote_plus(PASSWORD), id="password quote_plus()"),
    pytest.param(quote(PASSWORD).lower(), id="password quote() lower-cased"),
    pytest.param(json.dumps(PASSWORD)[1:-1], id="password JSON-escaped"),
    pytest.param(json.dumps(PASSWORD, ensure_ascii=False)[1:-1], id="password JSON, not ASCII"),
    pytest.param(b64(PASSWORD), id="password base64"),
    pytest.param(b64(PASSWORD, url_safe=True, padded=False), id="password url-safe unpadded"),
    pytest.param(b64("cometchat:" + PASSWORD), id="password in a Basic credential"),
    pytest.param(b64("c:" + PASSWORD, url_safe=True), id="password url-safe at byte 2"),
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_each_spelling_is_redacted(secrets, spelling):
    text = f"CometChat said: '{spelling}' was refused (Authorization: Basic {spelling}=)"
    redacted = redact(text)
    assert spelling not in redacted
    assert redacted.startswith("CometChat said: '")
    assert redacted.count(REDACTED) == 2
    assert "was refused (Authorization: Basic " in redacted


def test_a_base64_secret_takes_its_whole_base64_word_and_nothing_else(secrets):
    credential = b64("cometchat:" + PASSWORD)
    assert redact(f"header 'Basic {credential}', retry") == f"header 'Basic {REDACTED}', retry"
    blob = b64(b"\x00\x01 padding before " + KEY.encode() + b" and after")
    assert redact(f"[{blob}]") == f"[{REDACTED}]"


def test_ordinary_text_is_left_alone(secrets):
    text = (
        "ERR_UID_NOT_FOUND: The UID sk-live-00 does not exist; see https://api.example/v3/users "
        'with {"apikey": "…", "pass": "pa ss"} and c2stbGl2ZQ== (base64 of a short prefix).'
    )
    assert redact(text) == text


def test_a_secret_inside_a_longer_one_leaves_no_tail():
    with only("short-secret", "a-short-secret-longer"):
        assert redact("x A-SHORT-SECRET-LONGER y") == f"x {REDACTED} y"
        assert redact("x short-secret y") == f"x {REDACTED} y"


def test_a_secret_object_is_remembered_and_short_values_are_not():
    with only():
        Secret("configured-elsewhere")
        remember("tiny")  # shorter than MIN_SECRET_LENGTH: not a secret worth garbling text for
        assert redact("CONFIGURED-ELSEWHERE and tiny") == f"{REDACTED} and tiny"


def test_a_new_secret_is_redacted_from_its_first_use():
    with only(KEY):
        assert redact(PASSWORD) == PASSWORD
        remember(PASSWORD)
        assert redact(quote(PASSWORD)) == REDACTED
        assert redact(KEY.upper()) == REDACTED  # the old one is still known


def test_redaction_stays_fast(secrets):
    """It runs on every error text: linear, a few hundredths of a millisecond per kilobyte (the
    bound below is 20 times what this machine measures, for a loaded CI machine)."""
    redact("warm up: compiles the patterns once")
    text = "The conversation could not be found; check the UID and try again. " * 30  # 2 KB
    started = time.perf_counter()
    for _ in range(100):
        assert redact(text) == text
    per_call = (time.perf_counter() - started) / 100
    assert per_call < 0.002
    hostile = "s" * 200_000 + "%" * 200_000 + "A" * 200_000  # near misses everywhere
    started = time.perf_counter()
    redact(hostile)
    assert time.perf_counter() - started < 2.0


# -- the property: no spelling of a random secret survives ---------------------------------------


def base64_spellings(secret: bytes, before: bytes, after: bytes) -> list[str]:
    blob = before + secret + after
    return [
        b64(blob, url_safe=url_safe, padded=padded)
        for url_safe in (False, True)
        for padded in (False, True)
    ]


TEXT_SPELLINGS: dict[str, Callable[[str], str]] = {
    "as is": lambda s: s,
    "upper": str.upper,
    "lower": str.lower,
    "swapcase": str.swapcase,
    "quote": quote,
    "quote safe=''": lambda s: quote(s, safe=""),
    "quote_plus": quote_plus,
    "JSON": lambda s: json.dumps(s)[1:-1],
    "JSON not ASCII": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
}
BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]+")


def decodes_to(text: str, secret: bytes) -> bool:
    """Whether any base64 run of ``text``, read from any of its first 4 characters (so at every
    alignment), decodes to bytes that hold ``secret``."""
    for run in BASE64_RUN.findall(text.translate(str.maketrans("-_", "+/"))):
        for start in range(4):
            chunk = run[start:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            if secret in base64.b64decode(chunk, validate=True):
                return True
    return False


SECRET = st.text(min_size=6, max_size=40)  # any Unicode but lone surrogates
AROUND = st.text(max_size=20)
PROPERTY = settings(
    max_examples=300,
    deadline=None,  # a shared 2-core machine: no flaky timing failures
    database=None,  # no .hypothesis/ directory in the work tree
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(
    secret=SECRET,
    how=st.sampled_from(sorted(TEXT_SPELLINGS)),
    before=AROUND,
    after=AROUND,
)
@example(secret="Straße-ΑΣ", how="upper", before="", after="")  # ß: "SS", another length
@example(secret="ΑΣ ΟΔΟΣ", how="lower", before="x", after="")  # a final sigma: "ς"
@example(secret="İstanbul", how="lower", before="", after="")  # "i̇": another length
@example(secret="emoji 😀 key", how="JSON", before='{"k": "', after='"}')  # a surrogate pair
def test_no_text_spelling_of_a_random_secret_survives(secret, how, before, after):
    spelling = TEXT_SPELLINGS[how](secret)
    with only(secret):
        redacted = redact(before + spelling + after)
    assert all(spelling not in piece for piece in redacted.split(REDACTED))


@PROPERTY
@given(
    secret=SECRET,
    prefix=st.binary(max_size=7),
    suffix=st.binary(max_size=7),
    upper=st.booleans(),
    before=AROUND,
    after=AROUND,
)
@example(secret="abcdef", prefix=b"", suffix=b"", upper=False, before="", after="")
@example(secret="pass/word", prefix=b"user:", suffix=b"", upper=False, before="Basic ", after="")
def test_no_base64_spelling_of_a_random_secret_survives(
    secret, prefix, suffix, *, upper, before, after
):
    data = (secret.upper() if upper else secret).encode()
    with only(secret):
        for spelling in base64_spellings(data, prefix, suffix):
            redacted = redact(before + spelling + after)
            assert not any(decodes_to(piece, data) for piece in redacted.split(REDACTED)), (
                spelling,
                redacted,
            )
