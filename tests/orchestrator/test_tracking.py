"""Experiment trackers (phantom/tracking.py) fed by real trials: what MLflow, TensorBoard and
Weights & Biases hold is read back with their own readers and compared, value by value, with the
Parquet step rows the same trials wrote."""

from __future__ import annotations

import json
import math
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from phantom.orchestrator.loader import load_sweep
from phantom.orchestrator.runner import run_sweep
from phantom.orchestrator.testing import read_trials, tiny_sweep
from phantom import tracking as tr
from phantom.cli import main
from phantom.errors import ConfigError

pytestmark = pytest.mark.timeout(240)

# the observables the brief names, plus every other measured column the worker passes
NAMED = ("phi", "signal", "drag", "loss", "logit_gap", "rank_g", "rank_c", "born_rank", "p_g", "p_c")


def _steps(folder: Path, trial_id: str) -> dict[str, list[tuple[int, float]]]:
    """Parquet step rows of context 0 as {column: [(step, value), ...]} for the tracked columns."""
    table = pq.read_table(folder / "steps" / f"{trial_id}.parquet").to_pylist()
    rows = [r for r in table if r["context_id"] == 0]
    return {c: [(r["step"], float(r[c])) for r in rows if r[c] is not None] for c in tr.metric_columns()
            if c not in ("grad_norm", "step_ms", "obs_ms")}  # timings are not passed to the callback


def _flip_step(series: list[tuple[int, float]]) -> int | None:
    return next((s for s, v in series if v > 0), None)


@pytest.fixture(scope="module")
def tracked_sweep(ray_local, tmp_path_factory):
    """A tiny sweep with tracking: [mlflow, tensorboard] (2 trials, 4 steps)."""
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    tmp = tmp_path_factory.mktemp("tracked")
    path = tmp / "sweep.yaml"
    import yaml

    path.write_text(yaml.safe_dump(tiny_sweep(name="tracked", learning_rates=[1e-2], training={"steps": 4})))
    sweep, sentences = load_sweep(path, ["tracking=[mlflow, tensorboard]"])
    assert sweep.tracking == ("mlflow", "tensorboard")
    run_sweep(sweep, sentences, storage=str(tmp / "st"))
    folder = tmp / "st" / "tracked"
    trials = read_trials(folder)
    assert len(trials) == 2 and all(t["status"] == "ok" for t in trials)
    return folder, trials


def test_mlflow_holds_every_step_of_every_trial(tracked_sweep, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads its file store only when asked
    folder, trials = tracked_sweep
    client = MlflowClient(tracking_uri=(folder / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("tracked")  # the sweep's name
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {t["trial_id"] for t in trials}  # one run per trial, named by its id
    for t in trials:
        run = runs[t["trial_id"]]
        assert run.info.status == "FINISHED"
        assert run.data.tags["trial_id"] == t["trial_id"] and run.data.tags["status"] == "ok"
        assert run.data.params["lr"] == "0.01" and run.data.params["training.steps"] == "4"
        assert run.data.params["sentence_id"] == t["sentence_id"] and run.data.params["model"] == "tiny-gpt2"
        steps = _steps(folder, t["trial_id"])
        assert set(NAMED) <= set(steps)
        for column, expected in steps.items():
            got = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, column)]
            assert sorted(got) == expected, column  # every step, exact values
        assert run.data.metrics["final_phi"] == steps["phi"][-1][1]
        assert run.data.metrics["steps_done"] == 4
        flip = _flip_step(steps["phi"])
        assert run.data.metrics.get("flip_step") == (None if flip is None else float(flip))


def test_tensorboard_holds_every_step_of_every_trial(tracked_sweep):
    from tensorboard.backend.event_processing import event_accumulator

    folder, trials = tracked_sweep
    assert {p.name for p in (folder / "tensorboard").iterdir()} == {t["trial_id"] for t in trials}
    for t in trials:
        acc = event_accumulator.EventAccumulator(str(folder / "tensorboard" / t["trial_id"]),
                                                 size_guidance={event_accumulator.SCALARS: 0})
        acc.Reload()
        steps = _steps(folder, t["trial_id"])
        assert set(NAMED) <= set(acc.Tags()["scalars"])
        for column, expected in steps.items():
            got = [(e.step, e.value) for e in acc.Scalars(column)]
            # TensorBoard stores scalars as float32
            assert got == [(s, float(np.float32(v))) for s, v in expected], column
        assert acc.Scalars("summary/final_phi")[0].value == float(np.float32(steps["phi"][-1][1]))
        assert "config/text_summary" in acc.Tags()["tensors"]


# ----------------------------------------------------------------------------------------------
# Weights & Biases: the real client, offline, read back from its run file


def _wandb_records(path: Path):
    """Records of an offline ``.wandb`` file: a 7-byte header, then LevelDB-log records (crc32,
    length, type; FULL=1 FIRST=2 MIDDLE=3 LAST=4) in 32 KiB blocks, each a protobuf Record."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            break
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            yield record


def test_wandb_offline_run_per_trial_with_every_step(tmp_path, capsys, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = tmp_path / "one"
    code = main(["trial", "--model", "tiny-llama", "--sentence", "awe", "--lr", "0.01", "--steps", "3",
                 "--out", str(out), "--quiet", "--track", "wandb"])
    assert code == 0
    [trial] = read_trials(out)
    [run_dir] = (out / "wandb").glob("offline-run-*")  # offline by default, under the results folder
    history: dict[int, dict] = {}
    names, summary, kinds = set(), {}, []
    wandb_file = next(run_dir.glob("*.wandb"))
    for record in _wandb_records(wandb_file):
        kind = record.WhichOneof("record_type")
        kinds.append(kind)
        if kind == "run":
            names.add(record.run.display_name)
        elif kind == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            history[int(items.pop("_step"))] = items
        elif kind == "summary":
            summary.update({i.key: json.loads(i.value_json) for i in record.summary.update})
    # (seen twice in loaded xdist runs: no run record; the message says what the file held and
    # what the tracker said)
    assert names == {trial["trial_id"]}, (f"{wandb_file.stat().st_size} bytes, records: {kinds}; "
                                          f"stderr: {capsys.readouterr().err!r}")
    steps = _steps(out, trial["trial_id"])
    for column, expected in steps.items():
        assert [(s, history[s][column]) for s, _ in expected] == expected, column
    assert summary["status"] == "ok" and summary["steps_done"] == 3


# ----------------------------------------------------------------------------------------------
# configuration and failure handling (no Ray)


def test_tracking_key_and_set_override(write_sweep):
    path = write_sweep(tiny_sweep())
    assert load_sweep(path)[0].tracking == ()
    assert load_sweep(path, ["tracking=[mlflow, tensorboard]"])[0].tracking == ("mlflow", "tensorboard")
    assert load_sweep(path, ["tracking=wandb"])[0].tracking == ("wandb",)
    with pytest.raises(ConfigError, match=r"Unknown tracker 'mlfow' in `tracking`. Did you mean 'mlflow'\?"):
        load_sweep(path, ["tracking=[mlfow]"])
    # tracking does not change what a trial is
    from phantom.orchestrator.expand import expand

    plain, tracked = (expand(*load_sweep(path, o)).ids for o in ([], ["tracking=[mlflow]"]))
    assert plain == tracked


def test_trial_track_unknown_or_missing_is_one_line(tmp_path, capsys, monkeypatch):
    argv = ["trial", "--model", "tiny-llama", "--sentence", "awe", "--lr", "0.01", "--steps", "1",
            "--out", str(tmp_path / "o"), "--quiet"]
    assert main([*argv, "--track", "tensorbord"]) == 2
    assert "Unknown tracker 'tensorbord' in `tracking`. Did you mean 'tensorboard'?" in capsys.readouterr().err
    monkeypatch.setattr(tr.importlib.util, "find_spec", lambda name: None)
    assert main([*argv, "--track", "mlflow"]) == 2
    err = capsys.readouterr().err
    assert err == "phantom: error: tracking with mlflow needs its package: pip install 'phantom-transitions[mlflow]'\n"
    assert not (tmp_path / "o").exists()


class _Broken:
    name = "broken"

    def __init__(self):
        self.calls = 0

    def start(self, *a):
        pass

    def log(self, *a):
        self.calls += 1
        raise OSError("disk full")

    def finish(self, *a):
        raise AssertionError("switched off after the first failure")

    def close(self):
        pass


class _Recorder:
    name = "recorder"

    def __init__(self):
        self.events = []

    def start(self, trial_id, params, tags):
        self.events.append(("start", trial_id, params, tags))

    def log(self, trial_id, step, metrics):
        self.events.append(("log", trial_id, step, metrics))

    def finish(self, trial_id, summary):
        self.events.append(("finish", trial_id, summary))

    def close(self):
        self.events.append(("close",))


def test_a_failing_tracker_warns_once_and_the_trial_goes_on(tmp_path, capsys, tiny_models, monkeypatch):
    from phantom.workers.trial import run_trial
    from phantom.config import TrainingConfig, TrialConfig
    from phantom.workers.sentences import get_sentence

    monkeypatch.setattr(tr, "_warned", set())
    s = get_sentence("awe")
    cfg = TrialConfig(model="tiny-llama", sentence_id=s.id, target=s.target, competitor=s.competitor,
                      contexts=s.contexts, lr=0.01, training=TrainingConfig(steps=3))
    broken, recorder = _Broken(), _Recorder()
    tracking = tr.Tracking([broken, recorder], "x")
    tracking.trial_started(cfg)

    def on_step(_cfg, t, rows):
        for i, row in enumerate(rows):
            tracking.step(cfg.trial_id, t, {**row, "context_id": i})

    result = run_trial(cfg, tmp_path, base=tiny_models["tiny-llama"], callback=on_step)
    tracking.trial_finished(tr.record_of(result))
    tracking.close()
    assert result.status == "ok" and result.steps_done == 3
    assert broken.calls == 1 and tracking.names == []
    err = capsys.readouterr().err
    assert err.count("phantom: warning: tracking with broken failed (step 0: OSError: disk full)") == 1
    # the healthy tracker saw every step and the summary
    logs = [e for e in recorder.events if e[0] == "log"]
    assert [e[2] for e in logs] == [0, 1, 2, 3]
    phi = pq.read_table(result.steps_path).column("phi").to_pylist()
    assert [e[3]["phi"] for e in logs] == phi
    [(_, tid, summary)] = [e for e in recorder.events if e[0] == "finish"]
    assert tid == cfg.trial_id and summary["status"] == "ok" and summary["final_phi"] == phi[-1]
    assert summary["flip_step"] == next((i for i, v in enumerate(phi) if v > 0), None)
    [(_, _, params, tags)] = [e for e in recorder.events if e[0] == "start"]
    assert params["lr"] == "0.01" and params["training.steps"] == "3" and tags["trial_id"] == cfg.trial_id


def test_opening_a_tracker_that_cannot_open_warns_and_leaves_it_out(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tr, "_warned", set())
    monkeypatch.delenv(tr.TRACKING_DIR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.ModuleType("torch.utils.tensorboard"))
    tracking = tr.open_tracking(["tensorboard"], str(tmp_path))
    assert not tracking and tracking.names == []
    assert "tracking with tensorboard failed (opening: ImportError" in capsys.readouterr().err
    # an object store and no local folder: mlflow needs a URI
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking = tr.open_tracking(["mlflow"], "s3://bucket/sweeps/x")
    assert tracking.names == []
    assert "set MLFLOW_TRACKING_URI or PHANTOM_TRACKING_DIR" in capsys.readouterr().err


def test_metrics_are_the_parquet_columns_and_contexts_are_suffixed():
    row = {"phi": 0.5, "rank_g": 3, "pool_capped": False, "loss": None, "model": "m", "context_id": 0}
    assert tr.metrics_of(row) == {"phi": 0.5, "rank_g": 3.0, "pool_capped": 0.0}
    assert tr.metrics_of({**row, "context_id": 2}) == {"phi/ctx2": 0.5, "rank_g/ctx2": 3.0, "pool_capped/ctx2": 0.0}
    assert set(NAMED) <= set(tr.metric_columns())
    assert not set(tr.ID_COLUMNS) & set(tr.metric_columns())
    assert all(not math.isnan(v) for v in tr.metrics_of(row).values())


def test_a_wandb_run_is_finished_and_flushed_whatever_its_summary_does():
    """The wandb backend finishes a run even when W&B refuses its summary (else the run's rows
    stay unwritten), and closing it waits for W&B's process to write and exit (teardown): the
    cause considered for the 7-byte .wandb file the offline test once read under load."""
    from types import SimpleNamespace

    calls = []

    class Summary:
        def update(self, values):
            raise TypeError("refused")

    run = SimpleNamespace(summary=Summary(), finish=lambda exit_code: calls.append(("finish", exit_code)))
    backend = tr._WandB.__new__(tr._WandB)
    backend.wandb = SimpleNamespace(teardown=lambda: calls.append(("teardown",)))
    backend.runs = {"t": run}
    with pytest.raises(TypeError, match="refused"):
        backend.finish("t", {"status": "ok"})
    assert calls == [("finish", 0)] and backend.runs == {}
    backend.runs = {"u": run}
    backend.close()
    assert calls[1:] == [("finish", 1), ("teardown",)] and backend.runs == {}
