"""Benchmark (not a test): how long each entry point takes to start, to reach its first step and
to finish (issue 28).

Each command runs ``--runs`` times as a whole process; the figures are the median with the min
and the max:

- ``phantom --help``;
- ``phantom trial`` on the tiny model, 1 step;
- ``phantom sweep run`` of 5 and of 5,000 tiny trials (1 step each), and of the 5 on a Ray that
  already runs (``ray start --head``, then ``--address``: no Ray to start);
- the five-LoRA sweep of docs/design/packs.md (smollm2-135m, 50 steps), packed and unpacked.

"First step" is the earliest ``started_at`` of the trial records a command wrote (set when a
trial's model is loaded and its loop is about to take step 0), minus the moment the command was
started. Then one run of the 5-trial sweep is taken apart into phases, from the files it wrote
and their times (plan.json, the run's unit files, the first attempt, the first record's start,
the last record's end) and the process's exit.

    python bench/bench_start.py                  # everything, 5 runs each (~20 min on 2 cores)
    python bench/bench_start.py --smoke          # one run of the quick commands (~1 min)
    python bench/bench_start.py --only trial,sweep5 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHANTOM = [sys.executable, "-m", "phantom.cli"]
TINY = ["--set", "models=[tiny-llama]", "--set", "training.steps=1"]
FIVE_LORA = ["--set", "models=[smollm2-135m]", "--set", "protocols=[lora]",
             "--set", "learning_rates=[1.0e-4,3.0e-4,1.0e-3,3.0e-3,1.0e-2]", "--set", "sentences.ids=[longing]"]


def _records(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    from phantom import results
    from phantom.storage import Store

    if not folder.exists():
        return []
    table = results.read_records(Store.open(folder))
    if table is None:
        loose = sorted(folder.glob("trials/*.parquet"))
        return [pq.read_table(p).to_pylist()[0] for p in loose]
    return table.select(["trial_id", "started_at", "finished_at"]).to_pylist()


def _tiny_sweep(work: Path, n: int) -> Path:
    """A tiny sweep of ``n`` trials of 1 step: the shipped sentences x as many rates as needed."""
    import yaml

    from phantom.workers.sentences import DEFAULT_SENTENCES, load_sentences

    ids = sorted(load_sentences())[:n]
    k = -(-n // len(ids))  # rates per sentence: n trials in all when n is a multiple of the sentences
    rates = [10 ** (-6 + 4 * i / max(1, k - 1)) for i in range(k)]
    path = work / f"tiny-{n}.yaml"
    path.write_text(yaml.safe_dump({
        "name": f"tiny-{n}", "sentences": {"file": str(DEFAULT_SENTENCES), "ids": ids}, "models": ["tiny-llama"],
        "learning_rates": rates, "training": {"steps": 1}, "resources": {"cpus_per_trial": 1}}))
    return path


def run_once(argv: list[str], folder: Path | None, log, env: dict | None = None) -> dict:
    """One whole run: its wall time and, when it wrote records under ``folder``, its first step."""
    if folder is not None and folder.exists():
        shutil.rmtree(folder)
    start = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    whole = time.perf_counter() - t0
    if proc.returncode not in (0,) and argv[-1] != "--help":
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: see the log")
    out = {"whole": whole}
    records = _records(folder) if folder is not None else []
    if records:
        out["first_step"] = (min(r["started_at"] for r in records) - start).total_seconds()
        out["trials"] = len(records)
    return out


def figures(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs if key in r]
    if not values:
        return "-"
    return f"{statistics.median(values):6.1f} s ({min(values):.1f}–{max(values):.1f})"


def timeline(folder: Path, argv: list[str], log) -> list[tuple[str, float]]:
    """The phases of one sweep run, in seconds from the command's start: from the driver's own
    lines as they arrive (the plan line is printed once Ray is up; the first progress line once
    Tune runs) and from the files the run wrote (plan.json, the first attempt a worker logged,
    the first record's step 0, the last record)."""
    if folder.exists():
        shutil.rmtree(folder)
    start = time.time()
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    marks: list[tuple[str, float]] = []
    for line in proc.stdout:
        log.write(line)
        now = time.time() - start
        if " to run in " in line and not any(m[0].startswith("Ray up") for m in marks):
            marks.append(("Ray up, units planned (the driver's plan line)", now))
        elif line.startswith("trials:") and not any(m[0].startswith("Tune") for m in marks):
            marks.append(("Tune running (first progress line)", now))
        elif line.startswith("sweep ") and " at " in line:
            marks.append(("Tune done, summary printed", now))
    proc.wait()
    end = time.time()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
    plan = folder / "plan.json"
    if plan.exists():
        marks.append(("plan.json written", plan.stat().st_mtime - start))
    attempts = []
    for p in folder.glob("attempts/*.json"):
        for a in json.loads(p.read_text())["attempts"]:
            attempts.append(datetime.fromisoformat(a["started"]).timestamp())
    if attempts:
        marks.append(("a worker starts its first pack (trainable imported)", min(attempts) - start))
    records = _records(folder)
    if records:
        marks.append(("first trial at step 0 (torch, transformers, model built)",
                      min(r["started_at"] for r in records).timestamp() - start))
        marks.append(("last record written", max(r["finished_at"] for r in records).timestamp() - start))
    marks.append(("the command exits (Ray shut down)", end - start))
    return sorted(marks, key=lambda m: m[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="help,trial,sweep5,attached,sweep5000,lora", help="comma-separated parts")
    ap.add_argument("--smoke", action="store_true", help="one run of help, trial and sweep5")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    if args.smoke:
        args.runs, args.only = 1, "help,trial,sweep5"
    parts = args.only.split(",")
    work = Path(tempfile.mkdtemp(prefix="phantom-bench-start-"))
    log = (work / "commands.log").open("w")
    print(f"bench_start: {args.runs} run(s) each; machine load {os.getloadavg()[0]:.1f}; log {work}/commands.log")
    commands: list[tuple[str, list[str], Path | None]] = []
    envs: dict[str, dict] = {}  # a command's own environment, where it needs one
    if "help" in parts:
        commands.append(("phantom --help", [*PHANTOM, "--help"], None))
    if "trial" in parts:
        commands.append(("phantom trial (tiny, 1 step)", [*PHANTOM, "trial", "--model", "tiny-llama", "--sentence",
                         "longing", "--lr", "1e-4", "--steps", "1", "--quiet", "--out", str(work / "one")], work / "one"))
    for n, part in ((5, "sweep5"), (5000, "sweep5000")):
        if part in parts:
            sweep = _tiny_sweep(work, n)
            commands.append((f"phantom sweep run ({n} tiny trials)",
                             [*PHANTOM, "sweep", "run", str(sweep), "--storage", str(work / "st")],
                             work / "st" / f"tiny-{n}"))
    head = None
    if "attached" in parts:  # the same 5 trials on a Ray already running (`ray start --head`, then --address)
        from phantom.testing.ray_nodes import RayNodes

        sweep = _tiny_sweep(work, 5)
        head = RayNodes(workers=0, head_cpus=os.cpu_count() or 1).start()
        label = "phantom sweep run (5, attached Ray)"
        commands.append((label, [*PHANTOM, "sweep", "run", str(sweep), "--storage", str(work / "st"),
                                 "--address", head.address], work / "st" / "tiny-5"))
        envs[label] = {**os.environ, **head.env}  # its token (Ray's token authentication is on)
    if "lora" in parts:
        for label, extra in (("packed", []), ("unpacked", ["--set", "resources.pack=1"])):
            commands.append((f"five-LoRA sweep, {label}", [*PHANTOM, "sweep", "run", "lr50", "--storage", str(work / "st"),
                                                        *FIVE_LORA, "--set", f"name=five-{label}", *extra],
                             work / "st" / f"five-{label}"))
    rows = {}
    for label, argv, folder in commands:
        runs = [run_once(argv, folder, log, envs.get(label)) for _ in range(args.runs)]
        rows[label] = runs
        print(f"  {label:<36} first step {figures(runs, 'first_step'):<24} whole {figures(runs, 'whole')}",
              flush=True)
    if "packed" in " ".join(rows) and len([k for k in rows if k.startswith("five-LoRA")]) == 2:
        ratios = [u["whole"] / p["whole"] for p, u in zip(rows["five-LoRA sweep, packed"], rows["five-LoRA sweep, unpacked"])]
        print(f"  five-LoRA packed vs unpacked, whole run: {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}–{max(ratios):.2f}, pair by pair)")
    for n, part in ((5, "sweep5"), (5000, "sweep5000")):
        if part not in parts:
            continue
        folder = work / "st" / f"tiny-{n}"
        print(f"timeline of one {n}-trial sweep run (seconds after the command started):")
        for what, at in timeline(folder, [*PHANTOM, "sweep", "run", str(work / f"tiny-{n}.yaml"), "--storage",
                                          str(work / "st")], log):
            print(f"  {at:6.1f}  {what}", flush=True)
    if head is not None:
        head.close()  # its own processes, by pid: never `ray stop`, which ends every Ray on the machine
    log.close()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
