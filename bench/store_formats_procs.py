"""The processes of bench/bench_store_formats.py (run with it, never alone): each measurement as
its own process with its peak RSS (:func:`sh`), concurrent Delta writers on the local
filesystem (:func:`concurrent`, section 5) and on a local S3 server (:func:`s3_check`, moto from
another environment, section 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import duckdb
import pyarrow.parquet as pq
from bench_analysis import LAUNCHER
from deltalake import DeltaTable, write_deltalake

from phantom import layout
from phantom.storage import Store

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(HERE), HERE, os.environ.get("PYTHONPATH", "")])}


def sh(cmd: list[str]) -> tuple[float, float, str]:
    """(wall s, peak RSS GB, stdout) of a command as its own process (bench_analysis's launcher)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], capture_output=True, text=True, env=ENV)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)[:300]}\n{proc.stderr[-3000:]}")
    kb = next(int(x.split()[1]) for x in reversed(proc.stderr.splitlines()) if x.startswith("PEAK_RSS_KB"))
    return dt, kb / 2**20, proc.stdout



# ----------------------------------------------------------------------------------------------
# 5. concurrent writers (local filesystem)

WRITER = """
import sys, time
import pyarrow.parquet as pq
from deltalake import write_deltalake
table, files = sys.argv[1], sys.argv[2:]
fails = 0
for f in files:
    t = pq.read_table(f)
    for attempt in range(20):
        try:
            write_deltalake(table, t, mode="append")
            break
        except Exception as exc:  # a commit conflict that delta-rs did not resolve itself
            fails += 1
            print(type(exc).__name__, str(exc)[:200], file=sys.stderr)
            time.sleep(0.05 * (attempt + 1))
print(fails)
"""


def concurrent(src: Store, base: str, writers: int, per_writer: int) -> dict:
    ids = sorted(layout.trial_id_of(n) for n in src.list(layout.TRIALS_DIR))[: writers * per_writer]
    table = os.path.join(base, "concurrent", "steps")
    os.makedirs(os.path.dirname(table), exist_ok=True)
    first = pq.read_table(src.path(*layout.steps_file(ids[0])))
    write_deltalake(table, first.schema.empty_table(), mode="append")  # created once, before the workers
    files = [src.path(*layout.steps_file(t)) for t in ids]
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, table, *files[w::writers]], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(writers)]
    res = [p.communicate() for p in procs]
    wall = time.perf_counter() - t0
    fails = sum(int(o.strip() or 0) for o, _ in res)
    errors = sorted({line.split()[0] for _, e in res for line in e.splitlines() if line.strip()})
    dt = DeltaTable(table)
    con = duckdb.connect()
    con.register("t", dt.to_pyarrow_dataset())
    rows, distinct = con.execute("SELECT count(*), count(DISTINCT trial_id) FROM t").fetchone()
    return {"writers": writers, "commits": len(files), "wall_s": wall, "retries_by_us": fails,
            "errors": errors, "version": dt.version(), "rows": rows, "expected_rows": len(files) * first.num_rows,
            "trials": distinct}


# ----------------------------------------------------------------------------------------------
# 6. optional: Delta on a local S3 server (moto, from another environment that has it)

S3_SERVER = """
import sys
from moto.server import ThreadedMotoServer
s = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]))
s.start()
print("up", flush=True)
sys.stdin.read()
s.stop()
"""

S3_READ = """
import json, os, sys, time
import duckdb
from deltalake import DeltaTable
t0 = time.perf_counter()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
con.register("steps", DeltaTable(sys.argv[1]).to_pyarrow_dataset())  # deltalake's S3 filesystem, no extension
rows, trials = con.execute("SELECT count(*), count(DISTINCT trial_id) FROM steps").fetchone()
print(json.dumps({"s": time.perf_counter() - t0, "rows": rows, "trials": trials}), flush=True)
os._exit(0)
"""


def s3_check(moto_python: str, src: Store, writers: int, per_writer: int) -> dict:
    """Concurrent Delta appends to a moto S3 bucket (credentials and endpoint from the standard
    AWS_* variables, as delta-rs reads them), then DuckDB reading the table through
    ``to_pyarrow_dataset()``."""
    import socket

    import pyarrow.fs as pafs

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([moto_python, "-c", S3_SERVER, str(port)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # its request log
    try:
        server.stdout.readline()
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true",
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
        os.environ.update(env)
        ENV.update(env)
        pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", access_key="testing",
                          secret_key="testing", region="us-east-1", allow_bucket_creation=True).create_dir("bench")
        ids = sorted(layout.trial_id_of(n) for n in src.list(layout.TRIALS_DIR))[: writers * per_writer]
        table = "s3://bench/delta/steps"
        first = pq.read_table(src.path(*layout.steps_file(ids[0])))
        out: dict = {}
        try:
            write_deltalake(table, first.schema.empty_table(), mode="append")
        except Exception as exc:  # noqa: BLE001 - what delta-rs says is the figure
            return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        files = [src.path(*layout.steps_file(t)) for t in ids]
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, table, *files[w::writers]], env=ENV,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for w in range(writers)]
        res = [p.communicate() for p in procs]
        out["wall_s"] = time.perf_counter() - t0
        out["retries_by_us"] = sum(int(o.strip() or 0) for o, _ in res if o.strip().isdigit())
        out["errors"] = sorted({line.split()[0] for _, e in res for line in e.splitlines() if line.strip()})[:5]
        out["version"] = DeltaTable(table).version()
        _, gb, text = sh([sys.executable, "-c", S3_READ, table])
        out.update(json.loads(text.strip().splitlines()[-1]), rss_gb=gb, commits=len(files),
                   expected_rows=len(files) * first.num_rows)
        return out
    finally:
        server.stdin.close()
        server.wait(timeout=30)
