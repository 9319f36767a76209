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

from phantom.orchestrator.loader import load_sweep
from phantom.orchestrator.runner import resume, run_sweep
from phantom.orchestrator.status import sweep_status
from phantom.orchestrator.testing import assert_complete, read_steps, read_trials, tiny_sweep
from phantom.cli import main
from phantom.outcomes import saturation_step

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

    # status reads storage only: no Ray, no torch
    code = (
        "import sys; from phantom.cli import main; rc = main(['sweep', 'status', sys.argv[1]]);"
        "print('ray' in sys.modules, 'torch' in sys.modules, rc)"
    )
    res = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip().splitlines()[-1] == "False False 0", res.stdout + res.stderr
    assert "4 trials planned: 4 ok" in res.stdout and "complete" in res.stdout


def test_worker_killed_mid_trial_is_retried_and_completes(ray_local, write_sweep, tmp_path, monkeypatch):
    # ~2.5 s a trial: time to kill one mid-way
    path = write_sweep(tiny_sweep(training={"steps": 10}, learning_rates=[1e-3], testing={"step_delay_s": 0.25}))
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
    """Off: the whole budget; on: stops at the science §4.6 step of that same trajectory, status ok."""
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
    assert st.finished_ok and st.stopped_early == {"phi-saturation": 1} and not st.failures


def test_a_trial_that_fails_at_load_writes_its_record_and_the_summary_groups_by_message(
    ray_local, write_sweep, tmp_path, capsys, monkeypatch
):
    """Issue 8: a load-time error was reported to Tune but never written; the summary said
    'N not done - continue with resume', which failed the same way. Also: nothing is left
    behind (no *.tmp, no temporary folder) after a finished run or resume."""
    import tempfile

    from phantom.workers.tiny import build_tokenizer

    broken = tmp_path / "tokenizer-only"  # resolvable and checkable here, no weights: fails on the worker
    build_tokenizer().save_pretrained(str(broken))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    path = write_sweep(tiny_sweep(models=[str(broken)], training={"steps": 2}))
    assert main(["sweep", "run", str(path), "--storage", str(tmp_path / "st")]) == 1
    folder = tmp_path / "st" / "tiny"
    trials = read_trials(folder)
    assert len(trials) == 4 and {t["status"] for t in trials} == {"error"}
    assert all(t["error"].startswith(f"ModelError: cannot load model from directory '{broken}'") for t in trials)
    out = capsys.readouterr().out
    assert "4 trials planned: 0 ok, 0 diverged, 4 error, 0 not done" in out
    assert f"4 failed trials, by message (fix the cause, then re-run them with: phantom sweep resume {folder} --errored):" in out
    assert f"    4 x ModelError: cannot load model from directory '{broken}'" in out
    assert "continue with" not in out
    # resume re-runs nothing (errors need --errored) and leaves nothing behind either
    assert resume(str(folder)).dispatched == 0
    assert not list(folder.rglob("*.tmp")) and not (folder / "sweep.lock").exists()
    assert list(scratch.iterdir()) == []


def test_a_request_no_node_can_meet_is_refused_before_anything_starts(ray_local, write_sweep, tmp_path, capsys):
    """Issue 12: half a GPU on a cluster without GPUs waited forever."""
    path = write_sweep(tiny_sweep(resources={"cpus_per_trial": 1, "gpus_per_trial": 0.5}))
    assert main(["sweep", "run", str(path), "--storage", str(tmp_path / "st")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "phantom: error: a trial asks for 1 CPU, 0.5 GPU (`resources`), but no node of this Ray cluster has "
        "that (nodes: 2 CPU, 0 GPU) and no autoscaler can add one (no GPU here? run on CPUs with "
        "--set resources.gpus_per_trial=0)"
    )
    assert not (tmp_path / "st").exists()  # nothing written
    path = write_sweep(tiny_sweep(resources={"cpus_per_trial": 3}), "cpus.yaml")
    assert main(["sweep", "run", str(path), "--storage", str(tmp_path / "st")]) == 2
    assert "a trial asks for 3 CPU, 0 GPU" in capsys.readouterr().err


def test_the_eta_c_search_keeps_its_state_in_optuna_and_reruns_errored_trials(ray_local, write_sweep, tmp_path, capsys):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    from phantom.orchestrator.etac import plan_brackets

    data = tiny_sweep(models=["tiny-llama"], training={"steps": 8},
                      sentences={"file": tiny_sweep()["sentences"]["file"], "ids": ["longing"]},
                      # the ends span 1e6, so one bisection leaves a bracket of 1e3: within tolerance
                      search={"mode": "eta-c", "lr_min": 1e-7, "lr_max": 1e-1, "tolerance": 1001.0})
    path = write_sweep(data)
    first = _run(path, tmp_path / "st")
    folder = tmp_path / "st" / "tiny"
    assert not (folder / "eta_c.parquet").exists()  # η_c is the analysis' view
    trials = sorted(read_trials(folder), key=lambda t: t["lr"])
    assert first.dispatched == len(trials) == 3  # the ends, then one bisection
    assert [t["lr"] for t in trials] == [1e-7, pytest.approx(1e-4, rel=1e-5), 1e-1]
    # a search trial stops at its flip: only "does it flip?" matters
    flipped = [t for t in trials if t["stop_reason"] == "flip"]
    assert flipped and all(t["steps_done"] < 8 for t in flipped)
    assert all(t["stop_reason"] is None and t["steps_done"] == 8 for t in trials if t not in flipped)
    assert all(json.loads(t["config"])["stopper"]["at_flip"] for t in trials)
    out = capsys.readouterr().err
    assert "found" in out and f'phantom query {folder} "SELECT * FROM eta_c"' in out

    sweep, sentences = load_sweep(path)
    (b,) = plan_brackets(sweep, sentences)[0]
    journal = JournalStorage(JournalFileBackend(str(folder / "optuna.journal")))
    study = optuna.load_study(study_name=b.study_name, storage=journal)
    told = sorted((t.params["lr"], t.value, t.user_attrs["trial_id"]) for t in study.trials)
    assert told == [(t["lr"], float(t["stop_reason"] == "flip"), t["trial_id"]) for t in trials]
    assert study.user_attrs["bracket_id"] == b.bracket_id == trials[0]["bracket_id"]
    assert _run(path, tmp_path / "st").dispatched == 0

    # an errored search trial: resume --errored re-runs it (and only it), the study records both
    victim = folder / "trials" / f"{trials[1]['trial_id']}.parquet"
    record = pq.read_table(victim).to_pylist()
    record[0].update(status="error", error="RuntimeError: planted")
    pq.write_table(pa.Table.from_pylist(record, schema=pq.read_schema(victim)), victim)
    assert resume(str(folder)).dispatched == 0
    assert "error" in capsys.readouterr().err
    assert resume(str(folder), rerun_errored=True).dispatched == 1
    assert {t["trial_id"]: t["status"] for t in read_trials(folder)} == {t["trial_id"]: "ok" for t in trials}
    study = optuna.load_study(study_name=b.study_name, storage=journal)
    states = [t.state for t in study.trials if t.user_attrs["trial_id"] == trials[1]["trial_id"]]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]

    # a lost journal is rebuilt from the records: nothing runs again
    (folder / "optuna.journal").unlink()
    assert _run(path, tmp_path / "st").dispatched == 0
    study = optuna.load_study(study_name=b.study_name, storage=JournalStorage(
        JournalFileBackend(str(folder / "optuna.journal"))))
    assert sorted(t.params["lr"] for t in study.trials) == [t["lr"] for t in trials]


def test_packs_run_as_one_tune_trial_each_and_reform_from_what_is_pending(
    ray_local, write_sweep, tmp_path, monkeypatch
):
    """4 trials in packs of 2 (the loop engine, `resources.pack_mode: loop`: one model per member, the packed interface):
    2 Tune trials, every trial its own record and the rows of the same trial run alone; a
    resume re-forms a pack from its one missing member."""
    from phantom.orchestrator.expand import expand
    from phantom.orchestrator.testing import SENTENCES
    from phantom.workers.testing import threads
    from phantom.workers.trial import run_trial

    path = write_sweep(tiny_sweep(
        sentences={"file": str(SENTENCES), "ids": ["longing"]}, protocols=["lora"],
        learning_rates=[1e-3, 1e-2], seeds=[0, 1], training={"steps": 4},
        resources={"cpus_per_trial": 1, "pack": 2, "pack_mode": "loop"}))
    sweep, sentences = load_sweep(path)
    outcome = run_sweep(sweep, sentences, storage=str(tmp_path / "st"))
    folder = tmp_path / "st" / "tiny"
    assert outcome.dispatched == 4
    trials = {t["trial_id"]: t for t in read_trials(folder)}
    assert len(trials) == 4 and {(t["status"], t["pack_size"]) for t in trials.values()} == {("ok", 2)}
    tune_trials = [p.name for p in (folder / "ray").glob("run-*/*") if p.is_dir()]
    assert len(tune_trials) == 2 and all(n.startswith("pack-") for n in tune_trials)
    attempts = [json.loads(p.read_text())["attempts"] for p in (folder / "attempts").glob("*.json")]
    assert len(attempts) == 4 and len({a[0]["pid"] for a in attempts}) <= 2

    cfg = expand(sweep, sentences).trials[3]  # lr 1e-2, seed 1: the second member of its pack
    with threads(1):  # the worker's thread count (cpus_per_trial): the same kernels, the same sums
        run_trial(cfg, str(tmp_path / "alone"))
    assert _phi(folder, cfg.trial_id) == _phi(tmp_path / "alone", cfg.trial_id)  # the loop engine is the trial alone

    (folder / "trials" / f"{cfg.trial_id}.parquet").unlink()  # one member missing
    (folder / "steps" / f"{cfg.trial_id}.parquet").unlink()
    again = resume(str(folder))
    assert again.dispatched == 1
    redone = {t["trial_id"]: t for t in read_trials(folder)}
    assert redone[cfg.trial_id]["pack_size"] == 1 and redone[cfg.trial_id]["status"] == "ok"
    assert all(redone[t]["finished_at"] == trials[t]["finished_at"] for t in trials if t != cfg.trial_id)


def _phi(folder, trial_id: str) -> list[float]:
    rows = [r for r in read_steps(folder).to_pylist() if r["trial_id"] == trial_id]
    return [r["phi"] for r in sorted(rows, key=lambda r: r["step"])]


def test_an_experiment_tune_cannot_restore_is_dispatched_afresh(ray_local, write_sweep, tmp_path, monkeypatch, capsys):
    """A driver killed while Tune was starting left an experiment whose restore fails inside
    Tune (seen: KeyError 'pack' in the trial namer). The run says so in one line and runs what
    is pending as new packs: nothing lost, nothing twice."""
    from ray import tune

    from phantom import layout
    from phantom.storage import Store

    path = write_sweep(tiny_sweep())
    folder = tmp_path / "st" / "tiny"
    store = Store.open(str(folder))
    from phantom.orchestrator.unit_task import FORMAT

    store.write_text(json.dumps({"name": "run-killed-at-start", "format": FORMAT}), layout.RAY_DIR, layout.CURRENT_FILE)

    def broken_restore(*args, **kwargs):
        raise KeyError("pack")

    monkeypatch.setattr(tune.Tuner, "can_restore", classmethod(lambda cls, p: True))
    monkeypatch.setattr("phantom.orchestrator.engine._no_experiment_state", lambda p: False)
    monkeypatch.setattr(tune.Tuner, "restore", classmethod(lambda cls, *a, **k: broken_restore()))
    out = _run(path, tmp_path / "st")
    assert out.dispatched == 4
    assert_complete(folder, n_trials=4, steps=5)
    err = capsys.readouterr().err
    assert "could not restore the interrupted Tune experiment (KeyError: 'pack'); running what is pending afresh" in err
    assert not store.exists(layout.RAY_DIR, layout.CURRENT_FILE)


def test_an_experiment_killed_before_its_first_checkpoint_is_not_restored(tmp_path):
    """tuner.pkl without experiment_state-*.json (seen after a driver killed 9 s in): not
    restorable, so no Tune traceback; a folder with the state file is left to Tune."""
    from phantom.orchestrator.engine import _no_experiment_state

    (tmp_path / "tuner.pkl").write_bytes(b"")
    assert _no_experiment_state(str(tmp_path))
    (tmp_path / "experiment_state-2026-11-25_16-07-32.json").write_text("{}")
    assert not _no_experiment_state(str(tmp_path))
    assert not _no_experiment_state("s3://bucket/sweep/ray/run-1")
