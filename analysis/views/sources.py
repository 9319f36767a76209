"""Which trials the analysis sees: results folders, their plans, and one record per trial.

The raw views read the Parquet in place (globs ``steps/*.parquet``, ``trials/*.parquet``,
``geometry/*.parquet`` of each folder; phantom.layout names them):

- ``folders``: one row per results folder opened (``source`` = its position), with its plan.
- ``plan``: the trial ids of each folder's ``plan.json`` (the sweep *is* its current plan).
- ``trial_copies``: every trial record of every folder, typed as phantom.schema.TRIAL_SCHEMA
  whichever version wrote it.
- ``trial_records``: one record per trial id (ids are content hashes, so two sweeps that share
  a grid point hold the same trial): a result before an error, then the latest ``finished_at``,
  then the folder given first. ``in_plan``: the id is in the union of the folders' plans, or
  the record comes from a folder without a plan (``phantom trial --out DIR``).
- ``trials``: the records analysed: those ``in_plan`` (all of them with ``--all-trials``), with
  the ``precision`` label of each (phantom.analysis.views.precision).
- ``extra_trials``: complete records outside every plan (left on disk, listed, not analysed).
- ``steps``: the step rows of ``trials``, each read *only from the folder of the kept record*,
  so every (trial_id, step, context_id) appears once however the folders overlap.
- ``geometry_rows`` / ``geometry`` / ``geometry_sentences``: ``phantom geometry`` output.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from phantom.errors import StorageError
from phantom.layout import GEOMETRY_DIR, PARTS_DIR, PLAN_FILE, STEPS_DIR, TRIALS_DIR
from phantom.outcomes import TrialStatus
from phantom.schema import GEOMETRY_SCHEMA, STEP_SCHEMA, TRIAL_SCHEMA
from phantom.results import LOOSE, committed_parts, keep_order_sql, part_files
from phantom.storage import Store

from phantom.analysis.registry import ViewContext, view
from phantom.analysis.schema import LABEL_SQL, MODEL_COLUMNS, SENTENCE_COLUMNS, empty_select


@dataclass(frozen=True)
class Source:
    """One results folder: its position (``source`` in the views) and its plan, if any."""

    index: int
    store: Store
    plan_name: str | None = None
    planned: bool = False  # plan.json exists: only its trial ids are the sweep
    parts: tuple[str, ...] = ()  # its committed parts (phantom.results), listed once

    @property
    def location(self) -> str:
        """The folder as shown (``folders.path``) and as reopened: its path, or its URI."""
        return self.store.root if self.store.is_local else self.store.uri

    def file(self, *parts: str) -> str:
        """What DuckDB reads (:meth:`Store.duckdb_path`)."""
        return self.store.duckdb_path(*parts)


# ----------------------------------------------------------------------------------------------
# results folders


def _has_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def resolve_results(paths: Iterable[str | os.PathLike]) -> list[Store]:
    """Each path is a results folder (has ``trials/`` or ``steps/``), a folder of them (a
    storage root holding several sweeps), or a local glob of either. A folder reached twice
    (given twice, or given and inside a root given too) is opened once. StorageError for a
    path with no results."""
    stores: list[Store] = []
    for raw in paths:
        text = os.fspath(raw)
        if "://" not in text and _has_glob(text):
            matches = sorted(glob.glob(os.path.expanduser(text)))
            folders = [m for m in matches if os.path.isdir(m)]
            if not folders:
                raise StorageError(f"no results folder matches '{text}'")
            for m in folders:
                stores.extend(_expand(Store.open(m), strict=False))
            continue
        stores.extend(_expand(Store.open(text), strict=True))
    if not stores:
        raise StorageError("no results folder given (or the globs matched folders without results)")
    seen: set[str] = set()
    unique = []
    for s in stores:
        key = os.path.realpath(s.root) if s.is_local else s.uri
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return unique


def _is_results(store: Store, *parts: str) -> bool:
    # loose records, or compacted parts only (on an object store an emptied folder is gone)
    return any(store.exists(*parts, folder) for folder in (TRIALS_DIR, STEPS_DIR, PARTS_DIR))


def _expand(store: Store, strict: bool) -> list[Store]:
    if _is_results(store):
        return [store]
    if not store.exists():
        raise StorageError(f"no such results folder: {store.uri}")
    subs = [store.child(info.base_name) for info in _subfolders(store) if _is_results(store, info.base_name)]
    if not subs and strict:
        raise StorageError(f"no results in {store.uri}: expected a trials/ or parts/ folder (or sweeps that have one)")
    return subs


def _subfolders(store: Store):
    import pyarrow.fs as pafs

    sel = pafs.FileSelector(store.root, allow_not_found=True)
    return sorted((i for i in store.fs.get_file_info(sel) if i.type == pafs.FileType.Directory),
                  key=lambda i: i.base_name)


def open_sources(stores: Sequence[Store]) -> tuple[Source, ...]:
    """Number the folders and read their plans (StorageError for an unreadable plan.json)."""
    out = []
    for i, store in enumerate(stores):
        name, planned = None, False
        if store.exists(PLAN_FILE):
            try:
                plan = json.loads(store.read_text(PLAN_FILE))
                if not isinstance(plan.get("trials"), list):
                    raise ValueError("no list of trial ids under 'trials'")
            except (ValueError, AttributeError, OSError) as exc:
                raise StorageError(f"cannot read {store.child(PLAN_FILE).uri}: {exc}") from None
            name, planned = plan.get("name"), True
        out.append(Source(i, store, name, planned, tuple(committed_parts(store))))
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# SQL helpers


def quote(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _read_parquet(globs: list[str], union: bool) -> str:
    files = "[" + ", ".join(quote(g) for g in globs) + "]"
    return f"read_parquet({files}, union_by_name = {str(union).lower()})"


def _globs(src: Source, folder: str) -> list[str]:
    return [src.file(folder, "*.parquet")] if src.store.list(folder) else []


# ----------------------------------------------------------------------------------------------
# views over the files


@view("lr_ref", kind="raw")
def lr_ref(ctx: ViewContext) -> str:
    """η_ref per protocol (settings): the standard rate of science §5.1"""
    rates = ", ".join(f"({quote(p)}, {r!r})" for p, r in ctx.settings.lr_ref)
    return f"SELECT * FROM (VALUES {rates}) AS v(protocol, lr_ref)"


@view("folders", kind="raw")
def folders(ctx: ViewContext) -> str:
    """One row per results folder: source, path, planned (has plan.json), plan_name."""
    if not ctx.sources:
        return ("SELECT CAST(NULL AS INTEGER) AS source, CAST(NULL AS VARCHAR) AS path, "
                "CAST(NULL AS BOOLEAN) AS planned, CAST(NULL AS VARCHAR) AS plan_name LIMIT 0")
    rows = ", ".join(
        f"({s.index}, {quote(s.location)}, {str(s.planned).lower()}, "
        f"{quote(s.plan_name) if s.plan_name is not None else 'NULL'})"
        for s in ctx.sources
    )
    return (f"SELECT CAST(source AS INTEGER) AS source, path, planned, CAST(plan_name AS VARCHAR) AS plan_name "
            f"FROM (VALUES {rows}) AS v(source, path, planned, plan_name)")


@view("plan", kind="raw")
def plan(ctx: ViewContext) -> str:
    """(source, trial_id) for every id of every plan.json, read live (a search extends it)."""
    parts = [
        f"SELECT CAST({s.index} AS INTEGER) AS source, unnest(trials) AS trial_id "
        f"FROM read_json({quote(s.file(PLAN_FILE))}, columns = {{name: 'VARCHAR', trials: 'VARCHAR[]'}})"
        for s in ctx.sources if s.planned
    ]
    if not parts:
        return "SELECT CAST(NULL AS INTEGER) AS source, CAST(NULL AS VARCHAR) AS trial_id LIMIT 0"
    return "\nUNION ALL\n".join(parts)


@view("trial_copies", kind="raw")
def trial_copies(ctx: ViewContext) -> str:
    """Every trial record of every folder, loose or compacted (phantom.results), with its
    ``source`` and ``part`` (``''`` for a loose record), typed as TRIAL_SCHEMA."""
    typed = empty_select(TRIAL_SCHEMA).replace(
        "SELECT ", "SELECT CAST(NULL AS INTEGER) AS source, CAST(NULL AS VARCHAR) AS part, ", 1)
    parts = [f"SELECT * FROM ({typed})"]
    for s in ctx.sources:
        globs = _globs(s, TRIALS_DIR)
        if globs:
            # BY NAME: records written before a column existed get NULL there
            parts.append(f"SELECT CAST({s.index} AS INTEGER) AS source, {quote(LOOSE)} AS part, * "
                         f"FROM {_read_parquet(globs, True)}")
        for part in s.parts:
            parts.append(f"SELECT CAST({s.index} AS INTEGER) AS source, {quote(part)} AS part, * "
                         f"FROM {_read_parquet([s.file(*part_files(part)[1])], False)}")
    return "\nUNION ALL BY NAME\n".join(parts)


@view("trial_records", kind="raw", reads=("trial_copies", "plan", "folders"))
def trial_records(ctx: ViewContext) -> str:
    """One record per trial id, and whether the folders' plans include it (``in_plan``)."""
    return f"""
WITH scope AS (
    -- the union of the plans; a folder without plan.json contributes every trial it holds
    SELECT trial_id FROM plan
    UNION
    SELECT c.trial_id FROM trial_copies c JOIN folders f USING (source) WHERE NOT f.planned
),
kept AS (
    -- the same id in several folders (or loose and in a part) is the same trial: keep one
    -- record (phantom.results: a result before an error, then the latest finished_at, then
    -- the folder given first, then a loose copy before a part)
    SELECT * FROM trial_copies
    QUALIFY row_number() OVER (PARTITION BY trial_id ORDER BY {keep_order_sql("source")}) = 1
)
SELECT kept.*, trial_id IN (SELECT trial_id FROM scope) AS in_plan
FROM kept
"""


def _analysed(ctx: ViewContext) -> str:
    return "true" if ctx.settings.all_trials else "in_plan"


@view("trials", kind="raw", reads=("trial_records",))
def trials(ctx: ViewContext) -> str:
    """The trial records analysed: the plans' trials (every record with --all-trials), each
    with its precision label (phantom.analysis.views.precision)."""
    return f"SELECT * EXCLUDE (part), {LABEL_SQL} AS precision FROM trial_records WHERE {_analysed(ctx)}"


@view("extra_trials", reads=("trial_records", "folders"))
def extra_trials(ctx: ViewContext) -> str:
    """Complete records that no plan names (an older plan's trials): listed, not analysed."""
    return """
SELECT r.trial_id, f.path AS folder, r.model, r.protocol, r.sentence_id, r.lr, r.seed,
       r.steps, r.status, r.finished_at
FROM trial_records r JOIN folders f USING (source)
WHERE NOT r.in_plan
ORDER BY f.path, r.model, r.protocol, r.sentence_id, r.lr, r.seed, r.trial_id
"""


@view("steps", kind="raw", reads=("trial_records",))
def steps(ctx: ViewContext) -> str:
    """The step rows of ``trials``, each read only from the container of its kept record (its
    loose steps file, or its part's): every (trial_id, step, context_id) once, typed as
    STEP_SCHEMA whichever release wrote them (a column a file lacks is NULL)."""
    kept = f"SELECT trial_id FROM trial_records WHERE {_analysed(ctx)} AND source = {{src}} AND part = {{part}}"
    parts = [f"SELECT * FROM ({empty_select(STEP_SCHEMA)})"]
    for s in ctx.sources:
        globs = _globs(s, STEPS_DIR)
        if globs and _globs(s, TRIALS_DIR):
            # by name: a resumed folder holds files of an earlier release beside today's
            parts.append(f"SELECT * FROM {_read_parquet(globs, True)}\n"
                         f"WHERE trial_id IN ({kept.format(src=s.index, part=quote(LOOSE))})")
        for part in s.parts:
            parts.append(f"SELECT * FROM {_read_parquet([s.file(*part_files(part)[0])], False)}\n"
                         f"WHERE trial_id IN ({kept.format(src=s.index, part=quote(part))})")
    # a steps file without its record (a killed trial, an uncommitted part) is never read
    return "\nUNION ALL BY NAME\n".join(parts)


@view("geometry_rows", kind="raw", internal=True)
def geometry_rows(ctx: ViewContext) -> str:
    """The rows of the newest ``geometry/*.parquet`` of each model (several folders may hold
    one; ties: the file name)."""
    globs = [g for s in ctx.sources for g in _globs(s, GEOMETRY_DIR)]
    if not globs:
        return empty_select(GEOMETRY_SCHEMA)
    files = "[" + ", ".join(quote(g) for g in globs) + "]"
    return f"""
SELECT * EXCLUDE (filename) FROM read_parquet({files}, union_by_name = true, filename = true)
QUALIFY filename = arg_max(filename, (created_at, filename)) OVER (PARTITION BY model)
"""


@view("geometry", kind="raw", reads=("geometry_rows",))
def geometry(ctx: ViewContext) -> str:
    """One row per model: bulk statistics and class."""
    cols = ", ".join(f'"{c}"' for c in MODEL_COLUMNS)
    return f"SELECT DISTINCT ON (model) {cols} FROM geometry_rows ORDER BY model"


@view("geometry_sentences", kind="raw", reads=("geometry_rows",))
def geometry_sentences(ctx: ViewContext) -> str:
    """Per (model, sentence): the inference-only step-0 values."""
    cols = ", ".join(f'"{c}"' for c in SENTENCE_COLUMNS)
    return f"SELECT {cols} FROM geometry_rows WHERE sentence_id IS NOT NULL"
