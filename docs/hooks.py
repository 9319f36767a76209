"""MkDocs hook: the reference pages that are generated from the code at build time.

A page asks for a generated block with an HTML comment on a line of its own (invisible where
the Markdown is read as is, e.g. on GitHub)::

    <!-- phantom:generate cli -->

and :func:`on_page_markdown` replaces it with the block. The blocks read the code itself, so
they cannot drift from it:

- ``cli``: every ``phantom`` subcommand's ``--help``, from the argparse parsers
  (:func:`phantom.cli.build_parser`);
- ``sweep-keys``: every sweep file key, from the configuration dataclasses
  (:class:`phantom.orchestrator.config.SweepConfig` and the dataclasses it nests): type, default, the
  field's ``help`` metadata and the dataclass docstring;
- ``views`` / ``helper-views``: the SQL views of :data:`phantom.analysis.views.REGISTRY`, each with
  its docstring, what it reads and its columns (``DESCRIBE`` on an in-memory connection over a
  one-trial synthetic folder, :mod:`phantom.analysis.testing`);
- ``report``: the report's figures and tables, from :data:`phantom.analysis.report.REPORT` (key,
  caption, the views each reads, the Python API's method);
- ``step-columns`` / ``trial-columns``: the Parquet column contract (:mod:`phantom.schema`);
- ``sweep-files``: each shipped ``sweeps/*.yaml`` with the comment block that opens it;
- ``quantities-<section>`` / ``quantity-columns`` / ``science-claims``: the science page
  (docs/reference/science.md) from ``docs/science.py``'s table: every quantity of a section with
  the functions that compute it and the view columns that hold it (each imported / looked up at
  build time: a missing one fails the build), the same turned into column → quantity, and the
  claims of :data:`phantom.analysis.views.claims.CLAIMS` with the views and quantities each is
  judged on (the build fails when docs/reference/claims.md lists other claims).

This file is also imported by ``tests/test_docs.py`` (:func:`helper_view`,
:func:`cli_commands`) and ``tests/test_science.py`` (:func:`science`, :func:`described`).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import re
import shutil
import sys
import tempfile
import types
import typing
from functools import cache, partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the checkout's packages, whatever the working directory
    sys.path.insert(0, str(ROOT))

MARKER = re.compile(r"^<!-- phantom:generate ([a-z-]+) -->$", re.MULTILINE)


# ----------------------------------------------------------------------------------------------
# the CLI


def _walk(parser: argparse.ArgumentParser, path: list[str], summary: str = ""):
    yield path, parser, summary
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield from _walk(sub, path + [name], helps.get(name, ""))


def cli_commands() -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(command line, parser, one-line help) for ``phantom`` and every subcommand, depth first."""
    from phantom.cli import build_parser

    return [(" ".join(p), parser, s) for p, parser, s in _walk(build_parser(), ["phantom"])]


def _help_text(parser: argparse.ArgumentParser) -> str:
    # a fixed width, so the page does not depend on the terminal that builds it
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return parser.format_help().rstrip()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def gen_cli() -> str:
    commands = cli_commands()
    out = ["| command | what it does |", "| --- | --- |"]
    for line, _, summary in commands[1:]:
        out.append(f"| [`{line}`](#{_slug(line)}) | {_cell(summary)} |")
    for line, parser, summary in commands:
        out += ["", f"## `{line}` {{#{_slug(line)}}}", ""]
        if summary:
            out += [" ".join(summary.split()), ""]
        out += ["```text", _help_text(parser), "```"]
    return "\n".join(out)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _text(text: str) -> str:
    """A table cell of prose: also a literal ``*`` (θ*_shape is not emphasis)."""
    return _cell(text).replace("*", "\\*")


# ----------------------------------------------------------------------------------------------
# sweep file keys


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        text = " or ".join(_type_name(a) for a in inner)
        return text + (" or null" if len(inner) < len(args) else "")
    if origin is tuple:
        return f"list of {_type_name(args[0])}" if args else "list"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):  # a vocabulary (phantom.protocols.Protocol)
        return "string"
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(tp, getattr(tp, "__name__", str(tp)))


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(value):
            return "(see below)"
    else:
        return "**required**"
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return "`[" + ", ".join(map(str, value)) + "]`"
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def _doc(cls) -> str:
    return " ".join((cls.__doc__ or "").split())


def gen_sweep_keys() -> str:
    from phantom.orchestrator.config import ProtocolRates, SweepConfig

    hints = typing.get_type_hints(SweepConfig)
    out = [_doc(SweepConfig), "", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    nested = []
    for f in dataclasses.fields(SweepConfig):
        tp = hints[f.name]
        help_ = f.metadata.get("help", "")
        if dataclasses.is_dataclass(tp):
            nested.append((f.name, tp))
            help_ = help_ or f"see [`{f.name}:`](#{f.name})"
        if f.name == "learning_rates":
            nested.append((f.name, ProtocolRates))
            help_ += "; see [`learning_rates:`](#learning_rates)"
        out.append(f"| `{f.name}` | {_cell(_type_name(tp))} | {_default(f)} | {_cell(help_)} |")
    for name, cls in nested:
        sub_hints = typing.get_type_hints(cls)
        out += ["", f"### `{name}:` {{#{name}}}", "", f"`{cls.__module__}.{cls.__name__}`: {_doc(cls)}", "",
                "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for f in dataclasses.fields(cls):
            key = f"{name}.{f.name}"
            if cls is ProtocolRates:
                key = f"{name}.{f.name.replace('_', '-')}"
            out.append(f"| `{key}` | {_cell(_type_name(sub_hints[f.name]))} | {_default(f)} | "
                       f"{_cell(f.metadata.get('help', ''))} |")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# the views


def helper_view(view) -> bool:
    """A view the registry marks ``internal``: an intermediate step other views read. Users
    query the views that read it instead."""
    return view.internal


def _views():
    from phantom.analysis.views import REGISTRY  # the face: every view registered

    return REGISTRY.order()


@cache
def _columns() -> dict[str, list[tuple[str, str]]]:
    """Every view's columns: DESCRIBE over a results folder holding one synthetic trial."""
    from phantom.analysis import db, testing
    from phantom.analysis.settings import AnalysisSettings

    folder = tempfile.mkdtemp(prefix="phantom-docs-")
    try:
        testing.write_trial(folder, testing.step_table("t0", [-0.2, -0.1, 0.1, 0.2]),
                            testing.trial_record("t0", steps=3))
        with db.connect([folder], AnalysisSettings()) as conn:  # the settings analyze uses by default
            return {v.name: [(r[0], r[1]) for r in conn.execute(f"DESCRIBE {v.name}").fetchall()]
                    for v in _views()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _view_block(v, prefix: str) -> list[str]:
    doc = " ".join((v.build.__doc__ or "").split())
    kind = "raw (reads the result files)" if v.kind == "raw" else "derived"
    if v.snapshot:
        kind += "; written by `phantom analyze` as `analysis/" + v.name + ".parquet` / `.csv`"
    reads = ", ".join(f"[`{r}`](#{'helper-view' if helper_view(_by_name()[r]) else 'view'}-{r})" for r in v.reads)
    cols = ", ".join(f"`{name}` {typ.lower()}" for name, typ in _columns()[v.name])
    return ["", f"### `{v.name}` {{#{prefix}-{v.name}}}", "", doc, "",
            f"- **kind**: {kind}", f"- **reads**: {reads or 'the result files only'}",
            f"- **columns** ({len(_columns()[v.name])}): {cols}"]


@cache
def _by_name():
    return {v.name: v for v in _views()}


def gen_views() -> str:
    out: list[str] = []
    for v in _views():
        if not helper_view(v):
            out += _view_block(v, "view")
    return "\n".join(out)


def gen_helper_views() -> str:
    out: list[str] = []
    for v in _views():
        if helper_view(v):
            out += _view_block(v, "helper-view")
    return "\n".join(out)


def gen_report() -> str:
    """The report's figures, then its tables, in the report's order."""
    from phantom.analysis.report import REPORT

    def reads(names) -> str:
        return ", ".join(f"[`{r}`](../reference/views.md#{'helper-view' if helper_view(_by_name()[r]) else 'view'}-{r})"
                         for r in names)

    out = ["| figure | caption | reads | Python API |", "| --- | --- | --- | --- |"]
    for f in REPORT.figures.values():
        method = f"`res.{f.method}()`" if f.method else f"`res.figure(\"{f.key}\")`"
        out.append(f"| `{f.key}` | {_text(f.caption)}{' (when the folder has it)' if f.optional else ''} | "
                   f"{reads(f.reads)} | {method} |")
    out += ["", "| table | caption | reads |", "| --- | --- | --- |"]
    for t in REPORT.tables.values():
        out.append(f"| `{t.key}` | {_text(t.caption)} | {reads(t.reads)} |")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# the Parquet contract


def gen_step_columns() -> str:
    from phantom.schema import StepRow, column_name

    out = [_doc(StepRow), "", "| # | column | Arrow type | meaning |", "| --- | --- | --- | --- |"]
    for i, f in enumerate(dataclasses.fields(StepRow), 1):
        out.append(f"| {i} | `{column_name(f)}` | {f.metadata['arrow']} | {_cell(f.metadata.get('doc', ''))} |")
    return "\n".join(out)


def gen_trial_columns() -> str:
    from phantom.schema import TrialRecord

    out = [_doc(TrialRecord), "", "| # | column | Arrow type | meaning |", "| --- | --- | --- | --- |"]
    for i, f in enumerate(dataclasses.fields(TrialRecord), 1):
        out.append(f"| {i} | `{f.name}` | {f.metadata['arrow']} | {_cell(f.metadata.get('doc', ''))} |")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# the sweep files shipped


def gen_sweep_files() -> str:
    """Each ``sweeps/*.yaml`` with the comment block that opens it (its own description)."""
    out: list[str] = []
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            lines.append(line[2:] if line.startswith("# ") else line[1:])
        out += ["", f"## `sweeps/{path.name}` {{#{_slug(path.stem)}}}", "", "```text", *lines, "```"]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# the science page (docs/reference/science.md): its quantity table and the checks are
# docs/science.py; here, the Markdown


@cache
def science_module():
    """docs/science.py, loaded by path as MkDocs loads this file (``docs/`` is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("phantom_docs_science", Path(__file__).with_name("science.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@cache
def science():
    """docs/science.py, checked: the build fails here if its table names a function, view or
    column the code lacks, or if docs/reference/claims.md and the claims view list different
    claims."""
    module = science_module()
    problems = module.quantity_problems(described()) + module.claim_problems()
    if problems:
        raise ValueError("docs/science.py and the code disagree:\n  " + "\n  ".join(problems))
    return module


@cache
def described() -> dict[str, list[str]]:
    """Every view's column names, as DESCRIBE gives them."""
    return {view: [name for name, _ in cols] for view, cols in _columns().items()}


def _view_link(name: str) -> str:
    """The view's entry in the views reference (from a page beside it)."""
    anchor = "helper-view" if helper_view(_by_name()[name]) else "view"
    return f"[`{name}`](views.md#{anchor}-{name})"


def _quantity_link(q, section: bool = False) -> str:
    return f"[{_text(q.symbol)}](#q-{q.key})" + (f" (§{q.section})" if section else "")


def gen_quantities(section: str) -> str:
    """The quantities of one section of the science page ("3"): symbol (linked to its
    definition), unit, the functions that compute it, the view columns that hold it."""
    out = ["| quantity | name | § | unit | computed by | held in (view: columns) |",
           "| --- | --- | --- | --- | --- | --- |"]
    for q in science().QUANTITIES:
        if q.section.split(".")[0] != section:
            continue
        by_view: dict[str, list[str]] = {}
        for loc in q.where:
            view, _, column = loc.partition(".")
            by_view.setdefault(view, []).append(f"`{column}`")
        where = " · ".join(f"{_view_link(v)}: {', '.join(cols)}" for v, cols in by_view.items())
        functions = "<br>".join(f"`{f}`" for f in q.functions)
        out.append(f"| {_quantity_link(q)} | {_text(q.name)} | §{q.section} | {_cell(q.unit)} | {functions} | "
                   f"{where or '— (not stored)'} |")
    return "\n".join(out)


def gen_quantity_columns() -> str:
    """Every view column that holds a quantity, in the views' order: the quantity tables turned
    around."""
    held: dict[tuple[str, str], list] = {}
    for q in science().QUANTITIES:
        for loc in q.where:
            held.setdefault(tuple(loc.split(".", 1)), []).append(q)
    out = ["| view | column | quantity |", "| --- | --- | --- |"]
    for v in _views():
        for column in described()[v.name]:
            if (v.name, column) in held:
                links = ", ".join(_quantity_link(q, section=True) for q in held[v.name, column])
                out.append(f"| {_view_link(v.name)} | `{column}` | {links} |")
    return "\n".join(out)


def gen_science_claims() -> str:
    """The claims view's claims (phantom.analysis.views.claims.CLAIMS): what the paper says and
    where, the views and quantities each is judged on, how the groups combine."""
    from phantom.analysis.views.claims import CLAIMS

    s = science()
    out = ["| # | claim | the paper | judged on | quantities | combined |", "| --- | --- | --- | --- | --- | --- |"]
    for c in CLAIMS:
        views = ", ".join(_view_link(v) for v in s.claim_reads(c))
        quantities = ", ".join(_quantity_link(q) for q in s.claim_quantities(c)) or "—"
        rule = "some group shows it" if c.combine == "any" else "no group contradicts it"
        paper = re.sub(r"(?<!\w)§", "paper §", c.paper)  # on this page a bare § is the page's own
        out.append(f"| {c.ord} | **`{c.id}`**: {_text(c.claim)} | {_text(paper)} | {views} | {quantities} | {rule} |")
    return "\n".join(out)


GENERATORS = {
    "sweep-files": gen_sweep_files,
    "cli": gen_cli,
    "sweep-keys": gen_sweep_keys,
    "views": gen_views,
    "helper-views": gen_helper_views,
    "report": gen_report,
    "step-columns": gen_step_columns,
    "trial-columns": gen_trial_columns,
    # docs/reference/science.md
    **{f"quantities-{name}": partial(gen_quantities, number)
       for name, number in science_module().SECTIONS.items()},
    "quantity-columns": gen_quantity_columns,
    "science-claims": gen_science_claims,
}


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001  (MkDocs hook)
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_path}: unknown generated block '{name}' "
                             f"(known: {', '.join(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)
