"""The sweep lock on a real S3-compatible server (moto on 127.0.0.1): conditional create,
compare-and-swap heartbeat and takeover, conditional release, and the advisory fallback."""

from __future__ import annotations

import json
import socket
import threading
import time

import botocore.exceptions
import pytest

from phantom.orchestrator import lock as lockmod
from phantom.orchestrator.lock import LockError, SweepLock, read_lock
from phantom.storage import Store

pytestmark = pytest.mark.timeout(180)


def _dead_pid() -> int:
    import subprocess

    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_the_server_honours_conditional_writes(s3_server):
    """What the lock relies on, checked on the server itself: If-None-Match: * and If-Match on
    PutObject, If-Match on DeleteObject (412 PreconditionFailed when they do not hold)."""
    s3, b = s3_server.client(), s3_server.bucket
    first = s3.put_object(Bucket=b, Key="k", Body=b"1", IfNoneMatch="*")["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=b, Key="k", Body=b"2", IfNoneMatch="*")
    assert e.value.response["Error"]["Code"] == "PreconditionFailed"
    second = s3.put_object(Bucket=b, Key="k", Body=b"3", IfMatch=first)["ETag"]
    assert second != first
    for call in (lambda: s3.put_object(Bucket=b, Key="k", Body=b"4", IfMatch=first),
                 lambda: s3.delete_object(Bucket=b, Key="k", IfMatch=first)):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"3"
    s3.delete_object(Bucket=b, Key="k", IfMatch=second)
    assert s3_server.keys() == []


def test_wrong_keys_are_refused_by_the_server(s3_server):
    bad = {**s3_server.env, "AWS_SECRET_ACCESS_KEY": "wrong"}
    from phantom.testing.s3 import _client

    with pytest.raises(botocore.exceptions.ClientError, match="SignatureDoesNotMatch"):
        _client("s3", bad).list_objects_v2(Bucket=s3_server.bucket)


def test_on_s3_the_lock_is_a_conditional_write(s3_server, capsys):
    store = Store.open(s3_server.uri("sweeps/tiny"))
    with SweepLock(store) as held:
        assert held.kind.startswith("atomic (S3")
        assert read_lock(store)["token"] == held.info["token"]
        assert s3_server.keys() == ["sweeps/tiny/sweep.lock"]
        with pytest.raises(LockError, match=f"in use by another driver: host {socket.gethostname()}"):
            SweepLock(store).acquire()
    assert s3_server.keys() == []  # released with a conditional delete
    assert capsys.readouterr().err == ""  # no advisory note


def test_two_drivers_racing_exactly_one_wins_each_round(s3_server):
    """Many rounds of two (then four) drivers taking the same folder at once."""
    store = Store.open(s3_server.uri("sweeps/race"))
    for n in (2, 4):
        locks = [SweepLock(store) for _ in range(n)]  # their clients made before the start line
        for _ in range(12):
            start = threading.Barrier(n)
            won: list[SweepLock] = []
            refused: list[str] = []

            def take(lk: SweepLock) -> None:
                start.wait()
                try:
                    lk.acquire()
                    won.append(lk)
                except LockError as exc:
                    refused.append(str(exc))

            threads = [threading.Thread(target=take, args=(lk,)) for lk in locks]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert len(won) == 1 and len(refused) == n - 1, (won, refused)
            assert read_lock(store)["token"] == won[0].info["token"]
            won[0].release()
            for lk in locks:  # ready for the next round
                lk.held = False
                lk._stop = threading.Event()
    assert s3_server.keys() == []


def _plant(s3_server, key: str, **info) -> str:
    base = {"host": socket.gethostname(), "pid": _dead_pid(), "started": time.time() - 900,
            "heartbeat": time.time() - 900, "token": "the-dead-one"}
    return s3_server.client().put_object(Bucket=s3_server.bucket, Key=key, Body=json.dumps({**base, **info}))["ETag"]


def test_a_stale_lock_is_taken_over_by_exactly_one_of_two_takers(s3_server, capsys):
    store = Store.open(s3_server.uri("sweeps/stale"))
    for round_ in range(4):
        host = "elsewhere" if round_ % 2 else socket.gethostname()  # old heartbeat / dead pid
        _plant(s3_server, "sweeps/stale/sweep.lock", host=host)
        takers = [SweepLock(store) for _ in range(2)]
        start = threading.Barrier(2)
        won, refused = [], []

        def take(lk):
            start.wait()
            try:
                won.append(lk.acquire())
            except LockError as exc:
                refused.append(str(exc))

        threads = [threading.Thread(target=take, args=(lk,)) for lk in takers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(won) == 1 and len(refused) == 1, (won, refused)
        assert "in use by another driver" in refused[0]
        assert read_lock(store)["token"] == won[0].info["token"]
        won[0].release()
        assert "taking over the stale lock of host" in capsys.readouterr().err
    assert s3_server.keys() == []


def test_the_heartbeat_is_a_compare_and_swap(s3_server, monkeypatch, capsys):
    monkeypatch.setattr(lockmod, "HEARTBEAT_S", 0.1)
    store = Store.open(s3_server.uri("sweeps/beat"))
    with SweepLock(store) as held:
        first = read_lock(store)["heartbeat"]
        time.sleep(0.5)
        assert read_lock(store)["heartbeat"] > first and not held.lost
        # another driver takes the lock over (as from a stale heartbeat): the holder's next
        # swap fails, it says so once and stops beating; its release leaves the new lock alone
        s3, key = s3_server.client(), "sweeps/beat/sweep.lock"
        new = json.dumps({"host": "elsewhere", "pid": 1, "started": time.time(), "heartbeat": time.time(),
                          "token": "new-holder"})
        for _ in range(50):  # a swap on the ETag just read; the holder's beat may win it first
            etag = s3.head_object(Bucket=s3_server.bucket, Key=key)["ETag"]
            try:
                s3.put_object(Bucket=s3_server.bucket, Key=key, IfMatch=etag, Body=new)
                break
            except botocore.exceptions.ClientError as exc:
                assert exc.response["Error"]["Code"] == "PreconditionFailed"
        deadline = time.monotonic() + 10
        while not held.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held.lost
        time.sleep(0.3)
        assert read_lock(store)["token"] == "new-holder"  # never overwritten by the old holder
    assert read_lock(store)["token"] == "new-holder"  # not released: not ours
    assert capsys.readouterr().err.count("warning: the sweep lock was taken by another driver") == 1


def test_a_store_refusing_conditional_writes_gets_the_advisory_lock_in_one_line(s3_server, monkeypatch, capsys):
    monkeypatch.setattr(lockmod.AdvisoryLock, "READ_BACK_S", 0.0)
    s3_server.conditional = "refuse"  # 501 NotImplemented, as a store without them answers
    store = Store.open(s3_server.uri("sweeps/plain"))
    with SweepLock(store) as held:
        assert held.kind.startswith("advisory")
        assert read_lock(store)["token"] == held.info["token"]
        with pytest.raises(LockError, match="in use by another driver"):
            SweepLock(store).acquire()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("refuses conditional writes (NotImplemented); the sweep lock is advisory" in e
                                 for e in err), err
    assert [k for k in s3_server.keys() if not k.endswith("/")] == []  # pyarrow's writes leave folder markers


def test_a_store_ignoring_the_conditions_is_found_out(s3_server, monkeypatch, capsys):
    """A store that accepts If-None-Match / If-Match and does not honour them (a client
    stripping them stands in for it: the server cannot, the headers are signed)."""
    monkeypatch.setattr(lockmod.AdvisoryLock, "READ_BACK_S", 0.0)
    real = lockmod.s3_client

    def ignoring(fs):
        client = real(fs)
        put = client.put_object

        def put_object(**kw):
            kw.pop("IfNoneMatch", None)
            kw.pop("IfMatch", None)
            return put(**kw)

        client.put_object = put_object
        return client

    monkeypatch.setattr(lockmod, "s3_client", ignoring)
    store = Store.open(s3_server.uri("sweeps/ignoring"))
    with SweepLock(store) as held:
        assert held.kind.startswith("advisory")
    assert "refuses conditional writes (it ignored IfNoneMatch)" in capsys.readouterr().err


def test_other_object_stores_get_the_advisory_lock_with_a_note(monkeypatch, capsys):
    import pyarrow.fs as pafs

    monkeypatch.setattr(lockmod.AdvisoryLock, "READ_BACK_S", 0.0)
    store = Store(pafs._MockFileSystem(), "bucket/sweeps/tiny", "gs://bucket/sweeps/tiny")
    with SweepLock(store) as held:
        assert held.kind.startswith("advisory")
    assert capsys.readouterr().err.strip() == (
        "note: the sweep lock on gs://bucket/sweeps/tiny is advisory (no conditional writes are used for gs:// "
        "stores): start one driver per folder")


def test_boto3_uses_the_endpoint_and_region_pyarrow_resolved(s3_server):
    import pyarrow.fs as pafs

    fs, _ = pafs.FileSystem.from_uri(s3_server.uri("x"))
    client = lockmod.s3_client(fs)
    assert client.meta.endpoint_url == s3_server.url
    assert client.meta.region_name == "us-east-1"
    assert client.meta.config.s3["addressing_style"] == "path"  # pyarrow's, with an endpoint override
    fs2, _ = pafs.FileSystem.from_uri("s3://b/x?endpoint_override=localhost:9000&scheme=http&region=eu-west-1")
    client = lockmod.s3_client(fs2)
    assert (client.meta.endpoint_url, client.meta.region_name) == ("http://localhost:9000", "eu-west-1")
