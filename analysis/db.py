"""Open one or several results folders as a DuckDB connection with the study's views.

The Parquet is read in place (globs over ``steps/*.parquet``, ``trials/*.parquet`` and
``geometry/*.parquet``); nothing is copied into a database. ``steps`` only ever shows rows
of trials whose ``trials/`` record exists: a steps file without its record is the leftover of
a killed trial (phantom.schema) and none of its rows reach a result.

Views, in dependency order: ``lr_ref``, ``trials``, ``steps``, ``geometry_rows``, ``geometry``,
``geometry_sentences``, ``trial_steps``, ``trial_summary`` (analysis.summary),
``reference_trials``, ``shape_fit``, ``eta_c``, ``fits`` (analysis.fits), ``correlation_points``,
``correlations``, ``isolation``, ``stopping``, ``ablation``, ``blind_prediction``
(analysis.tables).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from phantom.errors import QueryError, StorageError
from phantom.layout import GEOMETRY_DIR, STEPS_DIR, TRIALS_DIR
from phantom.schema import STEP_SCHEMA, TRIAL_SCHEMA
from phantom.storage import Store

from analysis import fits, tables
from analysis.schema import GEOMETRY_SCHEMA, MODEL_COLUMNS, SENTENCE_COLUMNS, empty_select
from analysis.settings import AnalysisSettings
from analysis.summary import TRIAL_STEPS_SQL, trial_summary_sql

RAW_VIEWS = ["lr_ref", "trials", "steps", "geometry_rows", "geometry", "geometry_sentences"]
# views computed from the raw ones; `phantom analyze` snapshots each of them to Parquet
DERIVED_VIEWS = ["trial_summary"] + [n for n, _ in fits.VIEWS] + [n for n, _ in tables.VIEWS]
SNAPSHOT_VIEWS = [v for v in DERIVED_VIEWS if v not in ("correlation_points",)]


# ----------------------------------------------------------------------------------------------
# results folders


def resolve_results(paths: Iterable[str | os.PathLike]) -> list[Store]:
    """Each path is a results folder (has ``trials/`` or ``steps/``) or a folder of them (a
    storage root holding several sweeps). Raises StorageError for a path with no results."""
    stores: list[Store] = []
    for path in paths:
        store = Store.open(path)
        if store.exists(TRIALS_DIR) or store.exists(STEPS_DIR):
            stores.append(store)
            continue
        if not store.exists():
            raise StorageError(f"no such results folder: {store.uri}")
        subs = [
            store.child(info.base_name)
            for info in _subfolders(store)
            if store.exists(info.base_name, TRIALS_DIR)
        ]
        if not subs:
            raise StorageError(
                f"no results in {store.uri}: expected a trials/ folder (or sweeps that have one)"
            )
        stores.extend(subs)
    if not stores:
        raise StorageError("no results folder given")
    return stores


def _subfolders(store: Store):
    import pyarrow.fs as pafs

    sel = pafs.FileSelector(store.root, allow_not_found=True)
    return sorted(
        (i for i in store.fs.get_file_info(sel) if i.type == pafs.FileType.Directory),
        key=lambda i: i.base_name,
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def parquet_globs(stores: Sequence[Store], folder: str) -> list[str]:
    """``<root>/<folder>/*.parquet`` for each store that has at least one such file."""
    globs = []
    for store in stores:
        if store.list(folder):
            base = store.path(folder) if store.is_local else f"{store.uri}/{folder}"
            globs.append(f"{base}/*.parquet")
    return globs


def _read(globs: list[str], union: bool) -> str:
    files = "[" + ", ".join(_quote(g) for g in globs) + "]"
    return f"read_parquet({files}, union_by_name = {str(union).lower()})"


# ----------------------------------------------------------------------------------------------
# view definitions


def raw_view_sql(stores: Sequence[Store], settings: AnalysisSettings) -> list[tuple[str, str]]:
    """(name, CREATE VIEW ...) for the views over the Parquet files themselves."""
    rates = ", ".join(f"({_quote(p)}, {r!r})" for p, r in settings.lr_ref)
    out = [
        (
            "lr_ref",
            "CREATE OR REPLACE VIEW lr_ref AS SELECT * FROM "
            f"(VALUES {rates}) AS v(protocol, lr_ref)",
        )
    ]
    trial_globs = parquet_globs(stores, TRIALS_DIR)
    if trial_globs:
        trials = (
            f"SELECT * FROM {_read(trial_globs, union=True)} "
            # the same trial in two folders (ids are content hashes): keep the latest record
            "QUALIFY row_number() OVER (PARTITION BY trial_id ORDER BY finished_at DESC NULLS LAST) = 1"
        )
    else:
        trials = empty_select(TRIAL_SCHEMA)
    out.append(("trials", f"CREATE OR REPLACE VIEW trials AS {trials}"))

    step_globs = parquet_globs(stores, STEPS_DIR)
    if step_globs and trial_globs:
        steps = (
            f"SELECT * FROM {_read(step_globs, union=False)} "
            "WHERE trial_id IN (SELECT trial_id FROM trials)"
        )
    else:
        steps = empty_select(STEP_SCHEMA)
    out.append(("steps", f"CREATE OR REPLACE VIEW steps AS {steps}"))

    geo_globs = parquet_globs(stores, GEOMETRY_DIR)
    geo = f"SELECT * FROM {_read(geo_globs, union=True)}" if geo_globs else empty_select(GEOMETRY_SCHEMA)
    model_cols = ", ".join(f'"{c}"' for c in MODEL_COLUMNS)
    sent_cols = ", ".join(f'"{c}"' for c in SENTENCE_COLUMNS)
    out += [
        ("geometry_rows", f"CREATE OR REPLACE VIEW geometry_rows AS {geo}"),
        (
            "geometry",
            f"CREATE OR REPLACE VIEW geometry AS SELECT {model_cols} FROM geometry_rows "
            "QUALIFY row_number() OVER (PARTITION BY model ORDER BY created_at DESC NULLS LAST) = 1",
        ),
        (
            "geometry_sentences",
            f"CREATE OR REPLACE VIEW geometry_sentences AS SELECT {sent_cols} FROM geometry_rows "
            "WHERE sentence_id IS NOT NULL",
        ),
    ]
    return out


def derived_view_sql(settings: AnalysisSettings) -> list[tuple[str, str]]:
    return [
        ("trial_steps", TRIAL_STEPS_SQL),
        ("trial_summary", trial_summary_sql(settings)),
        *fits.VIEWS,
        *tables.VIEWS,
    ]


def register_functions(conn) -> None:
    """Python functions the views call (only ``spearman_p``; SciPy is imported lazily)."""
    from analysis.stats import spearman_p

    conn.create_function("spearman_p", spearman_p, ["DOUBLE", "BIGINT"], "DOUBLE", side_effects=False)


def _execute(conn, sql: str) -> None:
    import duckdb

    try:
        conn.execute(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc).splitlines()[0]) from None


def define_views(
    conn, stores: Sequence[Store], settings: AnalysisSettings, only_for: str | None = None
) -> None:
    """Define the views; with ``only_for`` (a query), only those it names and their
    dependencies (binding the nested views costs about a second, a plain query need not pay)."""
    views = raw_view_sql(stores, settings) + derived_view_sql(settings)
    if only_for is not None:
        import re

        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", only_for.lower()))
        named = [i for i, (name, _) in enumerate(views) if name in words]
        # SHOW TABLES, information_schema, ...: a query that names no view gets them all
        last = max(named) if named else len(views) - 1
        views = views[: last + 1]
    for _, sql in views:
        _execute(conn, sql)


# ----------------------------------------------------------------------------------------------
# connections


def connect(
    paths: Iterable[str | os.PathLike] | Sequence[Store],
    settings: AnalysisSettings | None = None,
):
    """An in-memory DuckDB connection with every view defined over ``paths``."""
    import duckdb

    stores = _stores(paths)
    conn = duckdb.connect()
    register_functions(conn)
    define_views(conn, stores, settings or AnalysisSettings())
    return conn


def connect_readonly(
    paths: Iterable[str | os.PathLike] | Sequence[Store],
    settings: AnalysisSettings | None = None,
    only_for: str | None = None,
):
    """A connection that cannot write: the views live in a catalog attached read-only, file
    access is limited to the results folders (enable_external_access = false with
    allowed_directories), and the configuration is locked. ``phantom query`` also refuses
    non-SELECT statements before they run (:mod:`analysis.query`).

    A path to a ``phantom.duckdb`` written by ``phantom analyze`` is opened as is."""
    import duckdb

    paths = list(paths)
    if len(paths) == 1 and str(paths[0]).endswith(".duckdb"):
        return _open_database_file(Path(paths[0]))
    stores = _stores(paths)
    folder = tempfile.mkdtemp(prefix="phantom-query-")
    dbfile = os.path.join(folder, "views.duckdb")
    try:
        build = duckdb.connect(dbfile)
        try:
            register_functions(build)
            define_views(build, stores, settings or AnalysisSettings(), only_for)
        finally:
            build.close()
        conn = duckdb.connect(dbfile, read_only=True)
    finally:
        for name in os.listdir(folder):  # the open file stays readable after unlink (POSIX)
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)
    register_functions(conn)
    _lock(conn, [s.root if s.is_local else s.uri for s in stores])
    return conn


def _open_database_file(path: Path):
    import duckdb

    if not path.is_file():
        raise StorageError(f"no such DuckDB file: {path}")
    try:
        conn = duckdb.connect(str(path), read_only=True)
        roots = [r[0] for r in conn.execute("SELECT path FROM sources").fetchall()]
    except duckdb.Error as exc:
        raise QueryError(f"{path}: not a phantom analysis database ({str(exc).splitlines()[0]})") from None
    register_functions(conn)
    _lock(conn, roots)
    return conn


def _lock(conn, roots: list[str]) -> None:
    dirs = "[" + ", ".join(_quote(r.rstrip("/") + "/") for r in roots) + "]"
    conn.execute(f"SET allowed_directories = {dirs}")
    conn.execute("SET enable_external_access = false")
    conn.execute("SET lock_configuration = true")


def _stores(paths) -> list[Store]:
    paths = list(paths)
    if paths and all(isinstance(p, Store) for p in paths):
        return paths
    return resolve_results(paths)


# ----------------------------------------------------------------------------------------------
# small helpers (DuckDB 2 wants every result fetched to the end)


def fetch(conn, sql: str, params: list | None = None) -> list[tuple]:
    import duckdb

    try:
        return conn.execute(sql, params or []).fetchall()
    except duckdb.Error as exc:
        raise QueryError(str(exc).splitlines()[0]) from None


def scalar(conn, sql: str, params: list | None = None):
    rows = fetch(conn, sql, params)
    return rows[0][0] if rows else None


def records(conn, sql: str, params: list | None = None) -> list[dict]:
    """Rows as dicts (small results: tables, figures)."""
    import duckdb

    try:
        cur = conn.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    except duckdb.Error as exc:
        raise QueryError(str(exc).splitlines()[0]) from None
