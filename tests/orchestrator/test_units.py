"""Dispatch units (a Tune trial running a batch of packs): how many workers a cluster has, the
failure budget, the progress of retried units, and on one local Ray a unit killed mid-way —
nothing lost, nothing duplicated — and a pack that kills its worker every time."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from phantom.orchestrator import capacity, packing
from phantom.orchestrator.engine import max_failures
from phantom.orchestrator.loader import load_sweep
from phantom.orchestrator.progress import ProgressView
from phantom.orchestrator.runner import resume, run_sweep
from phantom.orchestrator.testing import SENTENCES, assert_complete, read_trials, tiny_sweep
from phantom.orchestrator.testing import descendants

pytestmark = pytest.mark.timeout(300)

SLOTS = [  # (nodes' resources, request, max_concurrent, Tune trials at once)
    ([{"CPU": 2.0}], {"CPU": 1.0}, None, 2),
    ([{"CPU": 2.0}], {"CPU": 1.0}, 1, 1),
    ([{"CPU": 16.0, "GPU": 1.0}], {"CPU": 1.0, "GPU": 0.25}, None, 4),
    ([{"CPU": 16.0, "GPU": 2.0}, {"CPU": 3.0}], {"CPU": 2.0}, None, 9),
    ([{"CPU": 16.0, "GPU": 2.0}, {"CPU": 3.0}], {"CPU": 2.0, "GPU": 1.0}, None, 2),
    ([{"CPU": 1.0}], {"CPU": 2.0}, None, 0),
    ([{"CPU": 0.9999999999}], {"CPU": 0.5}, None, 2),
]


@pytest.mark.parametrize("nodes,request_,cap,expected", SLOTS)
def test_workers_are_counted_per_node(nodes, request_, cap, expected):
    assert capacity.slots(nodes, request_, cap) == expected


def test_the_failure_budget_covers_every_pack_of_the_largest_unit():
    one = packing.Unit((packing.Pack((), ("a",)),))
    three = packing.Unit(tuple(packing.Pack((), (x,)) for x in "bcd"))
    assert max_failures(2, [one]) == 2  # a unit of one pack: `retries`, as a pack had
    assert max_failures(2, [one, three]) == 8  # 3 packs x 3 lives each, the last one given up by Tune
    assert max_failures(0, [three]) == 2


def test_a_retried_unit_keeps_what_it_finished_and_counts_skips():
    out = io.StringIO()
    view = ProgressView(total=12, budget=4, stream=out, already=0, sizes={"u": 2})
    view.started("u")
    assert "0 done, 2 running, 0 failed, 10 pending" in view.line()  # its first pack, before it reports
    view.result("u", {"members": 10, "finished": 4, "failed": 1, "skipped": 1, "running": 2, "member_steps": 24,
                      "pack_steps": 4})
    assert "4 done, 2 running, 1 failed, 4 pending, 1 skipped" in view.line()
    view.retried("u")  # its worker died: 6 members had their end, the pack of 2 starts over
    view.result("u", {"members": 4, "finished": 0, "failed": 0, "skipped": 0, "running": 2, "member_steps": 0,
                      "pack_steps": 0})
    assert "4 done, 2 running, 1 failed, 4 pending, 1 skipped, 1 retried" in view.line()
    view.result("u", {"members": 4, "finished": 4, "failed": 0, "skipped": 0, "running": 0, "member_steps": 16,
                      "done": True})
    assert "8 done, 0 running, 1 failed, 2 pending, 1 skipped, 1 retried" in view.line()
    # a unit whose worker died after its last pack: the retry finds nothing left to run
    view.started("v")
    view.result("v", {"members": 2, "finished": 2, "running": 0, "member_steps": 8})
    view.retried("v")
    view.result("v", {"members": 0, "existing": True, "done": True})
    assert "10 done, 0 running, 1 failed, 0 pending, 1 skipped, 2 retried" in view.line()


# ----------------------------------------------------------------------------------------------
# on Ray


def _batched(monkeypatch) -> None:
    """Two units of three packs each on the test's 2 CPUs (in this process: the driver forms them)."""
    monkeypatch.setattr(packing, "MAX_UNITS", 1)
    monkeypatch.setattr(packing, "UNITS_PER_WORKER", 1)


def _six(write_sweep, **over):
    data = tiny_sweep(sentences={"file": str(SENTENCES), "ids": ["longing"]}, training={"steps": 6},
                      learning_rates=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2], **over)
    return load_sweep(write_sweep(data))


def _attempts(folder: Path, tid: str) -> list[dict]:
    path = folder / "attempts" / f"{tid}.json"
    try:
        return json.loads(path.read_text())["attempts"] if path.exists() else []
    except ValueError:  # being replaced
        return []


def _done(folder: Path, tid: str) -> bool:
    return (folder / "trials" / f"{tid}.parquet").exists()


def test_a_unit_killed_mid_way_is_retried_from_what_is_pending(ray_local, write_sweep, tmp_path, monkeypatch):
    """The worker of a unit is killed in its second pack: Tune retries the unit, which leaves out
    the pack it finished and runs the killed one again, then the rest. Every trial once."""
    _batched(monkeypatch)
    sweep, sentences = _six(write_sweep, testing={"step_delay_s": 0.25})
    from phantom.orchestrator.expand import expand

    ids = expand(sweep, sentences).ids
    units = packing.dispatch_units(list(expand(sweep, sentences).trials), sweep, 2, ids)
    assert [u.members for u in units] == [3, 3]
    first, second, third = units[0].packs[0].ids[0], units[0].packs[1].ids[0], units[0].packs[2].ids[0]
    folder = tmp_path / "st" / "tiny"
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(o=run_sweep(sweep, sentences, storage=str(tmp_path / "st"))))
    runner.start()
    killed = None
    deadline = time.monotonic() + 150
    while killed is None and time.monotonic() < deadline and runner.is_alive():
        tried = _attempts(folder, second)
        if tried and _done(folder, first) and not _done(folder, second):
            time.sleep(0.5)  # a couple of steps into the second pack
            killed = tried[-1]["pid"]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    runner.join(200)
    assert killed is not None and not runner.is_alive()
    assert outcome["o"].dispatched == 6
    assert_complete(folder, n_trials=6, steps=6)
    assert [a["pid"] for a in _attempts(folder, second)][0] == killed and len(_attempts(folder, second)) == 2
    assert len(_attempts(folder, first)) == 1 and len(_attempts(folder, third)) == 1  # neither ran twice
    tune_trials = sorted(p.name for p in (folder / "ray").glob("run-*/*") if p.is_dir())
    assert tune_trials == sorted(u.unit_id for u in units) and all(n.startswith("unit-") for n in tune_trials)
    assert not list((folder / "ray").glob("*.units"))  # the units' files go with their run


def test_a_pack_that_kills_its_worker_every_time_costs_only_its_own_members(
    ray_local, write_sweep, tmp_path, monkeypatch
):
    """retries: 1. The second pack's worker is killed in each of its 2 attempts: its member gets
    an error record saying so, and the unit goes on: the other five trials are ok."""
    _batched(monkeypatch)
    sweep, sentences = _six(write_sweep, retries=1, testing={"step_delay_s": 0.25})
    from phantom.orchestrator.expand import expand

    grid = expand(sweep, sentences)
    units = packing.dispatch_units(list(grid.trials), sweep, 2, grid.ids)
    victim = units[0].packs[1].ids[0]
    folder = tmp_path / "st" / "tiny"
    runner = threading.Thread(target=lambda: run_sweep(sweep, sentences, storage=str(tmp_path / "st")))
    runner.start()
    killed: list[int] = []
    deadline = time.monotonic() + 200
    while len(killed) < 2 and time.monotonic() < deadline and runner.is_alive():
        tried = _attempts(folder, victim)
        if len(tried) > len(killed):
            time.sleep(0.4)
            killed.append(tried[-1]["pid"])
            os.kill(killed[-1], signal.SIGKILL)
        time.sleep(0.05)
    runner.join(200)
    assert len(killed) == 2 and not runner.is_alive()
    records = {t["trial_id"]: t for t in read_trials(folder)}
    assert len(records) == 6
    assert records[victim]["status"] == "error" and records[victim]["error"].startswith(
        "RuntimeError: the worker was lost: it died in each of the 2 attempts of this pack (retries: 1")
    assert all(r["status"] == "ok" for tid, r in records.items() if tid != victim)
    assert [a["pid"] for a in _attempts(folder, victim)] == killed  # no third attempt


@pytest.mark.timeout(600)
def test_driver_killed_mid_unit_then_resume_loses_and_duplicates_nothing(write_sweep, tmp_path):
    """The driver (units of three packs) is SIGKILLed once two trials are complete; resume
    restores Tune's experiment, whose units are read from their files: every trial once, the
    ones complete before the kill untouched."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    path = write_sweep(tiny_sweep(sentences={"file": str(SENTENCES), "ids": ["longing"]}, training={"steps": 6},
                                  learning_rates=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
                                  testing={"step_delay_s": 0.25}), "six.yaml")
    folder = tmp_path / "st" / "tiny"
    code = ("import sys; from phantom.orchestrator import packing; packing.MAX_UNITS = 1; packing.UNITS_PER_WORKER = 1;"
            "from phantom.cli import main; sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ)
    driver = subprocess.Popen([sys.executable, "-c", code, "sweep", "run", str(path), "--storage", str(tmp_path / "st")],
                              env=env, stdout=(tmp_path / "driver.log").open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    spawned: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        done = 0
        while time.monotonic() < deadline and driver.poll() is None and done < 2:
            spawned |= descendants(driver.pid)
            done = len(list((folder / "trials").glob("*.parquet")) if (folder / "trials").exists() else [])
            time.sleep(0.1)
        assert driver.poll() is None, "the sweep finished before it could be killed"
        assert done >= 2, "no two trials complete in 300 s"
        spawned |= descendants(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
    finally:
        time.sleep(2)
        for pid in spawned:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    log = (tmp_path / "driver.log").read_text()
    assert "6 to run in 2 Tune trials" in log and "6 packs in 2 batches for 2 workers" in log, log
    before = {t["trial_id"]: t["finished_at"] for t in read_trials(folder)}
    assert 2 <= len(before) < 6 and list((folder / "ray").glob("*.units"))
    outcome = resume(str(folder))
    assert outcome.restored and outcome.dispatched == 6 - len(before)
    assert_complete(folder, n_trials=6, steps=6)
    after = {t["trial_id"]: t["finished_at"] for t in read_trials(folder)}
    assert all(after[t] == before[t] for t in before)
    assert all(len(_attempts(folder, t)) == 1 for t in before)
    assert not list((folder / "ray").glob("*.units"))




def test_a_retried_unit_waiting_for_a_slot_is_pending_not_running():
    """A node lost: Tune retries the unit, which waits for a free CPU (on a cluster with one
    CPU left, for minutes). The line said "2 running" all that time (issue 27): it counts the
    unit's members as pending until Tune starts the new attempt."""
    view = ProgressView(total=4, budget=4, stream=io.StringIO(), sizes={"a": 2, "b": 2})
    view.started("a")
    view.started("b")
    view.result("b", {"members": 2, "finished": 0, "running": 2, "member_steps": 2, "pack_steps": 2})
    assert "0 done, 4 running, 0 failed, 0 pending" in view.line()
    view.retried("b")  # its node is gone; no slot for it yet
    assert "0 done, 2 running, 0 failed, 2 pending, 1 retried" in view.line()
    view.started("b")  # Tune starts the new attempt
    assert "0 done, 4 running, 0 failed, 0 pending, 1 retried" in view.line()
