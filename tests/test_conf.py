from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_cometchat.conf import get_settings
from django_cometchat.exceptions import CometChatConfigurationError

BASE = {"APP_ID": "app1", "REGION": "eu", "API_KEY": "k-123"}


@pytest.fixture(autouse=True)
def _fresh_settings_cache(monkeypatch):
    for name in ("COMETCHAT_APP_ID", "COMETCHAT_REGION", "COMETCHAT_API_KEY", "COMETCHAT_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults_and_regional_base_url():
    with override_settings(COMETCHAT=BASE):
        s = get_settings()
    assert s.app_id == "app1"
    assert s.base_url == "https://app1.api-eu.cometchat.io/v3"
    assert s.timeout == (3.05, 15.0)
    assert s.page_size == 1000
    assert s.sync_max_pages == 10_000
    assert s.sync_deadline == 900.0
    assert s.uid_resolver_path is None
    with override_settings(COMETCHAT={**BASE, "SYNC_DEADLINE": None}):
        assert get_settings().sync_deadline is None  # no limit


def test_base_url_replaces_regional_host_and_drops_trailing_slash():
    with override_settings(COMETCHAT={**BASE, "BASE_URL": "http://127.0.0.1:9/v3/"}):
        assert get_settings().base_url == "http://127.0.0.1:9/v3"


def test_a_new_region_needs_no_release():
    with override_settings(COMETCHAT={**BASE, "REGION": "ap-south"}):
        assert get_settings().base_url == "https://app1.api-ap-south.cometchat.io/v3"


def test_override_settings_resets_the_cache():
    with override_settings(COMETCHAT=BASE):
        assert get_settings().region == "eu"
        with override_settings(COMETCHAT={**BASE, "REGION": "in"}):
            assert get_settings().region == "in"
        assert get_settings().region == "eu"


def test_unknown_key_is_an_error_naming_it():
    with override_settings(COMETCHAT={**BASE, "APIKEY": "typo"}):
        with pytest.raises(CometChatConfigurationError, match="APIKEY") as info:
            get_settings()
    assert isinstance(info.value, ImproperlyConfigured)


def test_env_fallbacks_fill_missing_keys(monkeypatch):
    monkeypatch.setenv("COMETCHAT_APP_ID", "envapp")
    monkeypatch.setenv("COMETCHAT_API_KEY", "env-key")
    monkeypatch.setenv("COMETCHAT_REGION", "in")
    monkeypatch.setenv("COMETCHAT_BASE_URL", "https://proxy.example/v3")
    with override_settings(COMETCHAT={}):
        s = get_settings()
    assert s.api_key is not None
    assert (s.app_id, s.api_key.reveal(), s.region) == ("envapp", "env-key", "in")
    assert s.base_url == "https://proxy.example/v3"


def test_explicit_setting_wins_over_env(monkeypatch):
    monkeypatch.setenv("COMETCHAT_APP_ID", "envapp")
    with override_settings(COMETCHAT=BASE):
        assert get_settings().app_id == "app1"


def test_settings_object_is_frozen_and_hides_the_key():
    with override_settings(COMETCHAT=BASE):
        s = get_settings()
    with pytest.raises(AttributeError):
        s.app_id = "other"  # type: ignore[misc]
    assert "k-123" not in repr(s)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"TIMEOUT": -1}, "TIMEOUT"),
        ({"TIMEOUT": (1, 2, 3)}, "TIMEOUT"),
        ({"PAGE_SIZE": 1001}, "PAGE_SIZE"),
        ({"PAGE_SIZE": 0}, "PAGE_SIZE"),
        ({"SYNC_MAX_PAGES": 0}, "SYNC_MAX_PAGES"),
        ({"SYNC_MAX_PAGES": 2.5}, "SYNC_MAX_PAGES"),
        ({"SYNC_DEADLINE": 0}, "SYNC_DEADLINE"),
        ({"SYNC_DEADLINE": "900"}, "SYNC_DEADLINE"),
        ({"MAX_RETRIES": "3"}, "MAX_RETRIES"),
        ({"REGION": "US EAST"}, "REGION"),
        ({"BASE_URL": "ftp://x/v3"}, "BASE_URL"),
        ({"BACKOFF_FACTOR": True}, "BACKOFF_FACTOR"),
        ({"ON_DEMAND_SHARE": 0}, "ON_DEMAND_SHARE"),
        ({"ON_DEMAND_SHARE": 1.5}, "ON_DEMAND_SHARE"),
        ({"ON_DEMAND_SHARE": "0.5"}, "ON_DEMAND_SHARE"),
        ({"ON_DEMAND_SHARE": True}, "ON_DEMAND_SHARE"),
        ({"ON_DEMAND_SHARE": None}, "ON_DEMAND_SHARE"),
        ({"HEALTH_MAX_SYNC_AGE": 0}, "HEALTH_MAX_SYNC_AGE"),
        ({"HEALTH_MAX_SYNC_AGE": "1h"}, "HEALTH_MAX_SYNC_AGE"),
        ({"HEALTH_MAX_EVENT_WAIT": -5}, "HEALTH_MAX_EVENT_WAIT"),
        ({"HEALTH_MAX_EVENT_WAIT": False}, "HEALTH_MAX_EVENT_WAIT"),
    ],
)
def test_bad_values_name_the_key(override, named):
    with override_settings(COMETCHAT={**BASE, **override}):
        with pytest.raises(CometChatConfigurationError, match=named):
            get_settings()


def test_on_demand_share_defaults_to_half_and_takes_the_whole_window_at_most():
    with override_settings(COMETCHAT=BASE):
        assert get_settings().on_demand_share == 0.5
    with override_settings(COMETCHAT={**BASE, "ON_DEMAND_SHARE": 1}):
        assert get_settings().on_demand_share == 1.0


def test_timeout_accepts_single_number_and_pair():
    with override_settings(COMETCHAT={**BASE, "TIMEOUT": 5}):
        assert get_settings().timeout == (5.0, 5.0)
    with override_settings(COMETCHAT={**BASE, "TIMEOUT": [1, 2.5]}):
        assert get_settings().timeout == (1.0, 2.5)


def test_missing_credentials_are_named_when_required():
    with override_settings(COMETCHAT={"APP_ID": "a"}):
        s = get_settings()
        with pytest.raises(
            CometChatConfigurationError, match=r'COMETCHAT\["API_KEY"\].*COMETCHAT_API_KEY'
        ):
            s.require_credentials()


def test_uid_resolver_is_imported_lazily():
    with override_settings(COMETCHAT={**BASE, "UID_RESOLVER": "tests.resolvers.by_username"}):
        resolver = get_settings().uid_resolver()
    from tests.resolvers import by_username

    assert resolver is by_username
    with override_settings(COMETCHAT={**BASE, "UID_RESOLVER": "tests.resolvers.nope"}):
        with pytest.raises(CometChatConfigurationError, match="cannot be imported"):
            get_settings().uid_resolver()


def test_health_thresholds_default_and_turn_off_with_none():
    with override_settings(COMETCHAT=BASE):
        assert (get_settings().health_max_sync_age, get_settings().health_max_event_wait) == (
            3600.0,
            300.0,
        )
    off = {**BASE, "HEALTH_MAX_SYNC_AGE": None, "HEALTH_MAX_EVENT_WAIT": None}
    with override_settings(COMETCHAT=off):
        assert (get_settings().health_max_sync_age, get_settings().health_max_event_wait) == (
            None,
            None,
        )
    with override_settings(COMETCHAT={**BASE, "HEALTH_MAX_SYNC_AGE": 90}):
        assert get_settings().health_max_sync_age == 90.0
