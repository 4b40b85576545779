"""The layering of DESIGN.md, checked on the source: lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "django_cometchat"

# module -> package modules it must never import (directly)
FORBIDDEN = {
    "redaction": {"exceptions", "types", "conf", "client", "models", "services", "storage"},
    "exceptions": {"types", "conf", "client", "models", "services", "storage"},
    "types": {"conf", "client", "models", "services", "storage"},
    "webhook_types": {"conf", "client", "models", "services", "storage"},
    "ids": {"conf", "client", "models", "services", "storage"},
    "filters": {"conf", "client", "models", "services", "storage"},
    "deadline": {"conf", "client", "models", "services", "storage"},
    "conf": {"client", "models", "services", "storage"},
    "setting_values": {"conf", "client", "models", "services", "storage"},
    # The stop rule and totals every batch shares: below every adapter that runs batches.
    "batches": {"conf", "client", "models", "services", "storage", "tasks", "admin", "management"},
    "ratelimit": {"client", "models", "services", "storage"},
    "retry": {"client", "models", "services", "storage"},
    "socket_reads": {"conf", "client", "models", "services", "storage"},
    # signals imports nothing of the package: the client sends upstream_request_answered.
    "client": {"models", "services", "storage"},
    "models": {"client", "retry", "services"},
    "storage": {"client", "retry", "services"},
    "budget": {"client", "models", "services", "storage"},
    "signals": {"conf", "client", "models", "services", "storage", "budget", "retry"},
    # Optional integrations (metrics, health checks): adapters like the admin or the API.
    "contrib": {"client", "storage", "retry", "api", "admin", "management", "webhooks"},
}


def sources(module: str) -> list[Path]:
    """A module's file, or every file of a package."""
    package = PACKAGE / module
    return sorted(package.rglob("*.py")) if package.is_dir() else [PACKAGE / f"{module}.py"]


def imported_modules(path: Path) -> set[str]:
    """The package's top-level modules ``path`` imports (relative or absolute)."""
    depth = len(path.relative_to(PACKAGE).parts)  # 1 for a module, 2 inside a sub-package
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == depth:
            if node.module:
                names.add(node.module.split(".")[0])
            else:
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "django_cometchat."
        ):
            names.add((node.module or "").split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("django_cometchat."):
                    names.add(alias.name.split(".")[1])
    return names


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_module_respects_its_layer(module):
    for path in sources(module):
        imported = imported_modules(path)
        assert not imported & FORBIDDEN[module], (
            f"{path.name} imports {imported & FORBIDDEN[module]}"
        )


def test_only_conf_and_checks_read_django_settings():
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts
        and (
            "from django.conf import settings" in path.read_text()
            or "django.conf.settings" in path.read_text()
        )
    )
    # models.py names settings.AUTH_USER_MODEL for its foreign keys, which Django requires.
    assert readers == ["checks.py", "conf.py", "models.py"]


@pytest.mark.parametrize("package", ["api", "admin", "management", "webhooks", "tasks", "contrib"])
def test_adapters_reach_cometchat_only_through_services(package):
    """The API, the admin, the commands, the webhook and the tasks never import the client,
    the storage or the retry policy: services own client creation and every write."""
    for path in sources(package):
        imported = imported_modules(path)
        assert not imported & {"client", "storage", "retry"}, f"{path}: {imported}"
