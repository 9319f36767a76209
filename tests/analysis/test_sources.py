"""Which trials the views see (issue 8): each trial and each step row once however the folders
overlap, the steps from the folder of the record kept, and the plan is the sweep."""

from datetime import datetime, timezone

import pyarrow as pa
import pytest

from phantom.analysis import db
from phantom.analysis.settings import AnalysisSettings
from phantom.analysis.testing import step_table, trial_record, write_plan, write_trial
from phantom.cli import main
from phantom.errors import StorageError

CATAPULT = [-0.3 + 0.001 * t for t in range(6)] + [0.2 + 0.0005 * t for t in range(6)]
DRIFT = [-0.1 + 0.02 * t + 0.0001 for t in range(12)]
ROWS = 12


def put(folder, tid, phi=CATAPULT, contexts=1, **kw):
    tables = [step_table(tid, phi, context_id=c, **{k: v for k, v in kw.items() if k in ("lr", "model", "protocol", "sentence_id", "seed")})
              for c in range(contexts)]
    write_trial(folder, pa.concat_tables(tables),
                trial_record(tid, steps=len(phi) - 1, n_contexts=contexts, **kw))


def duplicates(conn) -> int:
    return db.scalar(conn, "SELECT count(*) FROM (SELECT trial_id, step, context_id, count(*) AS n "
                           "FROM steps GROUP BY ALL HAVING n > 1)")


@pytest.fixture
def overlapping(tmp_path):
    """Two sweeps sharing trial 'x' (two contexts, as in the issue's example) and 'y'."""
    a, b = tmp_path / "A", tmp_path / "B"
    for folder in (a, b):
        put(folder, "x", contexts=2, lr=1e-4)
        put(folder, "y", DRIFT, lr=2e-4)
    put(a, "a-only", DRIFT, lr=3e-4)
    put(b, "b-only", CATAPULT, lr=4e-4)
    return tmp_path, a, b


def test_overlapping_folders_count_each_row_once(overlapping, open_views):
    root, a, b = overlapping
    both = open_views(a, b)
    assert duplicates(both) == 0
    assert db.scalar(both, "SELECT count(*) FROM steps") == ROWS * (2 + 1 + 1 + 1)
    assert db.scalar(both, "SELECT count(*) FROM trials") == 4
    # the summary of a shared trial does not depend on which folders are opened
    alone = {r["trial_id"]: r for r in db.records(open_views(a), "SELECT * FROM trial_summary")}
    for r in db.records(both, "SELECT * FROM trial_summary WHERE trial_id IN ('x', 'y')"):
        mine = {k: v for k, v in r.items() if k != "source"}
        assert mine == {k: v for k, v in alone[r["trial_id"]].items() if k != "source"}
    assert alone["x"]["character"] == "catapult-like" and alone["y"]["character"] == "drift"


@pytest.mark.parametrize("how", ["root", "root+child", "twice", "glob"])
def test_storage_root_and_repeated_folders(overlapping, open_views, how):
    root, a, b = overlapping
    paths = {"root": [root], "root+child": [root, a], "twice": [a, a, b],
             "glob": [str(root / "*")]}[how]
    conn = open_views(*paths)
    assert duplicates(conn) == 0
    assert db.scalar(conn, "SELECT count(*) FROM trials") == 4
    assert db.scalar(conn, "SELECT count(*) FROM steps") == ROWS * 5
    assert db.scalar(conn, "SELECT count(*) FROM folders") == 2


def test_steps_come_from_the_kept_record(tmp_path, open_views):
    """The record finished last wins, and the steps are that folder's (never a mix)."""
    a, b = tmp_path / "A", tmp_path / "B"
    early, late = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc)
    write_trial(a, step_table("x", CATAPULT), trial_record("x", steps=11, finished_at=early))
    write_trial(b, step_table("x", DRIFT), trial_record("x", steps=11, finished_at=late))
    for paths in ([a, b], [b, a]):
        conn = open_views(*paths)
        assert db.scalar(conn, "SELECT f.path FROM trials JOIN folders f USING (source)") == str(b)
        assert [r[0] for r in db.fetch(conn, "SELECT phi FROM steps ORDER BY step")] == pytest.approx(DRIFT)
        assert db.scalar(conn, "SELECT character FROM trial_summary") == "drift"


def test_a_result_is_kept_over_an_error(tmp_path, open_views):
    a, b = tmp_path / "A", tmp_path / "B"
    late = datetime(2026, 3, 1, tzinfo=timezone.utc)
    write_trial(a, step_table("x", CATAPULT), trial_record("x", steps=11))
    write_trial(b, step_table("x", CATAPULT[:2]), trial_record("x", steps=11, status="error", finished_at=late))
    conn = open_views(a, b)
    assert db.records(conn, "SELECT status, evaluations FROM trial_summary") == [{"status": "ok", "evaluations": ROWS}]


@pytest.fixture
def edited(tmp_path):
    """A sweep run with a 12-step budget, edited to 10 steps and run again into the same folder."""
    for k in range(10):
        lr = 1e-5 * 2 ** k
        put(tmp_path, f"old{k}", [-0.2] * 6 + [0.1] * 7, lr=lr)
        put(tmp_path, f"new{k}", [-0.2] * 4 + [0.1] * 7, lr=lr)
    write_plan(tmp_path, [f"new{k}" for k in range(10)], name="edited")
    return tmp_path


def test_the_plan_is_the_sweep(edited, open_views):
    conn = open_views(edited)
    assert db.scalar(conn, "SELECT count(*) FROM trial_summary") == 10
    assert db.fetch(conn, "SELECT DISTINCT budget FROM trial_summary") == [(10,)]
    assert db.scalar(conn, "SELECT n_trials FROM fits") == 10
    extra = db.records(conn, "SELECT * FROM extra_trials")
    assert sorted(r["trial_id"] for r in extra) == [f"old{k}" for k in range(10)]
    assert {r["folder"] for r in extra} == {str(edited)} and {r["steps"] for r in extra} == {12}
    assert db.scalar(conn, "SELECT count(DISTINCT trial_id) FROM steps") == 10
    every = open_views(edited, settings=AnalysisSettings(all_trials=True))
    assert db.scalar(every, "SELECT count(*) FROM trial_summary") == 20
    assert db.scalar(every, "SELECT count(*) FROM trial_summary WHERE NOT in_plan") == 10


def test_analyze_says_what_it_left_out(edited, capsys):
    assert main(["analyze", str(edited), "--no-report", "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "10 trials (10 ok)" in out
    assert "10 complete trials outside the plan (not analysed; --all-trials includes them)" in out
    assert (edited / "analysis" / "extra_trials.csv").read_text().count("\n") == 11
    assert main(["analyze", str(edited), "--no-report", "--bootstrap", "0", "--all-trials"]) == 0
    assert "20 trials (20 ok)" in capsys.readouterr().out


def test_query_all_trials_flag(edited, capsys):
    assert main(["query", str(edited), "SELECT count(*) AS n FROM trials", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", "10"]
    assert main(["query", str(edited), "SELECT count(*) AS n FROM trials", "--format", "csv", "--all-trials"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", "20"]


def test_union_of_plans_and_a_folder_without_plan(tmp_path, open_views):
    a, b, c = tmp_path / "A", tmp_path / "B", tmp_path / "C"
    for folder, ids in ((a, ["a1", "a2", "shared"]), (b, ["b1", "shared"]), (c, ["c1", "c2"])):
        for tid in ids:
            put(folder, tid, DRIFT)
    write_plan(a, ["a1", "shared"])  # a2 is an older trial of A
    write_plan(b, ["b1", "shared", "a2"])  # B's plan names a2, a trial only A holds
    conn = open_views(a, b, c)  # C: `phantom trial --out C`, no plan: all its trials
    assert sorted(r[0] for r in db.fetch(conn, "SELECT trial_id FROM trials")) == \
        ["a1", "a2", "b1", "c1", "c2", "shared"]
    assert db.fetch(conn, "SELECT trial_id FROM extra_trials") == []
    assert db.fetch(open_views(a), "SELECT trial_id FROM extra_trials") == [("a2",)]


def test_old_records_without_new_columns(tmp_path, open_views):
    """A record written before bracket_id/context_index/pack_size existed still reads."""
    rec = trial_record("old", steps=11)
    rec = rec.drop_columns(["bracket_id", "context_index", "pack_size"])
    write_trial(tmp_path, step_table("old", CATAPULT), rec)
    r = db.records(open_views(tmp_path), "SELECT bracket_id, context_index, character FROM trial_summary")[0]
    assert r["bracket_id"] == "m|full|s|0|11" and r["context_index"] is None
    assert r["character"] == "catapult-like"


def test_bad_paths(tmp_path):
    with pytest.raises(StorageError, match="no results folder matches"):
        db.resolve_results([str(tmp_path / "nothing-*")])
    (tmp_path / "plain").mkdir()
    with pytest.raises(StorageError, match="no results in"):
        db.resolve_results([tmp_path / "plain"])
    put(tmp_path / "S", "x")
    (tmp_path / "S" / "plan.json").write_text("{not json")
    with pytest.raises(StorageError, match="cannot read .*plan.json"):
        db.connect([tmp_path / "S"])
