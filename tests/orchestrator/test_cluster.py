"""A multi-node Ray cluster on this one machine: a head with 0 CPUs and two 1-CPU workers."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from phantom.orchestrator.loader import load_sweep
from phantom.orchestrator.runner import run_sweep
from phantom.orchestrator.testing import assert_complete, tiny_sweep

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [c.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=c.address, logging_level="WARNING", log_to_driver=False)
    c.wait_for_nodes()
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def _attempts(folder) -> dict[str, list[dict]]:
    if not (folder / "attempts").exists():
        return {}
    out = {}
    for p in (folder / "attempts").glob("*.json"):
        try:
            out[p.stem] = json.loads(p.read_text())["attempts"]
        except ValueError:  # being replaced right now
            pass
    return out


def test_trials_run_on_both_nodes_and_survive_losing_one(cluster, write_sweep, tmp_path, monkeypatch):
    c, nodes = cluster
    sentences = tiny_sweep()["sentences"]["file"]
    path = write_sweep(tiny_sweep(
        sentences={"file": sentences, "ids": ["longing", "shame", "awe"]}, training={"steps": 8},
        testing={"step_delay_s": 0.25},
    ))  # 6 trials of ~2 s
    folder = tmp_path / "st" / "tiny"
    sweep, sents = load_sweep(path)
    done = {}
    runner = threading.Thread(target=lambda: done.update(o=run_sweep(sweep, sents, storage=str(tmp_path / "st"))))
    runner.start()

    # wait until both nodes run a trial, then take one node away with its running trial
    by_id = {n.node_id: n for n in nodes}
    removed = victim = None
    deadline = time.monotonic() + 120
    while removed is None and time.monotonic() < deadline:
        running = {tid: a[-1] for tid, a in _attempts(folder).items()
                   if not (folder / "trials" / f"{tid}.parquet").exists()}
        if len({a["node_id"] for a in running.values()}) == 2:
            time.sleep(0.5)
            victim, last = sorted(running.items())[0]
            removed = last["node_id"]
            c.remove_node(by_id[removed], allow_graceful=False)
        time.sleep(0.1)
    runner.join(240)
    assert removed is not None, "the two nodes never ran trials at the same time"
    assert not runner.is_alive()

    assert_complete(folder, n_trials=6, steps=8)
    attempts = _attempts(folder)
    nodes_used = {a["node_id"] for tries in attempts.values() for a in tries}
    assert nodes_used == set(by_id)  # both nodes ran trials
    tries = attempts[victim]
    assert tries[0]["node_id"] == removed and tries[-1]["node_id"] != removed  # rescheduled
    assert os.path.exists(folder / "trials" / f"{victim}.parquet")
    # the trial record names the node that finished the trial: the last attempt's
    from phantom.orchestrator.testing import read_trials

    records = {t["trial_id"]: t for t in read_trials(folder)}
    assert all(records[tid]["node_id"] == tries[-1]["node_id"] for tid, tries in attempts.items())
    assert records[victim]["node_id"] != removed
