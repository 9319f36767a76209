"""The Parquet column contract that SQL users, the orchestrator and the analysis depend on.

Storage layout of a results folder (``phantom trial --out DIR`` or a sweep's ``STORAGE/NAME``)::

    DIR/steps/<trial_id>.parquet    one row per (step, context): STEP_SCHEMA
    DIR/trials/<trial_id>.parquet   one row: TRIAL_SCHEMA, written *last*
    DIR/geometry/<model>.parquet    bulk geometry + per-sentence base values (analysis)

A trial is complete exactly when its ``trials/<trial_id>.parquet`` exists: the steps file is
written (atomically) first, the trial record (atomically) after it. A steps file without a
trial record is the leftover of a killed trial and is never read as a result. Files are
written under a ``*.tmp`` name and renamed, so no reader ever sees half a file.
"""

from __future__ import annotations

import pyarrow as pa

STEPS_DIR = "steps"
TRIALS_DIR = "trials"
GEOMETRY_DIR = "geometry"
TMP_SUFFIX = ".tmp"

# Per-step observables (SPEC §3). Row ``step = 0`` is the base model; row ``step = t`` is the
# model after t optimizer steps. ``loss`` is the CE on g of that row's model; ``grad_norm`` and
# ``step_ms`` belong to the optimizer step that produced the row (NULL at step 0).
STEP_FIELDS: list[tuple[str, pa.DataType]] = [
    ("trial_id", pa.string()),
    ("step", pa.int32()),
    ("context_id", pa.int32()),
    ("model", pa.string()),
    ("protocol", pa.string()),
    ("sentence_id", pa.string()),
    ("lr", pa.float64()),
    ("seed", pa.int64()),
    ("loss", pa.float64()),
    ("grad_norm", pa.float64()),
    ("step_ms", pa.float64()),
    ("obs_ms", pa.float64()),
    ("p_g", pa.float64()),
    ("p_c", pa.float64()),
    ("z_g", pa.float64()),
    ("z_c", pa.float64()),
    ("logit_gap", pa.float64()),
    ("rank_g", pa.int64()),
    ("rank_c", pa.int64()),
    ("pool_size", pa.int32()),
    ("pool_mass", pa.float64()),
    ("pool_capped", pa.bool_()),
    ("born_g", pa.float64()),
    ("born_c", pa.float64()),
    ("phi", pa.float64()),
    ("signal", pa.float64()),
    ("drag", pa.float64()),
    ("born_rank", pa.int32()),
    ("phi_ablated", pa.float64()),
    ("purity", pa.float64()),
    ("pr", pa.float64()),
    ("ipr", pa.float64()),
    ("pr_classical", pa.float64()),
    ("xi", pa.float64()),
    ("xi_pair", pa.float64()),
    ("burial", pa.float64()),
    ("efficiency", pa.float64()),
    ("drive_pred", pa.float64()),
    ("h_norm", pa.float64()),
    ("h_dot_g", pa.float64()),
    ("h_dot_c", pa.float64()),
    ("gmax", pa.float64()),
    ("dG_max", pa.float64()),
    ("psi_g_rotation", pa.float64()),
]
STEP_SCHEMA = pa.schema(STEP_FIELDS)
STEP_COLUMNS = [name for name, _ in STEP_FIELDS]

# The observables proper (what workers.observables computes), in contract order.
OBSERVABLE_COLUMNS = STEP_COLUMNS[STEP_COLUMNS.index("p_g") :]

TRIAL_STATUSES = ("ok", "diverged", "error")

TRIAL_FIELDS: list[tuple[str, pa.DataType]] = [
    ("trial_id", pa.string()),
    ("model", pa.string()),
    ("protocol", pa.string()),
    ("sentence_id", pa.string()),
    ("target", pa.string()),
    ("competitor", pa.string()),
    ("context", pa.string()),  # the first context; all of them are in `config`
    ("n_contexts", pa.int32()),
    ("lr", pa.float64()),
    ("seed", pa.int64()),
    ("steps", pa.int32()),  # the budget
    ("steps_done", pa.int32()),  # optimizer steps actually taken
    ("status", pa.string()),  # ok | diverged | error
    ("error", pa.string()),
    ("stop_reason", pa.string()),  # NULL = ran the budget; e.g. 'phi-saturation' (not a failure)
    ("gmax", pa.float64()),  # G_gc from the input embedding at step 0
    ("gmax_head", pa.float64()),  # G_gc from the LM-head rows at step 0
    ("tied", pa.bool_()),
    ("trainable_params", pa.int64()),
    ("total_params", pa.int64()),
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")),
    ("wall_s", pa.float64()),
    ("host", pa.string()),
    ("node_id", pa.string()),  # the Ray node, when run by the orchestrator
    ("device", pa.string()),
    ("config", pa.string()),  # canonical JSON of the resolved TrialConfig
    ("versions", pa.string()),  # JSON: python, torch, transformers, peft, accelerate, phantom
]
TRIAL_SCHEMA = pa.schema(TRIAL_FIELDS)
TRIAL_COLUMNS = [name for name, _ in TRIAL_FIELDS]
