"""Open one or several results folders as a DuckDB connection with the study's views.

The Parquet is read in place; nothing is copied into a database. The views are those of the
registry (phantom.analysis.registry, filled by the package phantom.analysis.views), defined in dependency order:
the raw views of phantom.analysis.views.sources (which trials, one record and one set of step rows per
trial), ``trial_steps`` and ``trial_summary`` (phantom.analysis.views.summary, science §4), the fits
(phantom.analysis.views.fits, phantom.analysis.views.bootstrap, science §5), the tables (phantom.analysis.views.tables) and
the claims (phantom.analysis.views.claims).

Every connection opened here owns a private temporary folder (DuckDB's spill files, and for
``phantom query`` the catalog of views) that is removed when it is closed, whatever happened:
nothing is left in the working directory, the results folders or the system's temp folder.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path

from phantom.errors import QueryError, StorageError
from phantom.storage import Store

from phantom.analysis.settings import AnalysisSettings
from phantom.analysis.views import REGISTRY, View, ViewContext, ViewRegistry  # the face: every view registered
from phantom.analysis.views.sources import Source, open_sources, quote, resolve_results  # noqa: F401  (re-exported)


def snapshot_views(registry: ViewRegistry = REGISTRY) -> list[str]:
    """The views ``phantom analyze`` writes as tables, in definition order."""
    return [v.name for v in registry.order() if v.snapshot]


# ----------------------------------------------------------------------------------------------
# connections that clean up after themselves


class Connection:
    """A DuckDB connection plus the temporary folder it owns (removed by :meth:`close`, by
    ``with``, or at the latest when the object is garbage-collected)."""

    def __init__(self, raw, folder: str):
        self.raw = raw
        self.folder = folder
        self._cleanup = weakref.finalize(self, shutil.rmtree, folder, True)

    def __getattr__(self, name):
        return getattr(self.raw, name)

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            self._cleanup()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _duckdb(database: str, folder: str, read_only: bool = False, stores: Iterable[Store] = (),
            config: dict | None = None):
    """A DuckDB connection that spills into ``folder`` and reads the object stores among
    ``stores`` through their own (pyarrow) filesystems; it never downloads an extension.
    ``config``: more settings at connect time (e.g. the storage compatibility of a file)."""
    import duckdb

    # spills go to the private folder, not to ./.tmp or <database>.tmp
    conn = duckdb.connect(database, read_only=read_only,
                          config={"temp_directory": os.path.join(folder, "spill"),
                                  "autoinstall_known_extensions": False,
                                  "autoload_known_extensions": False, **(config or {})})
    try:
        conn.execute("SET enable_progress_bar = false")
    except duckdb.InvalidInputException:
        pass  # in Jupyter without ipywidgets DuckDB refuses any change to it (and it is off already)
    registered = set()
    for store in stores:
        if not store.is_local and store.scheme not in registered:
            conn.register_filesystem(store.fsspec())
            registered.add(store.scheme)
    return conn


def _private_folder() -> str:
    return tempfile.mkdtemp(prefix="phantom-duckdb-")


def one_line(exc: BaseException) -> str:
    """DuckDB's message on one line: its first line (and the next, when the first only names
    the kind of error)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        # an object store's read failed inside the fsspec filesystem: the cause, not its traceback
        from phantom.cloud import redact
        from phantom.storage_errors import storage_cause_text

        cause = storage_cause_text(str(exc))
        errors = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Invalid)\b", line)]
        return redact(f"storage refused: {cause}" if cause else f"reading the results failed: {(errors or lines)[-1]}")
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def register_functions(conn) -> None:
    """Python functions the views call (only ``spearman_p``; SciPy is imported lazily). NULL
    in, NULL out: the function sees every row and answers None where ρ has no p-value."""
    from phantom.analysis.stats import spearman_p

    conn.create_function("spearman_p", spearman_p, ["DOUBLE", "BIGINT"], "DOUBLE",
                         null_handling="special", side_effects=False)


def _execute(conn, sql: str) -> None:
    import duckdb

    try:
        conn.execute(sql)
    except duckdb.Error as exc:
        raise QueryError(one_line(exc)) from None


def context(paths_or_stores, settings: AnalysisSettings | None = None) -> ViewContext:
    """The folders (with their plans) and settings the views are built for."""
    if isinstance(paths_or_stores, ViewContext):
        return paths_or_stores
    stores = _stores(paths_or_stores)
    return ViewContext(open_sources(stores), settings or AnalysisSettings())


def define_views(conn, ctx: ViewContext, names: Iterable[str] | None = None,
                 registry: ViewRegistry = REGISTRY, *, cache: str = "readers",
                 given: Iterable[str] = ()) -> None:
    """Create ``names`` (default: every view) and the views they read, in dependency order.

    ``cache``: ``"readers"`` computes each cache view that another defined view reads into a
    table ``_table_<name>`` and points the view at it; ``"all"`` every cache view; ``"none"``
    keeps plain views (each reference recomputes). ``given``: relations that already exist (a
    test's hand-made ``trial_summary`` table): not defined, their dependencies not followed."""
    if cache not in ("readers", "all", "none"):
        raise ValueError(f"`cache` should be 'readers', 'all' or 'none', got {cache!r}")
    order = registry.order(names, given)
    read = {dep for v in order for dep in v.reads}
    guarded = {g for v in order for g in v.guards}  # a check guards the views that name it, not itself
    for v in order:
        define_view(conn, v, ctx, v.cache and (cache == "all" or (cache == "readers" and v.name in read)),
                    check=v.name in guarded)


def define_view(conn, v: View, ctx: ViewContext, cache: bool = False, check: bool = True) -> str:
    """Create view ``v``; with ``cache``, compute it into ``_table_<name>`` and point the view
    there; then run its check, if it has one and ``check`` (a view that another defined view is
    guarded by: ``SELECT * FROM precisions`` alone shows the labels a fit would refuse to mix).
    Returns the relation that holds it."""
    _execute(conn, v.create_sql(ctx))
    relation = v.name
    if cache:
        relation = f"_table_{v.name}"
        _execute(conn, f"CREATE OR REPLACE TABLE {relation} AS SELECT * FROM {v.name}")
        _execute(conn, f"CREATE OR REPLACE VIEW {v.name} AS SELECT * FROM {relation}")
    if check and v.check is not None:
        v.check(conn, relation, ctx)
    return relation


def connect(
    paths: Iterable[str | os.PathLike] | Sequence[Store] | ViewContext,
    settings: AnalysisSettings | None = None,
    views: Iterable[str] | None = None,
) -> Connection:
    """An in-memory connection with the views over ``paths`` (``views``: only those and what
    they read, e.g. ``["trial_summary"]``). Close it (or use ``with``)."""
    ctx = context(paths, settings)
    folder = _private_folder()
    conn = None
    try:
        conn = Connection(_duckdb(":memory:", folder, stores=_source_stores(ctx)), folder)
        register_functions(conn)
        define_views(conn, ctx, views)
        return conn
    except BaseException:
        if conn is not None:
            conn.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise


def connect_readonly(
    paths: Iterable[str | os.PathLike] | Sequence[Store],
    settings: AnalysisSettings | None = None,
    only_for: str | None = None,
) -> Connection:
    """A connection that cannot write: the views live in a catalog attached read-only, file
    access is limited to the results folders (enable_external_access = false with
    allowed_directories), and the configuration is locked. ``phantom query`` also refuses
    non-SELECT statements before they run (:mod:`phantom.analysis.commands.query`). With ``only_for`` (the
    query), only the views it names and their dependencies are defined.

    A path to a ``phantom.duckdb`` written by ``phantom analyze`` is opened as is."""
    paths = list(paths)
    if len(paths) == 1 and str(paths[0]).endswith(".duckdb"):
        return _open_database_file(Path(paths[0]))
    ctx = context(paths, settings)
    names = (REGISTRY.named_in(only_for) or None) if only_for is not None else None
    folder = _private_folder()
    try:
        dbfile = os.path.join(folder, "views.duckdb")
        build = _duckdb(dbfile, folder, stores=_source_stores(ctx))
        try:
            register_functions(build)
            define_views(build, ctx, names)
        finally:
            build.close()
        conn = Connection(_duckdb(dbfile, folder, read_only=True, stores=_source_stores(ctx)), folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    register_functions(conn)
    _lock(conn, [s.store.duckdb_path() for s in ctx.sources])
    return conn


def _open_database_file(path: Path) -> Connection:
    import duckdb

    if not path.is_file():
        raise StorageError(f"no such DuckDB file: {path}")
    folder = _private_folder()
    try:
        conn = Connection(_duckdb(str(path), folder, read_only=True), folder)
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, duckdb.Error):
            raise QueryError(f"{path}: not a DuckDB file ({one_line(exc)})") from None
        raise
    try:
        roots = [Store.open(r[0]) for r in conn.execute("SELECT path FROM sources").fetchall()]
        for scheme, store in {s.scheme: s for s in roots if not s.is_local}.items():
            conn.register_filesystem(store.fsspec())  # results on an object store
        register_functions(conn)
        _lock(conn, [s.duckdb_path() for s in roots])
    except BaseException as exc:
        conn.close()
        if isinstance(exc, duckdb.Error):
            raise QueryError(f"{path}: not a phantom analysis database ({one_line(exc)})") from None
        raise
    return conn


def _lock(conn, roots: list[str]) -> None:
    dirs = "[" + ", ".join(quote(r.rstrip("/") + "/") for r in roots) + "]"
    conn.execute(f"SET allowed_directories = {dirs}")
    conn.execute("SET enable_external_access = false")
    conn.execute("SET lock_configuration = true")


def _source_stores(ctx: ViewContext) -> list[Store]:
    return [s.store for s in ctx.sources]


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
        raise QueryError(one_line(exc)) from None


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
        raise QueryError(one_line(exc)) from None
