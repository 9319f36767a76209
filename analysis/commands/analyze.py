"""``phantom analyze``: every snapshot view of the registry materialised under
``<first folder>/analysis/`` (phantom.layout.ANALYSIS_DIR).

Writes ``<table>.parquet`` and ``<table>.csv`` for each summary table, ``phantom.duckdb``
(views over the raw Parquet by absolute path, and over these snapshots, so any DuckDB client can
open it), and ``report.html``. Each view is computed once, in dependency order: a cache view
(phantom.analysis.registry) becomes a table that the views built on it read.

Everything is first written to a staging folder (``analysis/.staging-*.tmp``) and moved into
place once every table and the report exist: an error while computing leaves the previous
analysis as it was, and the staging folder is removed whatever happens.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from phantom.layout import ANALYSIS_DIR, DATABASE_FILE, PARQUET, REPORT_FILE, TMP_SUFFIX
from phantom.storage import Store

from phantom.analysis import db
from phantom.analysis.settings import AnalysisSettings
from phantom.analysis.views import REGISTRY, ViewContext


@dataclass
class AnalysisResult:
    folder: Store
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    summary: str = ""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def analyze(
    paths: Sequence[str | os.PathLike],
    settings: AnalysisSettings | None = None,
    *,
    report: bool = True,
    out: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = _stderr,
) -> AnalysisResult:
    """``out``: where the analysis goes (a local folder or a URI); default ``<first
    folder>/analysis/``, which is on the object store when the results are."""
    say = progress or (lambda _m: None)
    ctx = db.context(paths, settings)
    out = Store.open(out) if out is not None else ctx.sources[0].store.child(ANALYSIS_DIR)
    result = AnalysisResult(out)
    total = len(db.snapshot_views()) + 2 + int(report)
    with db.connect(ctx, views=[]) as conn, Staging(out) as stage:
        # every view in dependency order, each computed once; the snapshots are written
        i = 0
        t0 = time.perf_counter()
        for v in REGISTRY.order():
            table = db.define_view(conn, v, ctx, cache=v.cache)
            if v.snapshot:
                i += 1
                result.rows[v.name] = _write_snapshot(conn, v.name, table, stage)
                result.seconds[v.name] = time.perf_counter() - t0
                say(f"[{i}/{total}] {v.name}: {result.rows[v.name]} rows in {result.seconds[v.name]:.1f} s")
                t0 = time.perf_counter()
        i += 1
        if report:
            from phantom.analysis.report import build_report  # figures and tables: the report's registry

            t0 = time.perf_counter()
            say(f"[{i}/{total}] {REPORT_FILE} (figures) ...")
            stage.write_text(build_report(conn, ctx.settings), REPORT_FILE)
            result.seconds["report"] = time.perf_counter() - t0
            say(f"[{i}/{total}] {REPORT_FILE} in {result.seconds['report']:.1f} s")
            i += 1
        from phantom.analysis.report.summary_text import summary_text

        result.summary = summary_text(conn, out, report)
        # the tables are complete: move them into place, then the database that reads them
        stage.commit()
        t0 = time.perf_counter()
        _write_database(ctx, out, stage)
        stage.commit()
        result.seconds["database"] = time.perf_counter() - t0
        say(f"[{i}/{total}] {DATABASE_FILE} in {result.seconds['database']:.1f} s")
        say(f"[{total}/{total}] done")
    return result


# ----------------------------------------------------------------------------------------------
# writing


class Staging:
    """A private folder for the files of one run, moved into ``out`` by :meth:`commit`; the
    folder (and ``out`` itself, when this run created it and nothing was committed) is removed
    on exit, error or not."""

    def __init__(self, out: Store):
        self.out = out
        self.files: list[str] = []
        self.created_out = False
        self.folder = ""

    def __enter__(self) -> Staging:
        if self.out.is_local:
            self.created_out = not os.path.isdir(self.out.root)
            os.makedirs(self.out.root, exist_ok=True)
            # beside the destination: the final move is a rename on the same filesystem
            self.folder = tempfile.mkdtemp(prefix=".staging-", suffix=TMP_SUFFIX, dir=self.out.root)
        else:
            self.folder = tempfile.mkdtemp(prefix="phantom-analyze-")
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.created_out:
            try:
                os.rmdir(self.out.root)  # only if empty: nothing was committed
            except OSError:
                pass

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def write_text(self, text: str, name: str) -> None:
        with open(self.path(name), "w", encoding="utf-8") as fh:
            fh.write(text)
        self.files.append(name)

    def add(self, name: str) -> None:
        """A file written directly at :meth:`path`."""
        self.files.append(name)

    def commit(self) -> None:
        for name in self.files:
            if self.out.is_local:
                os.replace(self.path(name), self.out.path(name))
            else:
                with open(self.path(name), "rb") as src, \
                        self.out.fs.open_output_stream(self.out.path(name)) as dst:
                    shutil.copyfileobj(src, dst)
                os.unlink(self.path(name))
        self.files = []
        self.created_out = False


def _write_snapshot(conn, name: str, table: str, stage: Staging) -> int:
    """``<name>.parquet`` and ``<name>.csv`` of ``table`` in the staging folder (DuckDB's own
    writers: parallel, and integers stay integers in the CSV)."""
    cols = db.fetch(conn, "SELECT column_name, data_type FROM information_schema.columns "
                          "WHERE table_name = ? ORDER BY ordinal_position", [table])
    # list columns (geometry histograms) do not fit in CSV cells; they stay in the Parquet
    flat = ", ".join(f'"{c}"' for c, t in cols if not t.endswith("[]"))
    db.fetch(conn, f"COPY {table} TO {_quote(stage.path(name + PARQUET))} (FORMAT parquet)")
    db.fetch(conn, f"COPY (SELECT {flat} FROM {table}) TO {_quote(stage.path(name + '.csv'))} (HEADER)")
    stage.add(name + PARQUET)
    stage.add(name + ".csv")
    return db.scalar(conn, f"SELECT count(*) FROM {table}")


# The storage format phantom.duckdb is written in: DuckDB 1.1's, so that
# every client built on DuckDB >= 1.1 opens the file (the DuckDB 2 default, storage version 69,
# is refused by 1.x: "can only read versions between 64 and 68"), and so does Phantom itself on
# Python 3.10, where the lock installs DuckDB 1.5.
DATABASE_STORAGE_VERSION = "v1.1.0"


def _write_database(ctx: ViewContext, out: Store, stage: Staging) -> None:
    """A DuckDB file holding only views (and the folders it may read in ``sources``): the raw
    views over the results by absolute path (DuckDB resolves relative paths against the
    client's working directory), the snapshot views over ``analysis/<name>.parquet``. Written
    in DuckDB 1.1's storage format (:data:`DATABASE_STORAGE_VERSION`)."""
    conn = db._duckdb(stage.path(DATABASE_FILE), stage.folder, stores=[*(s.store for s in ctx.sources), out],
                      config={"storage_compatibility_version": DATABASE_STORAGE_VERSION})
    try:
        for v in REGISTRY.order():
            if v.snapshot:
                path = out.duckdb_path(f"{v.name}{PARQUET}")
                db.fetch(conn, f"CREATE OR REPLACE VIEW {v.name} AS SELECT * FROM read_parquet({_quote(path)})")
            else:
                db.fetch(conn, v.create_sql(ctx))
        db.fetch(conn, "CREATE TABLE sources (path VARCHAR)")
        roots = [s.location for s in ctx.sources] + [out.root if out.is_local else out.uri]
        conn.executemany("INSERT INTO sources VALUES (?)", [[r] for r in roots])
        db.fetch(conn, "CHECKPOINT")
    finally:
        conn.close()
    stage.add(DATABASE_FILE)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
