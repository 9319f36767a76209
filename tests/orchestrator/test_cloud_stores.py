"""gs:// and abfs:// end to end, against the emulators the tests start on 127.0.0.1
(fake-gcs-server, Azurite): a sweep SIGKILLed and resumed ends exact, `query` and `analyze`
read the folder, no credential appears in any output or file, two racing drivers leave
exactly one holding the lock, and an unusable store is one line within 10 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from phantom.cli import main
from phantom.orchestrator.testing import assert_complete, descendants, download, tiny_sweep
from phantom.storage import Store
from phantom.testing.s3 import free_port

pytestmark = pytest.mark.timeout(600)
N_TRIALS, STEPS = 6, 1


@pytest.fixture(params=["gcs", "azure"])
def store(request):
    """(server, storage root URI, the secret that must never show, keys(prefix)) for one cloud."""
    if request.param == "gcs":
        gcs = request.getfixturevalue("gcs_server")
        # the URI form with options: the sweep name must go into the path, not the query string
        root = f"gs://anonymous@{gcs.bucket}/sweeps?endpoint_override=127.0.0.1:{gcs.port}&scheme=http"
        return gcs, root, None, gcs.keys
    az = request.getfixturevalue("azurite")
    sas = az.sas()
    # pyarrow's emulator form with the SAS in the query string, and nothing in the environment
    os.environ.pop("AZURE_STORAGE_CONNECTION_STRING")
    root = f"abfs://devstoreaccount1@127.0.0.1:{az.port}/{az.container}/sweeps?enable_tls=false&{sas}"
    return az, root, sas.split("sig=", 1)[1].split("&", 1)[0], az.keys


def _sweep(write_sweep, step_delay_s: float = 0.0) -> Path:
    sentences = tiny_sweep()["sentences"]["file"]
    return write_sweep(tiny_sweep(models=["tiny-llama"], sentences={"file": sentences, "ids": ["longing", "shame", "awe"]},
                                  training={"steps": STEPS}, testing={"step_delay_s": step_delay_s}))


def _phantom(*argv, env=None) -> subprocess.Popen:
    env = {**os.environ, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "phantom.cli", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _records(keys) -> list[str]:
    return [k for k in keys("sweeps/tiny/trials/") if k.endswith(".parquet")]


def _download(root: str, dest: Path) -> Path:
    """The sweep folder copied to disk (assert_complete reads local files)."""
    return download(Store.open(root).child("tiny"), dest)


def test_sigkilled_sweep_resumes_exact_and_query_analyze_read_it(store, write_sweep, tmp_path):
    server, root, secret, keys = store
    folder = Store.open(root).child("tiny").uri
    driver = _phantom("sweep", "run", str(_sweep(write_sweep, 0.5)), "--storage", root)
    said = []
    spawned: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and driver.poll() is None and not _records(keys):
            spawned |= descendants(driver.pid)
            time.sleep(0.3)
        assert driver.poll() is None, driver.communicate()
        spawned |= descendants(driver.pid)
        driver.send_signal(signal.SIGKILL)
        said += driver.communicate()
    finally:
        for pid in spawned:  # the Ray this driver started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert 1 <= len(_records(keys)) < N_TRIALS
    status = _phantom("sweep", "status", folder)
    said += status.communicate(timeout=120)
    assert status.returncode == 3 and "stale lock" in said[-2], said
    again = _phantom("sweep", "resume", folder)
    said += again.communicate(timeout=600)
    assert again.returncode == 0, said
    assert "taking over the stale lock" in said[-2] + said[-1] and "Traceback" not in said[-1]
    assert_complete(_download(root, tmp_path / "copy"), n_trials=N_TRIALS, steps=STEPS)

    query = _phantom("query", folder, "SELECT count(*) AS n, count(DISTINCT trial_id) AS t FROM steps", "--format", "csv")
    said += query.communicate(timeout=300)
    assert query.returncode == 0 and said[-2].split() == ["n,t", f"{N_TRIALS * (STEPS + 1)},{N_TRIALS}"], said[-2:]
    compact = _phantom("sweep", "compact", folder)
    said += compact.communicate(timeout=300)
    assert compact.returncode == 0, said[-2:]
    analyze = _phantom("analyze", folder, "--no-report", "--out", str(tmp_path / "analysis"))
    said += analyze.communicate(timeout=300)
    assert analyze.returncode == 0 and "Traceback" not in said[-1], said[-2:]
    query = _phantom("query", folder, "SELECT count(*) FROM trials", "--format", "csv")
    said += query.communicate(timeout=300)
    assert query.returncode == 0 and said[-2].split()[-1] == str(N_TRIALS), said[-2:]

    if secret:  # no credential in any output, or in any file of the folder or of the analysis
        text = "\n".join(said)
        assert secret not in text and secret.replace("%3D", "=") not in text
        copy = _download(root, tmp_path / "again")
        for path in [*copy.rglob("*"), *(tmp_path / "analysis").rglob("*")]:
            if path.is_file():
                data = path.read_bytes()
                assert secret.encode() not in data and secret.replace("%3D", "=").encode() not in data, path


def test_two_racing_drivers_exactly_one_holds_the_lock(store):
    from phantom.orchestrator.lock import LockError, SweepLock

    _, root, _, _ = store
    folder = Store.open(root).child("race")
    for _round in range(3):
        barrier = threading.Barrier(2)
        won, lost = [], []

        def drive():
            lock = SweepLock(Store.open(folder.uri), stream=open(os.devnull, "w"))
            barrier.wait()
            try:
                lock.acquire()
                won.append(lock)
            except LockError:
                lost.append(lock)

        threads = [threading.Thread(target=drive) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(won) == 1 and len(lost) == 1, (won, lost)
        assert won[0].kind.startswith("atomic")
        won[0].release()


def _unusable(cloud: str, case: str, server, monkeypatch, tmp_path) -> tuple[str, str]:
    """(storage root, expected cause) for an unusable store, the environment set for it."""
    dead = f"127.0.0.1:{free_port()}"
    if cloud == "gcs":
        root = f"gs://{server.bucket}/sweeps"
        if case == "missing bucket":
            return "gs://no-such-bucket-here/sweeps", "no such bucket"
        if case == "dead endpoint":
            monkeypatch.setenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", f"http://{dead}")
            return root, "the endpoint cannot be reached"
        if case == "refused credentials":  # a key file whose token endpoint (here) refuses it
            from phantom.testing.gcs_auth import refusing_key_file

            monkeypatch.delenv("CLOUD_STORAGE_EMULATOR_ENDPOINT")
            monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", refusing_key_file(tmp_path))
            return f"gs://{server.bucket}/sweeps?endpoint_override=127.0.0.1:{server.port}&scheme=http", \
                "the credentials were refused"
        monkeypatch.delenv("CLOUD_STORAGE_EMULATOR_ENDPOINT")  # no credentials anywhere
        monkeypatch.setenv("HOME", str(tmp_path))
        return root, "no GCS credentials found"
    root = f"abfs://{server.container}/sweeps"
    if case == "missing bucket":
        return "abfs://no-such-container/sweeps", "no such container"
    if case == "dead endpoint":
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                           server.connection_string.replace(f"127.0.0.1:{server.port}", dead))
        return root, "the endpoint cannot be reached"
    if case == "refused credentials":
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string.replace(
            "AccountKey=Eby8", "AccountKey=Xby8"))
        return root, "the credentials were refused"
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1")
    return root, "no Azure credentials"


@pytest.mark.parametrize("case", ["missing bucket", "dead endpoint", "refused credentials", "no credentials"])
@pytest.mark.parametrize("cloud", ["gcs", "azure"])
def test_an_unusable_store_is_one_line_within_10_s(cloud, case, request, write_sweep, monkeypatch, capsys, tmp_path):
    import ray

    server = request.getfixturevalue("gcs_server" if cloud == "gcs" else "azurite")
    path = write_sweep(tiny_sweep())
    root, cause = _unusable(cloud, case, server, monkeypatch, tmp_path)
    folder = Store.open(root).child("tiny").uri if case != "no credentials" else f"{root}/tiny"
    for argv in (["sweep", "validate", str(path), "--storage", root], ["sweep", "run", str(path), "--storage", root],
                 ["sweep", "status", folder], ["sweep", "resume", folder]):
        t0 = time.monotonic()
        code = main(argv)
        took = time.monotonic() - t0
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (argv, code, captured.out, captured.err)
        assert lines[0].startswith("phantom: error: ") and cause in lines[0], (argv, lines[0])
        assert "Traceback" not in captured.out + captured.err
        assert took < 10, (argv, took)
    assert not ray.is_initialized()
