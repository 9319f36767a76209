"""Benchmark (not a test): what each object store costs a command, against S3 (issue 27).

    python bench/bench_stores.py                    # 10 000 trials x 26 steps, compacted; 3 runs each
    python bench/bench_stores.py --trials 500 --runs 1          # seconds: a smoke run
    python bench/bench_stores.py --compare /tmp/benchdeps       # also DuckDB through gcsfs / adlfs

It writes N trials as the workers do (bench_analysis.write_grid), compacts the folder
(``phantom sweep compact``), copies it to each store the tests use, every server on 127.0.0.1 —
a local folder, S3 (moto: phantom.testing.s3), GCS (fake-gcs-server: phantom.testing.gcs),
Azure Blob (Azurite: phantom.testing.azurite) — and times, each as its own process (the
median of ``--runs``):

- ``phantom sweep status FOLDER``;
- ``phantom query FOLDER "<grouped query over steps>"`` (bench_analysis.QUERY).

``--compare DIR`` (a ``pip install --target DIR gcsfs adlfs``) also times the same grouped
query in DuckDB in this process, reading the same Parquet through Phantom's reader (pyarrow's
filesystem behind an fsspec wrapper: ``Store.fsspec``) and through gcsfs / adlfs: the choice
of reader, measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_analysis import QUERY, write_grid  # noqa: E402


def timed(cmd: list[str], env: dict, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode not in (0, 3):
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return statistics.median(times)


def upload(local: str, uri: str) -> None:
    import pyarrow.fs as pafs

    from phantom.storage import Store

    dest = Store.open(uri)
    for d, _, files in os.walk(local):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), local)
            if not rel.endswith(".lock"):
                pafs.copy_files(os.path.join(d, f), dest.path(rel), destination_filesystem=dest.fs)


def compare(uri: str, scheme: str, env: dict, runs: int) -> list[str]:
    """The grouped query in DuckDB through Phantom's reader and through gcsfs / adlfs."""
    import duckdb

    from phantom import cloud
    from phantom.storage import Store

    os.environ.update(env)
    store = Store.open(uri)
    glob = f"{store.root}/parts/*.steps.parquet"
    sql = QUERY.replace("FROM steps", "FROM read_parquet('{glob}')")
    readers = {"pyarrow (Store.fsspec)": store.fsspec()}
    try:
        if scheme == "gs":
            import gcsfs

            readers["gcsfs"] = gcsfs.GCSFileSystem(endpoint_url=env["CLOUD_STORAGE_EMULATOR_ENDPOINT"], token="anon")
        else:
            import adlfs

            readers["adlfs"] = adlfs.AzureBlobFileSystem(connection_string=env["AZURE_STORAGE_CONNECTION_STRING"])
    except ImportError as exc:
        return [f"  ({exc.name} not importable: --compare DIR with gcsfs and adlfs installed there)"]
    lines = []
    for name, fs in readers.items():
        times = []
        for _ in range(runs):
            conn = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
            conn.register_filesystem(fs)
            protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            t0 = time.perf_counter()
            rows = conn.execute(sql.format(glob=f"{protocol}://{glob}")).fetchall()
            times.append(time.perf_counter() - t0)
            conn.close()
        lines.append(f"  {scheme:<5} DuckDB grouped query through {name:<24} {statistics.median(times):6.2f} s "
                     f"({len(rows)} rows)")
        print(lines[-1], flush=True)
    del cloud
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--compare", metavar="DIR", help="a folder with gcsfs and adlfs (pip install --target)")
    args = ap.parse_args()
    from phantom.testing.azurite import AzuriteServer
    from phantom.testing.gcs import GcsServer
    from phantom.testing.s3 import S3Server

    phantom = [sys.executable, "-m", "phantom.cli"]
    report = [f"{args.trials} trials x 26 steps, compacted; median of {args.runs} runs, each command its own process"]
    with tempfile.TemporaryDirectory(prefix="phantom-bench-stores-") as tmp:
        local = os.path.join(tmp, "bench")
        write_grid(local, args.trials)
        subprocess.run(phantom + ["sweep", "compact", local], check=True, capture_output=True)
        with S3Server() as s3, GcsServer() as gcs, AzuriteServer() as az:
            stores = [("local", local, {}), ("s3", s3.uri("bench"), s3.env), ("gs", gcs.uri("bench"), gcs.env),
                      ("abfs", az.uri("bench"), az.env)]
            for name, uri, env in stores:
                full = {**os.environ, **env}
                if name != "local":
                    os.environ.update(env)
                    upload(local, uri)
                st = timed(phantom + ["sweep", "status", uri], full, args.runs)
                out = os.path.join(tmp, f"{name}.csv")
                q = timed(phantom + ["query", uri, QUERY, "--format", "csv", "--out", out], full, args.runs)
                rows = open(out).read()
                same = "same rows as local" if name == "local" or rows == open(os.path.join(tmp, "local.csv")).read() \
                    else "ROWS DIFFER FROM LOCAL"
                report.append(f"  {name:<6} status {st:6.2f} s   grouped query {q:6.2f} s  "
                              f"({rows.count(chr(10)) - 1} rows, {same})")
                print(report[-1], flush=True)
            if args.compare:
                sys.path.insert(0, args.compare)
                report += compare(gcs.uri("bench"), "gs", gcs.env, args.runs)
                report += compare(az.uri("bench"), "abfs", az.env, args.runs)
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
