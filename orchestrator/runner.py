"""Run and resume a sweep with Ray Tune, losing and duplicating nothing.

Two guards, either of which is enough on its own:

1. Ray's own restore: the Tune experiment of an interrupted run lives in ``STORAGE/NAME/ray``
   and ``ray/current.json`` names it; the next run or resume calls ``Tuner.can_restore`` /
   ``Tuner.restore`` on it.
2. The data: a trial whose ``trials/<id>.parquet`` exists is complete and is never dispatched
   again (and the trainable re-checks before it starts), so a resume works when Ray's state is
   lost or older than the data. Leftovers of killed trials (``*.tmp`` and steps files without a
   record) are deleted before dispatch; the trial reruns and rewrites them atomically.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from phantom.config import TrialConfig
from phantom.errors import StorageError
from phantom.storage import Store
from orchestrator.config import SweepConfig
from orchestrator.grid import Grid, expand
from orchestrator.loader import load_sweep
from orchestrator.status import (
    PLAN_FILE, SENTENCES_FILE, SKIPPED_FILE, SWEEP_FILE, clean_leftovers, format_status,
    query_hint, sweep_status,
)

RAY_DIR = "ray"
CURRENT_FILE = "current.json"  # inside RAY_DIR: the Tune experiment to restore
STEP_DELAY_ENV = "PHANTOM_STEP_DELAY"  # testing knob: seconds to sleep after each step


@dataclass
class Outcome:
    uri: str
    dispatched: int  # trials handed to Tune in this invocation
    already: int  # complete before it
    restored: bool  # whether a Tune experiment was restored


def sweep_store(sweep: SweepConfig, storage: str | None) -> Store:
    root = storage or sweep.storage
    if not root:
        raise StorageError("no storage: set `storage:` in the sweep file or pass --storage PATH|URI")
    if "://" not in root and not os.path.isabs(os.path.expanduser(root)):
        root = os.path.abspath(os.path.expanduser(root))  # Ray needs an absolute path
    return Store.open(root).child(sweep.name)


def write_plan(store: Store, sweep: SweepConfig, sentences_file: Path, grid: Grid, extra_ids=()) -> None:
    """The resolved sweep (with a snapshot of its sentences), the trial ids, the skipped pairs."""
    import yaml

    data = sweep.to_dict()
    data["sentences"]["file"] = SENTENCES_FILE
    data["storage"] = None  # the folder's parent is the storage; it may be moved
    store.write_text(yaml.safe_dump(data, sort_keys=False), SWEEP_FILE)
    store.write_text(Path(sentences_file).read_text(encoding="utf-8"), SENTENCES_FILE)
    ids = sorted(set(grid.ids) | set(extra_ids))
    store.write_text(json.dumps({"name": sweep.name, "trials": ids}, indent=0), PLAN_FILE)
    skipped = pa.Table.from_pylist(
        [{"model": s.model, "sentence_id": s.sentence_id, "reason": s.reason} for s in grid.skipped],
        schema=pa.schema([("model", pa.string()), ("sentence_id", pa.string()), ("reason", pa.string())]),
    )
    store.write_table(skipped, SKIPPED_FILE)


def pending_trials(store: Store, trials, rerun_errored: bool, since=None) -> list[TrialConfig]:
    """Trials without a complete record, and with ``rerun_errored`` those recorded as error
    (finished before ``since``, a UTC datetime, when given: not the ones this run re-ran)."""
    from orchestrator.status import read_records, read_worker_skips

    done = store.completed_trial_ids()
    errored: set[str] = set()
    if rerun_errored and done:
        table = read_records(store, {t.trial_id for t in trials})
        if table is not None:
            errored = {
                r["trial_id"] for r in table.select(["trial_id", "status", "finished_at"]).to_pylist()
                if r["status"] == "error" and (since is None or r["finished_at"] < since)
            }
    skips = set(read_worker_skips(store))
    return [t for t in trials if (t.trial_id not in done or t.trial_id in errored) and t.trial_id not in skips]


# ----------------------------------------------------------------------------------------------
# Ray


def _ray_up(address: str | None) -> bool:
    """Connect to (or start) Ray; True when this call started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our own progress view, not Tune's tables
    kwargs = dict(include_dashboard=False, logging_level="WARNING", log_to_driver=True)
    if address:
        ray.init(address=address, **{k: v for k, v in kwargs.items() if k != "include_dashboard"})
    else:
        ray.init(**kwargs)
    return True


def _trial_name(trial) -> str:
    return trial.config["trial"]["id"]


def _param_space(store: Store, sweep: SweepConfig, trials: list[TrialConfig]) -> dict:
    from ray import tune

    return {
        "trial": tune.grid_search([{"id": t.trial_id, "config": t.canonical_json()} for t in trials]),
        "storage": store.uri,
        "cpus": sweep.resources.cpus_per_trial,
        "tracking": list(sweep.tracking),  # experiment trackers the worker feeds (phantom/tracking.py)
        "step_delay_s": float(os.environ.get(STEP_DELAY_ENV) or 0.0),
    }


def _trainable(sweep: SweepConfig):
    from ray import tune

    from orchestrator.trainable import phantom_trainable

    r = sweep.resources
    return tune.with_resources(phantom_trainable, {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial})


def _fit(store: Store, sweep: SweepConfig, trials: list[TrialConfig]) -> None:
    from ray import tune

    from orchestrator.progress import ProgressCallback

    name = time.strftime("run-%Y%m%d-%H%M%S")
    store.write_text(json.dumps({"name": name}), RAY_DIR, CURRENT_FILE)
    tuner = tune.Tuner(
        _trainable(sweep),
        param_space=_param_space(store, sweep, trials),
        tune_config=tune.TuneConfig(
            reuse_actors=True,  # a worker keeps its loaded base model for the next trial
            max_concurrent_trials=sweep.resources.max_concurrent,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=store.path(RAY_DIR) if store.is_local else f"{store.uri}/{RAY_DIR}",
            failure_config=tune.FailureConfig(max_failures=sweep.retries),
            callbacks=[ProgressCallback()], verbose=0,
        ),
    )
    tuner.fit()
    store.delete(RAY_DIR, CURRENT_FILE)


def _restore(store: Store, sweep: SweepConfig) -> bool:
    """Finish the interrupted Tune experiment, if there is one Ray can restore."""
    from ray import tune

    if not store.exists(RAY_DIR, CURRENT_FILE):
        return False
    name = json.loads(store.read_text(RAY_DIR, CURRENT_FILE))["name"]
    path = store.path(RAY_DIR, name) if store.is_local else f"{store.uri}/{RAY_DIR}/{name}"
    if not tune.Tuner.can_restore(path):
        store.delete(RAY_DIR, CURRENT_FILE)
        return False
    tuner = tune.Tuner.restore(path, trainable=_trainable(sweep), resume_unfinished=True, resume_errored=True)
    tuner.fit()
    store.delete(RAY_DIR, CURRENT_FILE)
    return True


# ----------------------------------------------------------------------------------------------
# entry points


def run_sweep(
    sweep: SweepConfig, sentences_file: Path, *, storage: str | None = None, address: str | None = None,
    rerun_errored: bool = False, stream=None,
) -> Outcome:
    """Expand, plan, dispatch what is missing, and print the summary."""
    stream = stream or sys.stderr
    store = sweep_store(sweep, storage)
    if sweep.search.mode == "eta-c":
        from orchestrator.etac import run_eta_c

        return run_eta_c(sweep, sentences_file, store, address=address, rerun_errored=rerun_errored, stream=stream)
    grid = expand(sweep, sentences_file)
    write_plan(store, sweep, sentences_file, grid)
    for s in grid.skipped:
        print(f"skipping {s.model} / {s.sentence_id}: {s.reason}", file=stream)
    outcome = dispatch(store, sweep, grid.trials, address=address, rerun_errored=rerun_errored, stream=stream)
    print(summary(store.uri), file=stream)
    return outcome


def dispatch(store: Store, sweep: SweepConfig, trials, *, address=None, rerun_errored=False, stream=None) -> Outcome:
    """Run the trials among ``trials`` that have no complete result (restoring Tune first)."""
    from orchestrator.progress import ProgressView

    stream = stream or sys.stderr
    since = datetime.now(timezone.utc)
    clean_leftovers(store)
    todo = pending_trials(store, trials, rerun_errored)
    already = len(trials) - len(todo)
    if not todo and not store.exists(RAY_DIR, CURRENT_FILE):
        print(f"all {len(trials)} trials of {sweep.name} are complete: nothing to run", file=stream)
        return Outcome(store.uri, 0, already, False)
    print(f"{sweep.name}: {len(trials)} trials, {already} complete, {len(todo)} to run -> {store.uri}",
          file=stream, flush=True)
    started = _ray_up(address)
    restored = False
    dispatched = len(todo)
    try:
        with ProgressView(total=len(todo), budget=sweep.training.steps, already=already, stream=stream):
            restored = _restore(store, sweep)
            if restored:  # whatever the restored experiment did not cover
                todo = pending_trials(store, trials, rerun_errored, since=since)
            if todo:
                _fit(store, sweep, todo)
    finally:
        if started:
            import ray

            ray.shutdown()
    return Outcome(store.uri, dispatched, already, restored)


def summary(uri: str) -> str:
    st = sweep_status(uri)
    text = format_status(st)
    return f"{text}\n  data: {st.uri}/steps, {st.uri}/trials\n  next: {query_hint(st.uri)}"


def load_from_folder(path: str) -> tuple[SweepConfig, Path, str]:
    """(sweep, sentences file, storage root) of an existing sweep folder (for resume)."""
    store = Store.open(path)
    if not store.exists(SWEEP_FILE):
        raise StorageError(f"'{store.uri}' is not a sweep folder (no {SWEEP_FILE})")
    tmp = Path(tempfile.mkdtemp(prefix="phantom-sweep-"))
    (tmp / SWEEP_FILE).write_text(store.read_text(SWEEP_FILE), encoding="utf-8")
    (tmp / SENTENCES_FILE).write_text(store.read_text(SENTENCES_FILE), encoding="utf-8")
    name = store.uri.rstrip("/").rsplit("/", 1)[-1]
    sweep, sentences = load_sweep(tmp / SWEEP_FILE, [f"name={name}"])
    root = store.uri.rstrip("/").rsplit("/", 1)[0]
    return sweep, sentences, root


def resume(path: str, *, address: str | None = None, rerun_errored: bool = False, stream=None) -> Outcome:
    sweep, sentences, root = load_from_folder(path)
    return run_sweep(sweep, sentences, storage=root, address=address, rerun_errored=rerun_errored, stream=stream)
