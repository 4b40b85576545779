from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import modify_settings, override_settings

from django_cometchat.checks import (
    check_api_dependencies,
    check_credentials,
    check_credentials_for_deploy,
    check_rate_budget_cache,
    check_rate_budget_cache_is_shared,
    check_settings,
)
from django_cometchat.conf import get_settings

GOOD = {"APP_ID": "app1", "REGION": "us", "API_KEY": "k-123"}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for name in ("COMETCHAT_APP_ID", "COMETCHAT_REGION", "COMETCHAT_API_KEY", "COMETCHAT_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def ids(cometchat, **extra):
    with override_settings(COMETCHAT=cometchat, **extra):
        return [m.id for m in check_settings()]


def test_good_settings_pass():
    assert ids(GOOD) == []


def test_missing_app_id_and_key_warn_in_check_and_are_errors_for_deploy():
    with override_settings(COMETCHAT={"REGION": "us"}):
        warnings = check_credentials()
        errors = check_credentials_for_deploy()
        assert check_settings() == []
    assert [m.id for m in warnings] == ["django_cometchat.W002", "django_cometchat.W003"]
    assert not any(m.is_serious() for m in warnings)
    assert [m.id for m in errors] == ["django_cometchat.E001", "django_cometchat.E002"]
    assert all(m.is_serious() for m in errors)
    for messages in (warnings, errors):
        assert 'COMETCHAT["APP_ID"]' in messages[0].msg
        assert "COMETCHAT_APP_ID" in (messages[0].hint or "")
        assert "fullAccess" in (messages[1].hint or "")


def test_env_var_satisfies_the_checks(monkeypatch):
    monkeypatch.setenv("COMETCHAT_API_KEY", "from-env")
    with override_settings(COMETCHAT={"APP_ID": "a"}):
        assert check_credentials() == check_credentials_for_deploy() == check_settings() == []


@pytest.mark.django_db
def test_migrate_and_check_run_without_credentials_and_check_deploy_refuses():
    with override_settings(COMETCHAT={}):
        call_command("migrate", verbosity=0)  # would raise SystemCheckError on an error
        call_command("check")
        with pytest.raises(SystemCheckError) as info:
            call_command("check", "--deploy")
    text = str(info.value)
    assert "django_cometchat.E001" in text
    assert "django_cometchat.E002" in text


def test_an_api_without_its_apps_names_what_to_add():
    assert check_api_dependencies() == []
    with modify_settings(INSTALLED_APPS={"remove": ["rest_framework", "django_filters"]}):
        messages = check_api_dependencies()
    assert [m.id for m in messages] == ["django_cometchat.E007", "django_cometchat.E007"]
    assert '"rest_framework"' in messages[0].msg
    assert messages[0].hint == 'Add "rest_framework" to INSTALLED_APPS.'
    assert '"django_filters"' in (messages[1].hint or "")


def test_an_unmounted_api_needs_nothing(settings):
    settings.ROOT_URLCONF = "tests.urls_admin_only"
    with modify_settings(INSTALLED_APPS={"remove": ["rest_framework", "django_filters"]}):
        assert check_api_dependencies() == []


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"REGION": "Europe!"}, "django_cometchat.E003"),
        ({"BASE_URL": "not a url"}, "django_cometchat.E004"),
        ({"BASE_URL": "https://x/v3?key=1"}, "django_cometchat.E004"),
        ({"UID_RESOLVER": "tests.resolvers.missing"}, "django_cometchat.E005"),
        ({"UID_RESOLVER": "no_such_module.fn"}, "django_cometchat.E005"),
        ({"UID_RESOLVER": "tests.resolvers.NOT_CALLABLE"}, "django_cometchat.E005"),
        ({"SESSION_FACTORY": "tests.resolvers.missing"}, "django_cometchat.E009"),
        ({"SESSION_FACTORY": "tests.resolvers.NOT_CALLABLE"}, "django_cometchat.E009"),
        ({"SESSION_FACTORY": 42}, "django_cometchat.E009"),
        ({"APIKEY": "typo"}, "django_cometchat.E006"),
        ({"PAGE_SIZE": 5000}, "django_cometchat.E006"),
    ],
)
def test_each_problem_has_its_stable_id(override, expected):
    assert ids({**GOOD, **override}) == [expected]


def test_not_a_dict():
    assert ids("app1") == ["django_cometchat.E006"]


def test_plain_http_warns_only_without_debug():
    http = {**GOOD, "BASE_URL": "http://cometchat-proxy.internal:8765/v3"}
    assert ids(http, DEBUG=False) == ["django_cometchat.W001"]
    assert ids(http, DEBUG=True) == []
    assert ids({**GOOD, "BASE_URL": "https://proxy.internal/v3"}, DEBUG=False) == []


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "[::1]", "localhost", "LOCALHOST", "fake.localhost"]
)
def test_plain_http_to_this_machine_does_not_warn(host):
    """The key never crosses a network to a loopback host (the fake, a sidecar proxy)."""
    assert ids({**GOOD, "BASE_URL": f"http://{host}:8765/v3"}, DEBUG=False) == []


@pytest.mark.parametrize("host", ["10.0.0.5", "[::2]", "localhost.example.com", "128.0.0.1"])
def test_plain_http_to_another_host_warns(host):
    assert ids({**GOOD, "BASE_URL": f"http://{host}/v3"}, DEBUG=False) == ["django_cometchat.W001"]


@pytest.mark.parametrize("region", ["EU", " eu ", "Us", "AP-South"])
def test_region_is_case_insensitive(region):
    assert ids({**GOOD, "REGION": region}) == []
    with override_settings(COMETCHAT={**GOOD, "REGION": region}):
        settings = get_settings()
    assert settings.region == region.strip().lower()
    assert settings.base_url == f"https://app1.api-{region.strip().lower()}.cometchat.io/v3"


def test_region_is_not_checked_when_base_url_picks_the_host():
    with_base_url = {**GOOD, "REGION": "Europe!", "BASE_URL": "https://proxy.internal/v3"}
    assert ids(with_base_url) == []
    with override_settings(COMETCHAT=with_base_url):
        assert get_settings().base_url == "https://proxy.internal/v3"
    assert ids({**GOOD, "REGION": "Europe!"}) == ["django_cometchat.E003"]  # without, it is


def test_manage_py_check_shows_id_and_hint():
    with (
        override_settings(COMETCHAT={"REGION": "Europe!", "API_KEY": "k-123456"}),
        pytest.raises(SystemCheckError) as info,
    ):
        call_command("check")
    text = str(info.value)
    assert "django_cometchat.E003" in text
    assert "django_cometchat.W002" in text
    assert "HINT:" in text
    assert "k-123456" not in text


LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
REDIS = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}


def budget_checks(cometchat, caches):
    with override_settings(COMETCHAT={**GOOD, **cometchat}, CACHES=caches):
        return [m.id for m in check_rate_budget_cache()], [
            m.id for m in check_rate_budget_cache_is_shared()
        ]


def test_a_budget_cache_that_is_not_configured_is_an_error():
    with override_settings(COMETCHAT={**GOOD, "RATE_LIMIT_CACHE": "budget"}):
        (message,) = check_rate_budget_cache()
    assert message.id == "django_cometchat.E008"
    assert "there is no CACHES['budget']" in message.msg
    assert "k-123" not in message.msg + (message.hint or "")


def test_a_budget_cache_whose_backend_cannot_load_is_an_error():
    broken = {"default": LOCMEM, "budget": {"BACKEND": "no.such.Cache"}}
    assert budget_checks({"RATE_LIMIT_CACHE": "budget"}, broken) == (
        ["django_cometchat.E008"],
        [],
    )


def test_a_redis_cache_without_the_redis_package_is_an_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "redis" else real(name, *a),
    )
    with override_settings(
        COMETCHAT={**GOOD, "RATE_LIMIT_CACHE": "budget"},
        CACHES={"default": LOCMEM, "budget": REDIS},
    ):
        (message,) = check_rate_budget_cache()
    assert message.id == "django_cometchat.E008"
    assert "needs the 'redis' package" in message.msg


def test_a_shared_budget_cache_passes_and_a_per_process_one_warns_for_deploy():
    shared = {"default": LOCMEM, "budget": REDIS}
    assert budget_checks({"RATE_LIMIT_CACHE": "budget"}, shared) == ([], [])
    assert budget_checks({}, {"default": LOCMEM}) == ([], ["django_cometchat.W004"])
    dummy = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    assert budget_checks({}, dummy) == ([], ["django_cometchat.W004"])


@pytest.mark.parametrize(
    "cache",
    [
        {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "cache_table"},
        {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": "cache"},
    ],
)
def test_a_shared_cache_without_an_atomic_increment_warns_for_deploy(cache):
    """Django's database and file caches increment with a get then a set: two processes that
    count at once count one request."""
    assert budget_checks({}, {"default": cache}) == ([], ["django_cometchat.W004"])


def test_no_budget_needs_no_cache():
    assert budget_checks({"REQUESTS_PER_MINUTE": None, "RATE_LIMIT_CACHE": "nowhere"}, {}) == (
        [],
        [],
    )


# -- W005: webhooks without a task queue; W006: refresh throttles in a per-process cache ------

IMMEDIATE = "django.tasks.backends.immediate.ImmediateBackend"
DB_QUEUE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def deploy_messages(**overrides):
    """The app's messages of ``check --deploy`` and of a plain ``check``, by id."""
    from django.core import checks

    with override_settings(**overrides):
        deploy = checks.run_checks(include_deployment_checks=True)
        plain = checks.run_checks(include_deployment_checks=False)
    return (
        {m.id: m for m in deploy if str(m.id).startswith("django_cometchat.")},
        {m.id for m in plain},
    )


@pytest.mark.parametrize(
    "tasks",
    [
        None,  # Django's default: the immediate backend
        {"default": {"BACKEND": IMMEDIATE}},
        {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}},
    ],
)
def test_webhooks_without_a_task_queue_warn_for_deploy(tasks, settings):
    if tasks is None:  # unset (Django 6.1's own check refuses TASKS = None)
        del settings.TASKS
        deploy, plain = deploy_messages(CACHES={"default": REDIS})
    else:
        deploy, plain = deploy_messages(TASKS=tasks, CACHES={"default": REDIS})
    warning = deploy["django_cometchat.W005"]
    assert not warning.is_serious()
    assert "webhooks are accepted at /cometchat/webhook/" in warning.msg
    assert 'default task queue (TASKS["default"]' in warning.msg
    assert "django-tasks-db" in (warning.hint or "")
    assert "RQ" in (warning.hint or "")
    assert "django_cometchat.W005" not in plain
    assert "tests-webhook-password" not in warning.msg + (warning.hint or "")


def test_webhooks_with_a_queue_or_without_credentials_do_not_warn(settings):
    deploy, _ = deploy_messages(TASKS=DB_QUEUE, CACHES={"default": REDIS})
    assert "django_cometchat.W005" not in deploy
    no_auth = {**settings.COMETCHAT, "WEBHOOK_BASIC_AUTH": []}
    deploy, _ = deploy_messages(COMETCHAT=no_auth, CACHES={"default": REDIS})
    assert "django_cometchat.W005" not in deploy  # it refuses every delivery: I001 says so
    assert "django_cometchat.I001" in deploy


@pytest.mark.parametrize(
    ("cache", "says"),
    [
        (LOCMEM, "counts in each process apart"),
        (
            {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
            "no refresh is ever throttled",
        ),
    ],
)
def test_refresh_throttles_in_a_per_process_cache_warn_for_deploy(settings, cache, says):
    rest = {k: v for k, v in settings.REST_FRAMEWORK.items() if k != "DEFAULT_THROTTLE_RATES"}
    deploy, plain = deploy_messages(TASKS=DB_QUEUE, CACHES={"default": cache}, REST_FRAMEWORK=rest)
    warning = deploy["django_cometchat.W006"]
    # No rate set: the throttle's own default, 10/min.
    assert "refresh throttle ('cometchat_refresh', 10/min) counts in the default cache" in (
        warning.msg
    )
    assert says in warning.msg
    assert "CACHES['default']" in (warning.hint or "")
    assert "Redis or Memcached" in (warning.hint or "")
    assert "django_cometchat.W006" not in plain


def test_refresh_throttles_in_a_shared_cache_or_switched_off_do_not_warn(settings):
    deploy, _ = deploy_messages(TASKS=DB_QUEUE, CACHES={"default": REDIS})
    assert "django_cometchat.W006" not in deploy
    off = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"cometchat_refresh": None},
    }
    deploy, _ = deploy_messages(TASKS=DB_QUEUE, CACHES={"default": LOCMEM}, REST_FRAMEWORK=off)
    assert "django_cometchat.W006" not in deploy
    assert "django_cometchat.W004" in deploy  # the budget's own warning stays


def test_an_unmounted_api_and_webhook_need_neither_warning(settings):
    settings.ROOT_URLCONF = "tests.urls_admin_only"
    deploy, _ = deploy_messages(CACHES={"default": LOCMEM})
    assert "django_cometchat.W005" not in deploy
    assert "django_cometchat.W006" not in deploy
