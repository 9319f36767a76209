"""Every file and folder name of a results folder, in one place.

A *results folder* is what ``phantom trial --out DIR`` writes and what a sweep writes under
``STORAGE/NAME`` (a *sweep folder* adds the plan, the sweep's own files and Ray's state)::

    steps/<trial_id>.parquet      one row per (step, context) — written first
    trials/<trial_id>.parquet     one row: the trial record — written last = the trial is complete
    parts/<part>.steps.parquet    compacted step rows of many trials (phantom.results) — first
    parts/<part>.trials.parquet   their records — written last = the part is committed
    geometry/<model>.parquet      inference-only geometry (phantom geometry)
    attempts/<trial_id>.json      every start of a trial: Ray node, host, pid, time
    skips/<trial_id>.json         a trial a worker refused (a word that is not one token)
    plan.json                     the trial ids the sweep consists of (its current plan)
    sweep.yaml, sentences.yaml    the resolved sweep file and a snapshot of its sentences
    skipped.parquet               (model, sentence) pairs left out, with the reason
    sweep.lock                    held by the one driver running this folder
    optuna.journal                the η_c search's Optuna studies (search.mode: eta-c)
    ray/                          Ray Tune's experiment state (ray/current.json names the run)
    analysis/                     phantom analyze: tables, phantom.duckdb, report.html
    mlruns/, tensorboard/, wandb/ local tracker stores (tracking: [...])

Files are written under a ``*.tmp`` name and renamed, so no reader ever sees half a file; a
steps file without its trial record is a killed trial's leftover, never a result.
"""

from __future__ import annotations

STEPS_DIR = "steps"
TRIALS_DIR = "trials"
GEOMETRY_DIR = "geometry"
PARTS_DIR = "parts"
ATTEMPTS_DIR = "attempts"
SKIPS_DIR = "skips"
ANALYSIS_DIR = "analysis"
RAY_DIR = "ray"

PLAN_FILE = "plan.json"
SWEEP_FILE = "sweep.yaml"
SENTENCES_FILE = "sentences.yaml"
SKIPPED_FILE = "skipped.parquet"
LOCK_FILE = "sweep.lock"
JOURNAL_FILE = "optuna.journal"
CURRENT_FILE = "current.json"  # inside RAY_DIR: the Tune experiment to restore
CLUSTER_FILE = "cluster.json"  # inside RAY_DIR: the Ray cluster the last driver attached to (for hints)

DATABASE_FILE = "phantom.duckdb"  # inside ANALYSIS_DIR
REPORT_FILE = "report.html"  # inside ANALYSIS_DIR

TRACKING_DIRS = {"mlflow": "mlruns", "tensorboard": "tensorboard", "wandb": "wandb"}

PARQUET = ".parquet"
PART_STEPS = ".steps.parquet"  # inside PARTS_DIR
PART_TRIALS = ".trials.parquet"  # inside PARTS_DIR
TMP_SUFFIX = ".tmp"


def steps_file(trial_id: str) -> tuple[str, str]:
    return (STEPS_DIR, f"{trial_id}{PARQUET}")


def trial_file(trial_id: str) -> tuple[str, str]:
    return (TRIALS_DIR, f"{trial_id}{PARQUET}")


def attempts_file(trial_id: str) -> tuple[str, str]:
    return (ATTEMPTS_DIR, f"{trial_id}.json")


def skip_file(trial_id: str) -> tuple[str, str]:
    return (SKIPS_DIR, f"{trial_id}.json")


def geometry_file(model: str) -> tuple[str, str]:
    return (GEOMETRY_DIR, f"{model.replace('/', '__')}{PARQUET}")


def trial_id_of(name: str) -> str:
    """The trial id of a ``<trial_id>.parquet`` / ``<trial_id>.json`` base name."""
    return name.rsplit(".", 1)[0]
