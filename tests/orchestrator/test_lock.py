"""One driver per sweep folder (no Ray: the lock is taken before Ray starts)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pyarrow.fs as pafs
import pytest

from orchestrator import lock as lockmod
from orchestrator.lock import LockError, SweepLock, read_lock
from orchestrator.plan import clean_leftovers
from orchestrator.testing import tiny_sweep
from phantom.cli import main
from phantom.errors import StorageError
from phantom.storage import Store


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _plant(folder, **info) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    base = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
            "heartbeat": time.time(), "token": "someone-else"}
    (folder / "sweep.lock").write_text(json.dumps({**base, **info}))


def test_a_second_driver_exits_in_one_line_naming_the_holder(write_sweep, tmp_path, capsys):
    import ray

    folder = tmp_path / "st" / "tiny"
    (folder / "steps").mkdir(parents=True)
    (folder / "steps" / "0123456789abcdef.parquet").write_bytes(b"a killed trial's leftover")
    path = write_sweep(tiny_sweep())
    with SweepLock(Store.open(folder)) as held:
        for argv in (["sweep", "run", str(path), "--storage", str(tmp_path / "st")], ["sweep", "resume", str(folder)]):
            if argv[1] == "resume":
                (folder / "sweep.yaml").write_text(path.read_text())
                (folder / "sentences.yaml").write_text(open(tiny_sweep()["sentences"]["file"]).read())
            assert main(argv) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1, err
            assert f"sweep folder {folder} is in use by another driver: host {socket.gethostname()} pid {os.getpid()}" in err
        assert read_lock(Store.open(folder))["token"] == held.info["token"]  # untouched
    assert (folder / "steps" / "0123456789abcdef.parquet").exists()  # no cleaning without the lock
    assert not (folder / "sweep.lock").exists()  # released
    assert not ray.is_initialized()


def test_a_stale_lock_is_taken_over_with_a_line(tmp_path, capsys):
    folder = tmp_path / "sweep"
    store = Store.open(folder)
    # same host, the pid is gone: stale at once
    _plant(folder, pid=_dead_pid())
    with SweepLock(store) as lk:
        assert read_lock(store)["pid"] == os.getpid() and lk.held
    assert "taking over the stale lock of host" in capsys.readouterr().err
    # another host: stale only when its heartbeat is older than STALE_AFTER_S
    _plant(folder, host="elsewhere", pid=1, heartbeat=time.time() - 30)
    with pytest.raises(LockError, match="in use by another driver: host elsewhere pid 1"):
        SweepLock(store).acquire()
    _plant(folder, host="elsewhere", pid=1, heartbeat=time.time() - lockmod.STALE_AFTER_S - 5)
    with SweepLock(store):
        pass
    assert "taking over the stale lock of host elsewhere pid 1" in capsys.readouterr().err
    assert not (folder / "sweep.lock").exists()
    assert sorted(p.name for p in folder.iterdir()) == []  # no *.stale or *.tmp left


def test_the_heartbeat_is_refreshed_and_a_refused_lock_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(lockmod, "HEARTBEAT_S", 0.05)
    store = Store.open(tmp_path / "new" / "sweep")
    with SweepLock(store) as lk:
        first = read_lock(store)["heartbeat"]
        time.sleep(0.3)
        assert read_lock(store)["heartbeat"] > first and read_lock(store)["token"] == lk.info["token"]
    assert not (tmp_path / "new").exists()  # made by the lock, nothing else written: removed


def test_on_an_object_store_the_lock_is_advisory_with_a_heartbeat(monkeypatch):
    monkeypatch.setattr(lockmod.time, "sleep", lambda s: None)  # the read-back wait
    fs = pafs._MockFileSystem()
    store = Store(fs, "bucket/sweeps/tiny", "mock://bucket/sweeps/tiny")
    with SweepLock(store) as first:
        assert not store.is_local and read_lock(store)["token"] == first.info["token"]
        with pytest.raises(LockError, match="in use by another driver"):
            SweepLock(store).acquire()
        # the holder's host never answers any more: its heartbeat ages
        info = {**read_lock(store), "host": "gone", "heartbeat": time.time() - lockmod.STALE_AFTER_S - 1}
        store.write_text(json.dumps(info), "sweep.lock")
        with SweepLock(store) as second:
            assert read_lock(store)["token"] == second.info["token"]
    assert not store.exists("sweep.lock")


def test_leftovers_are_cleaned_only_under_the_lock(tmp_path):
    folder = tmp_path / "sweep"
    for rel in ("steps/aaaaaaaaaaaaaaaa.parquet", "steps/x.parquet.1234.tmp", "attempts/a.json.99.tmp"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text("x")
    store = Store.open(folder)
    with pytest.raises(StorageError, match="without holding its lock"):
        clean_leftovers(store, SweepLock(store))
    assert len(list(folder.rglob("*"))) == 5
    with SweepLock(store) as lk:
        assert clean_leftovers(store, lk) == 3
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == []
