"""The results store (phantom.results): compaction moves loose trials into parts and changes
nothing a reader sees; a compaction killed at any point loses nothing and shows nothing twice."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import duckdb
import pyarrow as pa
import pytest

from phantom.analysis import db
from phantom.analysis.settings import AnalysisSettings
from phantom.analysis.testing import random_grid, step_table, trial_record, write_plan, write_trial
from phantom import layout, results
from phantom.storage import Store

# what a reader sees: every view the fits, claims and tables are built on, row for row
VIEWS = ("trials", "steps", "trial_summary", "eta_c", "fits", "claims")


class Snapshot(dict):
    """Every row of VIEWS, in ORDER BY ALL. Equal when the rows are, but for float summation
    order: the same rows read from loose files and parts come in another order, and a sum of n
    doubles then moves by ~n ulps (relative 1e-13 here), far inside the 1e-9 allowed; a printed
    number in the claims text may then move by one unit in its last digit (a value on a rounding
    boundary). A real change (a row lost or doubled, another value) is far outside both."""

    def __eq__(self, other) -> bool:
        return self.keys() == other.keys() and all(
            len(self[v]) == len(other[v]) and all(_same_row(a, b) for a, b in zip(self[v], other[v])) for v in self)


NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, str) and isinstance(b, str) and a != b:
        na, nb = NUMBER.findall(a), NUMBER.findall(b)
        return NUMBER.sub("#", a) == NUMBER.sub("#", b) and len(na) == len(nb) and all(
            abs(float(x) - float(y)) <= 1.01 * 10 ** -(len(x.split(".")[1]) if "." in x else 0)
            for x, y in zip(na, nb))
    return a == b


def _same_row(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))


def snapshot(path) -> Snapshot:
    with db.connect([str(path)], AnalysisSettings(bootstrap=50)) as conn:
        return Snapshot({v: conn.execute(f"SELECT * FROM {v} ORDER BY ALL").fetchall() for v in VIEWS})


def loose_files(store: Store) -> tuple[list[str], list[str]]:
    return store.list(layout.TRIALS_DIR), store.list(layout.STEPS_DIR)


@pytest.fixture
def grid(tmp_path):
    root = tmp_path / "grid"
    ids = random_grid(str(root), budget=12, n_sentences=4, seeds=(0,))
    write_plan(str(root), ids)
    return root, ids


# ----------------------------------------------------------------------------------------------
# compaction changes nothing a reader sees


def test_compaction_keeps_every_view_and_empties_the_loose_folders(grid):
    root, ids = grid
    store = Store.open(root)
    before = snapshot(root)
    records = results.read_records(store)
    assert before["trials"] and records.num_rows == len(ids)
    out = results.compact(store, part_trials=40)  # several parts
    assert out.trials == len(ids) and out.parts == -(-len(ids) // 40) and out.leftovers == 0
    assert loose_files(store) == ([], [])
    assert len(results.committed_parts(store)) == out.parts
    assert snapshot(root) == before
    assert store.completed_trial_ids() == set(ids)
    after = results.read_records(store)
    key = ["trial_id"]
    assert after.drop(["part"]).sort_by([(k, "ascending") for k in key]).equals(
        records.drop(["part"]).sort_by([(k, "ascending") for k in key]))
    # a second compaction has nothing to do
    again = results.compact(store)
    assert (again.parts, again.trials, again.leftovers) == (0, 0, 0)


def test_new_trials_after_compaction_are_read_beside_the_parts(grid, tmp_path):
    root, ids = grid
    store = Store.open(root)
    results.compact(store)
    write_trial(store, step_table("late", [-0.2, 0.1, 0.3]), trial_record("late", steps=2))
    write_plan(store, [*ids, "late"])
    with db.connect([str(root)]) as conn:
        assert conn.execute("SELECT count(*) FROM steps WHERE trial_id = 'late'").fetchone()[0] == 3
        assert conn.execute("SELECT count(*), count(DISTINCT trial_id) FROM trials").fetchone() == (len(ids) + 1,) * 2
    assert results.compact(store).trials == 1
    assert len(results.committed_parts(store)) == 2


def test_min_trials_leaves_a_few_loose_trials_alone(grid):
    root, ids = grid
    store = Store.open(root)
    assert results.compact(store, min_trials=len(ids) + 1).trials == 0
    assert len(loose_files(store)[0]) == len(ids)


# ----------------------------------------------------------------------------------------------
# a trial held twice is read once, as the copy the keep order names, with that copy's rows


def _finished(minutes: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes)


def test_an_errored_trial_re_run_after_compaction_is_read_as_its_result(tmp_path):
    store = Store.open(tmp_path)
    write_trial(store, step_table("x", [-0.3, -0.2]), trial_record("x", steps=1, status="error",
                                                                   finished_at=_finished(0)))
    results.compact(store)
    # resume --errored re-ran it: a loose ok record with more rows, finished later
    write_trial(store, step_table("x", [-0.3, -0.1, 0.2, 0.4]), trial_record("x", steps=3, finished_at=_finished(5)))
    for _ in range(2):  # before and after compacting the re-run too (then both copies are parts)
        rec = results.read_records(store)
        assert rec.num_rows == 1 and rec.column("status").to_pylist() == ["ok"]
        assert results.read_records(store, {"x"}).column("status").to_pylist() == ["ok"]
        with db.connect([str(tmp_path)]) as conn:
            assert conn.execute("SELECT status FROM trials").fetchall() == [("ok",)]
            assert conn.execute("SELECT count(*), max(step) FROM steps").fetchone() == (4, 3)
        results.compact(store)
    assert len(results.committed_parts(store)) == 2


def test_python_and_sql_keep_the_same_copy(tmp_path):
    """phantom.results.keep_one and the SQL of trial_records (keep_order_sql) on the same rows."""
    rows = []
    statuses = ["ok", "error", "diverged"]
    parts = ["", "20260101T000000-aaaa", "20260101T000001-bbbb"]
    k = 0
    for tid in range(30):
        for copy in range(1 + tid % 3):
            rows.append({"trial_id": f"t{tid}", "status": statuses[(tid + copy) % 3],
                         "finished_at": None if (tid + copy) % 7 == 0 else _finished((tid * copy) % 4),
                         "part": parts[(k := k + 1) % 3]})
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("trial_id", pa.string()), ("status", pa.string()),
        ("finished_at", pa.timestamp("us", tz="UTC")), ("part", pa.string())]))
    # distinct sort keys per id, so "the first" is unambiguous
    seen = {}
    for r in rows:
        key = (r["trial_id"], r["status"] == "error", r["finished_at"], r["part"])
        assert key not in seen
        seen[key] = True
    py = sorted(tuple(r.values()) for r in results.keep_one(table).to_pylist())
    con = duckdb.connect()
    con.register("t", table)
    sql = con.execute(f"SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY trial_id ORDER BY "
                      f"{results.keep_order_sql()}) = 1").fetchall()
    assert len(py) == 30 and sorted(sql) == py


# ----------------------------------------------------------------------------------------------
# a compaction killed at any point: nothing lost, nothing shown twice, the next one cleans up


class Killed(BaseException):
    """Stands for SIGKILL at one point of a compaction (nothing after it runs)."""


def _kill_after(monkeypatch, target, name: str, n: int):
    real = getattr(target, name)
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == n:
            raise Killed(f"{name} #{n}")
        return out

    monkeypatch.setattr(target, name, wrapped)


# (method of Store, nth call): after the steps part, after the commit, after some deletes
KILL_POINTS = [("write_table", 1), ("write_table", 2), ("delete", 1), ("delete", 2), ("delete", 37)]


@pytest.mark.parametrize("method,n", KILL_POINTS)
def test_a_compaction_killed_at_any_point_loses_nothing(grid, monkeypatch, method, n):
    root, ids = grid
    store = Store.open(root)
    before = snapshot(root)
    with monkeypatch.context() as m:
        _kill_after(m, Store, method, n)
        with pytest.raises(Killed):
            results.compact(store, part_trials=len(ids))  # one part: every kill point is inside it
    # readers see exactly what they saw, before any clean-up
    assert store.completed_trial_ids() == set(ids)
    assert results.read_records(store).num_rows == len(ids)
    assert snapshot(root) == before
    # the next compaction finishes the job
    out = results.compact(store)
    assert loose_files(store) == ([], [])
    assert store.list(layout.PARTS_DIR, suffix=layout.PART_STEPS) == [
        f"{p}{layout.PART_STEPS}" for p in results.committed_parts(store)]
    assert snapshot(root) == before
    if (method, n) == ("write_table", 1):  # the steps part was never committed
        assert out.leftovers == 1 and out.trials == len(ids)
    elif method == "write_table":  # committed: the loose pairs are leftovers, not compacted again
        assert out.leftovers == len(ids) and out.trials == 0


def test_sigkill_mid_compaction_then_compact_and_analyse(tmp_path):
    """A real SIGKILL of `phantom sweep compact` at several moments of its run."""
    root = tmp_path / "grid"
    ids = random_grid(str(root), budget=12, n_sentences=4, seeds=(0, 1))
    write_plan(str(root), ids)
    before = snapshot(root)
    store = Store.open(root)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "phantom.cli", "sweep", "compact", str(root), "--part-trials", "25"]
    for delay in (0.6, 0.9, 1.2):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert store.completed_trial_ids() == set(ids)
        assert snapshot(root) == before
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert loose_files(store) == ([], []) and snapshot(root) == before


def test_folders_opened_together_count_each_row_once(grid, tmp_path):
    """The same trials in a compacted folder and in a loose copy of it: one record and one set of
    rows per trial, from the folder given first."""
    import shutil

    root, ids = grid
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    results.compact(Store.open(root))
    with db.connect([str(root), str(copy)]) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT trial_id), min(source), max(source) "
                            "FROM trials").fetchone() == (len(ids), len(ids), 0, 0)
        n_rows = conn.execute("SELECT count(*) FROM steps").fetchone()[0]
    with db.connect([str(copy)]) as conn:
        assert conn.execute("SELECT count(*) FROM steps").fetchone()[0] == n_rows
