"""Running, re-running, resuming on one local Ray: nothing lost, nothing duplicated."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.loader import load_sweep
from orchestrator.runner import STEP_DELAY_ENV, resume, run_sweep
from orchestrator.status import sweep_status
from phantom.outcomes import saturation_step
from orchestrator.testing import assert_complete, read_steps, read_trials, tiny_sweep

pytestmark = pytest.mark.timeout(240)


def _run(path, storage, **kw):
    sweep, sentences = load_sweep(path)
    return run_sweep(sweep, sentences, storage=str(storage), **kw)


def test_run_then_run_again_starts_no_trial(ray_local, write_sweep, tmp_path, capsys):
    path = write_sweep(tiny_sweep())
    first = _run(path, tmp_path / "st")
    folder = tmp_path / "st" / "tiny"
    assert first.dispatched == 4 and first.already == 0
    assert_complete(folder, n_trials=4, steps=5)
    trials = read_trials(folder)
    assert {t["sentence_id"] for t in trials} == {"longing", "shame"}
    assert {t["lr"] for t in trials} == {1e-3, 1e-2}
    assert all(t["host"] and t["device"] == "cpu" for t in trials)
    attempts = [json.loads(p.read_text())["attempts"] for p in (folder / "attempts").glob("*.json")]
    assert len(attempts) == 4 and all(len(a) == 1 and a[0]["node_id"] for a in attempts)
    # reuse_actors: 4 trials ran in at most 2 worker processes (2 CPUs), keeping the model loaded
    assert len({a[0]["pid"] for a in attempts}) <= 2
    out = capsys.readouterr().err
    assert "4 trials planned: 4 ok, 0 diverged, 0 error, 0 not done" in out
    assert f'phantom query {folder} "SELECT' in out

    before = {p.name: p.stat().st_mtime_ns for p in folder.rglob("*.parquet") if "ray" not in p.parts}
    second = _run(path, tmp_path / "st")
    assert second.dispatched == 0 and second.already == 4
    after = {p.name: p.stat().st_mtime_ns for p in folder.rglob("*.parquet") if "ray" not in p.parts}
    assert {k: v for k, v in after.items() if k != "skipped.parquet"} == {
        k: v for k, v in before.items() if k != "skipped.parquet"}
    assert "all 4 trials of tiny are complete: nothing to run" in capsys.readouterr().err
    assert all(len(json.loads(p.read_text())["attempts"]) == 1 for p in (folder / "attempts").glob("*.json"))

    # an errored trial re-runs only with --errored, and only that one
    victim = folder / "trials" / f"{trials[0]['trial_id']}.parquet"
    record = pq.read_table(victim).to_pylist()
    record[0].update(status="error", error="RuntimeError: planted")
    pq.write_table(pa.Table.from_pylist(record, schema=pq.read_schema(victim)), victim)
    assert sweep_status(str(folder)).counts["error"] == 1
    assert resume(str(folder)).dispatched == 0
    again = resume(str(folder), rerun_errored=True)
    assert again.dispatched == 1
    assert_complete(folder, n_trials=4, steps=5)
    assert sweep_status(str(folder)).finished_ok

    # status reads storage only: no Ray import
    code = (
        "import sys; from phantom.cli import main; rc = main(['sweep', 'status', sys.argv[1]]);"
        "print('ray' in sys.modules, rc)"
    )
    res = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip().splitlines()[-1] == "False 0", res.stdout + res.stderr
    assert "4 trials planned: 4 ok" in res.stdout and "complete" in res.stdout


def test_worker_killed_mid_trial_is_retried_and_completes(ray_local, write_sweep, tmp_path, monkeypatch):
    monkeypatch.setenv(STEP_DELAY_ENV, "0.25")  # ~2.5 s a trial: time to kill one mid-way
    path = write_sweep(tiny_sweep(training={"steps": 10}, learning_rates=[1e-3]))
    folder = tmp_path / "st" / "tiny"
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(o=_run(path, tmp_path / "st")))
    runner.start()
    killed = None
    deadline = time.monotonic() + 90
    while killed is None and time.monotonic() < deadline:
        for p in sorted((folder / "attempts").glob("*.json")) if (folder / "attempts").exists() else []:
            tid = p.stem
            if not (folder / "trials" / f"{tid}.parquet").exists():
                time.sleep(0.6)  # a couple of steps in
                killed = (tid, json.loads(p.read_text())["attempts"][-1]["pid"])
                os.kill(killed[1], signal.SIGKILL)
                break
        time.sleep(0.1)
    runner.join(180)
    assert killed is not None and not runner.is_alive()
    assert_complete(folder, n_trials=2, steps=10)
    attempts = json.loads((folder / "attempts" / f"{killed[0]}.json").read_text())["attempts"]
    assert len(attempts) == 2 and attempts[0]["pid"] == killed[1] != attempts[1]["pid"]


def test_phi_saturation_stop_is_recorded_not_failed(ray_local, write_sweep, tmp_path):
    """Off: the whole budget; on: stops at the SPEC §4 step of that same trajectory, status ok."""
    data = tiny_sweep(models=["tiny-llama"], learning_rates=[1e-4], training={"steps": 12},
                      sentences={"file": tiny_sweep()["sentences"]["file"], "ids": ["shame"]})
    _run(write_sweep(data, "off.yaml"), tmp_path / "off")
    full = read_steps(tmp_path / "off" / "tiny").sort_by("step").column("phi").to_pylist()
    expected = saturation_step(full, 3, 0.01)
    assert expected is not None and expected < 12

    data["stopper"] = {"phi_saturation": True}
    _run(write_sweep(data, "on.yaml"), tmp_path / "on")
    (trial,) = read_trials(tmp_path / "on" / "tiny")
    assert (trial["status"], trial["stop_reason"], trial["steps_done"]) == ("ok", "phi-saturation", expected)
    assert read_steps(tmp_path / "on" / "tiny").num_rows == expected + 1
    st = sweep_status(str(tmp_path / "on" / "tiny"))
    assert st.finished_ok and st.stopped_early == 1 and not st.failures


def test_eta_c_search_finds_the_flip_rate_and_resumes_from_its_state(ray_local, write_sweep, tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    data = tiny_sweep(models=["tiny-llama"], training={"steps": 8},
                      sentences={"file": tiny_sweep()["sentences"]["file"], "ids": ["longing"]},
                      search={"mode": "eta-c", "lr_min": 1e-7, "lr_max": 1e-4, "tolerance": 32.0})
    path = write_sweep(data)
    first = _run(path, tmp_path / "st")
    folder = tmp_path / "st" / "tiny"
    (row,) = pq.read_table(folder / "eta_c.parquet").to_pylist()
    assert row["status"] == "found" and row["trials"] == first.dispatched == 3  # ends + one bisection
    assert row["lr_lo"] < row["eta_c"] < row["lr_hi"] and row["lr_hi"] / row["lr_lo"] <= 32
    lrs = sorted(t["lr"] for t in read_trials(folder))
    assert lrs[0] == 1e-7 and lrs[2] == 1e-4 and lrs[1] == pytest.approx(math.sqrt(1e-11), rel=1e-5)
    study = optuna.load_study(study_name="tiny-llama|longing|full|seed=0",
                              storage=JournalStorage(JournalFileBackend(str(folder / "optuna.journal"))))
    told = sorted(10 ** t.params["log10_lr"] for t in study.trials)
    assert told == [pytest.approx(lr, rel=1e-9) for lr in lrs]
    again = _run(path, tmp_path / "st")
    assert again.dispatched == 0 and len(study.trials) == 3
