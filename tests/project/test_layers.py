"""The layers of docs/architecture.md, checked on the source: every room against every other.

A room is a top-level module or package of ``django_cometchat`` (``client`` whether it is a
module or a package). ``LAYERS`` lists them lowest first; a room imports only rooms below it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import ROOT

PACKAGE = ROOT / "django_cometchat"

# Lowest first. A layer is one or more columns side by side; a column lists its rooms lowest
# first. A room may import the rooms of earlier layers and those before it in its own column,
# never a room of another column of its layer: the client and the models never import each
# other, nor do the adapters. Annotations imported under ``TYPE_CHECKING`` obey this too.
LAYERS: list[list[tuple[str, ...]]] = [
    [("__init__",)],  # the version; imports nothing of the package
    [("redaction", "exceptions", "signals")],
    [
        (
            "ids",
            "conversation_types",
            "types",  # the deprecated alias of conversation_types
            "conversation_filters",
            "filters",  # the deprecated alias of conversation_filters
            "webhook_types",
            "messages_types",
            "batches",
        )
    ],
    [("setting_values", "conf", "settings_reference", "checks", "apps")],
    [("deadline", "ratelimit", "budget", "retry", "socket_reads")],
    [("client",), ("models", "migrations", "storage")],
    [("services", "health")],  # health: the admin's health page figures, over services
    [("tasks",)],  # the queue's seams: the adapters enqueue through it
    [("webhooks",), ("management",), ("admin",), ("api",), ("contrib",)],
    [("urls",)],
    [("testing",)],
]

# Rooms only these may import at run time: the client and the storage meet only in services
# (annotations may name the client's type under TYPE_CHECKING); the client's helpers serve it.
ONLY_THROUGH = {
    "client": {"services"},
    "storage": {"services"},
    "retry": {"client"},
    "socket_reads": {"client"},
}

# room -> (layer, column, place in its column)
ORDER = {
    room: (level, column, place)
    for level, columns in enumerate(LAYERS)
    for column, rooms_of_column in enumerate(columns)
    for place, room in enumerate(rooms_of_column)
}


@dataclass(frozen=True)
class Import:
    room: str
    line: int
    type_only: bool


def rooms() -> set[str]:
    """The package's rooms as they are on disk."""
    found = {"__init__"}
    for entry in PACKAGE.iterdir():
        if entry.suffix == ".py" and entry.name != "__init__.py":
            found.add(entry.stem)
        elif entry.is_dir() and (entry / "__init__.py").exists():
            found.add(entry.name)
    return found


def room_of(path: Path) -> str:
    first = path.relative_to(PACKAGE).parts[0]
    return "__init__" if first == "__init__.py" else first.removesuffix(".py")


def sources(room: str) -> list[Path]:
    """A room's files: a module's one file, or every file of a package."""
    if room == "__init__":
        return [PACKAGE / "__init__.py"]
    package = PACKAGE / room
    return sorted(package.rglob("*.py")) if package.is_dir() else [PACKAGE / f"{room}.py"]


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(path: Path) -> list[Import]:
    """The other rooms ``path`` imports (relative or absolute), each with its line."""
    depth = len(path.relative_to(PACKAGE).parts)  # 1 for a module, 2 inside a package, …
    tree = ast.parse(path.read_text())
    type_only = _type_checking_lines(tree)
    found: list[Import] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == depth:  # from the package root
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "django_cometchat."
        ):
            names = [(node.module or "").split(".")[1]]
        elif isinstance(node, ast.Import):
            names = [
                a.name.split(".")[1] for a in node.names if a.name.startswith("django_cometchat.")
            ]
        for name in names:
            # A name of the package root that is no room (``__version__``) is the root's.
            room = name if name in ORDER else "__init__"
            found.append(Import(room, node.lineno, node.lineno in type_only))
    return [found_import for found_import in found if found_import.room != room_of(path)]


def may_import(importer: str, imported: str) -> bool:
    """Whether ``importer`` sits above ``imported``: the one rule, for every pair of rooms."""
    low, high = ORDER[imported], ORDER[importer]
    if low[0] != high[0]:
        return low[0] < high[0]
    return low[1] == high[1] and low[2] < high[2]


def test_every_room_is_in_a_layer():
    listed = set(ORDER)
    assert rooms() - listed == set(), "place each new module or package in LAYERS"
    assert listed - rooms() == set(), "LAYERS names a room that is gone"


def test_every_pair_of_rooms_is_decided():
    """For any two rooms exactly one may import the other, or neither (side by side)."""
    for a in ORDER:
        for b in ORDER:
            if a != b:
                side_by_side = ORDER[a][0] == ORDER[b][0] and ORDER[a][1] != ORDER[b][1]
                assert may_import(a, b) + may_import(b, a) == (0 if side_by_side else 1), (a, b)


def test_the_rule_refuses_what_the_design_forbids():
    assert not may_import("models", "client")
    assert not may_import("client", "models")
    assert not may_import("services", "tasks")
    assert not may_import("api", "admin")
    assert not may_import("exceptions", "conf")
    assert may_import("services", "client")
    assert may_import("api", "tasks")


@pytest.mark.parametrize("room", sorted(ORDER))
def test_room_imports_only_rooms_below_it(room):
    wrong = [
        f"{path.relative_to(PACKAGE)}:{found.line} imports {found.room}"
        for path in sources(room)
        for found in imports(path)
        if not may_import(room, found.room)
    ]
    assert wrong == []


@pytest.mark.parametrize("guarded", sorted(ONLY_THROUGH))
def test_guarded_rooms_are_imported_only_where_they_belong(guarded):
    wrong = [
        f"{path.relative_to(PACKAGE)}:{found.line}"
        for room in sorted(set(ORDER) - ONLY_THROUGH[guarded] - {guarded})
        for path in sources(room)
        for found in imports(path)
        if found.room == guarded and not found.type_only
    ]
    assert wrong == [], f"only {ONLY_THROUGH[guarded]} may import {guarded}"


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
