"""Benchmark (not a test): the results folder at lab scale, in the layout the workers write.

    python bench/bench_analysis.py                       # 1 000, 10 000 and 100 000 trials x 26 steps
    python bench/bench_analysis.py --sizes 1000 --smoke  # seconds
    python bench/bench_analysis.py --sizes 20000 --check # compacted = loose: trial_summary, fits, claims
    python bench/bench_analysis.py --sizes 10000 --s3    # also: the compacted folder on a local S3 server

At each size it writes N trials the way workers do (one ``steps/<id>.parquet`` and one
``trials/<id>.parquet`` per trial, each written to a temporary name and renamed, plus the
sweep's ``plan.json``), then times, each as its own process with its peak RSS (os.wait4):

- on the loose folder (sizes up to --loose-max: its cost grows with the number of files):
  ``phantom sweep status``, a grouped ``phantom query`` over steps, ``phantom analyze``;
- ``phantom sweep compact`` (what the driver does as trials finish);
- on the compacted folder: the same three commands.

``--check`` compares trial_summary, fits and claims before and after compaction (floats to a
relative 1e-9: summing the same rows in another order moves the last bits). ``--s3`` copies the
compacted folder into a bucket of a moto S3 server on 127.0.0.1 and times the grouped query
there. Targets (issue 17, on the 2-core reference machine at 100 000 trials x 26 steps):
analyze <= 60 s and <= 4 GB, a grouped query <= 2 s, status <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

QUERY = "SELECT protocol, step, avg(phi) AS phi FROM steps GROUP BY ALL ORDER BY ALL"


# Peak RSS of a command: a small launcher process starts it and reads its rusage (os.wait4).
# Started from this process directly, the child's ru_maxrss would start at *this* process's
# RSS (Linux carries the high-water mark across fork + exec).
LAUNCHER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:]); "
            "_, st, ru = os.wait4(p.pid, 0); print(f'PEAK_RSS_KB {ru.ru_maxrss}', file=sys.stderr); "
            "sys.exit(os.waitstatus_to_exitcode(st))")


def run(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in GB, stderr) of one command as its own process."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    dt = time.perf_counter() - t0
    if proc.returncode not in (0, 3):  # status exits 3 for an incomplete sweep
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    kb = next(int(line.split()[1]) for line in reversed(proc.stderr.splitlines()) if line.startswith("PEAK_RSS_KB"))
    return dt, kb / 2**20, proc.stderr


# ----------------------------------------------------------------------------------------------
# a grid in the workers' layout


def write_grid(root: str, n: int, steps: int = 25, seed: int = 0) -> int:
    """N trials x (steps + 1) rows (phantom.analysis.testing.synthetic_block), one file pair per trial
    as phantom.workers.trial writes them: the steps first, then the record."""
    from phantom.analysis.testing import synthetic_block, write_plan
    from phantom import layout
    from phantom.storage import Store

    store = Store.open(root)
    rng = np.random.default_rng(seed)
    models = [f"model-{i:02d}" for i in range(20)]
    protocols = ("full", "lora")
    rates = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4)
    n_sentences = 100
    gmax_of = rng.uniform(0.3, 0.9, (len(models), n_sentences))
    T = steps + 1
    ids = [f"{i:016x}" for i in range(n)]
    pool = ThreadPoolExecutor(max_workers=4)
    for start in range(0, n, 2_000):
        k = min(2_000, n - start)
        idx = np.arange(start, start + k)
        m = idx % len(models)
        p = (idx // len(models)) % len(protocols)
        s = (idx // (len(models) * len(protocols))) % n_sentences
        r = (idx // (len(models) * len(protocols) * n_sentences)) % len(rates)
        block_steps, records = synthetic_block(
            rng, ids=ids[start:start + k], models=[models[i] for i in m], protocols=[protocols[i] for i in p],
            sentences=[f"s{i:03d}" for i in s], lrs=np.array(rates)[r],
            seeds=idx // (len(models) * len(protocols) * n_sentences * len(rates)), gmax=gmax_of[m, s],
            steps=steps)

        def one(j: int) -> None:
            tid = ids[start + j]
            store.write_table(block_steps.slice(j * T, T), *layout.steps_file(tid))  # steps first
            store.write_table(records.slice(j, 1), *layout.trial_file(tid))

        list(pool.map(one, range(k)))
    pool.shutdown()
    write_plan(store, ids, name="bench")
    return n * T


# ----------------------------------------------------------------------------------------------
# measuring


def measure(root: str, label: str, out: list[str], analyze_args: list[str]) -> None:
    phantom = [sys.executable, "-m", "phantom.cli"]
    for name, cmd in [
        ("status", phantom + ["sweep", "status", root]),
        ("query (grouped over steps)", phantom + ["query", root, QUERY, "--format", "csv", "--out", os.devnull]),
        ("analyze " + " ".join(analyze_args), phantom + ["analyze", root, *analyze_args]),
    ]:
        dt, gb, _ = run(cmd)
        line = f"  {label:<10} {name:<42} {dt:7.1f} s  {gb:5.2f} GB peak RSS"
        print(line, flush=True)
        out.append(line)


TABLES = """
import json, sys
from phantom.analysis import db
with db.connect([sys.argv[1]]) as conn:
    out = {v: db.records(conn, f"SELECT * FROM {v} ORDER BY ALL") for v in ("trial_summary", "fits", "claims")}
json.dump(out, sys.stdout, default=str)
"""


def tables(root: str) -> dict[str, list[dict]]:
    """trial_summary, fits and claims, computed in a separate process (this one stays small)."""
    proc = subprocess.run([sys.executable, "-c", TABLES, root], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def same(a, b) -> bool:
    """Equal, floats to a relative 1e-9; text equal but for its printed numbers, which may
    differ by one unit in their last printed digit (a value at a rounding boundary)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, str) and isinstance(b, str) and a != b:
        na, nb = NUMBER.findall(a), NUMBER.findall(b)
        if NUMBER.sub("#", a) != NUMBER.sub("#", b) or len(na) != len(nb):
            return False
        for x, y in zip(na, nb):
            digits = len(x.split(".")[1].split("e")[0]) if "." in x else 0
            if abs(float(x) - float(y)) > 1.01 * 10 ** -digits * (10 ** int(x.split("e")[1]) if "e" in x else 1):
                return False
        return True
    return a == b


def check(before: dict, after: dict) -> str:
    for view in before:
        if len(before[view]) != len(after[view]):
            return f"{view}: {len(before[view])} rows before, {len(after[view])} after"
        for r1, r2 in zip(before[view], after[view]):
            bad = [k for k in r1 if not same(r1[k], r2[k])]
            if bad:
                return f"DIFFERENT {view}.{bad[0]}: {str(r1[bad[0]])[:200]!r} != {str(r2[bad[0]])[:200]!r}"
    return "the same (" + ", ".join(f"{v} {len(rows)} rows" for v, rows in before.items()) + ")"


def s3_query(root: str, n: int) -> list[str]:
    """Copy the compacted folder into a local S3 server; time the grouped query there."""
    import pyarrow.fs as pafs

    from phantom.storage import Store
    from phantom.testing.s3 import S3Server

    lines = []
    with S3Server() as server:
        env = server.env
        os.environ.update(env)  # pyarrow reads the endpoint and keys from the environment
        remote = Store.open(server.uri(f"bench/n{n}"))
        dest = remote.root
        for d, _, files in os.walk(root):
            for f in files:
                rel = os.path.relpath(os.path.join(d, f), root)
                if rel.startswith("analysis") or rel.endswith(".lock"):
                    continue
                pafs.copy_files(os.path.join(d, f), f"{dest}/{rel}", destination_filesystem=remote.fs)
        uri = remote.uri
        phantom = [sys.executable, "-m", "phantom.cli"]
        for name, cmd in [
            ("status", phantom + ["sweep", "status", uri]),
            ("query (grouped over steps)", phantom + ["query", uri, QUERY, "--format", "csv", "--out", os.devnull]),
        ]:
            dt, gb, _ = run(cmd, env)
            lines.append(f"  {'S3':<10} {name:<42} {dt:7.1f} s  {gb:5.2f} GB peak RSS")
            print(lines[-1], flush=True)
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000", help="trial counts, comma-separated")
    ap.add_argument("--steps", type=int, default=25, help="optimizer steps per trial (rows = steps + 1)")
    ap.add_argument("--loose-max", type=int, default=20_000,
                    help="measure the uncompacted folder up to this size (its memory grows with the files)")
    ap.add_argument("--smoke", action="store_true", help="small sizes, no bootstrap")
    ap.add_argument("--check", action="store_true", help="compare trial_summary, fits, claims before/after")
    ap.add_argument("--s3", action="store_true", help="also time the compacted folder on a local S3 server")
    ap.add_argument("--analyze-args", default="--no-report --bootstrap 1000",
                    help="arguments of the timed phantom analyze (default: %(default)s)")
    ap.add_argument("--dir", help="where to write the grids (default: a temporary folder, removed)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    analyze_args = args.analyze_args.split()
    if args.smoke:  # no bootstrap: the given count is replaced, not followed by a second flag
        analyze_args = re.sub(r"--bootstrap[ =]\S+", "", args.analyze_args).split() + ["--bootstrap", "0"]
    base = args.dir or tempfile.mkdtemp(prefix="phantom-bench-analysis-")
    report: list[str] = []
    try:
        for n in sizes:
            root = os.path.join(base, f"n{n}")
            shutil.rmtree(root, ignore_errors=True)
            t0 = time.perf_counter()
            rows = write_grid(root, n, args.steps)
            size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
            head = (f"{n:,} trials x {args.steps + 1} steps = {rows:,} step rows, {2 * n:,} files, "
                    f"{size / 2**20:.0f} MiB, written in {time.perf_counter() - t0:.0f} s")
            print(head, flush=True)
            report.append(head)
            if n <= args.loose_max:
                measure(root, "loose", report, analyze_args)
            else:
                report.append(f"  {'loose':<10} not measured above --loose-max {args.loose_max}")
                print(report[-1], flush=True)
            before = tables(root) if args.check else None
            dt, gb, _ = run([sys.executable, "-m", "phantom.cli", "sweep", "compact", root])
            report.append(f"  {'compact':<10} {'phantom sweep compact':<42} {dt:7.1f} s  {gb:5.2f} GB peak RSS")
            print(report[-1], flush=True)
            measure(root, "compacted", report, analyze_args)
            if before is not None:
                report.append(f"  check: compacted vs loose: {check(before, tables(root))}")
                print(report[-1], flush=True)
            if args.s3:
                report += s3_query(root, n)
            if not args.dir:
                shutil.rmtree(root, ignore_errors=True)
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    print("\n".join(["", "summary:", *report]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
