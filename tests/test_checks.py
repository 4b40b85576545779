from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_cometchat.checks import check_settings

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


def test_missing_app_id_and_key():
    with override_settings(COMETCHAT={"REGION": "us"}):
        messages = check_settings()
    assert [m.id for m in messages] == ["django_cometchat.E001", "django_cometchat.E002"]
    assert 'COMETCHAT["APP_ID"]' in messages[0].msg
    assert "COMETCHAT_APP_ID" in messages[0].msg
    assert messages[1].hint
    assert "fullAccess" in messages[1].hint


def test_env_var_satisfies_the_check(monkeypatch):
    monkeypatch.setenv("COMETCHAT_API_KEY", "from-env")
    assert ids({"APP_ID": "a"}) == []


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"REGION": "Europe!"}, "django_cometchat.E003"),
        ({"BASE_URL": "not a url"}, "django_cometchat.E004"),
        ({"BASE_URL": "https://x/v3?key=1"}, "django_cometchat.E004"),
        ({"UID_RESOLVER": "tests.resolvers.missing"}, "django_cometchat.E005"),
        ({"UID_RESOLVER": "no_such_module.fn"}, "django_cometchat.E005"),
        ({"UID_RESOLVER": "tests.resolvers.NOT_CALLABLE"}, "django_cometchat.E005"),
        ({"APIKEY": "typo"}, "django_cometchat.E006"),
        ({"PAGE_SIZE": 5000}, "django_cometchat.E006"),
    ],
)
def test_each_problem_has_its_stable_id(override, expected):
    assert ids({**GOOD, **override}) == [expected]


def test_not_a_dict():
    assert ids("app1") == ["django_cometchat.E006"]


def test_plain_http_warns_only_without_debug():
    http = {**GOOD, "BASE_URL": "http://127.0.0.1:8765/v3"}
    assert ids(http, DEBUG=False) == ["django_cometchat.W001"]
    assert ids(http, DEBUG=True) == []
    assert ids({**GOOD, "BASE_URL": "https://proxy.internal/v3"}, DEBUG=False) == []


def test_manage_py_check_shows_id_and_hint():
    with (
        override_settings(COMETCHAT={"REGION": "us", "API_KEY": "k"}),
        pytest.raises(SystemCheckError) as info,
    ):
        call_command("check")
    text = str(info.value)
    assert "django_cometchat.E001" in text
    assert "HINT:" in text
    assert "k-123" not in text
