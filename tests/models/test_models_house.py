"""models/ is below workers, orchestrator and analysis: it imports none of them (lazy imports
included), so any of them can resolve a model name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "models"
ABOVE = ("phantom.workers", "phantom.orchestrator", "phantom.analysis")


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_models_imports_nothing_above_it(path):
    bad = sorted(m for m in _imported(path) if any(m == a or m.startswith(a + ".") for a in ABOVE))
    assert bad == [], f"models/{path.name} imports {bad}"


def test_the_face_lists_what_it_exports():
    from phantom import models
    assert sorted(models.__all__) == sorted(set(models.__all__))
    assert all(hasattr(models, name) for name in models.__all__)
