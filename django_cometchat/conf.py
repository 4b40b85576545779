"""``settings.COMETCHAT``: defaults, environment fallbacks and a typed, frozen settings object.

Only this module and ``checks`` read ``django.conf.settings``, and never at import time.
``get_settings()`` is cached and the cache is cleared on ``setting_changed`` (so
``override_settings`` works, as in DRF's ``api_settings``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from .exceptions import CometChatConfigurationError
from .redaction import Secret

SETTING_NAME = "COMETCHAT"

KNOWN_REGIONS = ("us", "eu", "in")
# Loose on purpose: a region CometChat adds tomorrow must work without a release.
REGION_RE = re.compile(r"^[a-z]{2,12}(?:-[a-z0-9]{1,12})*$")
MAX_PAGE_SIZE = 1000  # CometChat's perPage maximum
MAX_RETRY_AFTER_RELAYED = 3600  # the longest wait we ever pass on to a caller (seconds)
# The API's refresh throttle: its DRF scope and the rate used when DEFAULT_THROTTLE_RATES has
# none (here, beside the settings, so that api.throttling and checks share them).
REFRESH_THROTTLE_SCOPE = "cometchat_refresh"
DEFAULT_REFRESH_RATE = "10/min"

# Keys that fall back to an environment variable when absent (or empty) in the dict.
ENV_FALLBACKS: Mapping[str, str] = {
    "APP_ID": "COMETCHAT_APP_ID",
    "REGION": "COMETCHAT_REGION",
    "API_KEY": "COMETCHAT_API_KEY",
    "BASE_URL": "COMETCHAT_BASE_URL",
}

DEFAULTS: Mapping[str, Any] = {
    "APP_ID": None,
    "REGION": "us",
    "API_KEY": None,
    "BASE_URL": None,
    # (connect, read) seconds; a single number is used for both.
    "TIMEOUT": (3.05, 15.0),
    # Retries of GETs on connection errors, 429 and 5xx.
    "MAX_RETRIES": 4,
    "BACKOFF_FACTOR": 0.5,  # seconds; doubles each retry, with full jitter
    "BACKOFF_MAX": 30.0,  # cap of one computed backoff sleep
    "RETRY_AFTER_MAX": 60.0,  # cap of one server-requested (Retry-After / reset) sleep
    # Total seconds one call may spend sleeping between retries. Web requests pass a small
    # budget to the client so they fail fast; background syncs use this default and wait.
    "RETRY_BUDGET": 120.0,
    # The budget of on-demand refreshes from the API and the admin: a person is waiting.
    "WEB_RETRY_BUDGET": 3.0,
    # One overall deadline for on-demand work (API, admin): connects, reads, retries, every page.
    "WEB_DEADLINE": 8.0,
    # When X-Rate-Limit-Remaining drops to this or below, pause until the current rate window
    # ends before the next request (0 disables the slow-down).
    "RATE_LIMIT_MIN_REMAINING": 0,
    # CometChat counts requests per calendar minute; tests shorten the window.
    "RATE_LIMIT_WINDOW": 60.0,
    # The most bytes one response body may have; a larger one is refused while it is read.
    "MAX_RESPONSE_BYTES": 32 * 1024 * 1024,
    # requests-style proxies ({"https": "http://proxy:3128"}); None: HTTPS_PROXY/NO_PROXY apply.
    "PROXIES": None,
    # One budget of requests per rate window for every process of the site, counted in a
    # cache shared by them all (None: no budget). Below even the smallest plan's limit (500 a
    # minute); raise it to about 90% of your plan's (API.md §5.4).
    "REQUESTS_PER_MINUTE": 450,
    "RATE_LIMIT_CACHE": "default",  # a CACHES alias: Redis in production, locmem on one box
    # The share of each window's REQUESTS_PER_MINUTE that on-demand work (the API, the admin)
    # may take, so that background syncs and webhook refreshes always keep the rest.
    "ON_DEMAND_SHARE": 0.5,
    # A sync still "running" (or "queued") after this many seconds is marked failed as
    # abandoned (its worker was killed), and the owner's next sync proceeds.
    "SYNC_ABANDONED_AFTER": 3600,
    # The most pages one walk over an owner's conversations may take; a sync that reaches it
    # while CometChat still claims another page fails (an upstream that never ends).
    "SYNC_MAX_PAGES": 10_000,
    # One overall deadline for each unit of background work (a sync, a refresh, a webhook
    # event) run by a command or a task: connects, reads, retries, every page. None: no limit.
    "SYNC_DEADLINE": 900.0,
    # Webhook credentials: "user:password" strings (several, for rotation). Empty: the webhook
    # endpoint refuses every delivery.
    "WEBHOOK_BASIC_AUTH": (),
    "PAGE_SIZE": 1000,
    "UID_RESOLVER": None,  # dotted path to a callable user -> uid; default str(user.pk)
    "POOL_MAXSIZE": 10,
    # Dotted path to a callable building each client's requests.Session (a proxy, a custom
    # adapter); None: django_cometchat.client.create_session. See docs/client.md.
    "SESSION_FACTORY": None,
    # History retention for cometchat_prune (None keeps everything). The latest snapshot of each
    # conversation is always kept.
    "HISTORY_MAX_AGE_DAYS": None,
    "HISTORY_KEEP_PER_CONVERSATION": None,
    # Webhook events older than this are deleted by cometchat_prune (None keeps them all); an
    # event still waiting for a worker is kept whatever its age.
    "WEBHOOK_EVENTS_MAX_AGE_DAYS": 30,
    # Finished sync runs started longer ago are deleted by cometchat_prune (None keeps them
    # all); each owner's latest finished run and every queued or running one are kept.
    "SYNC_RUNS_MAX_AGE_DAYS": 30,
    # Staff reads of messages (MessageAccess) older than this are deleted by cometchat_prune;
    # None (the default) keeps the audit record for good.
    "MESSAGE_ACCESS_MAX_AGE_DAYS": None,
    # Seconds a page of messages read from CometChat stays in Django's default cache (0: never
    # cached; messages are read live and stored nowhere).
    "MESSAGES_CACHE_SECONDS": 0,
    # contrib.healthcheck fails when no sync succeeded for this many seconds while owners exist
    # (None: not checked), and when a webhook event waits to be processed longer than this.
    "HEALTH_MAX_SYNC_AGE": 3600,
    "HEALTH_MAX_EVENT_WAIT": 300,
}


def default_uid_resolver(user: Any) -> str:
    return str(user.pk)


def clean_region(region: Any) -> Any:
    """``REGION`` as CometChat's host names it: "EU" and " eu " are "eu"."""
    return region.strip().lower() if isinstance(region, str) else region


def region_error(region: Any, *, base_url: Any = None) -> str | None:
    """Why ``region`` is not acceptable, or None. With ``BASE_URL`` set the region names no
    host (nor the app of a webhook), so it is not checked."""
    if base_url not in (None, ""):
        return None
    region = clean_region(region)
    if not isinstance(region, str) or not REGION_RE.match(region):
        return f"REGION must be a region code such as {', '.join(KNOWN_REGIONS)}; got {region!r}"
    return None


def base_url_error(base_url: Any) -> str | None:
    """Why ``base_url`` is not acceptable, or None."""
    if not isinstance(base_url, str):
        return f"BASE_URL must be a string URL, got {type(base_url).__name__}"
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"BASE_URL must be an absolute http(s) URL such as https://host/v3; got {base_url!r}"
    if parts.query or parts.fragment:
        return "BASE_URL must not carry a query string or fragment"
    return None


@dataclass(frozen=True)
class CometChatSettings:
    app_id: str | None
    region: str
    api_key: Secret | None = field(repr=False)  # never printed (a Secret masks itself too)
    base_url_override: str | None
    connect_timeout: float
    read_timeout: float
    max_retries: int
    backoff_factor: float
    backoff_max: float
    retry_after_max: float
    retry_budget: float
    web_retry_budget: float
    web_deadline: float
    rate_limit_min_remaining: int
    rate_limit_window: float
    max_response_bytes: int
    proxies: Mapping[str, str] | None
    requests_per_minute: int | None
    rate_limit_cache: str
    on_demand_share: float
    sync_abandoned_after: float
    sync_max_pages: int
    sync_deadline: float | None
    webhook_credentials: tuple[tuple[str, Secret], ...] = field(repr=False)
    page_size: int
    uid_resolver_path: str | None
    pool_maxsize: int
    history_max_age_days: int | None = None
    history_keep_per_conversation: int | None = None
    webhook_events_max_age_days: int | None = None
    sync_runs_max_age_days: int | None = None
    message_access_max_age_days: int | None = None
    messages_cache_seconds: int = 0
    health_max_sync_age: float | None = 3600.0
    health_max_event_wait: float | None = 300.0
    session_factory_path: str | None = None

    @property
    def base_url(self) -> str:
        """The REST v3 root: BASE_URL when set, else CometChat's per-app regional host."""
        if self.base_url_override:
            return self.base_url_override.rstrip("/")
        return f"https://{self.app_id}.api-{self.region}.cometchat.io/v3"

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

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


def missing_key_message(key: str) -> str:
    return (
        f'COMETCHAT["{key}"] is not set. Add it to the COMETCHAT dict in your settings '
        f"or set the {ENV_FALLBACKS[key]} environment variable."
    )


def import_resolver(path: str) -> Callable[[Any], str]:
    """The callable ``UID_RESOLVER`` names; a configuration error saying why it cannot be had."""
    return import_callable("UID_RESOLVER", path)


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


def _number(raw: Mapping[str, Any], key: str, *, minimum: float = 0.0) -> float:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise CometChatConfigurationError(
            f'COMETCHAT["{key}"] must be a number >= {minimum:g}; got {value!r}'
        )
    return float(value)


def _share(raw: Mapping[str, Any], key: str) -> float:
    """A fraction in (0, 1]."""
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise CometChatConfigurationError(
            f'COMETCHAT["{key}"] must be a number above 0 and at most 1 (a share of '
            f"REQUESTS_PER_MINUTE, such as 0.5); got {value!r}"
        )
    return float(value)


def _integer(raw: Mapping[str, Any], key: str, *, minimum: int, maximum: int | None = None) -> int:
    value = raw[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise CometChatConfigurationError(
            f'COMETCHAT["{key}"] must be an integer {bounds}; got {value!r}'
        )
    return value


def _optional_number(raw: Mapping[str, Any], key: str, *, minimum: float) -> float | None:
    if raw[key] is None:
        return None
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise CometChatConfigurationError(
            f'COMETCHAT["{key}"] must be a number of seconds >= {minimum:g}, or None to turn '
            f"the check off; got {value!r}"
        )
    return float(value)


def _optional_integer(raw: Mapping[str, Any], key: str, *, minimum: int) -> int | None:
    return None if raw[key] is None else _integer(raw, key, minimum=minimum)


def _timeouts(value: Any) -> tuple[float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return (float(value), float(value))
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return (float(value[0]), float(value[1]))
    raise CometChatConfigurationError(
        'COMETCHAT["TIMEOUT"] must be a positive number of seconds or a (connect, read) pair; '
        f"got {value!r}"
    )


def _proxies(value: Any) -> Mapping[str, str] | None:
    if value is None:
        return None
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) and not base_url_error(v)
        for k, v in value.items()
    ):
        return dict(value)
    raise CometChatConfigurationError(
        'COMETCHAT["PROXIES"] must map a scheme ("https", "http" or "all") to a proxy URL such '
        'as "http://proxy.internal:3128"'
    )


def _string(raw: Mapping[str, Any], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise CometChatConfigurationError(f'COMETCHAT["{key}"] must be a non-empty string')
    return value


def _webhook_credentials(value: Any) -> tuple[tuple[str, Secret], ...]:
    """``["user:password", ...]`` as (user, Secret(password)) pairs; a bad entry is named by
    its position, never by its content."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise CometChatConfigurationError(
            'COMETCHAT["WEBHOOK_BASIC_AUTH"] must be a list of "user:password" strings'
        )
    pairs = []
    for index, entry in enumerate(value):
        user, _, password = entry.partition(":") if isinstance(entry, str) else ("", "", "")
        if not user or not password:
            raise CometChatConfigurationError(
                f'COMETCHAT["WEBHOOK_BASIC_AUTH"][{index}] must be a "user:password" string'
            )
        pairs.append((user, Secret(password)))
    return tuple(pairs)


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw[key]
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise CometChatConfigurationError(
            f'COMETCHAT["{key}"] must be a string; got {type(value).__name__}'
        )
    return value


def build_settings(raw: Mapping[str, Any]) -> CometChatSettings:
    """Validate a merged settings dict; every error names the offending key."""
    region = clean_region(raw["REGION"])
    if problem := region_error(region, base_url=raw["BASE_URL"]):
        raise CometChatConfigurationError(f'COMETCHAT["REGION"]: {problem}')
    base_url = _optional_str(raw, "BASE_URL")
    if base_url is not None and (problem := base_url_error(base_url)):
        raise CometChatConfigurationError(f'COMETCHAT["BASE_URL"]: {problem}')
    connect_timeout, read_timeout = _timeouts(raw["TIMEOUT"])
    api_key = _optional_str(raw, "API_KEY")
    return CometChatSettings(
        app_id=_optional_str(raw, "APP_ID"),
        region=str(region),  # unchecked, and unused, when BASE_URL is set
        api_key=Secret(api_key) if api_key else None,
        base_url_override=base_url,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_retries=_integer(raw, "MAX_RETRIES", minimum=0),
        backoff_factor=_number(raw, "BACKOFF_FACTOR"),
        backoff_max=_number(raw, "BACKOFF_MAX"),
        retry_after_max=_number(raw, "RETRY_AFTER_MAX"),
        retry_budget=_number(raw, "RETRY_BUDGET"),
        web_retry_budget=_number(raw, "WEB_RETRY_BUDGET"),
        web_deadline=_number(raw, "WEB_DEADLINE", minimum=0.1),
        rate_limit_min_remaining=_integer(raw, "RATE_LIMIT_MIN_REMAINING", minimum=0),
        rate_limit_window=_number(raw, "RATE_LIMIT_WINDOW", minimum=0.1),
        max_response_bytes=_integer(raw, "MAX_RESPONSE_BYTES", minimum=1024),
        proxies=_proxies(raw["PROXIES"]),
        requests_per_minute=_optional_integer(raw, "REQUESTS_PER_MINUTE", minimum=1),
        rate_limit_cache=_string(raw, "RATE_LIMIT_CACHE"),
        on_demand_share=_share(raw, "ON_DEMAND_SHARE"),
        sync_abandoned_after=_number(raw, "SYNC_ABANDONED_AFTER", minimum=1),
        sync_max_pages=_integer(raw, "SYNC_MAX_PAGES", minimum=1),
        sync_deadline=_optional_number(raw, "SYNC_DEADLINE", minimum=0.1),
        webhook_credentials=_webhook_credentials(raw["WEBHOOK_BASIC_AUTH"]),
        page_size=_integer(raw, "PAGE_SIZE", minimum=1, maximum=MAX_PAGE_SIZE),
        uid_resolver_path=_optional_str(raw, "UID_RESOLVER"),
        pool_maxsize=_integer(raw, "POOL_MAXSIZE", minimum=1),
        history_max_age_days=_optional_integer(raw, "HISTORY_MAX_AGE_DAYS", minimum=0),
        history_keep_per_conversation=_optional_integer(
            raw, "HISTORY_KEEP_PER_CONVERSATION", minimum=1
        ),
        webhook_events_max_age_days=_optional_integer(
            raw, "WEBHOOK_EVENTS_MAX_AGE_DAYS", minimum=0
        ),
        sync_runs_max_age_days=_optional_integer(raw, "SYNC_RUNS_MAX_AGE_DAYS", minimum=0),
        message_access_max_age_days=_optional_integer(
            raw, "MESSAGE_ACCESS_MAX_AGE_DAYS", minimum=0
        ),
        messages_cache_seconds=_integer(raw, "MESSAGES_CACHE_SECONDS", minimum=0),
        health_max_sync_age=_optional_number(raw, "HEALTH_MAX_SYNC_AGE", minimum=1),
        health_max_event_wait=_optional_number(raw, "HEALTH_MAX_EVENT_WAIT", minimum=1),
        session_factory_path=_optional_str(raw, "SESSION_FACTORY"),
    )


@cache
def get_settings() -> CometChatSettings:
    """The validated settings, cached until ``COMETCHAT`` changes."""
    return build_settings(raw_settings())


def reload_settings(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: forget the cached settings when COMETCHAT changes."""
    if setting in (SETTING_NAME, "DEBUG"):
        get_settings.cache_clear()
