"""``phantom query``: one read-only SQL statement over the views, printed or saved.

Read-only twice over: the statement type is checked before anything runs (only SELECT-like
statements and EXPLAIN pass), and the connection itself cannot write (phantom.analysis.db
``connect_readonly``). DuckDB's own error message comes back as one line (QueryError).
"""

from __future__ import annotations

import sys
from pathlib import Path

from phantom.errors import QueryError

from phantom.analysis.db import one_line

FORMATS = ("table", "csv", "json", "parquet")


def check_read_only(sql: str) -> str:
    """The single statement in ``sql`` if it only reads; QueryError otherwise."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(one_line(exc)) from None
    if not statements:
        raise QueryError("empty query")
    if len(statements) > 1:
        raise QueryError(f"one statement at a time, got {len(statements)}")
    stmt = statements[0]
    kind = stmt.type.name
    if kind not in ("SELECT", "EXPLAIN"):
        raise QueryError(
            f"phantom query is read-only: {kind} statements are refused (use SELECT, SHOW, "
            "DESCRIBE, SUMMARIZE or EXPLAIN)"
        )
    return stmt.query


def run_query(conn, sql: str):
    """Check and run ``sql``; returns the result as an Arrow table."""
    import duckdb

    stmt = check_read_only(sql)
    try:
        return conn.sql(stmt).to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(one_line(exc)) from None


def query(paths, sql: str, settings=None):
    """``phantom query``: ``sql`` (one read-only statement) over the results ``paths`` (folders,
    globs, or a ``phantom.duckdb``), as an Arrow table."""
    from phantom.analysis import db
    from phantom.storage_errors import translated

    with translated(str(list(paths)[0])):  # an unreachable or refusing store: one line
        with db.connect_readonly(paths, settings, only_for=sql) as conn:
            return run_query(conn, sql)


def render(table, fmt: str, out: str | None) -> None:
    """Write ``table`` (Arrow) as ``fmt`` to ``out`` or stdout."""
    if fmt not in FORMATS:
        raise QueryError(f"unknown format '{fmt}' (one of {', '.join(FORMATS)})")
    if fmt == "parquet":
        if not out:
            raise QueryError("--format parquet needs --out FILE")
        import pyarrow.parquet as pq

        pq.write_table(table, out)
        return
    if fmt == "table":
        text = _table_text(table)
    elif fmt == "csv":
        text = table.to_pandas().to_csv(index=False)
    else:
        text = table.to_pandas().to_json(orient="records", date_format="iso", indent=1, double_precision=15) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _table_text(table, max_rows: int = 60) -> str:
    import duckdb

    conn = duckdb.connect()
    try:
        rel = conn.from_arrow(table)
        body = rel.__str__() if table.num_rows else ""
        if table.num_rows == 0:
            body = "  ".join(table.column_names) + "\n(0 rows)\n"
        elif table.num_rows > max_rows:
            body = conn.from_arrow(table.slice(0, max_rows)).__str__()
            body += f"({table.num_rows} rows, first {max_rows} shown; use --format csv for all)\n"
        return body
    finally:
        conn.close()
