"""The suite: one directory per room of django_cometchat (tests/README.md is the map)."""

from pathlib import Path

# The checkout (or unpacked sdist) the suite runs from: docs/, scripts/, example_project/.
ROOT = Path(__file__).resolve().parents[1]
# CometChat's published example bodies (API.md), copied in for the tests that follow them.
FIXTURES = ROOT / "tests" / "fixtures" / "cometchat"
