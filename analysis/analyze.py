"""``phantom analyze``: every view of analysis.db materialised under ``<first sweep>/analysis/``.

Writes ``<table>.parquet`` and ``<table>.csv`` for each summary table, ``phantom.duckdb``
(views over the raw Parquet by absolute path, and over these snapshots, so any DuckDB client can
open it), and ``report.html``. Each table is computed once: after it is written, the view of the
same name in the working connection is replaced by the materialised table, so the views built
on it do not recompute it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from phantom.storage import Store

from analysis import db
from analysis.settings import AnalysisSettings

ANALYSIS_DIR = "analysis"
DATABASE = "phantom.duckdb"
REPORT = "report.html"


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
    progress: Callable[[str], None] | None = _stderr,
) -> AnalysisResult:
    settings = settings or AnalysisSettings()
    say = progress or (lambda _m: None)
    stores = db.resolve_results(paths)
    out = stores[0].child(ANALYSIS_DIR)
    result = AnalysisResult(out)
    conn = db.connect(stores, settings)
    try:
        steps = len(db.SNAPSHOT_VIEWS) + 2 + int(report)
        for i, name in enumerate(db.SNAPSHOT_VIEWS, 1):
            t0 = time.perf_counter()
            say(f"[{i}/{steps}] {name} ...")
            result.rows[name] = _materialise(conn, name, out)
            result.seconds[name] = time.perf_counter() - t0
            say(f"[{i}/{steps}] {name}: {result.rows[name]} rows in {result.seconds[name]:.1f} s")
        i = len(db.SNAPSHOT_VIEWS) + 1
        t0 = time.perf_counter()
        _write_database(stores, settings, out)
        result.seconds["database"] = time.perf_counter() - t0
        say(f"[{i}/{steps}] {DATABASE} in {result.seconds['database']:.1f} s")
        if report:
            from analysis.report import build_report

            t0 = time.perf_counter()
            say(f"[{i + 1}/{steps}] {REPORT} (figures) ...")
            out.write_text(build_report(conn, settings), REPORT)
            result.seconds["report"] = time.perf_counter() - t0
            say(f"[{i + 1}/{steps}] {REPORT} in {result.seconds['report']:.1f} s")
        from analysis.summary_text import summary_text

        result.summary = summary_text(conn, out)
        say(f"[{steps}/{steps}] done")
    finally:
        conn.close()
    return result


def _materialise(conn, name: str, out: Store) -> int:
    """Snapshot view ``name`` into a table, write it as Parquet + CSV, point the view at it."""
    table = f"_snapshot_{name}"
    db.fetch(conn, f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {name}")
    db.fetch(conn, f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {table}")
    arrow = conn.sql(f"SELECT * FROM {table}").to_arrow_table()
    out.write_table(arrow, f"{name}.parquet")
    out.write_text(_csv(arrow), f"{name}.csv")
    return arrow.num_rows


def _csv(arrow) -> str:
    import pyarrow as pa

    # list columns (geometry histograms) do not fit in CSV cells; they stay in the Parquet
    keep = [f.name for f in arrow.schema if not pa.types.is_list(f.type)]
    return arrow.select(keep).to_pandas().to_csv(index=False)


def _write_database(stores: Sequence[Store], settings: AnalysisSettings, out: Store) -> None:
    """A DuckDB file holding only views (and the list of results folders in ``sources``)."""
    import duckdb

    folder = tempfile.mkdtemp(prefix="phantom-analyze-")
    local = os.path.join(folder, DATABASE)
    try:
        conn = duckdb.connect(local)
        try:
            for _, sql in db.raw_view_sql(stores, settings):
                db.fetch(conn, sql)
            db.fetch(conn, _trial_steps_sql())
            for name in db.SNAPSHOT_VIEWS:
                path = out.path(f"{name}.parquet") if out.is_local else f"{out.uri}/{name}.parquet"
                db.fetch(conn, f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({db._quote(path)})")
            db.fetch(conn, "CREATE TABLE sources (path VARCHAR)")
            roots = [s.root if s.is_local else s.uri for s in stores] + [
                out.root if out.is_local else out.uri
            ]
            conn.executemany("INSERT INTO sources VALUES (?)", [[r] for r in roots])
            db.fetch(conn, "CHECKPOINT")
        finally:
            conn.close()
        if out.is_local:
            out.fs.create_dir(out.root, recursive=True)
            tmp = out.path(DATABASE + ".tmp")
            with open(local, "rb") as src, open(tmp, "wb") as dst:
                dst.write(src.read())
            os.replace(tmp, out.path(DATABASE))
        else:
            with open(local, "rb") as src, out.fs.open_output_stream(out.path(DATABASE)) as dst:
                dst.write(src.read())
    finally:
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


def _trial_steps_sql() -> str:
    from analysis.summary import TRIAL_STEPS_SQL

    return TRIAL_STEPS_SQL
