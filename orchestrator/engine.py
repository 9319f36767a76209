"""The dispatch engine: Tune runs of the pending trials as packs (the Ray session they run in is
:mod:`phantom.orchestrator.session`).

:func:`dispatch` runs what is pending among a list of trials: it finishes an interrupted Tune
experiment first when Ray can restore one (``ray/current.json`` names it; the
``Tuner.can_restore`` / ``Tuner.restore`` pattern), then groups what is still pending into
packs and the packs into units (:mod:`phantom.orchestrator.packing`), one Tune trial each. A pack whose
worker died in ``retries + 1`` attempts gets an ``error`` record per member (written by the
trainable, which goes on with the unit's next pack); a unit Tune gives up on has one written
for each member without a record, so every failure says why. The search modes (:mod:`phantom.orchestrator.grid`, :mod:`phantom.orchestrator.etac`) call
this; it never calls them.

A Tune trial is a *unit* (:mod:`phantom.orchestrator.packing`): one pack, or a batch of packs when a
sweep has more packs than Tune should track (``unit_count``). The units' members go to small
files under ``ray/<run>.units/``; Tune's experiment state holds each unit's id only, so it
stays small however many trials are planned.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from phantom import layout
from phantom.errors import ClusterError
from phantom.storage import Store
from phantom.orchestrator.config import SweepConfig
from phantom.orchestrator.packing import (
    Unit,
    delete_units,
    dispatch_units,
    read_unit,
    units_folder,
    write_units,
)
from phantom.orchestrator.plan import pending_trials
from phantom.orchestrator.unit_task import FORMAT, UnitTask

# set before a Tune run: Phantom writes every result itself, so Tune's own per-trial loggers
# (result.json, progress.csv, TensorBoard events: ~40 KB a trial) are left out
TUNE_ENV = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}


@dataclass
class Outcome:
    uri: str
    dispatched: int  # trials handed to Tune in this invocation
    already: int  # complete before it
    restored: bool  # whether a Tune experiment was restored
    selected: tuple[str, ...] | None = None  # the trial ids `--only` selected (None: the whole sweep)


# ----------------------------------------------------------------------------------------------
# Tune


@contextlib.contextmanager
def callback_telemetry_off():
    """Skip Tune's count of the run's callback classes while usage stats are off.

    ``tune.run`` counts them for Ray's usage telemetry (``ray.air._internal.usage.tag_callbacks``,
    Ray 2.x) by importing the MLflow, W&B, Comet and Aim integrations, which import mlflow and
    wandb where they are installed (Phantom's tracking extras): 3.3 s before the first trial
    starts, on every run, even with telemetry off. With ``RAY_USAGE_STATS_ENABLED=0`` (set by
    :class:`RaySession` unless ``--verbose``, or by the user) the count goes nowhere, so it is
    skipped; with telemetry on, or on a Ray without that function, nothing changes."""
    try:
        from ray.air._internal import usage
    except ImportError:  # pragma: no cover - a Ray that moved it
        yield
        return
    original = getattr(usage, "tag_callbacks", None)
    if original is None or os.environ.get("RAY_USAGE_STATS_ENABLED") != "0":
        yield
        return
    usage.tag_callbacks = lambda callbacks: False
    try:
        yield
    finally:
        usage.tag_callbacks = original


def _trial_name(trial) -> str:
    """A Tune trial is named after its unit (its folder too: :func:`_unit_of`)."""
    return trial.config["unit"]


def _trainable(sweep: SweepConfig):
    from ray import tune

    from phantom.orchestrator.trainable import phantom_trainable

    r = sweep.resources
    return tune.with_resources(phantom_trainable, {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial})


def _ray_path(store: Store, *parts: str) -> str:
    """Tune's folder, a path in :func:`_ray_fs` (never a URI: its query string, credentials)."""
    return store.path(layout.RAY_DIR, *parts)


def _ray_fs(store: Store):
    """The filesystem Tune keeps its state in (None: a local folder); it pickles as the clean URI."""
    return None if store.is_local else store.tune_filesystem()


def max_failures(retries: int, units: list[Unit]) -> int:
    """Tune's ``max_failures`` (per Tune trial) for these units: a unit may lose its worker
    ``retries + 1`` times on each of its packs (the trainable then writes that pack's members
    as lost and goes on), so only a unit that fails without ever starting a pack (a bug, not a
    worker) exhausts it; then :func:`record_lost` writes the members without a record."""
    return (retries + 1) * max((len(u.packs) for u in units), default=1) - 1


def _fit(store: Store, sweep: SweepConfig, units: list[Unit]):
    from ray import tune

    from phantom.orchestrator.progress import ProgressCallback
    from phantom.orchestrator.watch import StartCallback, StartWatch

    for key, value in TUNE_ENV.items():
        os.environ.setdefault(key, value)
    name = time.strftime("run-%Y%m%d-%H%M%S-") + os.urandom(2).hex()  # unique: it tags attempts
    folder = units_folder(name)
    write_units(store, folder, units)
    store.write_text(json.dumps({"name": name, "format": FORMAT}), layout.RAY_DIR, layout.CURRENT_FILE)
    tuner = tune.Tuner(
        _trainable(sweep),
        param_space=UnitTask.of(sweep, folder, store.uri).param_space(u.unit_id for u in units),
        tune_config=tune.TuneConfig(
            reuse_actors=True,  # a worker keeps its loaded base model for the next unit
            max_concurrent_trials=sweep.resources.max_concurrent,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=_ray_path(store), storage_filesystem=_ray_fs(store),
            failure_config=tune.FailureConfig(max_failures=max_failures(sweep.retries, units)),
            callbacks=[ProgressCallback(), StartCallback()], verbose=0,
        ),
    )
    with callback_telemetry_off(), StartWatch() as watch:
        results = tuner.fit()
    if watch.failure:
        _cannot_start(store, folder, watch.failure)
    _finish(store, results, folder)
    return results


def _cannot_start(store: Store, folder: str | None, cause: str) -> None:
    from phantom.orchestrator.hints import resume_hint

    """The workers could not load Phantom: nothing was recorded, and the next run plans afresh
    (the units and the restore marker go; Tune's own folder stays, as Ray leaves it)."""
    if folder:
        delete_units(store, folder)
    store.delete(layout.RAY_DIR, layout.CURRENT_FILE)
    raise ClusterError(f"the workers could not start the trials: {cause}; nothing was recorded. Install this "
                       f"Phantom on every node, then: {resume_hint(store)}")


def _finish(store: Store, results, folder: str | None) -> None:
    """After a Tune run: the lost units' members written down, the units' files and the
    restore marker gone (Tune's own folder stays, as Ray leaves it)."""
    record_lost(store, results, folder)
    if folder:
        delete_units(store, folder)
    store.delete(layout.RAY_DIR, layout.CURRENT_FILE)


def _no_experiment_state(path: str) -> bool:
    """A local experiment folder with Tune's tuner.pkl but no experiment_state-*.json: the
    driver was killed before Tune's first checkpoint, and Tune cannot restore it (it logs a
    ValueError and then fails in the trial namer). Remote paths are left to Tune."""
    import glob

    return "://" not in str(path) and not glob.glob(os.path.join(str(path), "experiment_state-*.json"))


def _restore(store: Store, sweep: SweepConfig):
    """Finish the interrupted Tune experiment, if there is one Ray can restore (its results)."""
    from ray import tune

    from phantom.orchestrator.watch import StartWatch

    if not store.exists(layout.RAY_DIR, layout.CURRENT_FILE):
        return None
    current = json.loads(store.read_text(layout.RAY_DIR, layout.CURRENT_FILE))
    name = current["name"]
    path = _ray_path(store, name)
    if current.get("format") != FORMAT:  # another release's units and task: the records say what is left
        print("the interrupted Tune experiment was written by another release of Phantom: running what is "
              "pending afresh", file=sys.stderr, flush=True)
    fs = {} if store.is_local else {"storage_filesystem": _ray_fs(store)}
    if (current.get("format") != FORMAT or not tune.Tuner.can_restore(path, **fs)
            or (store.is_local and _no_experiment_state(path))):
        store.delete(layout.RAY_DIR, layout.CURRENT_FILE)
        delete_units(store, units_folder(name))
        return None
    for key, value in TUNE_ENV.items():
        os.environ.setdefault(key, value)
    try:
        tuner = tune.Tuner.restore(path, trainable=_trainable(sweep), resume_unfinished=True,
                                   resume_errored=True, **fs)
        with callback_telemetry_off(), StartWatch() as watch:
            results = tuner.fit()
    except Exception as exc:  # noqa: BLE001 - Tune's own state, not a trial: dispatch afresh
        # e.g. a driver killed while Tune was starting leaves an experiment whose restored
        # search state has no trial configs (KeyError 'pack' in the trial namer). Records are
        # the truth: whatever has no complete record is dispatched again as new packs.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        print(f"could not restore the interrupted Tune experiment ({type(exc).__name__}: {first}); "
              "running what is pending afresh", file=sys.stderr, flush=True)
        store.delete(layout.RAY_DIR, layout.CURRENT_FILE)
        delete_units(store, units_folder(name))
        return []
    if watch.failure:
        _cannot_start(store, units_folder(name), watch.failure)
    _finish(store, results, units_folder(name))
    return results


def _unit_of(result, folder: str | None) -> tuple[str, str]:
    """(units folder, unit id) of a Tune result: from its config, or — when Tune has none (a
    worker that never ran the trial) — from its folder, which Tune names after the unit."""
    if result.config:
        return result.config["units"], result.config["unit"]
    if folder is None or not getattr(result, "path", None):
        raise KeyError("unit")
    return folder, os.path.basename(str(result.path).rstrip("/"))


def record_lost(store: Store, results, folder: str | None = None) -> int:
    """Write an ``error`` record for each member of a unit that Tune gave up on and that has
    no record: the failure is on disk. (A unit whose worker keeps dying is not given up on:
    the trainable writes the dying pack's members itself and goes on with the rest.)"""
    lost = []
    done = None
    for result in results:
        if result.error is None:
            continue
        done = store.completed_trial_ids() if done is None else done
        message = str(result.error).strip().splitlines()
        reason = f"the worker was lost ({message[-1] if message else type(result.error).__name__})"
        try:
            packs = read_unit(store, *_unit_of(result, folder))
        except (OSError, ValueError, KeyError):  # its file is gone: its members stay pending
            continue
        for cfg in (c for pack in packs for c in pack):
            if cfg.trial_id not in done:
                lost.append((cfg, reason))
    if lost:
        from phantom.workers.trial import record_failure  # imports torch: only when there is a loss

        for cfg, reason in lost:
            record_failure(cfg, store, RuntimeError(reason))
    return len(lost)


def dispatch(store: Store, sweep: SweepConfig, trials, *, rerun_errored: bool = False, stream=None,
             ids: list[str] | None = None) -> Outcome:
    """Run the trials among ``trials`` that have no complete result (restoring Tune first).
    ``ids``: their trial ids, when the caller has them (each costs ~90 us to compute)."""
    from phantom.orchestrator.capacity import worker_slots
    from phantom.orchestrator.packing import describe
    from phantom.orchestrator.progress import ProgressView

    stream = stream or sys.stderr
    since = datetime.now(timezone.utc)
    trials = list(trials)
    ids = list(ids) if ids is not None else [t.trial_id for t in trials]
    todo, todo_ids = pending_trials(store, trials, rerun_errored, ids=ids)
    already = len(trials) - len(todo)
    interrupted = store.exists(layout.RAY_DIR, layout.CURRENT_FILE)
    if not todo and not interrupted:
        print(f"all {len(trials)} trials of {sweep.name} are complete: nothing to run", file=stream)
        return Outcome(store.uri, 0, already, False)
    workers = worker_slots(sweep.resources.request(), sweep.resources.max_concurrent)
    units = [] if interrupted else dispatch_units(todo, sweep, workers, todo_ids)
    if interrupted:
        # Tune restores the interrupted experiment with the units it formed then; what it does
        # not cover is packed afresh afterwards
        how = "restoring the interrupted Tune experiment first (its packs as first formed)"
    else:
        how = f"in {len(units)} Tune trials"
    print(f"{sweep.name}: {len(trials)} trials, {already} complete, {len(todo)} to run {how} -> {store.uri}; "
          f"{describe(sweep)}{_shape(units, workers)}", file=stream, flush=True)
    dispatched = len(todo)
    restored = False
    with ProgressView(total=len(todo), budget=sweep.training.steps, already=already, stream=stream) as view:
        results = _restore(store, sweep) if interrupted else None
        if results is not None:  # whatever the restored experiment did not cover
            restored = True
            todo, todo_ids = pending_trials(store, trials, rerun_errored, since=since, ids=ids)
        if interrupted:
            units = dispatch_units(todo, sweep, workers, todo_ids)
        if units:
            view.sizes.update({u.unit_id: len(u.packs[0].members) for u in units})
            _fit(store, sweep, units)
    return Outcome(store.uri, dispatched, already, restored)


def _shape(units: list[Unit], workers: int) -> str:
    """How the trials were cut, when packs were split for the workers or batched into units."""
    packs = sum(len(u.packs) for u in units)
    if packs <= len(units):
        return ""
    return f"; {packs} packs in {len(units)} batches for {workers} workers"
