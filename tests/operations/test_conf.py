from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_cometchat import conf, setting_values
from django_cometchat.conf import (
    DEFAULTS,
    SETTINGS,
    CometChatSettings,
    Setting,
    get_settings,
    validate,
)
from django_cometchat.exceptions import CometChatConfigurationError
from django_cometchat.settings_reference import BEGIN, END, main, markdown_table, with_table
from tests import ROOT

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


# -- the settings table: every key is one row, and everything else comes from it --------------


def test_every_row_makes_a_default_a_typed_field_and_a_line_of_the_reference():
    """Adding a setting is one field in CometChatSettings: its default, its attribute, its
    line in docs/settings.md and its validation all follow from that one row."""
    keys = [row.key for row in SETTINGS]
    assert len(keys) == len(set(keys))
    assert list(DEFAULTS) == keys
    attributes = {f.name for f in dataclasses.fields(CometChatSettings)}
    assert {row.attribute for row in SETTINGS} == attributes
    table = markdown_table()
    with override_settings(COMETCHAT=BASE):
        built = get_settings()
    assert validate({**DEFAULTS, **BASE})[1] == []  # every default is a valid value
    for row in SETTINGS:
        assert row.doc
        assert f"| `{row.key}` | " in table
        assert f" | {row.parse.accepts} | {row.doc} |" in table
        assert getattr(built, row.attribute) == row.parse(
            DEFAULTS[row.key] if row.key not in BASE else BASE[row.key]
        )


def test_docs_settings_md_is_what_the_table_generates():
    """Run `python -m django_cometchat.settings_reference --write docs/settings.md` after changing
    the table."""
    document = (ROOT / "docs" / "settings.md").read_text()
    assert with_table(document) == document


def test_the_reference_command_prints_and_checks_the_table(tmp_path, capsys):
    assert main([]) == 0
    assert capsys.readouterr().out.strip() == markdown_table()
    stale = tmp_path / "settings.md"
    stale.write_text(f"# Settings\n\n{BEGIN}\n| old |\n{END}\n\nAfter.\n")
    assert main(["--check", str(stale)]) == 1
    assert main(["--write", str(stale)]) == 0
    assert stale.read_text() == f"# Settings\n\n{markdown_table()}\n\nAfter.\n"
    assert main(["--check", str(stale)]) == 0


@pytest.mark.parametrize("module", ["django_cometchat.settings_reference", "django_cometchat.conf"])
def test_the_reference_command_runs_under_its_old_name_too(module, tmp_path):
    """`python -m django_cometchat.conf` was the command before the reference had its module."""
    stale = tmp_path / "settings.md"
    stale.write_text(f"{BEGIN}\n| old |\n{END}\n")
    command = [sys.executable, "-m", module]
    # cwd=ROOT: the package under test, not an installed one
    checked = subprocess.run(
        [*command, "--check", str(stale)], cwd=ROOT, capture_output=True, check=False
    )
    assert checked.returncode == 1
    assert b"the settings table is out of date" in checked.stderr
    subprocess.run([*command, "--write", str(stale)], cwd=ROOT, check=True)
    assert stale.read_text() == f"{markdown_table()}\n"


def test_an_error_repeats_what_the_reference_says_the_key_accepts():
    with override_settings(COMETCHAT={**BASE, "PAGE_SIZE": 5000}):
        with pytest.raises(CometChatConfigurationError) as info:
            get_settings()
    assert str(info.value) == (
        'COMETCHAT["PAGE_SIZE"] must be an integer between 1 and 1000; got 5000'
    )
    assert "| an integer between 1 and 1000 |" in markdown_table()


@pytest.mark.parametrize(
    ("key", "value"), [("API_KEY", 12345), ("WEBHOOK_BASIC_AUTH", "user:hunter2")]
)
def test_a_refused_secret_is_never_shown(key, value):
    with override_settings(COMETCHAT={**BASE, key: value}):
        with pytest.raises(CometChatConfigurationError, match=key) as info:
            get_settings()
    assert str(value) not in str(info.value)


def test_validation_reports_every_bad_key_at_once():
    raw = {**DEFAULTS, **BASE, "PAGE_SIZE": 0, "TIMEOUT": "slow", "WEBHOOK_BASIC_AUTH": ["x"]}
    _, problems = validate(raw)
    assert [p.setting.key for p in problems] == ["TIMEOUT", "PAGE_SIZE", "WEBHOOK_BASIC_AUTH"]
    assert problems[2].message == (
        'COMETCHAT["WEBHOOK_BASIC_AUTH"][0] must be a "user:password" string'
    )


def test_a_new_row_is_a_setting_everywhere(monkeypatch):
    """A row added to the table is a valid key, takes its default, is validated with its key
    named, and has its line in the reference."""
    extra = Setting(
        "EXTRA_LIMIT", 7, setting_values.integer(minimum=1), "a limit", attribute="page_size"
    )
    monkeypatch.setattr(conf, "SETTINGS", (*conf.SETTINGS, extra))
    monkeypatch.setattr(conf, "DEFAULTS", {**conf.DEFAULTS, "EXTRA_LIMIT": 7})
    assert "| `EXTRA_LIMIT` | `7` |  | an integer >= 1 | a limit |" in markdown_table()
    with override_settings(COMETCHAT=BASE):
        assert conf.raw_settings()["EXTRA_LIMIT"] == 7
        assert get_settings().page_size == 7  # the extra row's value, on its attribute
    with override_settings(COMETCHAT={**BASE, "EXTRA_LIMIT": 0}):
        with pytest.raises(CometChatConfigurationError, match=r'COMETCHAT\["EXTRA_LIMIT"\]'):
            get_settings()
