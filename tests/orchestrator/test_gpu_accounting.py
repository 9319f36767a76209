"""Ray's GPU accounting without a GPU: a local Ray started with logical GPUs (``num_gpus``) does
all the bookkeeping a GPU cluster does — the fractions of ``resources.gpus_per_trial``, the
Tune trials a node runs at once, the GPU each is assigned — while the trials themselves run on
the CPU (torch sees no CUDA). What only a real GPU can show is bench/bench_gpu.py's."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from phantom.cli import main
from phantom.orchestrator import packing
from phantom.orchestrator.capacity import ResourceError, check_capacity, worker_slots
from phantom.orchestrator.testing import read_trials, tiny_sweep
from phantom.protocols import Protocol

pytestmark = pytest.mark.timeout(300)

CPUS, GPUS = 4, 1  # logical: the machine may have 2 cores and no GPU


@pytest.fixture(scope="module")
def ray_gpus():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=CPUS, num_gpus=GPUS, include_dashboard=False,
             logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("gpus,slots", [(0.25, 4), (0.5, 2), (1, 1), (0, CPUS)])
def test_the_tune_trials_a_node_runs_at_once(ray_gpus, gpus, slots):
    """One GPU in quarters: four trials (the CPUs allow four); in halves: two; whole: one."""
    request = {"CPU": 1.0, **({"GPU": float(gpus)} if gpus else {})}
    assert check_capacity(request) is None
    assert worker_slots(request) == slots


def test_a_request_for_more_gpus_than_a_node_has_is_refused_in_one_line(ray_gpus, write_sweep, tmp_path, capsys):
    with pytest.raises(ResourceError):
        check_capacity({"CPU": 1.0, "GPU": 2.0})
    path = write_sweep(tiny_sweep(resources={"cpus_per_trial": 1, "gpus_per_trial": 2}))
    assert main(["sweep", "run", str(path), "--storage", str(tmp_path / "st")]) == 2
    assert capsys.readouterr().err.strip() == (
        "phantom: error: a trial asks for 1 CPU, 2 GPU (`resources`), but no node of this Ray cluster has "
        f"that (nodes: {CPUS} CPU, {GPUS} GPU) and no autoscaler can add one (a trial runs on one node: ask "
        f"for at most {GPUS} GPU)")
    assert not (tmp_path / "st").exists()


def _most_at_once(trials: list[dict]) -> int:
    """The most trials whose [started_at, finished_at] intervals overlap at one instant."""
    events = sorted([(t["started_at"], 1) for t in trials] + [(t["finished_at"], -1) for t in trials],
                    key=lambda e: (e[0], e[1]))
    now = most = 0
    for _, change in events:
        now += change
        most = max(most, now)
    return most


def test_half_a_gpu_each_runs_two_trials_at_once_on_one_gpu(ray_gpus, write_sweep, tmp_path, capsys):
    """Four one-trial Tune trials on 4 CPUs and 1 GPU at 0.5 each: Tune runs two at a time,
    each assigned GPU 0. Without the GPU request the CPUs would run all four at once (each
    trains ~4 s, far longer than the workers' start-up skew)."""
    path = write_sweep(tiny_sweep(resources={"cpus_per_trial": 1, "gpus_per_trial": 0.5, "pack": 1},
                                  training={"steps": 4}, testing={"step_delay_s": 1.0}))
    assert main(["sweep", "run", str(path), "--storage", str(tmp_path / "st")]) == 0
    folder = tmp_path / "st" / "tiny"
    trials = read_trials(folder)
    assert len(trials) == 4 and {t["status"] for t in trials} == {"ok"}
    assert all(t["finished_at"] - t["started_at"] > timedelta(seconds=3) for t in trials)
    assert _most_at_once(trials) == 2
    attempts = [json.loads(p.read_text())["attempts"] for p in (folder / "attempts").glob("*.json")]
    assert [a[0]["gpus"] for a in attempts] == [["0"]] * 4
    # torch sees no CUDA here: the trials ran on the CPU, in the precision `auto` means there
    assert {(t["device"], t["train_precision"], t["obs_precision"]) for t in trials} == {("cpu", "fp32", "fp32")}


def test_a_gpu_trial_packs_by_the_gpu_table(ray_gpus, write_sweep, tmp_path, capsys, monkeypatch):
    """The pack size of a sweep that reserves GPUs is the CUDA column of PACK_DEFAULTS (made 2
    here, against the CPU's 8): four LoRA rates in two packs, one GPU each, one after the other."""
    monkeypatch.setattr(packing, "packed_engines_available", lambda: True)
    monkeypatch.setitem(packing.PACK_DEFAULTS, "cuda", {**packing.PACK_DEFAULTS["cuda"], Protocol.LORA: 2})
    path = write_sweep(tiny_sweep(protocols=["lora"], learning_rates=[1e-3, 3e-3, 1e-2, 3e-2],
                                  sentences={"file": tiny_sweep()["sentences"]["file"], "ids": ["longing"]},
                                  resources={"cpus_per_trial": 1, "gpus_per_trial": 1}, training={"steps": 2}))
    assert main(["sweep", "run", str(path), "--storage", str(tmp_path / "st")]) == 0
    out = capsys.readouterr()
    assert "up to K trials per pack, K per protocol on cuda (auto): lora 2" in out.out + out.err
    trials = read_trials(tmp_path / "st" / "tiny")
    assert len(trials) == 4 and [t["pack_size"] for t in trials] == [2] * 4
    assert _most_at_once(trials) == 2  # the members of one pack; the packs one at a time
