"""A lost driver's folder is taken over as soon as the driver is provably gone, and the user is
told when and how (issue 27): the refusal and `sweep status` say when a live-looking lock will
be stale and give the whole command that takes it over now (`--take-over HOST:PID`, refused
while the holder is provably alive); on a Ray cluster the holder's job in Ray's own state
decides at once; every hint carries `--address` when the sweep ran on a cluster."""

from __future__ import annotations

import json
import os
import re
import socket
import time

import pytest

from phantom.cli import main
from phantom.orchestrator import lock as lockmod
from phantom.orchestrator.hints import record_cluster
from phantom.orchestrator.lock import LockError, SweepLock, read_lock
from phantom.storage import Store
from phantom.testing.s3 import free_port


def _plant(folder, **info) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    base = {"host": "node-7", "pid": 4321, "started": time.time(), "heartbeat": time.time() - 20,
            "token": "someone-else"}
    (folder / "sweep.lock").write_text(json.dumps({**base, **info}))
    (folder / "plan.json").write_text(json.dumps({"name": "tiny", "trials": ["0123456789abcdef"]}))


def test_the_refusal_says_when_the_lock_goes_stale_and_how_to_take_it_over(tmp_path, capsys):
    folder = tmp_path / "st" / "tiny"
    _plant(folder)
    store = Store.open(folder)
    with pytest.raises(LockError) as refused:
        SweepLock(store).acquire()
    line = str(refused.value)
    assert re.search(r"last heartbeat 2[01] s ago; stale in (39|40) s \(at \d\d:\d\d:\d\d UTC\); the next run or resume "
                     "takes it over then", line), line
    assert f"take it over now: phantom sweep resume {folder} --take-over node-7:4321" in line, line
    assert main(["sweep", "status", str(folder)]) == 3
    out = capsys.readouterr().out
    assert "running: a driver holds the folder (host node-7 pid 4321" in out and re.search("stale in (39|40) s", out), out
    assert f"take the folder over now: phantom sweep resume {folder} --take-over node-7:4321" in out, out

    with pytest.raises(LockError, match="is held by node-7:4321"):  # naming another holder: refused
        SweepLock(store, take_over="node-8:1").acquire()
    with SweepLock(store, stream=open(os.devnull, "w"), take_over="node-7:4321") as taken:
        assert read_lock(store)["token"] == taken.info["token"]


def test_a_provably_alive_holder_is_not_taken_over_even_on_request(tmp_path):
    folder = tmp_path / "st" / "tiny"
    _plant(folder, host=socket.gethostname(), pid=os.getpid())  # this very process: alive
    with pytest.raises(LockError, match="refusing to take over .* its holder is alive"):
        SweepLock(Store.open(folder), take_over=f"{socket.gethostname()}:{os.getpid()}").acquire()
    assert read_lock(Store.open(folder))["token"] == "someone-else"


def test_stale_after_about_a_minute_not_five():
    assert lockmod.HEARTBEAT_S * 4 <= lockmod.STALE_AFTER_S <= 90
    now = time.time()
    assert lockmod.is_stale({"host": "x", "pid": 1, "heartbeat": now - 70}, now)
    assert not lockmod.is_stale({"host": "x", "pid": 1, "heartbeat": now - 30}, now)


def test_hints_name_the_cluster_and_quote_the_uri(tmp_path, capsys):
    folder = tmp_path / "st" / "tiny"
    _plant(folder)
    (folder / "sweep.lock").unlink()
    record_cluster(Store.open(folder), "10.0.0.5:6379")
    assert main(["sweep", "status", str(folder)]) == 3
    out = capsys.readouterr().out
    assert f"continue with: phantom sweep resume {folder} --address 10.0.0.5:6379" in out, out
    from phantom.orchestrator.hints import command

    assert command("resume", "gs://b/p?endpoint_override=h:1&scheme=http", "h:6379") == \
        "phantom sweep resume 'gs://b/p?endpoint_override=h:1&scheme=http' --address h:6379"


@pytest.mark.timeout(120)
def test_on_a_ray_cluster_the_holders_job_decides_at_once(ray_local, tmp_path, capsys):
    """A fresh heartbeat, but the holder's Ray job has ended: stale at once, taken over with a
    line saying why; its job running: alive, not taken over even on request."""
    ctx = ray_local.get_runtime_context()
    gcs, job = ctx.gcs_address, ctx.get_job_id()
    folder = tmp_path / "st" / "tiny"
    _plant(folder, heartbeat=time.time(), ray={"gcs": gcs, "job": "ffffffff", "address": gcs})
    with SweepLock(Store.open(folder)) as taken:
        assert read_lock(Store.open(folder))["token"] == taken.info["token"]
    err = capsys.readouterr().err
    assert "taking over the stale lock of host node-7 pid 4321" in err and "has ended on the cluster" in err, err

    _plant(folder, heartbeat=time.time(), ray={"gcs": gcs, "job": job, "address": gcs})
    with pytest.raises(LockError, match="its holder is alive .*its Ray job .* runs"):
        SweepLock(Store.open(folder), take_over="node-7:4321").acquire()
    # the cluster does not answer: the heartbeat decides
    dead = f"127.0.0.1:{free_port()}"
    state = lockmod.holder_state({"host": "x", "pid": 1, "heartbeat": time.time(), "ray": {"gcs": dead, "job": job}})
    assert not state.stale and not state.alive and "stale in" in state.why
