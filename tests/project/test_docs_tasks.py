"""docs/tasks.md tells a host what to add to its settings; tests/settings_workers.py is what the
real workers of tests/tasks/test_task_workers.py run with. The snippets of the doc, executed, must
add what those settings add (Redis URLs aside), so the doc cannot drift from what is tested."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from django_cometchat.conf import DEFAULTS
from tests import ROOT

BASE_APPS = ["django.contrib.auth", "django_cometchat"]

SHOW_WORKER_SETTINGS = """
import json
from tests import settings as base, settings_workers as s
print(json.dumps({
    "apps": [a for a in s.INSTALLED_APPS if a not in base.INSTALLED_APPS],
    "TASKS": s.TASKS,
    "RQ_QUEUES": getattr(s, "RQ_QUEUES", None),
    "CACHES": s.CACHES,
    "COMETCHAT": s.COMETCHAT,
}))
"""


def snippets() -> dict[str, str]:
    """The ``# settings.py`` Python blocks of docs/tasks.md, by the heading above them."""
    text = (ROOT / "docs" / "tasks.md").read_text()
    found = {}
    pattern = r"^#+ (.+)\n(?:(?!#|```).*\n)*```python\n(# settings\.py\n[\s\S]*?)```"
    for match in re.finditer(pattern, text, re.MULTILINE):
        found[match[1]] = match[2]
    return found


def run_snippet(code: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"INSTALLED_APPS": list(BASE_APPS)}
    exec(code, namespace)  # noqa: S102 (our own documentation)
    namespace["apps"] = namespace["INSTALLED_APPS"][len(BASE_APPS) :]
    return namespace


def worker_settings(engine: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "COMETCHAT_TEST_DB": "postgres",
        "COMETCHAT_TEST_TASKS": engine,
        "COMETCHAT_TEST_WORKER_DB": "unused",
    }
    done = subprocess.run(
        [sys.executable, "-c", SHOW_WORKER_SETTINGS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(done.stdout))


def without_urls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_urls(v) for k, v in value.items() if k not in ("URL", "LOCATION")}
    return value


def test_the_doc_has_the_three_settings_snippets():
    assert set(snippets()) == {
        "The queue in your database (django-tasks-db)",
        "The queue in Redis (RQ, through django-tasks-rq)",
        "One rate budget for every process",
    }


@pytest.mark.parametrize(
    ("heading", "engine"),
    [
        ("The queue in your database (django-tasks-db)", "db"),
        ("The queue in Redis (RQ, through django-tasks-rq)", "rq"),
    ],
)
def test_the_queue_snippets_are_the_tested_settings(heading, engine):
    documented = run_snippet(snippets()[heading])
    tested = worker_settings(engine)
    assert documented["apps"] == tested["apps"]
    assert documented["TASKS"] == tested["TASKS"]
    assert without_urls(documented.get("RQ_QUEUES")) == without_urls(tested["RQ_QUEUES"])


def test_the_budget_snippet_is_the_tested_settings():
    documented = run_snippet(snippets()["One rate budget for every process"])
    tested = worker_settings("db")
    assert without_urls(documented["CACHES"]) == without_urls(tested["CACHES"])
    alias = documented["COMETCHAT"]["RATE_LIMIT_CACHE"]
    assert alias == tested["COMETCHAT"]["RATE_LIMIT_CACHE"]
    assert documented["CACHES"][alias]["BACKEND"].endswith("RedisCache")
    # The doc calls it the default.
    assert documented["COMETCHAT"]["REQUESTS_PER_MINUTE"] == DEFAULTS["REQUESTS_PER_MINUTE"]
