"""analysis/'s shape (issue 20): rooms whose imports run one way, a reader of files that never
runs a model, help and docs generated from the registries."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "analysis"
# a module may import only modules of lower rank (the commands at the top, the registry below)
RANK = {
    "phantom.analysis.schema": 0, "phantom.analysis.stats": 0, "phantom.analysis.settings": 0, "phantom.analysis.registry": 1,
    "phantom.analysis.testing": 1,
    "phantom.analysis.views.sources": 2, "phantom.analysis.views.summary": 2, "phantom.analysis.views.fits": 2,
    "phantom.analysis.views.tables": 2, "phantom.analysis.views.claims": 2, "phantom.analysis.views.precision": 2, "phantom.analysis.views.bootstrap": 3,
    "phantom.analysis.views": 4,
    "phantom.analysis.db": 5,
    "phantom.analysis.report.registry": 6, "phantom.analysis.report.draw": 6, "phantom.analysis.report.summary_text": 6,
    "phantom.analysis.report.figures": 7, "phantom.analysis.report.figures_arch": 7, "phantom.analysis.report.tables": 7,
    "phantom.analysis.report.page": 7, "phantom.analysis.report": 8,
    "phantom.analysis.commands.query": 9, "phantom.analysis.commands.predict": 9, "phantom.analysis.commands.analyze": 9,
    "phantom.analysis.commands": 10,
    "phantom.analysis": 11,
}
# analysis reads the files the others write; it never imports them (nor loads a model)
FORBIDDEN = ("phantom.workers", "phantom.orchestrator", "phantom.models", "torch", "transformers", "peft", "ray")


def _name(path: Path) -> str:
    parts = ("phantom", *path.relative_to(ROOT).with_suffix("").parts)  # analysis/ is phantom.analysis
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """Every module this file imports, at module level or lazily in a function (not under
    ``if TYPE_CHECKING:``); ``from phantom.analysis.views import fits`` counts as phantom.analysis.views.fits."""
    out = set()

    def walk(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom) and child.module:
                for a in child.names:
                    sub = f"{child.module}.{a.name}"
                    out.add(sub if sub in MODULES else child.module)
            elif isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            walk(child)

    walk(ast.parse(path.read_text()))
    return out


def test_every_module_has_a_rank():
    assert set(MODULES) == set(RANK)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module):
    """commands -> report -> db -> views -> registry, never back (figures and figures_arch
    used to import each other, figures_arch through the private _grid)."""
    ours = {m for m in _imports(MODULES[module]) if m in RANK} - {module}
    upward = sorted(m for m in ours if RANK[m] >= RANK[module])
    assert not upward, f"{module} imports {upward}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_analysis_reads_files_and_runs_no_model(module):
    """The geometry probe runs a model: it is workers/geometry.py, not analysis/."""
    bad = sorted(m for m in _imports(MODULES[module]) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, f"{module} imports {bad}"


def test_views_are_registered_in_one_place():
    """Only the face of phantom.analysis.views imports the view modules for their side effect; db no
    longer registers them by importing them."""
    face = _imports(MODULES["phantom.analysis.views"])
    assert {f"phantom.analysis.views.{m}" for m in ("sources", "summary", "fits", "bootstrap", "tables", "claims",
                                                    "precision")} <= face
    assert "phantom.analysis.views" in _imports(MODULES["phantom.analysis.db"])
    registering = {m for m, p in MODULES.items() if re.search(r"^@view\(", p.read_text(), re.MULTILINE)}
    assert registering and all(m.startswith("phantom.analysis.views.") for m in registering)
    assert all(m in face for m in registering)


# ----------------------------------------------------------------------------------------------
# help and docs list exactly the registered views


def _query_help() -> str:
    from phantom.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and "query" in a.choices)
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return " ".join(sub.choices["query"].format_help().split())
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def test_query_help_lists_exactly_the_public_views():
    from phantom.analysis.views import REGISTRY

    listed = re.search(r"Views: ([a-z_, ]+)\.", _query_help()).group(1).split(", ")
    assert len(listed) == len(set(listed))
    assert set(listed) == {v.name for v in REGISTRY.public()}
    internal = {v.name for v in REGISTRY.views.values() if v.internal}
    assert internal and not internal & set(listed)
    # the ones the hand-written list used to miss
    assert {"claims", "frozen_head", "frozen_head_models"} <= set(listed)


def test_docs_list_exactly_the_public_views_apart_from_the_helpers():
    """The reference page's blocks (docs/hooks.py) as MkDocs renders them: one heading per view,
    the user-facing ones under ``view-``, the helper views apart under ``helper-view-``."""
    import sys

    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import hooks
    finally:
        sys.path.remove(str(ROOT / "docs"))
    from phantom.analysis.views import REGISTRY

    user = re.findall(r"\{#view-([a-z_]+)\}", hooks.gen_views())
    helpers = re.findall(r"\{#helper-view-([a-z_]+)\}", hooks.gen_helper_views())
    assert user == [v.name for v in REGISTRY.public()]
    assert set(helpers) == {v.name for v in REGISTRY.views.values() if v.internal}
    page = (ROOT / "docs" / "reference" / "views.md").read_text()
    assert "<!-- phantom:generate views -->" in page and "<!-- phantom:generate helper-views -->" in page
