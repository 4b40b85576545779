"""``settings.COMETCHAT``: one table of settings, and the typed, frozen object it makes.

Each setting is one field of :class:`CometChatSettings`, declared with :func:`setting`: its key,
its default, its parser (:mod:`.setting_values`, which also says what it accepts), its
environment fallback and one line of documentation. From that table come the defaults
(``DEFAULTS``), the environment fallbacks (``ENV_FALLBACKS``), the validation (``validate``, used
both by ``get_settings()`` and by the system checks), and the settings reference in
``docs/settings.md`` (:mod:`.settings_reference`: ``python -m
django_cometchat.settings_reference --write docs/settings.md``). Adding a setting is adding one
field.

Only this module and ``checks`` read ``django.conf.settings``, and never at import time.
``get_settings()`` is cached and the cache is cleared on ``setting_changed`` (so
``override_settings`` works, as in DRF's ``api_settings``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from . import setting_values as values
from .exceptions import CometChatConfigurationError
from .redaction import Secret
from .setting_values import KNOWN_REGIONS, REGION_RE, base_url_error, clean_region

__all__ = [
    "DEFAULTS",
    "DEFAULT_REFRESH_RATE",
    "ENV_FALLBACKS",
    "KNOWN_REGIONS",
    "MAX_PAGE_SIZE",
    "MAX_RETRY_AFTER_RELAYED",
    "REFRESH_THROTTLE_SCOPE",
    "REGION_RE",
    "SETTINGS",
    "SETTINGS_DOC",
    "SETTING_NAME",
    "CometChatSettings",
    "Problem",
    "Setting",
    "base_url_error",
    "build_settings",
    "clean_region",
    "default_uid_resolver",
    "get_settings",
    "import_resolver",
    "missing_key_message",
    "raw_settings",
    "reload_settings",
    "setting",
    "validate",
]

SETTING_NAME = "COMETCHAT"
SETTINGS_DOC = "See the settings reference in docs/settings.md."

MAX_PAGE_SIZE = 1000  # CometChat's perPage maximum
MAX_RETRY_AFTER_RELAYED = 3600  # the longest wait we ever pass on to a caller (seconds)
# The API's refresh throttle: its DRF scope and the rate used when DEFAULT_THROTTLE_RATES has
# none (here, beside the settings, so that api.throttling and checks share them).
REFRESH_THROTTLE_SCOPE = "cometchat_refresh"
DEFAULT_REFRESH_RATE = "10/min"


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    key: str
    default: Any  # as a host would write it in COMETCHAT
    parse: values.Parser[Any]
    doc: str  # one line of the settings reference (Markdown; links relative to docs/)
    env: str | None = None  # an environment variable used when the dict leaves the key empty
    secret: bool = False  # never shown: not in repr, not in an error
    unused_if: str | None = None  # another key whose value makes this one unused (not checked)
    check_id: str = "E006"  # the system check that reports a bad value
    hint: str = SETTINGS_DOC
    # Run by ``manage.py check`` only (importing host code while settings load is too early).
    deep_check: Callable[[Any], object] | None = None
    attribute: str = ""  # the CometChatSettings field; filled in from the field's name


def setting(key: str, default: Any, parse: values.Parser[Any], doc: str, **options: Any) -> Any:
    """A field of :class:`CometChatSettings` that is also a row of the settings table."""
    row = Setting(key, default, parse, doc, **options)
    return field(repr=not row.secret, metadata={"setting": row})


def default_uid_resolver(user: Any) -> str:
    return str(user.pk)


def import_resolver(path: str) -> Callable[[Any], str]:
    """The callable ``UID_RESOLVER`` names; a configuration error saying why it cannot be had."""
    return import_callable("UID_RESOLVER", path)


def import_session_factory(path: str) -> Callable[..., Any]:
    return import_callable("SESSION_FACTORY", path)


@cache
def import_callable(key: str, path: str) -> Callable[..., Any]:
    """The callable the dotted ``path`` of setting ``key`` names (``UID_RESOLVER``,
    ``SESSION_FACTORY``); a configuration error saying why it cannot be had."""
    try:
        found = import_string(path)
    except ImportError as exc:
        raise CometChatConfigurationError(
            f'COMETCHAT["{key}"] = {path!r} cannot be imported: {exc}'
        ) from exc
    if not callable(found):
        raise CometChatConfigurationError(f'COMETCHAT["{key}"] = {path!r} is not callable')
    return found  # type: ignore[no-any-return]


SESSION_FACTORY_HINT = (
    "SESSION_FACTORY is a dotted path to a callable (settings, *, retry) -> requests.Session, "
    'e.g. "myapp.chat.cometchat_session"; see docs/client.md.'
)

RESOLVER_HINT = (
    'UID_RESOLVER is a dotted path to a callable user -> uid, e.g. "myapp.chat.uid_for".'
)


@dataclass(frozen=True)
class CometChatSettings:
    """The validated ``COMETCHAT`` settings; each field is a row of the settings table."""

    app_id: str | None = setting(
        "APP_ID", None, values.optional_text(), "your CometChat app id (required)",
        env="COMETCHAT_APP_ID",
    )  # fmt: skip
    region: str = setting(
        "REGION", "us", values.region(),
        "CometChat's region of the app: `us`, `eu`, `in` or any newer code such as `ap-south` "
        "(`EU` is `eu`); not read, nor checked, when `BASE_URL` is set",
        env="COMETCHAT_REGION", unused_if="BASE_URL", check_id="E003",
        hint=f"CometChat regions today: {', '.join(KNOWN_REGIONS)}.",
    )  # fmt: skip
    api_key: Secret | None = setting(
        "API_KEY", None, values.secret(),
        "the REST API key with `fullAccess` scope (required); held as a `Secret`, never logged",
        env="COMETCHAT_API_KEY", secret=True,
    )  # fmt: skip
    base_url_override: str | None = setting(
        "BASE_URL", None, values.base_url(),
        "another REST root than `https://{APP_ID}.api-{REGION}.cometchat.io/v3`, such as the "
        "fake server's",
        env="COMETCHAT_BASE_URL", check_id="E004",
        hint="Leave BASE_URL unset to use https://{APP_ID}.api-{REGION}.cometchat.io/v3.",
    )  # fmt: skip
    timeout: tuple[float, float] = setting(
        "TIMEOUT", (3.05, 15.0), values.timeout(),
        "connect and read seconds (a number sets both)",
    )  # fmt: skip
    max_retries: int = setting(
        "MAX_RETRIES", 4, values.integer(minimum=0),
        "retries of a GET on connection errors, read timeouts, 429 and 5xx",
    )  # fmt: skip
    backoff_factor: float = setting(
        "BACKOFF_FACTOR", 0.5, values.number(),
        "exponential backoff base in seconds, plus up to as much jitter",
    )  # fmt: skip
    backoff_max: float = setting(
        "BACKOFF_MAX", 30.0, values.number(), "seconds: the cap of one backoff sleep"
    )
    retry_after_max: float = setting(
        "RETRY_AFTER_MAX", 60.0, values.number(),
        "seconds: the cap of one server-requested wait (`Retry-After`, reset time), and of the "
        "pause a 429 imposes on every process",
    )  # fmt: skip
    retry_budget: float = setting(
        "RETRY_BUDGET", 120.0, values.number(),
        "total seconds one call may sleep between retries (`retry_budget(2)` lowers it for a "
        "block)",
    )  # fmt: skip
    web_retry_budget: float = setting(
        "WEB_RETRY_BUDGET", 3.0, values.number(),
        "the retry budget of on-demand work (the API, the admin), where a person waits",
    )  # fmt: skip
    web_deadline: float = setting(
        "WEB_DEADLINE", 8.0, values.number(minimum=0.1),
        "seconds on-demand work may take in all: connects, reads, retries and every page",
    )  # fmt: skip
    rate_limit_min_remaining: int = setting(
        "RATE_LIMIT_MIN_REMAINING", 0, values.integer(minimum=0),
        "when `X-Rate-Limit-Remaining` falls to this, wait for the rate window to end (0 = off)",
    )  # fmt: skip
    rate_limit_window: float = setting(
        "RATE_LIMIT_WINDOW", 60.0, values.number(minimum=0.1),
        "seconds of CometChat's rate window (the calendar minute); tests shorten it",
    )  # fmt: skip
    max_response_bytes: int = setting(
        "MAX_RESPONSE_BYTES", 32 * 1024 * 1024, values.integer(minimum=1024),
        "the largest response body read (32 MiB), counted after decompression; a larger one is "
        "refused",
    )  # fmt: skip
    proxies: Mapping[str, str] | None = setting(
        "PROXIES", None, values.proxies(),
        'requests-style proxies, `{"https": "http://proxy:3128"}`; `None`: the environment\'s '
        "`HTTPS_PROXY`/`NO_PROXY` apply",
    )  # fmt: skip
    requests_per_minute: int | None = setting(
        "REQUESTS_PER_MINUTE", 450,
        values.optional(values.integer(minimum=1), none_means="no budget"),
        "requests per rate window for every process of the site together (below the smallest "
        "plan's 500 a minute; raise it to about 90% of your plan's)",
    )  # fmt: skip
    rate_limit_cache: str = setting(
        "RATE_LIMIT_CACHE", "default", values.text(),
        "the `CACHES` alias that counts the budget; shared by all processes (Redis) to count "
        "them all",
    )  # fmt: skip
    on_demand_share: float = setting(
        "ON_DEMAND_SHARE", 0.5, values.share(),
        "the share of each window's `REQUESTS_PER_MINUTE` that on-demand work (the API, the "
        "admin) may take (at least one request); past it on-demand work is refused at once "
        "(503, `Retry-After`) and background syncs and webhook refreshes keep the rest. See "
        "[api.md](api.md) and [tasks.md](tasks.md#one-rate-budget-for-every-process)",
    )  # fmt: skip
    sync_abandoned_after: float = setting(
        "SYNC_ABANDONED_AFTER", 3600, values.number(minimum=1),
        "seconds after which a run still running or queued is marked failed as abandoned (its "
        "worker was killed), and the owner's next sync proceeds",
    )  # fmt: skip
    sync_max_pages: int = setting(
        "SYNC_MAX_PAGES", 10_000, values.integer(minimum=1),
        "the most pages one walk over an owner's conversations takes; a sync still told "
        '"another page" after that fails (`ERR_TOO_MANY_PAGES`) and marks nothing missing',
    )  # fmt: skip
    sync_deadline: float | None = setting(
        "SYNC_DEADLINE", 900.0,
        values.optional(values.number(minimum=0.1), none_means="no limit"),
        "seconds one sync, refresh or webhook event run by a command or a task may take in "
        "all: connects, every socket read, retries and pages. Passing it fails the run or event "
        '(`ERR_DEADLINE`, "SYNC_DEADLINE (900 s) passed") and marks nothing missing',
    )  # fmt: skip
    page_size: int = setting(
        "PAGE_SIZE", 1000, values.integer(minimum=1, maximum=MAX_PAGE_SIZE),
        "conversations per request",
    )  # fmt: skip
    uid_resolver_path: str | None = setting(
        "UID_RESOLVER", None, values.optional_text(),
        "dotted path to `callable(user) -> uid`; unset: `str(user.pk)`. Returning `None` says "
        "the account has no CometChat user: batch syncs and webhooks skip it "
        "([sync.md](sync.md))",
        check_id="E005", hint=RESOLVER_HINT, deep_check=import_resolver,
    )  # fmt: skip
    pool_maxsize: int = setting(
        "POOL_MAXSIZE", 10, values.integer(minimum=1), "pooled connections per client"
    )
    session_factory_path: str | None = setting(
        "SESSION_FACTORY", None, values.optional_text(),
        "dotted path to `callable(settings, *, retry) -> requests.Session` building each "
        "client's session (a proxy, a custom adapter); unset: "
        "`django_cometchat.client.create_session` ([client.md](client.md))",
        check_id="E009", hint=SESSION_FACTORY_HINT, deep_check=import_session_factory,
    )  # fmt: skip
    history_max_age_days: int | None = setting(
        "HISTORY_MAX_AGE_DAYS", None,
        values.optional(values.integer(minimum=0), none_means="keep them all"),
        "`cometchat_prune` deletes snapshots older than this many days (never a "
        "conversation's latest)",
    )  # fmt: skip
    history_keep_per_conversation: int | None = setting(
        "HISTORY_KEEP_PER_CONVERSATION", None,
        values.optional(values.integer(minimum=1), none_means="keep them all"),
        "`cometchat_prune` keeps at most this many snapshots per conversation",
    )  # fmt: skip
    webhook_events_max_age_days: int | None = setting(
        "WEBHOOK_EVENTS_MAX_AGE_DAYS", 30,
        values.optional(values.integer(minimum=0), none_means="keep them all"),
        "`cometchat_prune` deletes webhook events received more days ago (never one still "
        "waiting for a worker)",
    )  # fmt: skip
    sync_runs_max_age_days: int | None = setting(
        "SYNC_RUNS_MAX_AGE_DAYS", 30,
        values.optional(values.integer(minimum=0), none_means="keep them all"),
        "`cometchat_prune` deletes finished sync runs started more days ago (never an owner's "
        "latest finished run, never one queued or running)",
    )  # fmt: skip
    health_max_sync_age: float | None = setting(
        "HEALTH_MAX_SYNC_AGE", 3600, values.optional(values.number(minimum=1), none_means="off"),
        "seconds: the [health check](operations.md#health-check) fails when no sync succeeded "
        "for this long while owners exist (runs or stored conversations)",
    )  # fmt: skip
    health_max_event_wait: float | None = setting(
        "HEALTH_MAX_EVENT_WAIT", 300, values.optional(values.number(minimum=1), none_means="off"),
        "seconds: the health check fails when a webhook event has waited this long to be "
        "processed (status received)",
    )  # fmt: skip
    messages_cache_seconds: int = setting(
        "MESSAGES_CACHE_SECONDS", 0, values.integer(minimum=0),
        "seconds a page of a conversation's messages may be kept in Django's default cache "
        "(0: never; messages are read live). See [messages.md](messages.md)",
    )  # fmt: skip
    message_access_max_age_days: int | None = setting(
        "MESSAGE_ACCESS_MAX_AGE_DAYS", None,
        values.optional(values.integer(minimum=0), none_means="keep them all"),
        "`cometchat_prune` deletes staff message-read records (`MessageAccess`) older than "
        "this many days; they are never deleted otherwise",
    )  # fmt: skip
    webhook_credentials: tuple[tuple[str, Secret], ...] = setting(
        "WEBHOOK_BASIC_AUTH", (), values.basic_auth_credentials(),
        "`\"user:password\"` entries CometChat's webhook may use (several, for rotation); "
        "passwords are held as `Secret`s; empty refuses every delivery. See "
        "[webhooks.md](webhooks.md)",
        secret=True,
    )  # fmt: skip

    @property
    def base_url(self) -> str:
        """The REST v3 root: BASE_URL when set, else CometChat's per-app regional host."""
        if self.base_url_override:
            return self.base_url_override.rstrip("/")
        return f"https://{self.app_id}.api-{self.region}.cometchat.io/v3"

    @property
    def connect_timeout(self) -> float:
        return self.timeout[0]

    @property
    def read_timeout(self) -> float:
        return self.timeout[1]

    def require_credentials(self) -> None:
        """Raise a configuration error naming the key to add, before anything is sent."""
        for key, value in (("APP_ID", self.app_id), ("API_KEY", self.api_key)):
            if not value:
                raise CometChatConfigurationError(missing_key_message(key))

    def uid_resolver(self) -> Callable[[Any], str]:
        if not self.uid_resolver_path:
            return default_uid_resolver
        return import_resolver(self.uid_resolver_path)

    @property
    def uid_resolver_label(self) -> str:
        """Where owners' UIDs come from, in words, for operators' messages."""
        if self.uid_resolver_path:
            return f'COMETCHAT["UID_RESOLVER"] = {self.uid_resolver_path!r}'
        return 'COMETCHAT["UID_RESOLVER"] (unset: the default, str(user.pk))'


# The table, in the order of the reference; derived from the fields so it cannot drift.
SETTINGS: tuple[Setting, ...] = tuple(
    dataclasses.replace(f.metadata["setting"], attribute=f.name)
    for f in dataclasses.fields(CometChatSettings)
)
DEFAULTS: Mapping[str, Any] = {row.key: row.default for row in SETTINGS}
ENV_FALLBACKS: Mapping[str, str] = {row.key: row.env for row in SETTINGS if row.env}


def missing_key_message(key: str) -> str:
    return (
        f'COMETCHAT["{key}"] is not set. Add it to the COMETCHAT dict in your settings '
        f"or set the {ENV_FALLBACKS[key]} environment variable."
    )


def raw_settings() -> dict[str, Any]:
    """The user's COMETCHAT dict merged over defaults and env fallbacks, unvalidated."""
    user = getattr(django_settings, SETTING_NAME, {})
    if not isinstance(user, Mapping):
        raise CometChatConfigurationError(
            f"settings.{SETTING_NAME} must be a dict, got {type(user).__name__}"
        )
    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        raise CometChatConfigurationError(
            f"Unknown key(s) in settings.{SETTING_NAME}: {', '.join(map(str, unknown))}. "
            f"Valid keys: {', '.join(DEFAULTS)}."
        )
    # Precedence: the COMETCHAT dict, then the environment, then the defaults.
    merged = dict(DEFAULTS)
    for key, env_name in ENV_FALLBACKS.items():
        if os.environ.get(env_name):
            merged[key] = os.environ[env_name]
    # An empty credential in the dict leaves the environment's in place; any other key takes
    # the value given (REQUESTS_PER_MINUTE: None turns the budget off).
    merged.update({k: v for k, v in user.items() if k not in ENV_FALLBACKS or v not in (None, "")})
    return merged


@dataclass(frozen=True)
class Problem:
    """A value the table refuses: its row (for the check id and hint) and the message."""

    setting: Setting
    message: str


def _message(row: Setting, value: Any, exc: values.Invalid) -> str:
    text = str(exc) or f"must be {row.parse.accepts}"
    if not str(exc) and not row.secret:
        text += f"; got {value!r}"
    return f'COMETCHAT["{row.key}"]{"" if text.startswith("[") else " "}{text}'


def validate(raw: Mapping[str, Any], *, deep: bool = False) -> tuple[dict[str, Any], list[Problem]]:
    """Parse every row of a merged settings dict: the typed values by attribute, and each
    refused value's problem (naming its key). ``deep`` (the system checks) also runs the
    rows' ``deep_check`` (importing ``UID_RESOLVER``)."""
    parsed: dict[str, Any] = {}
    problems: list[Problem] = []
    for row in SETTINGS:
        value = raw[row.key]
        try:
            parsed[row.attribute] = row.parse(value)
            if deep and row.deep_check is not None and parsed[row.attribute] is not None:
                row.deep_check(parsed[row.attribute])
        except values.Invalid as exc:
            if row.unused_if is not None and raw.get(row.unused_if) not in (None, ""):
                parsed[row.attribute] = row.parse(row.default)  # unused: never read
            else:
                problems.append(Problem(row, _message(row, value, exc)))
        except CometChatConfigurationError as exc:  # a deep check's
            problems.append(Problem(row, str(exc)))
    return parsed, problems


def build_settings(raw: Mapping[str, Any]) -> CometChatSettings:
    """Validate a merged settings dict; the first refused value raises, naming its key."""
    parsed, problems = validate(raw)
    if problems:
        raise CometChatConfigurationError(problems[0].message)
    return CometChatSettings(**parsed)


@cache
def get_settings() -> CometChatSettings:
    """The validated settings, cached until ``COMETCHAT`` changes."""
    return build_settings(raw_settings())


def reload_settings(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: forget the cached settings when COMETCHAT changes."""
    if setting in (SETTING_NAME, "DEBUG"):
        get_settings.cache_clear()


if __name__ == "__main__":
    # ``python -m django_cometchat.conf``, the reference's former command, still works. Run by
    # name, not imported: conf sits below the module that reads its table.
    import runpy

    runpy.run_module("django_cometchat.settings_reference", run_name="__main__", alter_sys=True)
