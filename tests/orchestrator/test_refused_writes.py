"""A store that refuses writes mid-sweep (issue 18): a full disk, a bucket policy denying
PutObject. The driver stops with one line naming the cause and the path, exits non-zero,
shows no traceback and leaves no temporary file; once the storage takes writes again, a
resume is exact (every planned trial once, with all its step rows)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phantom.orchestrator.testing import assert_complete, tiny_sweep

pytestmark = pytest.mark.timeout(900)

N_TRIALS, STEPS = 6, 1


def _sweep(write_sweep) -> Path:
    sentences = tiny_sweep()["sentences"]["file"]
    return write_sweep(tiny_sweep(models=["tiny-llama"], sentences={"file": sentences, "ids": ["longing", "shame", "awe"]},
                                  training={"steps": STEPS}, testing={"step_delay_s": 0.5}))  # 3 sentences x 2 rates = 6 trials


def _env(**extra) -> dict:
    env = {**os.environ, **extra}
    for key in ("RAY_DEDUP_LOGS", "RAY_USAGE_STATS_ENABLED", "RAY_AIR_NEW_OUTPUT", "RAY_SCHEDULER_EVENTS"):
        env.pop(key, None)  # the driver quiets Ray itself
    return env


def _phantom(*argv, env, timeout=600):
    return subprocess.Popen([sys.executable, "-m", "phantom.cli", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _assert_one_line(proc, out: str, err: str, cause: str, where: str) -> None:
    lines = err.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"phantom: error: storage refused: {cause}: {where}"), lines[0]
    assert "Traceback" not in out + err


def _wait_for_a_record(driver, s3_server, each=lambda: None) -> None:
    """Until the running driver has a trial record in the bucket (``each``: called every poll)."""
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and driver.poll() is None:
        each()
        if [k for k in s3_server.keys("sweeps/tiny/trials/") if k.endswith(".parquet")]:
            return
        time.sleep(0.5)


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MB tmpfs (root only), unmounted after the test."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_stops_the_driver_in_one_line_and_resume_is_exact(write_sweep, small_fs):
    path = _sweep(write_sweep)
    ballast = small_fs / "ballast"
    ballast.write_bytes(b"\0" * 1_900_000)  # ~190 KB left: the plan and a few trials fit
    folder = small_fs / "tiny"
    driver = _phantom("sweep", "run", str(path), "--storage", str(small_fs), env=_env())
    out, err = driver.communicate(timeout=600)
    _assert_one_line(driver, out, err, "no space left on the device", str(folder))
    assert not list(folder.rglob("*.tmp")) and not list(folder.rglob("*.stale"))
    assert not (folder / "sweep.lock").exists()  # released
    done = len(list((folder / "trials").glob("*.parquet")))
    assert done < N_TRIALS  # really stopped by the full disk

    ballast.unlink()  # space freed: resume finishes exactly what is missing
    again = _phantom("sweep", "resume", str(folder), env=_env())
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, out + err
    assert "Traceback" not in out + err, err
    assert_complete(folder, n_trials=N_TRIALS, steps=STEPS)


def _download(s3_server, prefix: str, dest: Path) -> Path:
    s3 = s3_server.client()
    for key in s3_server.keys(prefix):
        if key.endswith("/"):
            continue
        target = dest / key[len(prefix):].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read())
    return dest


def test_a_bucket_policy_refusing_writes_stops_the_driver_in_one_line_and_resume_is_exact(
        write_sweep, s3_server, tmp_path):
    path = _sweep(write_sweep)
    env = _env(**s3_server.env)
    storage, folder = s3_server.uri("sweeps"), s3_server.uri("sweeps/tiny")
    driver = _phantom("sweep", "run", str(path), "--storage", storage, env=env)
    try:
        _wait_for_a_record(driver, s3_server)
        assert driver.poll() is None, "the sweep ended before writes could be refused"
        s3_server.refuse_writes()  # PutObject and DeleteObject: AccessDenied from now on
        out, err = driver.communicate(timeout=400)
    finally:
        if driver.poll() is None:
            driver.kill()
        s3_server.allow_writes()
    _assert_one_line(driver, out, err, "access denied (by the credentials' permissions or a bucket policy)", folder)
    done = [k for k in s3_server.keys("sweeps/tiny/trials/") if k.endswith(".parquet")]
    assert 1 <= len(done) < N_TRIALS

    again = _phantom("sweep", "resume", folder, env=_env(**s3_server.env))
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, out + err
    assert "Traceback" not in out + err, err
    assert not [k for k in s3_server.keys("sweeps/tiny/") if k.endswith(".tmp")]
    assert_complete(_download(s3_server, "sweeps/tiny/", tmp_path / "copy"), n_trials=N_TRIALS, steps=STEPS)


def test_the_server_stopped_mid_sweep_and_started_again_loses_and_duplicates_nothing(
        write_sweep, s3_server, tmp_path):
    """An endpoint that stops answering for a few seconds (a restarted server) is not a
    refusal: Tune retries what met it, and the sweep ends with every trial once."""
    sentences = tiny_sweep()["sentences"]["file"]
    path = write_sweep(tiny_sweep(models=["tiny-llama"], sentences={"file": sentences, "ids": ["longing", "shame", "awe"]},
                                  training={"steps": STEPS}, retries=3, testing={"step_delay_s": 0.5}))
    env = _env(**s3_server.env)
    driver = _phantom("sweep", "run", str(path), "--storage", s3_server.uri("sweeps"), env=env)
    try:
        _wait_for_a_record(driver, s3_server)
        assert driver.poll() is None, "the sweep ended before the server could be stopped"
        s3_server.stop()  # connection refused, as from a server that went down
        time.sleep(5)
        s3_server.start()  # back, with its data
        out, err = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
        s3_server.start()
    assert driver.returncode == 0, out + err
    assert "Traceback" not in out + err, err
    assert_complete(_download(s3_server, "sweeps/tiny/", tmp_path / "copy"), n_trials=N_TRIALS, steps=STEPS)


def test_a_driver_sigkilled_mid_sweep_on_s3_then_resumed_runs_every_trial_once(write_sweep, s3_server, tmp_path):
    """SIGKILL of the driver (and of the Ray it started) once a trial is recorded in the bucket;
    `sweep status` names the stale lock; `resume` takes it over and ends with every trial once."""
    import signal

    from phantom.orchestrator.testing import descendants

    path = _sweep(write_sweep)
    env = _env(**s3_server.env)
    folder = s3_server.uri("sweeps/tiny")
    driver = _phantom("sweep", "run", str(path), "--storage", s3_server.uri("sweeps"), env=env)
    spawned: set[int] = set()
    try:
        _wait_for_a_record(driver, s3_server, lambda: spawned.update(descendants(driver.pid)))
        assert driver.poll() is None, "the sweep ended before the driver could be killed"
        spawned |= descendants(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        for pid in spawned:  # the Ray this driver started, as a lost node would take it down
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    done = [k for k in s3_server.keys("sweeps/tiny/trials/") if k.endswith(".parquet")]
    assert 1 <= len(done) < N_TRIALS
    status = _phantom("sweep", "status", folder, env=_env(**s3_server.env))
    out, err = status.communicate(timeout=120)
    assert status.returncode == 3 and "stale lock" in out, out + err
    again = _phantom("sweep", "resume", folder, env=_env(**s3_server.env))
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, out + err
    assert "taking over the stale lock" in out + err and "Traceback" not in out + err
    assert_complete(_download(s3_server, "sweeps/tiny/", tmp_path / "copy"), n_trials=N_TRIALS, steps=STEPS)
