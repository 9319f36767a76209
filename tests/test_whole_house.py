"""The house as a whole: module sizes, private names, import cycles (issue 20)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("phantom", "models", "workers", "orchestrator", "analysis")
LIMIT = 450  # lines; a module past it is usually two concepts (STYLE.md)


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()
SOURCES = sorted(p for d in ("bench", "scripts", "docs", *PACKAGES) if (ROOT / d).is_dir()
                 for p in (ROOT / d).rglob("*.py"))


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


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_of_another_package(module):
    """`from workers.models import _hub_cached` in orchestrator/ reached past a package's face."""
    own = module.split(".")[0]

    def private(m, n):
        names = [*m.split(".")[1:], n or ""]
        return any(x.startswith("_") and not x.startswith("__") for x in names)

    bad = [f"{m}.{n}" if n else m for m, n in _imported(MODULES[module], module)
           if m.split(".")[0] in PACKAGES and m.split(".")[0] != own and private(m, n)]
    assert bad == [], f"{module} imports private {bad}"


def test_no_import_cycle():
    """No module reaches itself through imports (figures -> figures_arch -> figures was one)."""
    graph = {}
    for module, path in MODULES.items():
        deps = set()
        for m, n in _imported(path, module):
            for cand in (f"{m}.{n}" if n else None, m):
                if cand in MODULES:
                    deps.add(cand)
                    break
        graph[module] = deps - {module}
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
