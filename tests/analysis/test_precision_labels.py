"""The precision a trial was measured in, in the views, and one precision per fit unless asked
(docs/design/precision.md): a bf16 and an fp32 run of the same grid are told apart in the
data, and ``phantom analyze`` refuses to fit them together without ``--mix-precisions``."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phantom.analysis.testing import step_table, trial_record, write_plan, write_trial
from phantom.cli import main
from phantom.errors import QueryError

FLIPS = {1e-5: [-0.2, -0.1, 0.1, 0.2], 1e-4: [-0.2, 0.1, 0.2, 0.3]}  # a flip at step 2, at step 1


def write_grid(folder, precision, prefix, sentences=("s1", "s2")):
    ids = []
    for s in sentences:
        for lr, phi in FLIPS.items():
            tid = f"{prefix}-{s}-{lr:g}"
            write_trial(folder, step_table(tid, phi, sentence_id=s, lr=lr, precision=precision),
                        trial_record(tid, sentence_id=s, lr=lr, steps=3, precision=precision,
                                     bracket_id=f"{prefix}|{s}"))
            ids.append(tid)
    return ids


def legacy(folder, tid, config_precision, device):
    """A record as releases before 2026-12-07 wrote it: no precision columns."""
    record = trial_record(tid, precision=None).drop_columns(["train_precision", "obs_precision"])
    config = json.dumps({"training": {"precision": config_precision}}) if config_precision else json.dumps({})
    record = record.set_column(record.schema.get_field_index("config"), "config", pa.array([config]))
    record = record.set_column(record.schema.get_field_index("device"), "device", pa.array([device]))
    steps = step_table(tid, [-0.2, 0.1]).drop_columns(["train_precision", "obs_precision"])
    folder.joinpath("trials").mkdir(parents=True, exist_ok=True)
    folder.joinpath("steps").mkdir(parents=True, exist_ok=True)
    pq.write_table(steps, folder / "steps" / f"{tid}.parquet")
    pq.write_table(record, folder / "trials" / f"{tid}.parquet")


def query(folder, sql, *extra):
    return main(["query", str(folder), sql, "--format", "json", *extra])


def test_each_trial_is_labelled_with_its_precision_old_records_by_what_they_imply(tmp_path, capsys):
    write_trial(tmp_path, step_table("new-fp32", [-0.2, 0.1]), trial_record("new-fp32"))
    write_trial(tmp_path, step_table("new-bf16", [-0.2, 0.1], precision=("bf16", "fp32")),
                trial_record("new-bf16", precision=("bf16", "fp32")))
    write_trial(tmp_path, step_table("new-fp64", [-0.2, 0.1], precision=("fp64", "fp64")),
                trial_record("new-fp64", precision=("fp64", "fp64")))
    legacy(tmp_path, "old-auto-cpu", "auto", "cpu")
    legacy(tmp_path, "old-none-cpu", None, "cpu")  # a config without the key: auto
    legacy(tmp_path, "old-fp16-cpu", "fp16", "cpu")  # accelerate ignored fp16 on a CPU: fp32 ran
    legacy(tmp_path, "old-bf16-cpu", "bf16", "cpu")  # observed from the bf16 forward
    legacy(tmp_path, "old-auto-cuda", "auto", "cuda:0 (NVIDIA A100)")  # bf16 or fp16: not recorded
    legacy(tmp_path, "old-fp16-cuda", "fp16", "cuda:0 (Tesla V100)")
    capsys.readouterr()
    assert query(tmp_path, "SELECT trial_id, precision FROM trial_summary ORDER BY trial_id") == 0
    got = {r["trial_id"]: r["precision"] for r in json.loads(capsys.readouterr().out)}
    assert got == {"new-fp32": "fp32", "new-bf16": "bf16/fp32", "new-fp64": "fp64", "old-auto-cpu": "fp32",
                   "old-none-cpu": "fp32", "old-fp16-cpu": "fp32", "old-bf16-cpu": "bf16",
                   "old-auto-cuda": "auto-cuda", "old-fp16-cuda": "fp16"}
    # old step files read beside new ones: the columns they lack are NULL, the rest by name
    assert query(tmp_path, "SELECT trial_id, step, phi, train_precision, obs_precision FROM steps "
                           "WHERE trial_id IN ('new-bf16', 'old-bf16-cpu') ORDER BY trial_id, step") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"trial_id": "new-bf16", "step": 0, "phi": -0.2, "train_precision": "bf16", "obs_precision": "fp32"},
        {"trial_id": "new-bf16", "step": 1, "phi": 0.1, "train_precision": "bf16", "obs_precision": "fp32"},
        {"trial_id": "old-bf16-cpu", "step": 0, "phi": -0.2, "train_precision": None, "obs_precision": None},
        {"trial_id": "old-bf16-cpu", "step": 1, "phi": 0.1, "train_precision": None, "obs_precision": None}]


def test_analyze_refuses_to_fit_two_precisions_together_unless_asked(tmp_path, capsys):
    ids = write_grid(tmp_path, ("fp32", "fp32"), "a") + write_grid(tmp_path, ("bf16", "fp32"), "b")
    write_plan(tmp_path, ids)
    capsys.readouterr()
    assert main(["analyze", str(tmp_path), "--no-report", "--bootstrap", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "phantom: error: the fits of m / full would mix precisions: bf16/fp32 (4 trials), fp32 (4 trials); "
        "analyse the results of one precision, or pass --mix-precisions (mix_precisions=True) to fit them together")
    assert not (tmp_path / "analysis").exists()
    # a query of the fits refuses the same; one of the trials does not
    assert query(tmp_path, "SELECT * FROM fits") == 2
    assert "would mix precisions" in capsys.readouterr().err
    assert query(tmp_path, "SELECT count(*) AS n FROM trial_summary") == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 8}]
    # the labels themselves are never refused: the view that lists them is where to look
    assert query(tmp_path, "SELECT precision, n_trials FROM precisions ORDER BY precision") == 0
    assert json.loads(capsys.readouterr().out) == [{"precision": "bf16/fp32", "n_trials": 4},
                                                   {"precision": "fp32", "n_trials": 4}]

    # asked: one fit over both, and it says so
    assert main(["analyze", str(tmp_path), "--no-report", "--bootstrap", "0", "--mix-precisions"]) == 0
    fits = pq.read_table(tmp_path / "analysis" / "fits.parquet").to_pylist()
    assert [(f["model"], f["protocol"], f["precision"], f["n_trials"]) for f in fits] == [
        ("m", "full", "bf16/fp32 + fp32", 8)]
    eta_c = pq.read_table(tmp_path / "analysis" / "eta_c.parquet").to_pylist()
    assert sorted(e["precision"] for e in eta_c) == ["bf16/fp32"] * 2 + ["fp32"] * 2
    precisions = pq.read_table(tmp_path / "analysis" / "precisions.parquet").to_pylist()
    assert [(p["precision"], p["n_trials"], p["n_measured"]) for p in precisions] == [("bf16/fp32", 4, 4), ("fp32", 4, 4)]


def test_one_precision_per_fit_is_analysed_and_named(tmp_path, capsys):
    import phantom

    write_plan(tmp_path, write_grid(tmp_path, ("bf16", "fp32"), "b"))
    capsys.readouterr()
    assert main(["analyze", str(tmp_path), "--no-report", "--bootstrap", "0"]) == 0
    said = capsys.readouterr()
    assert "wrote " in said.out and "report.html" not in said.out + said.err  # --no-report: none written, none said
    assert not (tmp_path / "analysis" / "report.html").exists()
    fits = pq.read_table(tmp_path / "analysis" / "fits.parquet").to_pylist()
    assert [(f["precision"], f["n_trials"]) for f in fits] == [("bf16/fp32", 4)]
    write_grid(tmp_path, ("fp32", "fp32"), "a")  # not in the plan: not analysed
    with phantom.open(tmp_path) as res:
        assert res.fits().fetchall()
    with phantom.open(tmp_path, all_trials=True, mix_precisions=True) as res:
        assert res.sql("SELECT precision FROM fits").fetchall() == [("bf16/fp32 + fp32",)]
    with pytest.raises(QueryError, match="would mix precisions"), phantom.open(tmp_path, all_trials=True) as res:
        res.fits().fetchall()
