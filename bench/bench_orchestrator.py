"""Benchmark (not a test): the orchestrator against the loop a user would script.

1. ~40 tiny trials through ``phantom sweep run`` (one Ray, workers that keep the model loaded)
   against a loop starting a fresh ``phantom trial`` process per trial: wall time of each,
   their ratio, and the overhead per trial (wall time not spent inside the trials, per trial).
2. ``sweeps/lr50.yaml`` on the embedded smollm2-135m on this machine: wall time, trials, steps/s.

    python bench/bench_orchestrator.py            # both parts (lr50: ~30+ min on 2 cores)
    python bench/bench_orchestrator.py --smoke    # seconds-to-a-minute sizes of both
    python bench/bench_orchestrator.py --skip-lr50 --trials 40
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHANTOM = [sys.executable, "-m", "phantom.cli"]
RATES = [1e-3, 3e-3, 1e-2, 3e-2]


def _records(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [pq.read_table(p).to_pylist()[0] for p in sorted(folder.glob("trials/*.parquet"))]


def _sh(cmd: list[str], log) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    return time.perf_counter() - t0


def tiny_comparison(n_trials: int, steps: int, work: Path, log) -> dict:
    import yaml

    from phantom.workers.sentences import load_sentences

    sentences = sorted(load_sentences())
    rates = RATES[: max(1, min(len(RATES), -(-n_trials // len(sentences))))]
    points = [(s, lr) for lr in rates for s in sentences][:n_trials]
    ids = sorted({s for s, _ in points})
    lrs = sorted({lr for _, lr in points})
    points = [(s, lr) for s in ids for lr in lrs]  # the sweep runs the full product
    sweep = {
        "name": "bench-tiny", "sentences": {"file": str(REPO / "sweeps" / "sentences.yaml"), "ids": ids},
        "models": ["tiny-gpt2"], "learning_rates": lrs, "training": {"steps": steps},
        "resources": {"cpus_per_trial": 1},
    }
    path = work / "bench-tiny.yaml"
    path.write_text(yaml.safe_dump(sweep))

    sweep_wall = _sh([*PHANTOM, "sweep", "run", str(path), "--storage", str(work / "sweep")], log)
    swept = _records(work / "sweep" / "bench-tiny")

    loop_dir = work / "loop"
    t0 = time.perf_counter()
    for s, lr in points:
        subprocess.run([*PHANTOM, "trial", "--model", "tiny-gpt2", "--sentence", s, "--lr", str(lr),
                        "--steps", str(steps), "--out", str(loop_dir), "--quiet"],
                       check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    loop_wall = time.perf_counter() - t0
    looped = _records(loop_dir)
    assert {r["trial_id"] for r in swept} == {r["trial_id"] for r in looped}, "the two paths ran different trials"
    n = len(points)
    in_sweep = sum(r["wall_s"] for r in swept)
    in_loop = sum(r["wall_s"] for r in looped)
    return {
        "trials": n, "steps": steps,
        "sweep_wall_s": round(sweep_wall, 1), "loop_wall_s": round(loop_wall, 1),
        "loop_over_sweep": round(loop_wall / sweep_wall, 2),
        "sweep_overhead_per_trial_s": round((sweep_wall - in_sweep / 2) / n, 2),  # 2 trials at a time
        "loop_overhead_per_trial_s": round((loop_wall - in_loop) / n, 2),
        "mean_trial_wall_s_sweep": round(in_sweep / n, 2), "mean_trial_wall_s_loop": round(in_loop / n, 2),
    }


def _step_seconds(folder: Path) -> float:
    """Σ step_ms of every trial's rows (forward + backward + optimizer), in seconds: a trial's
    contexts share one step, so one context's rows count; the members of a pack share theirs
    (each row holds the pack's step), so a member counts 1/pack_size of it."""
    from phantom.analysis import db
    from phantom.analysis.settings import AnalysisSettings

    with db.connect([str(folder)], AnalysisSettings(all_trials=True, bootstrap=0), views=["steps", "trials"]) as conn:
        total = db.scalar(conn, """SELECT sum(s.step_ms / coalesce(t.pack_size, 1)) FROM steps s
                                   JOIN trials t USING (trial_id) WHERE s.context_id = 0""")
    return (total or 0.0) / 1000


def lr50(work: Path, log, overrides: list[str]) -> dict:
    args = []
    for o in overrides:
        args += ["--set", o]
    wall = _sh([*PHANTOM, "sweep", "run", str(REPO / "sweeps" / "lr50.yaml"), "--storage", str(work / "lr50"), *args], log)
    recs = _records(work / "lr50" / "lr50")
    steps = sum(r["steps_done"] for r in recs)
    step_s = _step_seconds(work / "lr50" / "lr50")
    return {
        # the sweep's span against its training steps alone, 2 workers: 1.0 = nothing but steps
        "sweep_over_step_time": round(wall / (step_s / 2), 2) if step_s else None,
        "sum_step_s": round(step_s, 1),
        "trials": len(recs), "statuses": {s: sum(r["status"] == s for r in recs) for s in {r["status"] for r in recs}},
        "wall_s": round(wall, 1), "steps": steps, "steps_per_s": round(steps / wall, 2),
        "mean_trial_wall_s": round(sum(r["wall_s"] for r in recs) / max(1, len(recs)), 1),
        "skipped": len(glob.glob(str(work / "lr50" / "lr50" / "skipped.parquet"))),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: 4 trials x 3 steps; lr50 cut to 1 sentence x 2 steps")
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--skip-tiny", action="store_true")
    p.add_argument("--skip-lr50", action="store_true")
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary one, deleted)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    if args.smoke:
        args.trials, args.steps = 4, 3
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    work = Path(args.work or tempfile.mkdtemp(prefix="phantom-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"machine": {"cpus": os.cpu_count()}}
    with open(work / "bench.log", "w") as log:
        if not args.skip_tiny:
            out["tiny"] = r = tiny_comparison(args.trials, args.steps, work, log)
            print(f"tiny: {r['trials']} trials x {r['steps']} steps: sweep {r['sweep_wall_s']}s, "
                  f"process-per-trial loop {r['loop_wall_s']}s (loop/sweep = {r['loop_over_sweep']}x); "
                  f"overhead per trial: sweep {r['sweep_overhead_per_trial_s']}s, loop {r['loop_overhead_per_trial_s']}s",
                  flush=True)
        if not args.skip_lr50:
            sets = ["sentences.ids=[longing]", "learning_rates=[1.0e-5]", "training.steps=2"] if args.smoke else []
            out["lr50"] = r = lr50(work, log, sets)
            print(f"lr50 on smollm2-135m: {r['trials']} trials {r['statuses']} in {r['wall_s']}s "
                  f"({r['steps_per_s']} steps/s, {r['mean_trial_wall_s']}s per trial); sweep span / (Σ step time / 2 "
                  f"workers) = {r['sweep_over_step_time']}", flush=True)
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
