"""Results on an S3-compatible server (phantom.testing.s3 on 127.0.0.1): query, analyze and
compact give the numbers of the same folder on disk, through pyarrow's S3 settings, and DuckDB
downloads nothing."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from phantom.analysis.testing import random_grid, write_plan
from phantom import layout, results
from phantom.storage import Store

pytestmark = pytest.mark.timeout(600)

QUERY = ("SELECT model, protocol, step, count(*) AS n, avg(phi) AS phi, avg(abs(phi)) AS phi_abs "
         "FROM steps GROUP BY ALL ORDER BY ALL")
EPS = 2.0 ** -52


def same_rows(a: str, b: str) -> bool:
    """The query's CSV, equal but for float summation order: the files are read in another order
    on S3 than on disk, and a mean of n doubles moves by at most ~n ulps of the mean of |x|."""
    ra, rb = [line.split(",") for line in a.splitlines()], [line.split(",") for line in b.splitlines()]
    if len(ra) != len(rb) or ra[0] != rb[0]:
        return False
    for x, y in zip(ra[1:], rb[1:]):
        if x[:4] != y[:4]:
            return False
        if "" in x[4:] or "" in y[4:]:  # no finite Φ in the group: NULL on both sides
            if x[4:] != y[4:]:
                return False
            continue
        n, bound = int(x[3]), float(x[5])
        if abs(float(x[4]) - float(y[4])) > 2 * n * EPS * bound or not math.isclose(float(x[5]), float(y[5]), rel_tol=4 * n * EPS):
            return False
    return True


def same_records(a: list[dict], b: list[dict]) -> bool:
    """Equal rows; floats to a relative 1e-9 (means over the same values summed in another
    order differ by a few ulps; a real difference in a fit is many orders larger)."""
    def same(x, y):
        if isinstance(x, float) and isinstance(y, float):
            return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15)
        return x == y
    return len(a) == len(b) and all(r1.keys() == r2.keys() and all(same(r1[k], r2[k]) for k in r1)
                                    for r1, r2 in zip(a, b))


def phantom(*args, env=None, home=None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.getcwd()}
    if home is not None:  # DuckDB would install extensions under $HOME/.duckdb
        env["HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "phantom.cli", *args], capture_output=True, text=True, env=env)


def csv_of(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def grids(tmp_path, s3_server):
    """The same random grid on disk and in the bucket."""
    local = tmp_path / "local"
    ids = random_grid(str(local), budget=8, n_sentences=4, seeds=(0,))
    write_plan(str(local), ids)
    remote = Store.open(s3_server.uri("sweeps/grid"))
    pafs.copy_files(str(local), remote.root, destination_filesystem=remote.fs)
    return local, remote, ids


def test_query_on_s3_equals_the_folder_on_disk_and_downloads_nothing(grids, s3_server, tmp_path):
    local, remote, _ = grids
    home = tmp_path / "home"
    home.mkdir()
    want = csv_of(phantom("query", str(local), QUERY, "--format", "csv"))
    got = csv_of(phantom("query", remote.uri, QUERY, "--format", "csv", env=s3_server.env, home=home))
    assert same_rows(got, want) and len(want.splitlines()) > 10
    assert not (home / ".duckdb").exists()  # no extension was installed


def test_compact_on_s3_then_query_and_analyze(grids, s3_server, tmp_path):
    local, remote, ids = grids
    before = csv_of(phantom("query", remote.uri, QUERY, "--format", "csv", env=s3_server.env))
    proc = phantom("sweep", "compact", remote.uri, "--part-trials", "30", env=s3_server.env)
    assert proc.returncode == 0, proc.stderr
    assert remote.list(layout.TRIALS_DIR) == [] and remote.list(layout.STEPS_DIR) == []
    assert len(results.committed_parts(remote)) == -(-len(ids) // 30)
    assert not remote.exists(layout.LOCK_FILE)  # released
    assert same_rows(csv_of(phantom("query", remote.uri, QUERY, "--format", "csv", env=s3_server.env)), before)

    # analyze: into the bucket, and into a local --out; the same fits as the folder on disk
    assert phantom("analyze", str(local), "--bootstrap", "20", "--no-report").returncode == 0
    out = tmp_path / "analysis-here"
    proc = phantom("analyze", remote.uri, "--bootstrap", "20", "--out", str(out), env=s3_server.env)
    assert proc.returncode == 0, proc.stderr
    proc = phantom("analyze", remote.uri, "--bootstrap", "20", "--no-report", env=s3_server.env)
    assert proc.returncode == 0, proc.stderr
    want = pq.read_table(local / "analysis" / "fits.parquet").to_pylist()
    assert want
    assert same_records(pq.read_table(out / "fits.parquet").to_pylist(), want)
    with remote.fs.open_input_file(remote.path(layout.ANALYSIS_DIR, "fits.parquet")) as fh:
        assert same_records(pq.read_table(fh).to_pylist(), want)
    assert (out / layout.REPORT_FILE).stat().st_size > 10_000
    assert remote.exists(layout.ANALYSIS_DIR, layout.DATABASE_FILE)


def test_unreachable_store_is_one_line(tmp_path, s3_server):
    uri = s3_server.uri("sweeps/grid")
    s3_server.stop()
    for args in (["query", uri, "SELECT count(*) FROM trials"], ["analyze", uri], ["sweep", "compact", uri]):
        proc = phantom(*args, env=s3_server.env)
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "cannot be reached" in lines[0] and "s3://" in lines[0], lines[0]


def test_a_compacted_folder_copied_into_a_bucket_is_read(tmp_path, s3_server):
    """A folder compacted on disk, then copied object by object (no folder markers, as `aws s3
    sync` copies it): only parts/ holds results there."""
    local = tmp_path / "local"
    ids = random_grid(str(local), budget=6, n_sentences=2, seeds=(0,))
    write_plan(str(local), ids)
    results.compact(Store.open(local))
    remote = Store.open(s3_server.uri("copied/grid"))
    for f in local.rglob("*"):
        if f.is_file():  # files only: the emptied trials/ and steps/ do not travel
            pafs.copy_files(str(f), f"{remote.root}/{f.relative_to(local)}", destination_filesystem=remote.fs)
    assert not remote.exists(layout.TRIALS_DIR) and remote.exists(layout.PARTS_DIR)
    want = csv_of(phantom("query", str(local), QUERY, "--format", "csv"))
    for uri in (remote.uri, s3_server.uri("copied")):  # the folder, and a root holding it
        assert same_rows(csv_of(phantom("query", uri, QUERY, "--format", "csv", env=s3_server.env)), want)
