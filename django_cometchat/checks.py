"""System checks for ``settings.COMETCHAT``; ``manage.py check`` shows each with a hint.

IDs are stable and never reused:

* ``django_cometchat.E001`` ``APP_ID`` is missing (``check --deploy`` only)
* ``django_cometchat.E002`` ``API_KEY`` is missing (``check --deploy`` only)
* ``django_cometchat.E003`` ``REGION`` is invalid
* ``django_cometchat.E004`` ``BASE_URL`` is malformed
* ``django_cometchat.E005`` ``UID_RESOLVER`` cannot be imported or is not callable
* ``django_cometchat.E006`` ``COMETCHAT`` is not a dict, has an unknown key or a bad value
* ``django_cometchat.E007`` the API is mounted but ``rest_framework`` or ``django_filters`` is
  not in ``INSTALLED_APPS``
* ``django_cometchat.E008`` the rate budget's cache (``RATE_LIMIT_CACHE``) is not in ``CACHES``,
  or its backend or client library cannot be loaded
* ``django_cometchat.E009`` ``SESSION_FACTORY`` cannot be imported or is not callable
* ``django_cometchat.W001`` ``BASE_URL`` is plain http to another machine while ``DEBUG`` is
  False
* ``django_cometchat.W002`` ``APP_ID`` is missing
* ``django_cometchat.W003`` ``API_KEY`` is missing
* ``django_cometchat.W004`` the rate budget's cache is per process (``LocMemCache``) or keeps
  nothing (``DummyCache``), so several processes cannot share one budget (``check --deploy``
  only)
* ``django_cometchat.W005`` the webhook is mounted with ``WEBHOOK_BASIC_AUTH`` set, but the
  default task backend runs tasks inline (``ImmediateBackend``) or never (``DummyBackend``)
  (``check --deploy`` only)
* ``django_cometchat.W006`` the API's refresh throttle counts in a per-process cache (the default
  cache is ``LocMemCache``) or in none (``DummyCache``) (``check --deploy`` only)
* ``django_cometchat.I001`` the webhook is mounted but ``WEBHOOK_BASIC_AUTH`` is empty, so it
  refuses every delivery (``check --deploy`` only, and information only: it never fails a check)

Missing credentials are only a warning in a plain ``check`` (so ``migrate``, ``collectstatic`` and
test runs in CI or image builds without secrets still run; a call to CometChat without them raises
a clear ``CometChatConfigurationError``), and an error in ``check --deploy``.
"""

from __future__ import annotations

import importlib.util
import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.cache import InvalidCacheBackendError, caches
from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register
from django.urls import reverse

from .conf import (
    DEFAULT_REFRESH_RATE,
    ENV_FALLBACKS,
    REFRESH_THROTTLE_SCOPE,
    SETTINGS_DOC,
    CometChatSettings,
    build_settings,
    missing_key_message,
    raw_settings,
    validate,
)
from .exceptions import CometChatConfigurationError

CREDENTIALS = (("APP_ID", "E001", "W002"), ("API_KEY", "E002", "W003"))
API_APPS = (("rest_framework", "djangorestframework"), ("django_filters", "django-filter"))


def _credential_hint(key: str) -> str:
    where = (
        "The REST API key needs fullAccess scope."
        if key == "API_KEY"
        else "It is shown in the CometChat dashboard."
    )
    return f"Set the {ENV_FALLBACKS[key]} environment variable, or COMETCHAT[{key!r}]. {where}"


def _missing_credentials() -> list[str]:
    try:
        raw = raw_settings()
    except CometChatConfigurationError:
        return []  # reported as E006 by check_settings
    return [key for key, _, _ in CREDENTIALS if raw.get(key) in (None, "")]


@register(Tags.compatibility)
def check_credentials(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Missing credentials: a warning, so builds without secrets still migrate."""
    missing = _missing_credentials()
    return [
        Warning(
            missing_key_message(key) + " Calls to CometChat will fail until it is set.",
            hint=_credential_hint(key),
            id=f"django_cometchat.{warning_id}",
        )
        for key, _, warning_id in CREDENTIALS
        if key in missing
    ]


@register(Tags.compatibility, deploy=True)
def check_credentials_for_deploy(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Missing credentials: an error when checking a deployment."""
    missing = _missing_credentials()
    return [
        Error(missing_key_message(key), hint=_credential_hint(key), id=f"django_cometchat.{error}")
        for key, error, _ in CREDENTIALS
        if key in missing
    ]


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every value the settings table refuses (``conf.validate``, the same validation
    ``get_settings()`` runs, plus importing ``UID_RESOLVER``), each under its row's check id."""
    try:
        raw = raw_settings()
    except CometChatConfigurationError as exc:
        return [Error(str(exc), hint=SETTINGS_DOC, id="django_cometchat.E006")]
    _, problems = validate(raw, deep=True)
    messages: list[CheckMessage] = [
        Error(p.message, hint=p.setting.hint, id=f"django_cometchat.{p.setting.check_id}")
        for p in problems
    ]
    if not any(p.setting.key == "BASE_URL" for p in problems):
        messages.extend(_check_plain_http(raw["BASE_URL"]))
    return messages


def _check_plain_http(base_url: Any) -> list[CheckMessage]:
    if base_url in (None, ""):
        return []
    parts = urlsplit(base_url)
    if parts.scheme == "http" and not settings.DEBUG and not _loopback(parts.hostname or ""):
        return [
            Warning(
                f'COMETCHAT["BASE_URL"] is plain http ({base_url}) while DEBUG is False: '
                "the API key would travel unencrypted.",
                hint="Use an https:// URL outside local development and tests.",
                id="django_cometchat.W001",
            )
        ]
    return []


def _loopback(host: str) -> bool:
    """A host on this machine: plain http to it never crosses a network (a local fake, a
    sidecar proxy)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mounted(url_name: str) -> str | None:
    """The path of one of the app's URLs, or None when the host does not mount it."""
    try:
        return reverse(f"django_cometchat:{url_name}")
    except Exception:  # NoReverseMatch; a broken URLconf is reported by Django's own URL checks
        return None


def _settings_or_none() -> CometChatSettings | None:
    """The settings, or None when they are invalid (which ``check_settings`` reports: E006)."""
    try:
        return build_settings(raw_settings())
    except CometChatConfigurationError:
        return None


@register(Tags.urls)
def check_api_dependencies(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The API's browsable pages and filters need DRF's and django-filter's apps installed."""
    if _mounted("conversation-list") is None:
        return []  # the API is not mounted: nothing needs them
    missing = [(app, package) for app, package in API_APPS if not apps.is_installed(app)]
    return [
        Error(
            f'The django-cometchat API is mounted but "{app}" ({package}) is not in '
            "INSTALLED_APPS; its pages would fail with a server error.",
            hint=f'Add "{app}" to INSTALLED_APPS.',
            id="django_cometchat.E007",
        )
        for app, package in missing
    ]


# Deploy only: a site that mounts the URLs but takes no webhooks would otherwise read it on
# every command, cron jobs included.
@register(Tags.urls, Tags.security, deploy=True)
def check_webhook_credentials(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A mounted webhook without credentials refuses every delivery: say so."""
    path = _mounted("webhook")
    conf = _settings_or_none()
    if path is None or conf is None or conf.webhook_credentials:
        return []  # not mounted, invalid settings (E006), or credentials set
    return [
        Info(
            f'CometChat\'s webhook is mounted at {path} but COMETCHAT["WEBHOOK_BASIC_AUTH"] is '
            "empty: it refuses every delivery (401).",
            hint='Add "user:password" entries (the Basic auth set in CometChat\'s dashboard; see '
            "docs/webhooks.md). Information only: hosts that do not use CometChat's webhooks "
            "can ignore it (or list it in SILENCED_SYSTEM_CHECKS).",
            id="django_cometchat.I001",
        )
    ]


# Django's cache backends that import a client library only on first use: without it the budget
# would fail at the first request, not at start-up.
CACHE_LIBRARIES = {
    "django.core.cache.backends.redis.RedisCache": "redis",
    "django.core.cache.backends.memcached.PyMemcacheCache": "pymemcache",
    "django.core.cache.backends.memcached.PyLibMCCache": "pylibmc",
}
# Caches that cannot share a count between processes.
# Caches the budget cannot count in for a whole site: the budget needs one count that every
# process increments atomically (Redis's and Memcached's incr); Django's database and file caches
# increment with a read then a write, so concurrent requests drop out of the count.
MISCOUNTING_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache": "keeps a budget per process",
    "django.core.cache.backends.dummy.DummyCache": "keeps nothing, so nothing is counted",
    "django.core.cache.backends.db.DatabaseCache": "increments with a read then a write, so "
    "concurrent requests are lost from the count",
    "django.core.cache.backends.filebased.FileBasedCache": "increments with a read then a "
    "write, so concurrent requests are lost from the count",
}
BUDGET_DOC = "See the rate budget in docs/tasks.md."


def _budget_cache() -> tuple[str, str] | None:
    """The rate budget's cache alias and backend path, or None when the budget is off."""
    conf = _settings_or_none()
    if conf is None or conf.requests_per_minute is None:
        return None
    alias = conf.rate_limit_cache
    return alias, str(settings.CACHES.get(alias, {}).get("BACKEND", ""))


@register(Tags.caches)
def check_rate_budget_cache(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A budget cache that cannot be used would fail open on every request, silently."""
    found = _budget_cache()
    if found is None:
        return []
    alias, backend = found
    problem = ""
    if alias not in settings.CACHES:
        problem = f"there is no CACHES[{alias!r}]"
    else:
        try:
            caches[alias]
        except (InvalidCacheBackendError, ImportError) as exc:
            problem = f"CACHES[{alias!r}] cannot be loaded ({exc})"
        library = CACHE_LIBRARIES.get(backend)
        if not problem and library and importlib.util.find_spec(library) is None:
            problem = f"CACHES[{alias!r}] needs the {library!r} package, which is not installed"
    if not problem:
        return []
    return [
        Error(
            f'COMETCHAT["RATE_LIMIT_CACHE"] names the cache {alias!r}, but {problem}: the '
            "shared rate budget cannot count requests.",
            hint="Name a configured cache shared by every process (Redis or Memcached), "
            "install its client library, or set REQUESTS_PER_MINUTE to None. "
            f"{BUDGET_DOC}",
            id="django_cometchat.E008",
        )
    ]


@register(Tags.caches, deploy=True)
def check_rate_budget_cache_is_shared(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A per-process cache gives every web process and worker a budget of its own; a cache
    without an atomic increment loses concurrent requests from the count."""
    found = _budget_cache()
    if found is None or found[1] not in MISCOUNTING_CACHES:
        return []
    alias, backend = found
    return [
        Warning(
            f'COMETCHAT["RATE_LIMIT_CACHE"] names the cache {alias!r}, a '
            f"{backend.rsplit('.', 1)[-1]}, which {MISCOUNTING_CACHES[backend]}: several "
            "processes together can exceed CometChat's per-app rate limit.",
            hint="Point RATE_LIMIT_CACHE at a cache every process shares and increments "
            f"atomically (Redis or Memcached). {BUDGET_DOC}",
            id="django_cometchat.W004",
        )
    ]


# Task backends that do not hand work to a worker: Django's own (6.x) and django-tasks' (5.2).
INLINE_TASK_BACKENDS = {
    "ImmediateBackend": "runs each task inline, inside the webhook's request",
    "DummyBackend": "keeps each task in memory and never runs it",
}


def _default_task_backend() -> str:
    """The dotted path of ``TASKS["default"]``'s backend; Django's default is the immediate one."""
    tasks = getattr(settings, "TASKS", None) or {}
    return str(tasks.get("default", {}).get("BACKEND", "django.tasks.backends.ImmediateBackend"))


@register(Tags.urls, deploy=True)
def check_webhook_task_queue(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Webhooks processed inline take as long as CometChat's answers (15-22 s when it is slow),
    far past the 2 s CometChat waits before it retries the delivery."""
    path = _mounted("webhook")
    conf = _settings_or_none()
    if path is None or conf is None or not conf.webhook_credentials:
        return []  # not mounted, invalid settings (E006), or refusing every delivery (I001)
    backend = _default_task_backend()
    how = INLINE_TASK_BACKENDS.get(backend.rsplit(".", 1)[-1])
    if how is None:
        return []
    return [
        Warning(
            f"CometChat's webhooks are accepted at {path} (WEBHOOK_BASIC_AUTH is set), but the "
            f'default task queue (TASKS["default"]: {backend}) {how}: each delivery waits for '
            "its CometChat refreshes, longer than the 2 s CometChat allows before it retries.",
            hint='Point TASKS["default"] at a queue backend with a worker, such as '
            "django-tasks-db's (django_tasks_db.DatabaseBackend) or RQ's "
            "(django_tasks_rq.RQBackend). See docs/tasks.md.",
            id="django_cometchat.W005",
        )
    ]


# Caches a DRF throttle cannot count in for a whole site.
PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache": "counts in each process apart: several "
    "web processes together let more refreshes through than the rate allows",
    "django.core.cache.backends.dummy.DummyCache": "keeps nothing: no refresh is ever throttled",
}


@register(Tags.caches, deploy=True)
def check_refresh_throttle_cache(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """DRF's throttles count in the default cache: a per-process one lets each web process
    allow the full rate (16 refreshes through a 10/min limit under gunicorn)."""
    if _mounted("conversation-sync") is None:
        return []  # the API is not mounted: no refresh endpoint to throttle
    rates = (getattr(settings, "REST_FRAMEWORK", None) or {}).get("DEFAULT_THROTTLE_RATES") or {}
    rate = rates.get(REFRESH_THROTTLE_SCOPE, DEFAULT_REFRESH_RATE)
    backend = str(settings.CACHES.get("default", {}).get("BACKEND", ""))
    if rate is None or backend not in PER_PROCESS_CACHES:
        return []  # the throttle is off, or its cache is shared
    return [
        Warning(
            f"The API's refresh throttle ({REFRESH_THROTTLE_SCOPE!r}, {rate}) counts in the "
            f"default cache, a {backend.rsplit('.', 1)[-1]}, which "
            f"{PER_PROCESS_CACHES[backend]}, and each refresh is a request to CometChat.",
            hint="Make CACHES['default'] a cache every process shares (Redis or Memcached); DRF's "
            "throttles always count in the default cache. See docs/api.md.",
            id="django_cometchat.W006",
        )
    ]
