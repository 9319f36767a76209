"""Read a sweep YAML: ``include:`` chains (local keys win, cycles raise) and ``--set`` overrides.

The result is a plain dict for :meth:`SweepConfig.from_dict` plus where the sentences file is.
Every problem is a one-line :class:`ConfigError` naming the file and the key. A sweep is a path
or the name of a built-in sweep (:mod:`phantom.sweeps`: :func:`locate_sweep`); :func:`builtin`
lists those, :func:`init_sweep` copies one, with the files it reads, to edit.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from phantom import sweeps
from phantom.errors import ConfigError, suggest
from phantom.orchestrator.config import SweepConfig


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float (YAML 1.1 demands ``1.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML{at}: {problem}") from None


def _merge(base: dict, over: dict) -> dict:
    """Local keys win; mappings merge key by key, everything else (lists too) is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_tree(path: Path, _chain: tuple[Path, ...] = ()) -> dict:
    """The merged mapping of ``path`` and everything it includes (paths relative to it)."""
    path = path.resolve()
    if path in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, path))
        raise ConfigError(f"include cycle: {cycle}")
    if not path.is_file():
        where = f" (included from {_chain[-1].name})" if _chain else ""
        raise ConfigError(f"sweep file not found: {path}{where}")
    doc = parse_yaml(path.read_text(encoding="utf-8"), path.name)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path.name}: a sweep file should be a mapping of keys, got {type(doc).__name__}")
    includes = doc.pop("include", None)
    if includes is None:
        return doc
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"{path.name}: `include` should be a file name or a list of them")
    merged: dict = {}
    for inc in includes:
        merged = _merge(merged, read_tree(path.parent / inc, (*_chain, path)))
    return _merge(merged, doc)


def apply_set(data: dict, assignment: str) -> dict:
    """``dotted.key=YAML``: set one key (creating mappings on the way); the value is YAML."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set expects dotted.key=value, got '{assignment}'")
    value = parse_yaml(text, f"--set {key}") if text.strip() else None
    out = copy.deepcopy(data)
    node = out
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, str) and part == "sentences":
            child = node[part] = {"file": child}
        elif not isinstance(child, dict):
            raise ConfigError(f"--set {key}: `{'.'.join(parts[: i + 1])}` is not a mapping")
        node = child
    node[parts[-1]] = value
    return out


def resolve_sentences_file(file: str, sweep_file: Path | None) -> Path:
    """Absolute path of the sentences file: as given if absolute, else next to the sweep file,
    else relative to the current directory."""
    p = Path(file).expanduser()
    if p.is_absolute():
        return p
    if sweep_file is not None and (sweep_file.parent / p).is_file():
        return (sweep_file.parent / p).resolve()
    return Path(os.getcwd(), p).resolve()


def locate_sweep(spec: str | os.PathLike) -> Path:
    """The file of a sweep given as a path (``sweeps/lr50.yaml``, ``my.yaml``) or as the name of
    a built-in sweep (``lr50``); a path that exists wins. A ConfigError names both kinds."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    shipped = sweeps.path(str(spec))
    if shipped is not None:
        return shipped
    names = sweeps.names()
    stem = Path(str(spec)).name.removesuffix(sweeps.SUFFIX)
    hint = f" Did you mean '{stem}'?" if stem in names else suggest(stem, names)
    raise ConfigError(f"sweep file not found: {spec}.{hint} Built-in sweeps: {', '.join(names)} "
                      "(`phantom sweeps` lists them)")


def builtin() -> list[tuple[str, str]]:
    """(name, description) of each built-in sweep, by name."""
    out = []
    for name in sweeps.names():
        described = read_tree(sweeps.path(name)).get("description")
        out.append((name, str(described) if described else ""))
    return out


def init_sweep(name: str, dest: str | os.PathLike = ".", *, force: bool = False) -> list[Path]:
    """Copy the built-in sweep ``name`` into the folder ``dest``, with the files it reads (the
    files it includes and its sentences file), to edit; returns the files written. An existing
    file is refused (nothing is written) unless ``force``."""
    source = sweeps.path(name)
    if source is None:
        from phantom.errors import unknown

        raise ConfigError(unknown("built-in sweep", name, sweeps.names()))
    files = _reads(source)
    dest = Path(dest).expanduser()
    targets = [dest / f.name for f in files]
    clash = [str(t) for t in targets if t.exists()]
    if clash and not force:
        raise ConfigError(f"{', '.join(clash)} {'exists' if len(clash) == 1 else 'exist'} already: edit, or pass --force to overwrite")
    dest.mkdir(parents=True, exist_ok=True)
    for f, target in zip(files, targets):
        target.write_bytes(f.read_bytes())
    return targets


def _reads(path: Path) -> list[Path]:
    """``path``, the files it includes (recursively) and its sentences file, once each: the
    built-in sweeps sit in one folder and name one another by file name."""
    out: list[Path] = []

    def visit(p: Path) -> None:
        if p in out:
            return
        out.append(p)
        includes = (parse_yaml(p.read_text(encoding="utf-8"), p.name) or {}).get("include") or []
        for inc in [includes] if isinstance(includes, str) else includes:
            visit(p.parent / inc)

    visit(path)
    file = SweepConfig.from_dict(read_tree(path)).sentences.file
    sentences = resolve_sentences_file(file, path)
    if sentences.parent == path.resolve().parent and sentences.is_file() and sentences not in out:
        out.append(sentences)
    return out


def load_sweep(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> tuple[SweepConfig, Path]:
    """(the validated sweep, the absolute sentences file) for a sweep YAML — a path or a
    built-in sweep's name — and ``--set``s."""
    path = locate_sweep(path)
    data = read_tree(path)
    for assignment in overrides:
        data = apply_set(data, assignment)
    try:
        sweep = SweepConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None
    sentences = resolve_sentences_file(sweep.sentences.file, path.resolve())
    if not sentences.is_file():
        raise ConfigError(f"{path.name}: `sentences.file` not found: {sweep.sentences.file}")
    return sweep, sentences


@contextlib.contextmanager
def open_folder(path: str) -> Iterator[tuple[SweepConfig, Path, str]]:
    """(sweep, sentences file, storage root) of an existing sweep folder, for ``resume``. A
    local folder is read in place; an object store's files are copied to a temporary folder
    that is removed on exit."""
    from phantom import layout
    from phantom.errors import StorageError
    from phantom.storage import Store

    store = Store.open(path)
    if not store.exists(layout.SWEEP_FILE):
        raise StorageError(f"'{store.uri}' is not a sweep folder (no {layout.SWEEP_FILE})")
    name = store.name
    root = store.parent_uri()  # the storage root, its options kept (a URI's query string)
    with contextlib.ExitStack() as stack:
        if store.is_local:
            folder = Path(store.root)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="phantom-sweep-")))
            for file in (layout.SWEEP_FILE, layout.SENTENCES_FILE):
                (folder / file).write_text(store.read_text(file), encoding="utf-8")
        sweep, sentences = load_sweep(folder / layout.SWEEP_FILE, [f"name={name}"])
        yield sweep, sentences, root
