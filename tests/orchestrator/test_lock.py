"""One driver per sweep folder (no Ray: the lock is taken before Ray starts)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pyarrow.fs as pafs
import pytest

from phantom.orchestrator import lock as lockmod
from phantom.orchestrator.lock import LockError, SweepLock, read_lock
from phantom.orchestrator.plan import clean_leftovers
from phantom.orchestrator.testing import tiny_sweep
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


def _status_folder(folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plan.json").write_text(json.dumps({"name": "tiny", "trials": ["0123456789abcdef"]}))


def test_status_tells_a_live_holder_from_a_stale_one(tmp_path, capsys):
    """After a driver was SIGKILLed, status said "running: a driver holds the folder (host H
    pid N)" although pid N no longer ran (issue 18)."""
    folder = tmp_path / "st" / "tiny"
    _status_folder(folder)
    me = socket.gethostname()
    cases = [  # (lock, live?, why)
        (dict(pid=_dead_pid()), False, "no longer runs on this host"),
        (dict(pid=os.getpid()), True, f"pid {os.getpid()} runs on this host"),
        (dict(host="elsewhere", pid=1, heartbeat=time.time() - lockmod.STALE_AFTER_S - 60), False,
         "last heartbeat 2 min ago (stale after 60 s)"),
        (dict(host="elsewhere", pid=1, heartbeat=time.time() - 20), True, "last heartbeat 20 s ago"),
    ]
    for info, live, why in cases:
        _plant(folder, **info)
        assert main(["sweep", "status", str(folder)]) == 3
        out = capsys.readouterr().out
        host = info.get("host", me)
        if live:
            assert f"  running: a driver holds the folder (host {host} pid {info['pid']}" in out, out
            assert "stale lock" not in out and "incomplete" not in out
        else:
            assert f"  stale lock: the driver that held the folder is gone (host {host} pid {info['pid']}" in out, out
            assert "the next run or resume takes it over" in out
            assert "running:" not in out
            assert f"incomplete: 1 trials not run; continue with: phantom sweep resume {folder}" in out
        assert why in out, out
    (folder / "sweep.lock").write_text("{not json")  # unreadable: taken over like a stale one
    main(["sweep", "status", str(folder)])
    assert "stale lock: the driver that held the folder is gone (unreadable)" in capsys.readouterr().out


def test_status_on_s3_tells_a_stale_holder(s3_server, capsys):
    s3 = s3_server.client()
    s3.put_object(Bucket=s3_server.bucket, Key="sweeps/tiny/plan.json",
                  Body=json.dumps({"name": "tiny", "trials": ["0123456789abcdef"]}).encode())
    for pid, word in ((_dead_pid(), "stale lock: the driver that held the folder is gone"),
                      (os.getpid(), "running: a driver holds the folder")):
        s3.put_object(Bucket=s3_server.bucket, Key="sweeps/tiny/sweep.lock", Body=json.dumps(
            {"host": socket.gethostname(), "pid": pid, "started": time.time(), "heartbeat": time.time(),
             "token": "x"}).encode())
        assert main(["sweep", "status", s3_server.uri("sweeps/tiny")]) == 3
        assert word in capsys.readouterr().out


def test_a_write_refusal_is_probed_without_leaving_anything(tmp_path):
    from phantom.orchestrator.runner import write_refusal

    folder = tmp_path / "full"
    folder.mkdir()
    assert write_refusal(Store.open(folder)) is None
    assert list(folder.iterdir()) == []
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        fd = os.open(folder / "ballast", os.O_CREAT | os.O_WRONLY)  # fill it to the last block
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        exc = write_refusal(Store.open(folder))
        assert isinstance(exc, OSError) and exc.errno == 28
        assert sorted(p.name for p in folder.iterdir()) == ["ballast"]  # no probe, no *.tmp
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
