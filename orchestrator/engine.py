"""The dispatch engine: a Ray session, and Tune runs of the pending trials as packs.

:class:`RaySession` connects to (or starts) Ray, quietly unless asked (``--verbose``), and
refuses a resource request no node can ever meet (:mod:`orchestrator.capacity`).
:func:`dispatch` runs what is pending among a list of trials: it finishes an interrupted Tune
experiment first when Ray can restore one (``ray/current.json`` names it; the
``Tuner.can_restore`` / ``Tuner.restore`` pattern), then groups what is still pending into
packs (:mod:`orchestrator.packing`), one Tune trial each. A pack whose workers died more than
``retries`` times has an ``error`` record written for each member without a record, so every
failure says why. The search modes (:mod:`orchestrator.grid`, :mod:`orchestrator.etac`) call
this; it never calls them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from phantom import layout
from phantom.storage import Store
from orchestrator.config import SweepConfig
from orchestrator.packing import PACK_ENGINE_ENV, Pack, make_packs
from orchestrator.plan import pending_trials

STEP_DELAY_ENV = "PHANTOM_STEP_DELAY"  # testing knob: seconds to sleep after each step
QUIET_ENV = {  # set before Ray is imported: its constants read them at import
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",  # our own progress view, not Tune's tables
    "RAY_SCHEDULER_EVENTS": "0",  # autoscaler events and tips
    "RAY_DEDUP_LOGS": "0",
}


@dataclass
class Outcome:
    uri: str
    dispatched: int  # trials handed to Tune in this invocation
    already: int  # complete before it
    restored: bool  # whether a Tune experiment was restored
    selected: tuple[str, ...] | None = None  # the trial ids `--only` selected (None: the whole sweep)


# ----------------------------------------------------------------------------------------------
# the Ray session


class RaySession:
    """Context manager: Ray attached (``address``) or started here, checked against
    ``request`` (one Tune trial's resources); shut down on exit if this session started it."""

    def __init__(self, address: str | None, request: dict[str, float], *, verbose: bool = False,
                 stream=None) -> None:
        self.address = address
        self.request = request
        self.verbose = verbose
        self.stream = stream or sys.stderr
        self.started = False

    def __enter__(self) -> RaySession:
        if not self.verbose:
            for key, value in QUIET_ENV.items():
                os.environ.setdefault(key, value)
        import ray

        from orchestrator.capacity import check_capacity

        if not ray.is_initialized():
            level = "WARNING" if self.verbose else "ERROR"
            kwargs = dict(logging_level=level, log_to_driver=self.verbose)
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(include_dashboard=False, **kwargs)
            self.started = True
        try:
            note = check_capacity(self.request)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        if note:
            print(note, file=self.stream, flush=True)
        return self

    def __exit__(self, exc_type=None, *exc) -> None:
        if self.started:
            import ray

            session_dir = _session_dir()
            ray.shutdown()
            self.started = False
            # a Ray started here leaves its session folder (logs, sockets: a few MB a run) in
            # /tmp/ray for good; Phantom records every trial's outcome and error itself, so the
            # folder goes after a clean run and stays (for Ray's own logs) after a failed one
            if session_dir and exc_type is None and not self.verbose:
                shutil.rmtree(session_dir, ignore_errors=True)


def _session_dir() -> str | None:
    """The folder of the Ray session this process started (Ray has no public accessor)."""
    try:
        from ray._private import worker

        node = worker._global_node
        return node.get_session_dir_path() if node is not None else None
    except Exception:  # noqa: BLE001 - a Ray without this internal: leave the folder
        return None


# ----------------------------------------------------------------------------------------------
# Tune


def _trial_name(trial) -> str:
    return trial.config["pack"]["id"]


def _param_space(store: Store, sweep: SweepConfig, packs: list[Pack]) -> dict:
    from ray import tune

    return {
        "pack": tune.grid_search([
            {"id": p.pack_id, "trials": [m.canonical_json() for m in p.members]} for p in packs
        ]),
        "storage": store.uri,
        "cpus": sweep.resources.cpus_per_trial,
        "tracking": list(sweep.tracking),  # experiment trackers the worker feeds (phantom/tracking.py)
        "step_delay_s": float(os.environ.get(STEP_DELAY_ENV) or 0.0),
        "engine": os.environ.get(PACK_ENGINE_ENV) or None,
    }


def _trainable(sweep: SweepConfig):
    from ray import tune

    from orchestrator.trainable import phantom_trainable

    r = sweep.resources
    return tune.with_resources(phantom_trainable, {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial})


def _ray_path(store: Store, *parts: str) -> str:
    return store.path(layout.RAY_DIR, *parts) if store.is_local else "/".join([store.uri, layout.RAY_DIR, *parts])


def _fit(store: Store, sweep: SweepConfig, packs: list[Pack]):
    from ray import tune

    from orchestrator.progress import ProgressCallback

    name = time.strftime("run-%Y%m%d-%H%M%S")
    store.write_text(json.dumps({"name": name}), layout.RAY_DIR, layout.CURRENT_FILE)
    tuner = tune.Tuner(
        _trainable(sweep),
        param_space=_param_space(store, sweep, packs),
        tune_config=tune.TuneConfig(
            reuse_actors=True,  # a worker keeps its loaded base model for the next pack
            max_concurrent_trials=sweep.resources.max_concurrent,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=_ray_path(store),
            failure_config=tune.FailureConfig(max_failures=sweep.retries),
            callbacks=[ProgressCallback()], verbose=0,
        ),
    )
    results = tuner.fit()
    store.delete(layout.RAY_DIR, layout.CURRENT_FILE)
    return results


def _no_experiment_state(path: str) -> bool:
    """A local experiment folder with Tune's tuner.pkl but no experiment_state-*.json: the
    driver was killed before Tune's first checkpoint, and Tune cannot restore it (it logs a
    ValueError and then fails in the trial namer). Remote paths are left to Tune."""
    import glob

    return "://" not in str(path) and not glob.glob(os.path.join(str(path), "experiment_state-*.json"))


def _restore(store: Store, sweep: SweepConfig):
    """Finish the interrupted Tune experiment, if there is one Ray can restore (its results)."""
    from ray import tune

    if not store.exists(layout.RAY_DIR, layout.CURRENT_FILE):
        return None
    name = json.loads(store.read_text(layout.RAY_DIR, layout.CURRENT_FILE))["name"]
    path = _ray_path(store, name)
    if not tune.Tuner.can_restore(path) or _no_experiment_state(path):
        store.delete(layout.RAY_DIR, layout.CURRENT_FILE)
        return None
    try:
        tuner = tune.Tuner.restore(path, trainable=_trainable(sweep), resume_unfinished=True,
                                   resume_errored=True)
        results = tuner.fit()
    except Exception as exc:  # noqa: BLE001 - Tune's own state, not a trial: dispatch afresh
        # e.g. a driver killed while Tune was starting leaves an experiment whose restored
        # search state has no trial configs (KeyError 'pack' in the trial namer). Records are
        # the truth: whatever has no complete record is dispatched again as new packs.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        print(f"could not restore the interrupted Tune experiment ({type(exc).__name__}: {first}); "
              "running what is pending afresh", file=sys.stderr, flush=True)
        store.delete(layout.RAY_DIR, layout.CURRENT_FILE)
        return []
    store.delete(layout.RAY_DIR, layout.CURRENT_FILE)
    return results


def record_lost(store: Store, results) -> int:
    """Write an ``error`` record for each member of a pack that Tune gave up on (its workers
    died more than ``retries`` times) and that has no record: the failure is on disk."""
    from phantom.config import TrialConfig

    lost = []
    done = store.completed_trial_ids()
    for result in results:
        if result.error is None:
            continue
        message = str(result.error).strip().splitlines()
        reason = f"the worker was lost ({message[-1] if message else type(result.error).__name__})"
        for text in result.config["pack"]["trials"]:
            cfg = TrialConfig.from_dict(json.loads(text))
            if cfg.trial_id not in done:
                lost.append((cfg, reason))
    if lost:
        from workers.trial import record_failure  # imports torch: only when there is a loss

        for cfg, reason in lost:
            record_failure(cfg, store, RuntimeError(reason))
    return len(lost)


def dispatch(store: Store, sweep: SweepConfig, trials, *, rerun_errored: bool = False, stream=None) -> Outcome:
    """Run the trials among ``trials`` that have no complete result (restoring Tune first)."""
    from orchestrator.packing import describe
    from orchestrator.progress import ProgressView

    stream = stream or sys.stderr
    since = datetime.now(timezone.utc)
    todo = pending_trials(store, trials, rerun_errored)
    already = len(trials) - len(todo)
    if not todo and not store.exists(layout.RAY_DIR, layout.CURRENT_FILE):
        print(f"all {len(trials)} trials of {sweep.name} are complete: nothing to run", file=stream)
        return Outcome(store.uri, 0, already, False)
    if store.exists(layout.RAY_DIR, layout.CURRENT_FILE):
        # Tune restores the interrupted experiment with the packs it formed then; what it does
        # not cover is packed afresh afterwards
        how = "restoring the interrupted Tune experiment first (its packs as first formed)"
    else:
        how = f"in {len(make_packs(todo, sweep))} Tune trials"
    print(f"{sweep.name}: {len(trials)} trials, {already} complete, {len(todo)} to run {how} -> {store.uri}; "
          f"{describe(sweep)}", file=stream, flush=True)
    dispatched = len(todo)
    restored = False
    with ProgressView(total=len(todo), budget=sweep.training.steps, already=already, stream=stream):
        results = _restore(store, sweep)
        if results is not None:  # whatever the restored experiment did not cover
            restored = True
            record_lost(store, results)
            todo = pending_trials(store, trials, rerun_errored, since=since)
        if todo:
            record_lost(store, _fit(store, sweep, make_packs(todo, sweep)))
    return Outcome(store.uri, dispatched, already, restored)
