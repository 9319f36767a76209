"""Benchmark (not a test): `phantom analyze` and `phantom query` on a synthetic grid.

    python bench/bench_analysis.py              # 100 000 trials x 100 steps = 10 M step rows
    python bench/bench_analysis.py --smoke      # 2 000 trials, seconds
    python bench/bench_analysis.py --dir /data/bench --keep

Targets (issue 4): the whole analysis within a minute, a simple query within a couple of
seconds. The grid is written as a few large step files (the views read any steps/*.parquet).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time


def timed(cmd: list[str], log: list[str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    if log is not None:
        log.extend(proc.stderr.splitlines())
    return dt


def slowest(log: list[str], k: int = 5) -> str:
    """The k slowest steps of `phantom analyze`'s progress lines ('[i/n] name: N rows in S s')."""
    import re

    steps = [(float(m.group(2)), m.group(1)) for line in log
             if (m := re.search(r"\] (\S+)(?:: \d+ rows)? in ([\d.]+) s", line))]
    return ", ".join(f"{name} {s:.1f} s" for s, name in sorted(steps, reverse=True)[:k])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=99, help="optimizer steps (rows = steps + 1)")
    ap.add_argument("--smoke", action="store_true", help="2 000 trials")
    ap.add_argument("--dir", help="where to write the grid (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the grid afterwards")
    ap.add_argument("--reuse", action="store_true", help="--dir already holds the grid: do not write it")
    args = ap.parse_args()
    n = 2_000 if args.smoke else args.trials

    from analysis.testing import synthetic_grid

    root = args.dir or tempfile.mkdtemp(prefix="phantom-bench-")
    try:
        t0 = time.perf_counter()
        if args.reuse:
            rows = n * (args.steps + 1)
        else:
            rows = synthetic_grid(root, n_trials=n, steps=args.steps, plan=True)
        gen = time.perf_counter() - t0
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
        print(f"grid: {n} trials, {rows:,} step rows, {size / 2**20:.0f} MiB, written in {gen:.1f} s")

        phantom = [sys.executable, "-m", "phantom.cli"]
        queries = {
            "count(*) FROM steps": "SELECT count(*) FROM steps",
            "mean Φ per model/protocol/step": (
                "SELECT model, protocol, step, avg(phi) FROM steps GROUP BY ALL ORDER BY ALL"),
            "trials per status": "SELECT status, count(*) FROM trials GROUP BY 1",
        }
        for name, sql in queries.items():
            dt = timed(phantom + ["query", root, sql, "--format", "csv", "--out", os.devnull])
            print(f"query  {name:<34} {dt:6.2f} s  (incl. interpreter start)")
        log: list[str] = []
        dt = timed(phantom + ["analyze", root, "--bootstrap", "0"], log)
        print(f"analyze --bootstrap 0                              {dt:6.2f} s  ({slowest(log)})")
        log = []
        dt = timed(phantom + ["analyze", root], log)
        print(f"analyze (all views, tables, duckdb file, report,   {dt:6.2f} s  ({slowest(log)})")
        print("         bootstrap 1000 resamples over sentences)")
        dt = timed(phantom + ["query", os.path.join(root, "analysis", "phantom.duckdb"),
                              "SELECT model, protocol, theta_shape, H FROM fits", "--out", os.devnull])
        print(f"query  fits from phantom.duckdb                    {dt:6.2f} s")
        dt = timed(phantom + ["query", root, "SELECT character, count(*) FROM trial_summary GROUP BY 1",
                              "--out", os.devnull])
        print(f"query  live trial_summary aggregate                {dt:6.2f} s")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
