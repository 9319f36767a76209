"""The orchestrator's shape: imports run one way, names and words have one owner."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "orchestrator"
# a module may import only the modules of lower rank (the front door at the top)
RANK = {
    "runner": 6, "validate": 6, "search": 5, "grid": 4, "etac": 4, "bisect": 3, "engine": 3, "session": 3, "trainable": 2,
    "progress": 1, "watch": 2, "plan": 2, "capacity": 2, "status": 1, "packing": 1, "expand": 1, "compactor": 1,
    "lock": 0, "resolve": 0, "loader": 0, "only": 0, "config": -1, "lock_backends": -2, "unit_report": -1,
    "unit_task": -1, "lock_cloud": -1, "hints": -1,
    "testing": 7, "__init__": 7,
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "phantom.orchestrator":
            names |= {a.name for a in node.names if a.name in RANK}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("phantom.orchestrator."):
            names.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[2] for a in node.names if a.name.startswith("phantom.orchestrator.")}
    return names


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def test_every_module_has_a_rank():
    assert set(MODULES) == set(RANK)


@pytest.mark.parametrize("module", MODULES)
def test_imports_run_one_way(module):
    """runner -> search -> search modes (grid, etac) -> engine -> plan, never back (etac used to
    import runner and reach into its private _ray_up)."""
    upward = {m for m in _imports(PACKAGE / f"{module}.py") - {module} if RANK[m] >= RANK[module]}
    assert not upward, f"phantom.orchestrator.{module} imports {sorted(upward)}"


FILE_NAMES = ["plan.json", "sweep.yaml", "sentences.yaml", "skipped.parquet", "sweep.lock", "optuna.journal",
              "current.json", "eta_c.parquet"]
FOLDER_ARG = re.compile(r"""(?:store\.\w+\(|/ )\s*["'](?:attempts|skips|steps|trials|ray)["']""")


@pytest.mark.parametrize("module", MODULES)
def test_folder_names_and_status_words_have_one_owner(module):
    """File names come from phantom.layout, status words from phantom.outcomes."""
    source = (PACKAGE / f"{module}.py").read_text()
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    code = re.sub(r'"""[\s\S]*?"""', "", code)  # docstrings may name files
    code = code.replace('default="sentences.yaml"', "")  # the user's sentences file, not the folder's
    assert [n for n in FILE_NAMES if n in code] == [] and FOLDER_ARG.findall(code) == []
    assert re.findall(r"""(?:==|!=|in \(|\bis)\s*["'](?:ok|error|diverged)["']""", code) == []
