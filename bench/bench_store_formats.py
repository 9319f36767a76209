"""Benchmark (not a test): Delta Lake (the ``deltalake`` package, delta-rs) against our own
compaction (phantom.results) for the results store of issue 17, on the same trials.

Run it in a separate virtual environment (the project's lock does not hold deltalake)::

    /work/main/.venv/bin/python -m venv /tmp/dlvenv
    /tmp/dlvenv/bin/pip install deltalake==1.6.6 pyarrow==26.0.1 duckdb==2.0.1 numpy python-dateutil
    PYTHONPATH=. /tmp/dlvenv/bin/python bench/bench_store_formats.py                 # 1 000 and 10 000 trials
    PYTHONPATH=. /tmp/dlvenv/bin/python bench/bench_store_formats.py --smoke         # under a minute
    PYTHONPATH=. /tmp/dlvenv/bin/python bench/bench_store_formats.py --sizes 100000 --commit-max 1000

At each size N it writes a grid of N trials x 26 steps in the workers' layout
(``bench_analysis.write_grid``) as the source, then, trial by trial on one thread:

1. **ingest as workers write**: ours = the loose pair (``Store.write_table``: steps, then the
   record); Delta = one ``write_deltalake(path, ..., mode="append")`` for the steps and one for the
   record, one commit each, the table opened from its path as a separate worker would. Above
   ``--commit-max`` trials the middle of the grid is ingested into Delta faster (one small Parquet
   file per trial, as a worker writes, registered in commits of 1 000 files through
   ``create_write_transaction``) and the last ``--tail`` trials are appended one commit each again,
   to time an append on a table that already holds N files. The tables then hold the same rows,
   one file per trial, but the log holds fewer commits than N workers would have made.
2. **compaction**, each as its own process with its peak RSS: ``phantom.results.compact`` vs
   ``DeltaTable.optimize.compact()`` + ``create_checkpoint()`` + ``vacuum(retention_hours=0)``.
3. **reading with DuckDB, no extension**: ours = ``read_parquet`` over the loose files / parts;
   Delta = ``DeltaTable(...).to_pyarrow_dataset()`` registered in DuckDB. A grouped aggregate over
   the steps and a count of trials per status, each in a fresh process, the median of ``--reps``;
   before and after compaction. Both designs' answers are compared.
4. **exactly-once**: a retried append (the same trial twice), Delta ``MERGE`` on the key (its cost
   per trial), and ours (a retried worker rewrites its loose pair; readers keep one record).
5. once: **concurrent writers** on the local filesystem (``--writers`` processes appending to one
   Delta table at once): every commit must land exactly once.

``python-dateutil`` matters: without it ``to_pyarrow_dataset()`` tries (and fails) to import
``dateutil.relativedelta`` 64 times per data file, which makes opening a table of small files
about 2.5x slower still. The DuckDB ``delta`` extension is not used: it is not bundled in the pip
wheel (the script prints ``duckdb_extensions()``) and would be downloaded at run time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from bench_analysis import write_grid  # noqa: E402
from deltalake import DeltaTable, write_deltalake  # noqa: E402
from deltalake.transaction import AddAction  # noqa: E402

from phantom import layout  # noqa: E402
from phantom.storage import Store  # noqa: E402
from store_formats_procs import concurrent, s3_check, sh  # noqa: E402

GROUPED = "SELECT protocol, step, avg(phi) AS phi FROM steps GROUP BY ALL ORDER BY ALL"
STATUS = "SELECT status, count(*) AS n FROM trials GROUP BY ALL ORDER BY ALL"
TABLES = ("steps", "trials")


def count_files(path: str) -> int:
    return sum(len(fs) for _, _, fs in os.walk(path)) if os.path.isdir(path) else 0


def delta_files(table: str) -> tuple[int, int]:
    """(Parquet files in the table folder, files under _delta_log)."""
    log = os.path.join(table, "_delta_log")
    data = sum(1 for d, _, fs in os.walk(table) if not d.startswith(log) for f in fs if f.endswith(".parquet"))
    return data, count_files(log)


def q(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


# ----------------------------------------------------------------------------------------------
# 1. ingest


def read_pair(src: Store, tid: str) -> tuple[pa.Table, pa.Table]:
    return (pq.ParquetFile(src.path(*layout.steps_file(tid))).read(),
            pq.ParquetFile(src.path(*layout.trial_file(tid))).read())


def ingest(src: Store, ours: Store, delta: str, commit_max: int, tail: int) -> dict:
    ids = sorted(layout.trial_id_of(n) for n in src.list(layout.TRIALS_DIR))
    n = len(ids)
    per_commit = set(range(min(n, commit_max))) | set(range(max(commit_max, n - tail), n))
    t_ours, t_delta, t_tail = [], [], []
    actions: dict[str, list[AddAction]] = {t: [] for t in TABLES}

    def flush() -> None:
        for t in TABLES:
            if actions[t]:
                dt = DeltaTable(f"{delta}/{t}")
                dt.create_write_transaction(actions[t], mode="append", schema=dt.schema())
                actions[t] = []

    for i, tid in enumerate(ids):
        steps, record = read_pair(src, tid)
        t0 = time.perf_counter()
        ours.write_table(steps, *layout.steps_file(tid))  # as phantom.workers.trial: steps first, record last
        ours.write_table(record, *layout.trial_file(tid))
        t_ours.append(time.perf_counter() - t0)
        if i in per_commit:
            flush()
            t0 = time.perf_counter()
            write_deltalake(f"{delta}/steps", steps, mode="append")  # one commit each, opened by path
            write_deltalake(f"{delta}/trials", record, mode="append")
            (t_delta if i < commit_max else t_tail).append(time.perf_counter() - t0)
        else:  # bulk middle: one file per trial as a worker writes it, committed 1 000 at a time
            for t, table in zip(TABLES, (steps, record)):
                name = f"part-{uuid.uuid4()}.parquet"
                pq.write_table(table, f"{delta}/{t}/{name}")
                actions[t].append(AddAction(name, os.path.getsize(f"{delta}/{t}/{name}"), {},
                                            int(time.time() * 1000), True,
                                            json.dumps({"numRecords": table.num_rows})))
            if len(actions["trials"]) >= 1000:
                flush()
    flush()
    k = max(1, len(t_delta) // 10)
    return {"n": n, "ours_ms": 1e3 * statistics.median(t_ours), "ours_p90_ms": 1e3 * q(t_ours, 0.9),
            "delta_ms": 1e3 * statistics.median(t_delta), "delta_p90_ms": 1e3 * q(t_delta, 0.9),
            "delta_first_ms": 1e3 * statistics.mean(t_delta[:k]), "delta_last_ms": 1e3 * statistics.mean(t_delta[-k:]),
            "delta_commits": len(t_delta) + len(t_tail),
            "delta_tail_ms": 1e3 * statistics.median(t_tail) if t_tail else None,
            "ours_total_s": sum(t_ours), "delta_per_commit_total_s": sum(t_delta) + sum(t_tail)}


# ----------------------------------------------------------------------------------------------
# 2. compaction (child processes)

OURS_COMPACT = """
import json, sys, dataclasses
from phantom.results import compact
from phantom.storage import Store
print(json.dumps(dataclasses.asdict(compact(Store.open(sys.argv[1])))))
"""

DELTA_COMPACT = """
import json, os, sys, time
from deltalake import DeltaTable
out = {}
for t in ("steps", "trials"):
    dt = DeltaTable(f"{sys.argv[1]}/{t}")
    t0 = time.perf_counter()
    m = dt.optimize.compact()
    t1 = time.perf_counter()
    dt.create_checkpoint()
    gone = dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    dt.cleanup_metadata()
    out[t] = {"optimize_s": t1 - t0, "checkpoint_vacuum_s": time.perf_counter() - t1,
              "files_removed": m.get("numFilesRemoved"), "files_added": m.get("numFilesAdded"),
              "vacuumed": len(gone)}
print(json.dumps(out), flush=True)
os._exit(0)
"""


# ----------------------------------------------------------------------------------------------
# 3. reading with DuckDB (child processes)

READ = """
import hashlib, json, os, sys, time
import duckdb
design, root = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")  # it prints to stdout on slow queries
if design == "delta":
    from deltalake import DeltaTable
    for t in ("steps", "trials"):
        con.register(t, DeltaTable(f"{root}/{t}").to_pyarrow_dataset())
else:
    for t in ("steps", "trials"):
        files = []
        if any(n.endswith(".parquet") for n in os.listdir(f"{root}/{t}")):
            files.append(f"{root}/{t}/*.parquet")
        if os.path.isdir(f"{root}/parts"):
            files += sorted(f"{root}/parts/{n}" for n in os.listdir(f"{root}/parts") if n.endswith(f".{t}.parquet"))
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet({files!r})")
t_open = time.perf_counter() - t0
out = {"open_s": t_open}
for name, sql in (("grouped", sys.argv[3]), ("status", sys.argv[4])):
    t1 = time.perf_counter()
    rows = con.execute(sql).fetchall()
    out[name + "_s"] = time.perf_counter() - t1
    out[name + "_digest"] = hashlib.sha1(repr([tuple(round(v, 9) if isinstance(v, float) else v for v in r)
                                              for r in rows]).encode()).hexdigest()[:12]
    out[name + "_rows"] = len(rows)
out["total_s"] = time.perf_counter() - t0
print(json.dumps(out), flush=True)
os._exit(0)  # skip interpreter teardown: it sometimes aborts ("terminate called without an active exception")
"""


def read(design: str, root: str, reps: int) -> dict:
    runs = []
    for _ in range(reps):
        _, gb, out = sh([sys.executable, "-c", READ, design, root, GROUPED, STATUS])
        runs.append({**json.loads(out.strip().splitlines()[-1]), "rss_gb": gb})
    med = {k: statistics.median(r[k] for r in runs) for k in ("open_s", "grouped_s", "status_s", "total_s", "rss_gb")}
    digests = {r["grouped_digest"] + r["status_digest"] for r in runs}
    return {**med, "digest": digests.pop() if len(digests) == 1 else "UNSTABLE",
            "grouped_rows": runs[0]["grouped_rows"]}


# ----------------------------------------------------------------------------------------------
# 4. exactly-once


def delta_rows_of(table: str, tid: str) -> int:
    con = duckdb.connect()
    con.register("t", DeltaTable(table).to_pyarrow_dataset())
    return con.execute("SELECT count(*) FROM t WHERE trial_id = ?", [tid]).fetchone()[0]


def exactly_once(src: Store, ours: Store, delta: str, reps: int) -> dict:
    from phantom.results import read_records

    ids = sorted(layout.trial_id_of(n) for n in src.list(layout.TRIALS_DIR))
    tid = ids[len(ids) // 2]
    steps, record = read_pair(src, tid)
    out: dict = {}
    # a worker retried after it wrote: Delta appends again
    write_deltalake(f"{delta}/steps", steps, mode="append")
    write_deltalake(f"{delta}/trials", record, mode="append")
    out["delta_retry_records"] = delta_rows_of(f"{delta}/trials", tid)
    out["delta_retry_steps"] = delta_rows_of(f"{delta}/steps", tid)
    # MERGE on the key: insert only what is not there (a retried trial: nothing; a new one: all)
    keys = {"steps": "t.trial_id = s.trial_id AND t.step = s.step AND t.context_id = s.context_id",
            "trials": "t.trial_id = s.trial_id"}
    other = ids[len(ids) // 3]
    o_steps, o_record = read_pair(src, other)
    times = {"new": [], "retry": []}
    for r in range(reps):
        fresh = f"m{r:02d}-{uuid.uuid4().hex[:6]}"  # a new trial id per repetition: an insert
        for kind, (s, rec) in (("new", (o_steps.set_column(0, "trial_id", pa.array([fresh] * o_steps.num_rows)),
                                         o_record.set_column(0, "trial_id", pa.array([fresh])))),
                               ("retry", (o_steps, o_record))):
            t0 = time.perf_counter()
            for t, table in zip(TABLES, (s, rec)):
                (DeltaTable(f"{delta}/{t}").merge(table, keys[t], source_alias="s", target_alias="t")
                 .when_not_matched_insert_all().execute())
            times[kind].append(time.perf_counter() - t0)
    out["merge_new_ms"] = 1e3 * statistics.median(times["new"])
    out["merge_retry_ms"] = 1e3 * statistics.median(times["retry"])
    out["delta_merge_records"] = delta_rows_of(f"{delta}/trials", other)
    out["delta_merge_steps"] = delta_rows_of(f"{delta}/steps", other)
    # ours: the retried worker rewrites its loose pair (same names); the trial is also in a part
    t0 = time.perf_counter()
    ours.write_table(steps, *layout.steps_file(tid))
    ours.write_table(record, *layout.trial_file(tid))
    out["ours_retry_ms"] = 1e3 * (time.perf_counter() - t0)
    kept = read_records(ours, {tid})
    out["ours_retry_records"] = 0 if kept is None else kept.num_rows
    return out


# ----------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000", help="trial counts, comma-separated")
    ap.add_argument("--steps", type=int, default=25, help="optimizer steps per trial (rows = steps + 1)")
    ap.add_argument("--commit-max", type=int, default=1000,
                    help="Delta: trials ingested one commit each before the bulk middle (default %(default)s)")
    ap.add_argument("--tail", type=int, default=20, help="Delta: trials appended one commit each at the end")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each read (median)")
    ap.add_argument("--loose-reps", type=int, default=1,
                    help="repetitions of the reads before compaction above 2 000 trials (Delta opens ~20 ms/file)")
    ap.add_argument("--loose-read-max", type=int, default=100_000,
                    help="read the uncompacted Delta table only up to this size (its open grows ~30 ms/file)")
    ap.add_argument("--writers", type=int, default=4, help="concurrent Delta writers (0: skip)")
    ap.add_argument("--per-writer", type=int, default=25, help="appends per concurrent writer")
    ap.add_argument("--s3-python", help="a Python that has moto (e.g. /work/main/.venv/bin/python): also "
                    "run the concurrent writers against a moto S3 server and read the table from there")
    ap.add_argument("--smoke", action="store_true", help="200 trials, 1 repetition: under a minute")
    ap.add_argument("--dir", help="where to write (default: a temporary folder, removed)")
    ap.add_argument("--reuse", action="store_true",
                    help="with --dir: a size whose ingest.json exists (ingested, not compacted) skips the ingest")
    args = ap.parse_args()
    if args.smoke:
        args.sizes, args.commit_max, args.tail, args.reps = "100", 50, 5, 1
        args.writers, args.per_writer = 2, 10
    sizes = [int(x) for x in args.sizes.split(",") if x]
    base = args.dir or tempfile.mkdtemp(prefix="phantom-bench-formats-")
    import deltalake

    ext = duckdb.connect().execute("SELECT installed, loaded, install_mode FROM duckdb_extensions() "
                                   "WHERE extension_name = 'delta'").fetchone()
    lines = [f"deltalake {deltalake.__version__}, duckdb {duckdb.__version__}, pyarrow {pa.__version__}; "
             f"duckdb 'delta' extension: installed={ext[0]} loaded={ext[1]} ({ext[2]})",
             "load: {:.1f} {:.1f} {:.1f} on {} cores".format(*os.getloadavg(), os.cpu_count())]

    def say(text: str) -> None:
        lines.append(text)
        print(text, flush=True)

    for line in lines:
        print(line, flush=True)
    try:
        for n in sizes:
            root = os.path.join(base, f"n{n}")
            src, ours, delta = Store.open(f"{root}/src"), Store.open(f"{root}/ours"), f"{root}/delta"
            saved = os.path.join(root, "ingest.json")
            if args.reuse and os.path.exists(saved):
                ing = json.load(open(saved))
                say(f"\n{n:,} trials x {args.steps + 1} steps (reused: ingested earlier, figures from {saved})")
            else:
                shutil.rmtree(root, ignore_errors=True)
                t0 = time.perf_counter()
                rows = write_grid(src.root, n, args.steps)
                say(f"\n{n:,} trials x {args.steps + 1} steps = {rows:,} step rows (grid written in "
                    f"{time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.1f})")
                ing = ingest(src, ours, delta, args.commit_max, args.tail)
                with open(saved, "w") as fh:
                    json.dump(ing, fh)
            sd, ld = delta_files(f"{delta}/steps")
            td, tl = delta_files(f"{delta}/trials")
            say(f"  ingest  ours : {ing['ours_ms']:6.1f} ms/trial median (p90 {ing['ours_p90_ms']:.1f}), "
                f"{count_files(ours.root):,} files, {ing['ours_total_s']:.0f} s in all")
            tail = (f"; at {n:,} trials: {ing['delta_tail_ms']:.0f} ms/trial" if ing["delta_tail_ms"] else "")
            say(f"  ingest  delta: {ing['delta_ms']:6.1f} ms/trial median (p90 {ing['delta_p90_ms']:.1f}; "
                f"first 10% {ing['delta_first_ms']:.0f}, last 10% {ing['delta_last_ms']:.0f} ms{tail}), "
                f"{ing['delta_commits']:,} commits per table timed; data files {sd:,}+{td:,}, "
                f"_delta_log files {ld:,}+{tl:,} (steps+trials)")
            reps = args.reps if n <= 2000 else args.loose_reps
            r_ours = read("ours", ours.root, reps)
            r_delta = read("delta", delta, reps) if n <= args.loose_read_max else None
            if r_delta is None:
                say(f"  loose   delta: not read above --loose-read-max {args.loose_read_max}")
            for name, r in [("ours", r_ours)] + ([("delta", r_delta)] if r_delta else []):
                say(f"  loose   {name:<5}: open {r['open_s']:5.2f} s, grouped {r['grouped_s']:5.2f} s, "
                    f"status {r['status_s']:5.2f} s, total {r['total_s']:5.2f} s, {r['rss_gb']:.2f} GB "
                    f"[{r['digest']}]")
            wall, gb, out = sh([sys.executable, "-c", OURS_COMPACT, ours.root])
            c = json.loads(out.strip().splitlines()[-1])
            say(f"  compact ours : {wall:6.1f} s wall ({c['seconds']:.1f} s inside), {gb:.2f} GB peak RSS, "
                f"{c['parts']} parts, files after: {count_files(ours.root):,}")
            wall, gb, out = sh([sys.executable, "-c", DELTA_COMPACT, delta])
            c = json.loads(out.strip().splitlines()[-1])
            sd, ld = delta_files(f"{delta}/steps")
            td, tl = delta_files(f"{delta}/trials")
            opt = c["steps"]["optimize_s"] + c["trials"]["optimize_s"]
            say(f"  compact delta: {wall:6.1f} s wall (optimize {opt:.1f} s, "
                f"checkpoint+vacuum {c['steps']['checkpoint_vacuum_s'] + c['trials']['checkpoint_vacuum_s']:.1f} s), "
                f"{gb:.2f} GB peak RSS, data files after {sd}+{td}, _delta_log files {ld:,}+{tl:,}")
            r_ours2, r_delta2 = read("ours", ours.root, args.reps), read("delta", delta, args.reps)
            for name, r in (("ours", r_ours2), ("delta", r_delta2)):
                say(f"  compact {name:<5}: open {r['open_s']:5.2f} s, grouped {r['grouped_s']:5.2f} s, "
                    f"status {r['status_s']:5.2f} s, total {r['total_s']:5.2f} s, {r['rss_gb']:.2f} GB "
                    f"[{r['digest']}]")
            same = len({r["digest"] for r in (r_ours, r_delta or r_ours, r_ours2, r_delta2)}) == 1
            say(f"  answers: {'the same in both designs, before and after compaction' if same else 'DIFFERENT'}")
            e = exactly_once(src, ours, delta, args.reps)
            say(f"  retry   delta: a retried append leaves {e['delta_retry_records']} records and "
                f"{e['delta_retry_steps']} step rows for one trial")
            say(f"  merge   delta: {e['merge_new_ms']:.0f} ms/trial (new), {e['merge_retry_ms']:.0f} ms/trial (retry, "
                f"nothing inserted) -> {e['delta_merge_records']} record, {e['delta_merge_steps']} step rows")
            say(f"  retry   ours : rewrite {e['ours_retry_ms']:.1f} ms; readers keep {e['ours_retry_records']} record "
                f"(loose copy + part copy, keep_one)")
            if not args.dir:
                shutil.rmtree(root, ignore_errors=True)
        if args.writers:
            root = os.path.join(base, "conc")
            src = Store.open(f"{root}/src")
            write_grid(src.root, args.writers * args.per_writer, args.steps)
            c = concurrent(src, root, args.writers, args.per_writer)
            say(f"\nconcurrent: {c['writers']} processes x {args.per_writer} appends to one Delta table (local disk): "
                f"{c['wall_s']:.1f} s, version {c['version']}, rows {c['rows']:,} of {c['expected_rows']:,}, "
                f"{c['trials']} trials, {c['retries_by_us']} commits failed back to us {c['errors'] or ''}")
        if args.s3_python:
            src = Store.open(os.path.join(base, "s3src"))
            write_grid(src.root, max(1, args.writers) * args.per_writer, args.steps)
            c = s3_check(args.s3_python, src, max(1, args.writers), args.per_writer)
            if "error" in c:
                say(f"\nS3 (moto): {c['error']}")
            else:
                say(f"\nS3 (moto): {max(1, args.writers)} processes x {args.per_writer} appends: {c['wall_s']:.1f} s, "
                    f"version {c['version']}, rows {c['rows']:,} of {c['expected_rows']:,}, {c['trials']} trials, "
                    f"{c['retries_by_us']} commits failed back to us {c['errors'] or ''}; DuckDB via "
                    f"to_pyarrow_dataset: {c['s']:.2f} s, {c['rss_gb']:.2f} GB")
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    print("\nsummary:\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
