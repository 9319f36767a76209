"""Experiment trackers: MLflow, TensorBoard and Weights & Biases, fed by the worker.

Each is an optional extra (``pip install 'phantom-transitions[mlflow]'``, ``[tensorboard]``,
``[wandb]``); the Parquet files stay the record of a trial, trackers are views of it.

    tracking = open_tracking(["mlflow", "tensorboard"], "runs/lr50")
    tracking.trial_started(cfg)                      # one run per trial, named by its id
    tracking.step(cfg.trial_id, step, row)           # every step: the Parquet columns by name
    tracking.trial_finished(record_of(result))        # the end: status, steps done, ...
    tracking.close()

Metrics are named exactly as the step columns (``phi``, ``signal``, ``drag``, ``loss``,
``logit_gap``, ``rank_g``, ``rank_c``, ``born_rank``, ``p_g``, ``p_c``, ...) at ``step`` = the
row's step; a trial with several contexts logs context i > 0 as ``phi/ctx{i}``. The trial
config goes in as params (flattened: ``training.steps``) and tags (``trial_id``, ``model``,
``sentence_id``, ``protocol``, ``sweep``); the end as a summary (``status``, ``steps_done``,
``final_phi``, ``flip_step`` = the first step with Φ > 0, ...).

Where the data goes, with nothing configured: under the results folder, ``mlruns/`` (MLflow's
file store), ``tensorboard/<trial_id>/`` and ``wandb/`` (offline runs). ``MLFLOW_TRACKING_URI``
(and ``MLFLOW_EXPERIMENT_NAME``; default: the folder's name), ``WANDB_MODE`` / ``WANDB_PROJECT``
/ ``WANDB_DIR`` and ``PHANTOM_TRACKING_DIR`` (instead of the results folder, e.g. when that is
``s3://``) change it.

A tracker that fails never fails the trial: it warns once (per process and tracker) on stderr
and is switched off for the rest of the trial.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from phantom.errors import ConfigError, PhantomError, suggest
from phantom.outcomes import TrialStatus

TRACKERS = ("mlflow", "tensorboard", "wandb")
# the import that proves a tracker is installed, and the pip extra that installs it
_PROBE = {"mlflow": "mlflow", "tensorboard": "tensorboard", "wandb": "wandb"}
# step columns that identify a row rather than measure it
ID_COLUMNS = ("trial_id", "step", "context_id", "model", "protocol", "sentence_id", "lr", "seed")
TRACKING_DIR_ENV = "PHANTOM_TRACKING_DIR"

_warned: set[str] = set()


class TrackingError(PhantomError):
    """A tracker is unknown or not installed."""


def check_names(names: Iterable[str]) -> tuple[str, ...]:
    """The tracker names, validated (unknown or repeated names: ConfigError)."""
    names = tuple(names or ())
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(
                f"Unknown tracker '{name}' in `tracking`.{suggest(name, TRACKERS)} Available: {', '.join(TRACKERS)}"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"`tracking` has duplicates: {list(names)}")
    return names


def check_installed(names: Iterable[str]) -> None:
    """TrackingError naming the pip extra when a tracker's package is missing."""
    for name in check_names(names):
        if importlib.util.find_spec(_PROBE[name]) is None:
            raise TrackingError(
                f"tracking with {name} needs its package: pip install 'phantom-transitions[{name}]'"
            )


def _warn(name: str, what: str, exc: BaseException) -> None:
    if name in _warned:
        return
    _warned.add(name)
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    print(f"phantom: warning: tracking with {name} failed ({what}: {text}); trials go on without it",
          file=sys.stderr, flush=True)


def flat_params(cfg) -> dict[str, str]:
    """The trial config as flat string params: ``training.steps`` -> ``'50'``."""
    from phantom.config import to_dict

    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)

    walk("", to_dict(cfg))
    return out


def metric_columns() -> tuple[str, ...]:
    """The step columns that are measurements: the numeric columns of phantom/schema.py minus
    the row's identity (the precision labels say how a row was measured: not a metric)."""
    import pyarrow.types as pat  # pyarrow: not at import (sweep validate stays light)

    from phantom.schema import STEP_SCHEMA

    return tuple(f.name for f in STEP_SCHEMA if f.name not in ID_COLUMNS
                 and (pat.is_floating(f.type) or pat.is_integer(f.type) or pat.is_boolean(f.type)))


def metrics_of(row: dict) -> dict[str, float]:
    """The measured columns of a step row as floats (NULLs left out), named as in Parquet."""
    suffix = f"/ctx{row['context_id']}" if row.get("context_id") else ""
    out = {}
    for name in metric_columns():
        value = row.get(name)
        if value is None or isinstance(value, str):
            continue
        out[name + suffix] = float(value)
    return out


def record_of(result) -> dict:
    """What ``trial_finished`` takes, from a ``phantom.workers.trial.TrialResult``."""
    return {"trial_id": result.trial_id, "status": str(result.status), "steps_done": result.steps_done,
            "stop_reason": result.stop_reason, "error": result.error, "wall_s": result.wall_s}


# ----------------------------------------------------------------------------------------------
# backends: start(trial_id, params, tags) / log(trial_id, step, metrics) / finish(trial_id, summary)
# / close(). Each runs behind the guard in Tracking: an exception switches it off.


class _MLflow:
    name = "mlflow"

    def __init__(self, base: str | None, experiment: str):
        from mlflow import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            if base is None:
                raise TrackingError(f"no local folder for mlruns/: set MLFLOW_TRACKING_URI or {TRACKING_DIR_ENV}")
            # MLflow's file store: one folder per run, safe for many writers on a shared FS (SQLite
            # races creating its schema from two workers); MLflow 3 wants the opt-in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = Path(base, "mlruns").as_uri()
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or experiment
        found = self.client.get_experiment_by_name(name)
        if found is None:
            try:
                self.experiment_id = self.client.create_experiment(name)
            except Exception:  # another worker created it first
                self.experiment_id = self.client.get_experiment_by_name(name).experiment_id
        else:
            self.experiment_id = found.experiment_id
        self.runs: dict[str, str] = {}

    def start(self, trial_id: str, params: dict[str, str], tags: dict[str, str]) -> None:
        from mlflow.entities import Param

        run = self.client.create_run(self.experiment_id, run_name=trial_id, tags=tags)
        self.runs[trial_id] = run.info.run_id
        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(run.info.run_id, params=items[i:i + 100])

    def log(self, trial_id: str, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.client.log_batch(self.runs[trial_id], metrics=[Metric(k, v, ts, step) for k, v in metrics.items()])

    def finish(self, trial_id: str, summary: dict) -> None:
        from mlflow.entities import Metric, RunTag

        run_id = self.runs.pop(trial_id)
        ts = int(time.time() * 1000)
        numbers = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        texts = {k: str(v) for k, v in summary.items() if k not in numbers and v is not None}
        self.client.log_batch(run_id, metrics=[Metric(k, v, ts, 0) for k, v in numbers.items()],
                              tags=[RunTag(k, v[:5000]) for k, v in texts.items()])
        self.client.set_terminated(run_id, "FAILED" if summary.get("status") == TrialStatus.ERROR else "FINISHED")

    def close(self) -> None:
        for run_id in self.runs.values():
            self.client.set_terminated(run_id, "KILLED")
        self.runs.clear()


class _TensorBoard:
    name = "tensorboard"

    def __init__(self, base: str | None, experiment: str):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        if base is None:
            raise TrackingError(f"no local folder for tensorboard/: set {TRACKING_DIR_ENV}")
        self.root = os.path.join(base, "tensorboard")
        self.writer_cls = SummaryWriter
        self.writers: dict[str, Any] = {}

    def start(self, trial_id: str, params: dict[str, str], tags: dict[str, str]) -> None:
        writer = self.writer_cls(log_dir=os.path.join(self.root, trial_id))
        self.writers[trial_id] = writer
        text = "\n".join(f"    {k}: {v}" for k, v in {**tags, **params}.items())
        writer.add_text("config", text, 0)

    def log(self, trial_id: str, step: int, metrics: dict[str, float]) -> None:
        writer = self.writers[trial_id]
        for k, v in metrics.items():
            writer.add_scalar(k, v, step)

    def finish(self, trial_id: str, summary: dict) -> None:
        writer = self.writers.pop(trial_id)
        for k, v in summary.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                writer.add_scalar(f"summary/{k}", float(v), 0)
        writer.add_text("summary", "\n".join(f"    {k}: {v}" for k, v in summary.items()), 0)
        writer.close()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


class _WandB:
    name = "wandb"

    def __init__(self, base: str | None, experiment: str):
        import wandb

        self.wandb = wandb
        self.dir = os.environ.get("WANDB_DIR") or base
        if self.dir is None:
            raise TrackingError(f"no local folder for wandb/: set WANDB_DIR or {TRACKING_DIR_ENV}")
        os.makedirs(self.dir, exist_ok=True)
        self.project = os.environ.get("WANDB_PROJECT") or experiment
        self.group = experiment
        self.mode = os.environ.get("WANDB_MODE") or "offline"
        self.runs: dict[str, Any] = {}

    def start(self, trial_id: str, params: dict[str, str], tags: dict[str, str]) -> None:
        self.runs[trial_id] = self.wandb.init(
            project=self.project, group=self.group, name=trial_id, dir=self.dir, mode=self.mode,
            config={**params, **tags}, tags=[tags.get("model", ""), tags.get("protocol", "")],
            reinit="create_new", settings={"silent": True, "console": "off"},
        )

    def log(self, trial_id: str, step: int, metrics: dict[str, float]) -> None:
        self.runs[trial_id].log(metrics, step=step)

    def finish(self, trial_id: str, summary: dict) -> None:
        run = self.runs.pop(trial_id)
        try:
            run.summary.update({k: v for k, v in summary.items() if v is not None})
        finally:  # a summary it refused must not leave the run unfinished (its rows unwritten)
            run.finish(exit_code=1 if summary.get("status") == TrialStatus.ERROR else 0)

    def close(self) -> None:
        """Finish what is open, then wait for W&B's own process to write everything and exit
        (``wandb.teardown``): when the tracker is closed, each run's ``.wandb`` file is whole."""
        try:
            for run in self.runs.values():
                run.finish(exit_code=1)
        finally:
            self.runs.clear()
            self.wandb.teardown()


_BACKENDS = {"mlflow": _MLflow, "tensorboard": _TensorBoard, "wandb": _WandB}


# ----------------------------------------------------------------------------------------------
# the object the worker uses


class Tracking:
    """The open trackers of one process; every call is guarded (a failure warns once and
    switches that tracker off). With no trackers every method does nothing."""

    def __init__(self, backends: Sequence[Any] = (), experiment: str = "phantom"):
        self.backends = list(backends)
        self.experiment = experiment
        self._trials: dict[str, dict] = {}  # trial_id -> {"last": row metrics, "flip_step": int | None}

    def __bool__(self) -> bool:
        return bool(self.backends)

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.backends]

    def _each(self, what: str, method: str, *args) -> None:
        for backend in list(self.backends):
            try:
                getattr(backend, method)(*args)
            except Exception as exc:  # noqa: BLE001 - a tracker never fails a trial
                _warn(backend.name, what, exc)
                self.backends.remove(backend)

    def trial_started(self, cfg) -> None:
        trial_id = cfg.trial_id
        self._trials[trial_id] = {"phi": None, "flip_step": None, "last_step": None}
        if not self.backends:
            return
        tags = {"trial_id": trial_id, "sweep": self.experiment, "model": cfg.model,
                "sentence_id": cfg.sentence_id, "protocol": cfg.protocol}
        self._each("starting the run", "start", trial_id, flat_params(cfg), tags)

    def step(self, trial_id: str, step: int, row: dict) -> None:
        state = self._trials.setdefault(trial_id, {"phi": None, "flip_step": None, "last_step": None})
        if not row.get("context_id"):
            phi = row.get("phi")
            state["phi"], state["last_step"] = phi, step
            if state["flip_step"] is None and phi is not None and phi > 0:
                state["flip_step"] = step
        if self.backends:
            self._each(f"step {step}", "log", trial_id, step, metrics_of(row))

    def steps(self, trial_id: str, step: int, rows: Sequence[dict]) -> None:
        """One step of a trial: its rows, one per context (what the trial loop's callback gets)."""
        for i, row in enumerate(rows):
            self.step(trial_id, step, {**row, "context_id": i})

    def finished(self, result) -> None:
        """A trial's end, from its ``phantom.workers.trial.TrialResult``."""
        self.trial_finished(record_of(result))

    def trial_finished(self, record: dict) -> None:
        trial_id = record["trial_id"]
        state = self._trials.pop(trial_id, {})
        summary = {"final_phi": state.get("phi"), "flip_step": state.get("flip_step")}
        summary.update({k: v for k, v in record.items() if k != "trial_id"})
        summary = {k: v for k, v in summary.items() if not (isinstance(v, float) and math.isnan(v))}
        if self.backends:
            self._each("finishing the run", "finish", trial_id, summary)

    def close(self) -> None:
        self._each("closing", "close")
        self.backends = []


def prepare_tracking(names: Iterable[str], folder: str | None) -> None:
    """Create the trackers' experiment once, in the driver, before any worker opens it: workers
    that each find it missing and create it at the same moment would make two experiments of
    one name in MLflow's file store (runs split between them)."""
    open_tracking(names, folder).close()


def open_tracking(names: Iterable[str], folder: str | None, *, experiment: str | None = None) -> Tracking:
    """Open the named trackers for results in ``folder`` (a local path or a storage URI; the
    local stores go under it). A tracker that cannot open warns once and is left out."""
    names = check_names(names)
    if not names:
        return Tracking()
    folder = os.fspath(folder) if folder is not None else None
    base = os.environ.get(TRACKING_DIR_ENV) or (folder if folder and "://" not in folder else None)
    if base and base.startswith("file://"):
        base = base[len("file://"):]
    experiment = experiment or (os.path.basename(folder.rstrip("/")) if folder else "phantom") or "phantom"
    backends = []
    for name in names:
        try:
            backends.append(_BACKENDS[name](os.path.abspath(base) if base else None, experiment))
        except Exception as exc:  # noqa: BLE001 - not installed, no folder, server down: warn, go on
            _warn(name, "opening", exc)
    return Tracking(backends, experiment)
