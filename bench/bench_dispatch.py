"""Dispatch benchmark (not a test; issue 17): the driver at 1,000, 10,000 and 100,000 planned trials.

Each size is a grid of tiny-llama, 1 step, the 10 shipped sentences x N/10 learning rates (full
fine-tuning: no packs, so every trial is its own unit of the search), run as a whole
``phantom sweep run`` in a child process with its storage in a throwaway folder under /tmp. It
prints, per size:

- ``plan``: expanding the grid and forming the dispatch units, in this process (no Ray);
- ``announce``: from the driver's start to its line "N trials, ... to run in M Tune trials";
- ``first``: from the driver's start to the first trial started (its ``attempts/`` file);
- ``total``: the whole run (up to the summary), and trials/s over it;
- ``rss``: the driver's peak resident memory (VmHWM of the driver process, not of its Ray);
- ``ray``: the size of Ray Tune's experiment folder (``ray/``) at the end;
- ``status`` / ``resume``: ``phantom sweep status`` and a ``resume`` of the complete folder
  ("nothing to run"), each a fresh process.

At ``--stop-after K`` trials complete (by default at 100,000 trials: after 300), the driver is
interrupted (SIGINT, as Ctrl-C) and its total is not measured; the line says so.

    python bench/bench_dispatch.py                      # 1k, 10k (whole) and 100k (first 300)
    python bench/bench_dispatch.py --sizes 1000,10000   # a subset
    python bench/bench_dispatch.py --smoke              # 100 trials: seconds
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from phantom.orchestrator.testing import descendants

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PHANTOM = [sys.executable, "-m", "phantom.cli"]


def _rates(n: int) -> list[float]:
    import numpy as np

    return [float(x) for x in np.geomspace(1e-7, 1e-2, n)]


def sweep_data(n_trials: int) -> dict:
    from phantom.orchestrator.testing import SENTENCES
    from phantom.workers.sentences import load_sentences

    sentences = sorted(load_sentences(SENTENCES))
    if n_trials % len(sentences):
        raise SystemExit(f"--sizes: each size should be a multiple of {len(sentences)} (the sentences)")
    return {
        "name": "bench-dispatch", "models": ["tiny-llama"], "protocols": ["full"],
        "sentences": {"file": str(SENTENCES)}, "learning_rates": _rates(n_trials // len(sentences)),
        "training": {"steps": 1}, "resources": {"cpus_per_trial": 1},
    }


def plan_seconds(data: dict, work: Path) -> tuple[float, int]:
    """Expanding the grid and forming the dispatch units, in this process: (seconds, units)."""
    import yaml

    from phantom.orchestrator.expand import expand
    from phantom.orchestrator.packing import dispatch_units
    from phantom.orchestrator.loader import load_sweep

    path = work / "plan.yaml"
    path.write_text(yaml.safe_dump(data))
    import phantom.workers.trial  # noqa: F401 - torch: imported once, not counted (the driver has it too)

    t0 = time.perf_counter()
    sweep, sentences = load_sweep(path)
    trials = list(expand(sweep, sentences).trials)
    units = dispatch_units(trials, sweep, workers=2, ids=[t.trial_id for t in trials])
    return time.perf_counter() - t0, len(units)


def _hwm_gb(pid: int) -> float | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e6
    except OSError:
        return None
    return None


def _folder_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total / 1e6


def _completed(folder: Path) -> int:
    from phantom.storage import Store

    return len(Store.open(folder).completed_trial_ids()) if folder.exists() else 0


def run_driver(yaml_path: Path, storage: Path, folder: Path, stop_after: int | None, log) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t0 = time.perf_counter()
    driver = subprocess.Popen([*PHANTOM, "sweep", "run", str(yaml_path), "--storage", str(storage)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
                              start_new_session=True)
    marks: dict[str, float] = {}

    def read() -> None:
        for line in driver.stdout:
            log.write(f"{time.perf_counter() - t0:8.2f} {line}")
            if " to run " in line and "announce" not in marks:
                marks["announce"] = time.perf_counter() - t0
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    attempts = folder / "attempts"
    hwm = 0.0
    spawned: set[int] = set()
    stopped = False
    last_count = 0.0
    while driver.poll() is None:
        hwm = max(hwm, _hwm_gb(driver.pid) or 0.0)
        now = time.perf_counter() - t0
        if "first" not in marks and attempts.exists() and next(os.scandir(attempts), None) is not None:
            marks["first"] = now
        if stop_after and not stopped and now - last_count >= 1.0:
            last_count = now
            spawned |= descendants(driver.pid)
            if _completed(folder) >= stop_after:
                marks["stop"] = now
                driver.send_signal(signal.SIGINT)  # as Ctrl-C: Tune saves its state and stops
                stopped = True
        time.sleep(0.05)
    end = time.perf_counter() - t0
    reader.join(10)
    if stopped:  # whatever of the interrupted driver's Ray is left
        time.sleep(2)
        for pid in spawned:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    return {
        "announce_s": marks.get("announce"), "first_s": marks.get("first"),
        "total_s": None if stopped else end, "stopped_at_s": marks.get("stop"), "rc": driver.returncode,
        "rss_gb": hwm, "completed": _completed(folder),
        "ray_mb": _folder_mb(folder / "ray") if (folder / "ray").exists() else 0.0,
    }


def _timed(cmd: list[str], log) -> float:
    log.flush()
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    return time.perf_counter() - t0


def one_size(n: int, stop_after: int | None, log) -> dict:
    import yaml

    work = Path(tempfile.mkdtemp(prefix=f"phantom-bench-dispatch-{n}-", dir="/tmp"))
    try:
        data = sweep_data(n)
        plan_s, units = plan_seconds(data, work)
        path = work / "sweep.yaml"
        path.write_text(yaml.safe_dump(data))
        folder = work / "st" / data["name"]
        out = {"trials": n, "plan_s": plan_s, "units": units}
        out.update(run_driver(path, work / "st", folder, stop_after, log))
        if out["total_s"] is not None:
            out["status_s"] = _timed([*PHANTOM, "sweep", "status", str(folder)], log)
            out["resume_s"] = _timed([*PHANTOM, "sweep", "resume", str(folder)], log)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fmt(v, unit: str = "s") -> str:
    return "-" if v is None else f"{v:.1f}{unit}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000,100000", help="planned trials, comma-separated (multiples of 10)")
    p.add_argument("--stop-after", type=int, default=300,
                   help="at sizes of --stop-from and above: interrupt the driver once this many trials are complete")
    p.add_argument("--stop-from", type=int, default=100_000, help="the smallest size that --stop-after applies to")
    p.add_argument("--whole", action="store_true", help="run every size to the end (no --stop-after)")
    p.add_argument("--smoke", action="store_true", help="100 trials, to the end: seconds")
    p.add_argument("--log", default=None, help="the drivers' output (default: a temporary file, deleted)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    sizes = [100] if args.smoke else [int(s) for s in args.sizes.split(",")]
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("PHANTOM_CACHE", str(Path.home() / ".cache" / "phantom"))
    log_path = Path(args.log) if args.log else Path(tempfile.mkstemp(prefix="bench-dispatch-", suffix=".log")[1])
    figures = []
    with open(log_path, "w") as log:
        for n in sizes:
            stop = None if args.whole or n < args.stop_from else args.stop_after
            r = one_size(n, stop, log)
            log.flush()
            figures.append(r)
            tail = (f"total {_fmt(r['total_s'])} ({r['completed'] / r['total_s']:.1f} trials/s), "
                    f"status {_fmt(r.get('status_s'))}, resume {_fmt(r.get('resume_s'))}"
                    if r["total_s"] else f"interrupted after {r['completed']} trials complete at {_fmt(r['stopped_at_s'])}")
            print(f"{n:>7} planned: plan {_fmt(r['plan_s'])} ({r['units']} units), announce {_fmt(r['announce_s'])}, "
                  f"first trial {_fmt(r['first_s'])}, {tail}; driver peak RSS {r['rss_gb']:.2f} GB, "
                  f"ray/ {r['ray_mb']:.1f} MB (rc {r['rc']})", flush=True)
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}, "sizes": figures}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    if not args.log:
        os.unlink(log_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
