"""The Ray session phantom starts by itself."""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.timeout(120)


def test_a_ray_started_here_leaves_no_session_folder_after_a_clean_run():
    """A local Ray that phantom starts writes /tmp/ray/session_*; it goes after a clean run (it
    stays after a failed one, for Ray's own logs)."""
    import ray

    from phantom.orchestrator.session import RaySession, _session_dir

    if ray.is_initialized():
        ray.shutdown()
    with RaySession(None, {"CPU": 1.0}) as session:
        folder = _session_dir()
        assert session.started and folder and os.path.isdir(folder)
    assert not os.path.exists(folder)

    with pytest.raises(RuntimeError):
        with RaySession(None, {"CPU": 1.0}):
            kept = _session_dir()
            raise RuntimeError("a failed run")
    assert os.path.isdir(kept)
    shutil.rmtree(kept, ignore_errors=True)


def test_a_running_cluster_on_this_machine_is_left_alone(monkeypatch):
    """A `ray start` cluster runs on this machine. Without an address phantom starts its own Ray
    (the CLI's "default: start Ray here"; `ray.init()` alone would attach to that cluster), and
    attached with an address it leaves the cluster's session folder (its logs and sockets)
    where it is after a clean run: only the folder of a Ray started here goes."""
    import ray
    from ray.cluster_utils import Cluster

    from phantom.orchestrator.session import RaySession, _session_dir

    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    theirs = cluster.head_node.get_session_dir_path()
    try:
        with RaySession(None, {"CPU": 1.0}) as session:
            ours = _session_dir()
            assert session.started and ours != theirs
            assert ray.get_runtime_context().gcs_address != cluster.address
        assert not os.path.exists(ours) and os.path.isdir(theirs)

        with RaySession(cluster.address, {"CPU": 1.0}) as session:
            assert not session.started
            assert ray.get_runtime_context().gcs_address == cluster.address
        assert os.path.isdir(theirs) and os.path.exists(os.path.join(theirs, "sockets"))
        assert not ray.is_initialized()
    finally:
        cluster.shutdown()


def test_a_run_with_usage_stats_off_does_not_count_its_callbacks(ray_local, write_sweep, tmp_path, monkeypatch):
    """Tune counts a run's callback classes for Ray's usage telemetry by importing the MLflow
    and W&B integrations (mlflow and wandb: 3.3 s before the first trial where Phantom's
    tracking extras are installed). With usage stats off the count goes nowhere: a sweep run
    never calls it, and the count is back in place after the run."""
    from ray.air._internal import usage

    from phantom.orchestrator.loader import load_sweep
    from phantom.orchestrator.runner import run_sweep
    from phantom.orchestrator.testing import SENTENCES, assert_complete, tiny_sweep

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    counted = []
    monkeypatch.setattr(usage, "_count_callbacks", lambda callbacks: counted.append(callbacks) or {})
    original = usage.tag_callbacks
    one = tiny_sweep(learning_rates=[1.0e-3], training={"steps": 1}, sentences={"file": str(SENTENCES), "ids": ["longing"]})
    sweep, sentences = load_sweep(write_sweep(one))
    run_sweep(sweep, sentences, storage=str(tmp_path / "st"))
    assert_complete(tmp_path / "st" / "tiny", n_trials=1, steps=1)
    assert counted == []
    assert usage.tag_callbacks is original

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "1")  # telemetry on: Tune counts as it always did
    run_sweep(sweep, sentences, storage=str(tmp_path / "st2"))
    assert len(counted) == 1
