"""The driver killed with SIGKILL mid-sweep, then `resume`: every trial exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phantom.orchestrator.runner import resume
from phantom.orchestrator.status import sweep_status
from phantom.orchestrator.testing import assert_complete, descendants, tiny_sweep

pytestmark = pytest.mark.timeout(300)


def test_driver_sigkill_then_resume_loses_and_duplicates_nothing(write_sweep, tmp_path):
    import ray

    if ray.is_initialized():
        ray.shutdown()
    sentences = tiny_sweep()["sentences"]["file"]
    path = write_sweep(tiny_sweep(sentences={"file": sentences, "ids": ["longing", "shame", "awe"]},
                                  training={"steps": 8}, testing={"step_delay_s": 0.2}))  # 6 trials
    folder = tmp_path / "st" / "tiny"
    env = dict(os.environ)
    for key in ("RAY_DEDUP_LOGS", "RAY_USAGE_STATS_ENABLED", "RAY_AIR_NEW_OUTPUT", "RAY_SCHEDULER_EVENTS"):
        env.pop(key, None)  # the driver quiets Ray itself (issue 12)
    log = tmp_path / "driver.log"
    driver = subprocess.Popen(
        [sys.executable, "-m", "phantom.cli", "sweep", "run", str(path), "--storage", str(tmp_path / "st")],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    spawned: set[int] = set()
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and driver.poll() is None:
            spawned |= descendants(driver.pid)
            done = len(list((folder / "trials").glob("*.parquet"))) if (folder / "trials").exists() else 0
            if done >= 2:
                break
            time.sleep(0.2)
        assert driver.poll() is None, "the sweep finished before it could be killed"
        spawned |= descendants(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        st = sweep_status(str(folder))
        assert 2 <= st.done < 6 and st.missing > 0  # really interrupted mid-sweep
    finally:
        time.sleep(2)
        for pid in spawned:  # whatever of the killed driver's Ray is left: stop it, as a reboot would
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    # the user's terminal showed Ray's token-authentication warning and autoscaler tips
    lines = log.read_text().splitlines()
    assert lines[0].startswith("tiny: 6 trials, 0 complete, 6 to run in 6 Tune trials -> "), lines
    assert all(line.startswith("trials: ") for line in lines[1:]), lines

    outcome = resume(str(folder))  # the killed driver's lock is stale: its pid is gone
    assert outcome.dispatched + outcome.already == 6 and outcome.dispatched >= 1
    assert_complete(folder, n_trials=6, steps=8)
    assert sweep_status(str(folder)).finished_ok
    assert not ray.is_initialized()  # resume shut down the Ray it started
