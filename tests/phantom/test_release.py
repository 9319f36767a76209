"""The release number lives in a leaf module (phantom.versions imported it from phantom/__init__,
which imports the API, which reaches the worker, which imports phantom.versions: a cycle)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import phantom
from phantom import release

REPO = Path(__file__).resolve().parents[2]


def test_the_release_module_imports_nothing():
    tree = ast.parse(Path(release.__file__).read_text())
    assert [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))] == []


def test_the_package_and_pyproject_say_the_same_release():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"$', pyproject, re.MULTILINE).group(1) == release.__version__
    assert phantom.__version__ == release.__version__
