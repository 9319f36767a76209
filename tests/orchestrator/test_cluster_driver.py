"""A multi-node Ray cluster with no shared filesystem (phantom.testing.ray_nodes: a head and two
1-CPU nodes started with ``ray start`` on 127.0.0.1, each with its own temp folder, token
authentication on; results on the S3 test server), drivers on two "machines" (each its own
hostname, through a UTS namespace):

- the driver SIGKILLed on one machine: from the other, `status` says the lock is stale because
  its Ray job has ended, and `resume --address` takes the folder over at once — well within
  90 s of the kill — and ends exact;
- a node lost mid-run is one line (``node X lost: trial T will run again``), no Tune traceback;
- a driver without the cluster's token, or with an address where nothing answers: one line
  each, within 15 s."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phantom.orchestrator.testing import assert_complete, download, tiny_sweep
from phantom.storage import Store
from phantom.testing.s3 import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]
N_TRIALS, STEPS = 6, 4


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def nodes(_s3_session):
    """The cluster, its nodes set up for the object store as the docs say (every node has the
    store's settings in its environment)."""
    from phantom.testing.ray_nodes import RayNodes

    with RayNodes(workers=2, env=_s3_session.env) as cluster:
        yield cluster


def _on(host: str | None, argv: list[str], env: dict) -> subprocess.Popen:
    """``phantom ARGV`` as if on the machine ``host`` (its own hostname)."""
    cmd = [sys.executable, "-m", "phantom.cli", *argv]
    if host:
        cmd = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *cmd]
    return subprocess.Popen(cmd, env={**os.environ, **env}, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _sweep(write_sweep, step_delay_s: float = 0.0) -> Path:
    sentences = tiny_sweep()["sentences"]["file"]
    return write_sweep(tiny_sweep(models=["tiny-llama"], sentences={"file": sentences, "ids": ["longing", "shame", "awe"]},
                                  training={"steps": STEPS}, testing={"step_delay_s": step_delay_s}))




def test_a_sigkilled_drivers_folder_is_resumed_from_another_machine_at_once(nodes, s3_server, write_sweep, tmp_path):
    if not _can_unshare():
        pytest.skip("needs root and unshare(1) for a second hostname")
    env = nodes.env
    folder = s3_server.uri("sweeps/tiny")
    driver = _on("machine-a", ["sweep", "run", str(_sweep(write_sweep, 0.5)), "--storage", s3_server.uri("sweeps"),
                               "--address", nodes.address], env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None \
            and not [k for k in s3_server.keys("sweeps/tiny/trials/") if k.endswith(".parquet")]:
        time.sleep(0.3)
    assert driver.poll() is None, driver.communicate()[0]
    os.killpg(driver.pid, signal.SIGKILL)
    killed = time.monotonic()
    driver.communicate()

    status = _on("machine-b", ["sweep", "status", folder], nodes.env)
    out = status.communicate(timeout=120)[0]
    assert status.returncode == 3 and "stale lock" in out and "has ended on the cluster" in out, out
    assert f"--address {nodes.address.split(':')[0]}" in out, out  # the hint names the cluster

    resume = _on("machine-b", ["sweep", "resume", folder, "--address", nodes.address], nodes.env)
    lines = []
    for line in resume.stdout:
        lines.append(line)
        if "taking over the stale lock" in line:
            assert time.monotonic() - killed < 90, lines
            assert "host machine-a" in line and "has ended on the cluster" in line, line
    resume.wait(600)
    text = "".join(lines)
    assert resume.returncode == 0 and "taking over the stale lock" in text, text
    assert "Traceback" not in text, text
    assert_complete(download(Store.open(folder), tmp_path / "copy"), n_trials=N_TRIALS, steps=STEPS)


def test_a_lost_node_is_one_line(nodes, s3_server, write_sweep):
    env = nodes.env
    driver = _on(None, ["sweep", "run", str(_sweep(write_sweep, 0.5)), "--storage", s3_server.uri("sweeps"),
                        "--address", nodes.address], env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None \
            and len(s3_server.keys("sweeps/tiny/attempts/")) < 2:
        time.sleep(0.2)
    time.sleep(1.0)
    nodes.kill_node("node-2")
    out = driver.communicate(timeout=500)[0]
    assert driver.returncode == 0, out
    lost = [line for line in out.splitlines() if " lost: trial" in line]
    assert len(lost) == 1 and re.fullmatch(r"node \S+ \([0-9a-f]{8}\) lost: trial [0-9a-f]{16} will run again", lost[0]), out
    for noise in ("Traceback", "ERROR", "ActorUnavailableError", "ActorDiedError", "\x1b["):
        assert noise not in out, (noise, out)
    assert "6 trials planned: 6 ok" in out


def test_a_driver_without_the_token_is_one_line_within_15_s(nodes, write_sweep, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "phantom.cli", "sweep", "run", str(_sweep(write_sweep)),
                          "--storage", str(tmp_path / "st"), "--address", nodes.address],
                         env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 15
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stdout + res.stderr
    assert "requires token authentication: set RAY_AUTH_MODE=token" in lines[0], lines[0]


def test_an_address_where_nothing_answers_is_one_line_within_15_s(write_sweep, tmp_path):
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "phantom.cli", "sweep", "run", str(_sweep(write_sweep)),
                          "--storage", str(tmp_path / "st"), "--address", f"127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 15
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "cannot reach the Ray cluster at 127.0.0.1:" in lines[0], \
        res.stdout + res.stderr
    assert not (tmp_path / "st" / "tiny").exists()  # nothing left behind


def test_a_driver_on_a_machine_that_is_no_node_is_one_line(nodes):
    """ray.init from a machine that is not a node of the cluster waits a minute, then a
    traceback (issue 27): the probe compares the cluster's nodes with this machine's addresses
    (here made to look like another machine's). In a fresh process: Ray keeps its token
    settings per process."""
    code = ("import sys; from phantom.errors import ClusterError; from phantom.orchestrator import session\n"
            "session._local_addresses = lambda head: {'198.51.100.7'}\n"
            "try:\n    session.probe_cluster(sys.argv[1])\nexcept ClusterError as exc:\n    print(exc)\n")
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-c", code, nodes.address], env={**os.environ, **nodes.env},
                         capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 15
    assert res.stdout.startswith(f"this machine is not a node of the Ray cluster at {nodes.address}"), \
        res.stdout + res.stderr
