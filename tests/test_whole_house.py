"""The house as a whole: one import root, floors that point down, module sizes, private names,
import cycles (issues 20, 26)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> repository folder: phantom/ itself, and each phantom/<name> link to a top-level folder
FOLDERS: dict[str, str] = {"phantom": "phantom", **{
    f"phantom.{link.name}": link.resolve().relative_to(ROOT).as_posix()
    for link in sorted((ROOT / "phantom").iterdir()) if link.is_symlink()}}
LIMIT = 450  # lines; a module past it is usually two concepts (STYLE.md)

# Floors, bottom to top: a module imports from its own floor or below, never above. The floor
# is what every layer uses; each layer is one package; the top is the Python API and the CLI.
LAYERS = ["phantom.models", "phantom.analysis", "phantom.workers", "phantom.orchestrator"]
TOP = {"phantom", "phantom.__main__", "phantom.api", "phantom.reading", "phantom.running", "phantom.cli"}
FLOOR_NAMES = ["floor", *(layer.split(".")[1] for layer in LAYERS), "testing", "top"]


def _files(folder: Path):
    """The .py files under ``folder``, not through a link (each linked folder is walked once)."""
    for path in sorted(folder.iterdir()):
        if path.is_symlink():
            continue
        if path.is_dir():
            yield from _files(path)
        elif path.suffix == ".py":
            yield path


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in FOLDERS.items():
        for path in _files(ROOT / folder):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            out[".".join([package, *(parts[:-1] if parts[-1] == "__init__" else parts)])] = path
    return out


MODULES = _modules()
SOURCES = sorted({p for d in ("bench", "scripts", "docs", *FOLDERS.values()) if (ROOT / d).is_dir()
                  for p in (ROOT / d).rglob("*.py")})


def floor(module: str) -> int:
    """The floor of a module (an index into FLOOR_NAMES)."""
    parts = module.split(".")
    if "testing" in parts[1:]:  # helpers for tests, shipped: may use any layer, never the top
        return FLOOR_NAMES.index("testing")
    if module in TOP or module.startswith("phantom.cli."):
        return FLOOR_NAMES.index("top")
    for i, layer in enumerate(LAYERS, start=1):
        if module == layer or module.startswith(layer + "."):
            return i
    return 0


def package_of(module: str) -> str:
    """The package a module belongs to for its private names: a layer, phantom.cli,
    phantom.testing, or the floor and the API (``phantom``)."""
    for pkg in [*LAYERS, "phantom.cli", "phantom.testing"]:
        if module == pkg or module.startswith(pkg + "."):
            return pkg
    return "phantom"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_passes_the_limit(path):
    lines = len(path.read_text().splitlines())
    assert lines <= LIMIT, f"{path.relative_to(ROOT)} has {lines} lines (> {LIMIT})"


def _imported(path: Path, module: str):
    """(module, name) pairs this file imports, at module level or inside a function (a lazy
    import is how a cycle hides), not under ``if TYPE_CHECKING:``; relative imports resolved."""

    def walk(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from (x for b in child.orelse for x in walk_one(b))
                continue
            yield from walk_one(child)

    def walk_one(node):
        yield node
        yield from walk(node)

    for node in walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".")
                pkg = pkg[: len(pkg) - node.level + (path.name == "__init__.py")]
                base = ".".join([*pkg, base] if base else pkg)
            for a in node.names:
                yield base, a.name
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None


def _targets(module: str) -> set[str]:
    """The project's modules that ``module`` imports (``from pkg import sub`` counts as pkg.sub)."""
    out = set()
    for m, n in _imported(MODULES[module], module):
        for cand in (f"{m}.{n}" if n else None, m):
            if cand in MODULES:
                out.add(cand)
                break
    return out - {module}


def test_phantom_is_the_only_top_level_import_name():
    """A user's own models.py or analysis.py beside a notebook shadows a top-level package of
    that name: only `phantom` installs, and each concept's folder is linked into it (relative
    links, so a clone anywhere works)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["packages"]["find"] == {"include": ["phantom", "phantom.*"]}
    linked = {name: os.readlink(ROOT / "phantom" / name) for name in ("workers", "orchestrator", "analysis", "models", "sweeps")}
    assert linked == {name: f"../{name}" for name in linked}  # the specified folders stay where they were
    assert all((ROOT / name / "__init__.py").is_file() for name in linked)


OLD_NAMES = {"models", "workers", "orchestrator", "analysis", "sweeps"}


@pytest.mark.parametrize("path", sorted({*SOURCES, *(ROOT / "tests").rglob("*.py")}), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_imports_a_folder_by_its_old_top_level_name(path):
    """In the checkout `import models` still finds the folder (the working directory is on the
    path), but an installed Phantom has no such module: a test that used it would pass here and
    test a second copy of the registry (one did)."""
    old = sorted({m for m, _ in _imported(path, "x") if m.split(".")[0] in OLD_NAMES})
    assert old == [], f"{path.relative_to(ROOT)} imports {old}: use phantom.<name>"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_floors_point_down(module):
    """floor < models < analysis < workers < orchestrator < testing helpers < API and CLI."""
    mine = floor(module)
    up = sorted(t for t in _targets(module) if floor(t) > mine)
    assert up == [], f"{module} ({FLOOR_NAMES[mine]}) imports from above: " + ", ".join(
        f"{t} ({FLOOR_NAMES[floor(t)]})" for t in up)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if floor(m) == FLOOR_NAMES.index("top")))
def test_the_api_and_the_cli_enter_each_layer_through_its_face(module):
    """The top floor calls one entry point per layer, its face (``phantom.orchestrator``), never
    a module behind it (``phantom.orchestrator.runner``)."""
    behind = sorted(t for t in _targets(module) if any(t.startswith(layer + ".") for layer in LAYERS))
    assert behind == [], f"{module} reaches behind a face: {behind}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_of_another_package(module):
    """`from phantom.workers.models import _hub_cached` in orchestrator/ reached past a package's face."""
    own = package_of(module)

    def private(m, n):
        names = [*m.split(".")[1:], n or ""]
        return any(x.startswith("_") and not x.startswith("__") for x in names)

    bad = [f"{m}.{n}" if n else m for m, n in _imported(MODULES[module], module)
           if m.split(".")[0] == "phantom" and package_of(m) != own and private(m, n)]
    assert bad == [], f"{module} imports private {bad}"


def test_no_import_cycle():
    """No module reaches itself through imports (figures -> figures_arch -> figures was one)."""
    graph = {module: _targets(module) for module in MODULES}
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


LIGHT = [  # (what is imported, what it must not load)
    ("phantom.errors", ["phantom.api", "phantom.orchestrator", "phantom.analysis", "phantom.workers", "duckdb"]),
    ("phantom", ["phantom.api", "phantom.orchestrator", "phantom.analysis", "phantom.workers", "duckdb", "torch"]),
    ("phantom.workers", ["torch", "transformers", "phantom.workers.trial"]),
    ("phantom.orchestrator", ["ray", "torch", "phantom.orchestrator.runner"]),
    ("phantom.analysis", ["duckdb", "matplotlib", "phantom.analysis.views"]),
]


@pytest.mark.parametrize("module,heavy", LIGHT, ids=[m for m, _ in LIGHT])
def test_a_face_is_lazy(module, heavy):
    """Importing a face loads nothing behind it: ``import phantom.errors`` does not load the API,
    the orchestrator and the analysis (a fresh interpreter, so nothing is loaded already)."""
    code = f"import sys, {module}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == []


@pytest.mark.parametrize("face", ["phantom", *LAYERS])
def test_every_name_a_face_offers_is_there(face):
    import importlib
    import inspect

    mod = importlib.import_module(face)
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert missing == []
    # a name that is also a module behind the face would be the module once that is imported
    assert [n for n in mod.__all__ if f"{face}.{n}" in MODULES and not inspect.ismodule(getattr(mod, n))] == []


# ----------------------------------------------------------------------------------------------
# typed at every boundary (issue 29)


def _calls(module: str):
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Call):
            yield node


def test_no_dict_crosses_from_the_orchestrator_to_a_worker_or_back():
    """The trainable reads Tune's config only as a UnitTask and reports only UnitReports; the
    engine builds Tune's param_space only from a UnitTask."""
    trainable = ast.parse(MODULES["phantom.orchestrator.trainable"].read_text())
    reads = [ast.unparse(n) for n in ast.walk(trainable)
             if isinstance(n, (ast.Subscript, ast.Attribute)) and ast.unparse(n).startswith("config")
             and isinstance(getattr(n, "value", None), ast.Name) and n.value.id == "config"]
    assert reads == [], f"the trainable reads its config by hand: {reads}"
    handed = [ast.unparse(c) for c in _calls("phantom.orchestrator.trainable") if "config" in [
        a.id for a in c.args if isinstance(a, ast.Name)]]
    assert handed == ["UnitTask.from_dict(config)"], handed
    reports = [c for c in _calls("phantom.orchestrator.trainable") if ast.unparse(c.func).endswith("tune.report")]
    assert reports and all(ast.unparse(c.args[0]).endswith(".to_dict()") and "UnitReport" in ast.unparse(c.args[0])
                           or ast.unparse(c.args[0]) == "self.now.to_dict()" for c in reports), \
        [ast.unparse(c) for c in reports]
    spaces = [ast.unparse(k.value) for c in _calls("phantom.orchestrator.engine") for k in c.keywords
              if k.arg == "param_space"]
    assert spaces and all(".param_space(" in s and "UnitTask" in s for s in spaces), spaces


def test_every_parquet_schema_comes_from_one_row_type():
    from phantom import schema

    rows = {"STEP_SCHEMA": schema.StepRow, "TRIAL_SCHEMA": schema.TrialRecord,
            "GEOMETRY_SCHEMA": schema.GeometryRow, "SKIPPED_SCHEMA": schema.SkippedRow}
    for name, row in rows.items():
        assert getattr(schema, name).equals(schema.schema_of(row)), name
    built = sorted(f"{m}: {ast.unparse(c)[:60]}" for m in MODULES if m != "phantom.schema" and floor(m) != FLOOR_NAMES.index("testing")
                   for c in _calls(m) if ast.unparse(c.func) in ("pa.schema", "pyarrow.schema", "pa.field"))
    assert built == [], "a schema written by hand: " + "; ".join(built)
