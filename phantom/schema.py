"""The Parquet column contract that SQL users, the orchestrator and the analysis depend on.

``steps/<trial_id>.parquet`` holds STEP_SCHEMA (one row per step and context);
``trials/<trial_id>.parquet`` holds one :class:`TrialRecord` (TRIAL_SCHEMA is generated from
the dataclass, so the record the worker writes, the schema and the test fixtures cannot drift
apart); ``geometry/<model>.parquet`` holds GEOMETRY_SCHEMA. Where the files live:
:mod:`phantom.layout`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from phantom.outcomes import TrialStatus

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

# The observables proper (what phantom.workers.observables computes), in contract order.
OBSERVABLE_COLUMNS = STEP_COLUMNS[STEP_COLUMNS.index("p_g") :]


def _col(arrow: pa.DataType, doc: str, default: Any = None) -> Any:
    return field(default=default, metadata={"arrow": arrow, "doc": doc})


@dataclass
class TrialRecord:
    """One row of ``trials/<trial_id>.parquet``: the trial's identity, outcome and provenance.

    Written *last*, after the steps file: its existence means the trial is complete."""

    trial_id: str = _col(pa.string(), "first 16 hex of the SHA-256 of the resolved config")
    bracket_id: str = _col(pa.string(), "the same hash with lr and stopper left out: trials of one η_c bracket share it")
    model: str = _col(pa.string(), "registered name, hub id or local directory")
    protocol: str = _col(pa.string(), "full | lora | lora-frozen-head | prefix")
    sentence_id: str = _col(pa.string(), "sentence id of the sentences file")
    target: str = _col(pa.string(), "g")
    competitor: str = _col(pa.string(), "c")
    context: str = _col(pa.string(), "the first context; all of them are in `config`")
    n_contexts: int = _col(pa.int32(), "contexts trained together as one batch", 1)
    context_index: int | None = _col(pa.int32(), "which context of the sentence, when each runs as its own trial; NULL: all together")
    lr: float = _col(pa.float64(), "learning rate (constant)", 0.0)
    seed: int = _col(pa.int64(), "torch seed (LoRA/prefix init; full FT without dropout does not depend on it)", 0)
    steps: int = _col(pa.int32(), "the budget of optimizer steps", 0)
    steps_done: int = _col(pa.int32(), "optimizer steps actually taken", 0)
    status: str = _col(pa.string(), "ok | diverged | error (phantom.outcomes.TrialStatus)", TrialStatus.OK.value)
    error: str | None = _col(pa.string(), "one-line message of an error or divergence")
    stop_reason: str | None = _col(pa.string(), "NULL = ran the budget; phi-saturation | flip (not failures)")
    gmax: float | None = _col(pa.float64(), "G_gc from the input embedding at step 0")
    gmax_head: float | None = _col(pa.float64(), "G_gc from the LM-head rows at step 0")
    tied: bool | None = _col(pa.bool_(), "the LM head is the input embedding")
    trainable_params: int | None = _col(pa.int64(), "parameters that train")
    total_params: int | None = _col(pa.int64(), "all parameters (shared tensors once)")
    pack_size: int = _col(pa.int32(), "trials trained together in one vectorised pack (1 = alone)", 1)
    started_at: datetime | None = _col(pa.timestamp("us", tz="UTC"), "UTC")
    finished_at: datetime | None = _col(pa.timestamp("us", tz="UTC"), "UTC")
    wall_s: float | None = _col(pa.float64(), "seconds from start to the record")
    host: str | None = _col(pa.string(), "hostname of the worker")
    node_id: str | None = _col(pa.string(), "the Ray node, when run by the orchestrator")
    device: str | None = _col(pa.string(), "torch device")
    config: str | None = _col(pa.string(), "canonical JSON of the resolved TrialConfig")
    versions: str | None = _col(pa.string(), "JSON: python, torch, transformers, peft, accelerate, phantom, lock")

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["status"] = str(TrialStatus(row["status"]))
        return row

    def table(self) -> pa.Table:
        return pa.Table.from_pylist([self.to_row()], schema=TRIAL_SCHEMA)


TRIAL_SCHEMA = pa.schema([(f.name, f.metadata["arrow"]) for f in dataclasses.fields(TrialRecord)])
TRIAL_COLUMNS = TRIAL_SCHEMA.names


# ----------------------------------------------------------------------------------------------
# the geometry Parquet (``DIR/geometry/<model>.parquet``), written by ``phantom geometry``
# (phantom.workers.geometry) and read by the analysis: one row per (model, sentence); the model-level
# bulk statistics repeat on every row, so one file per model is self-contained. A model none of
# whose sentences could be evaluated still gets one row, with ``sentence_id`` NULL.

GEOMETRY_FIELDS: list[tuple[str, pa.DataType]] = [
    ("model", pa.string()),
    ("family", pa.string()),
    ("tied", pa.bool_()),
    ("vocab_size", pa.int64()),
    ("dim", pa.int64()),
    ("n_pairs", pa.int64()),
    ("tau", pa.float64()),
    ("seed", pa.int64()),
    ("mean_g2", pa.float64()),  # bulk density: mean G² over the sampled pairs
    ("frac_above_tau", pa.float64()),  # fraction of pairs with G > τ
    ("ks_norm", pa.float64()),  # KS distance of the G² sample to a fitted normal
    ("ks_exp", pa.float64()),  # ... and to a fitted exponential (origin 0)
    ("class", pa.string()),  # 'A' (normal fits better) or 'B'
    ("class_index", pa.float64()),  # ks_exp − ks_norm: > 0 leans A
    ("hist_edges", pa.list_(pa.float64())),  # histogram of the G² sample (Figure 6)
    ("hist_counts", pa.list_(pa.int64())),
    ("sentence_id", pa.string()),
    ("target", pa.string()),
    ("competitor", pa.string()),
    ("n_contexts", pa.int32()),
    ("gmax", pa.float64()),  # G_gc from the input embedding
    ("gmax_head", pa.float64()),  # G_gc from the LM-head rows
    ("born_rank0", pa.float64()),  # base-model Born rank of g (mean over contexts)
    ("B0", pa.float64()),
    ("eps0", pa.float64()),
    ("phi0", pa.float64()),
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("versions", pa.string()),
]
GEOMETRY_SCHEMA = pa.schema(GEOMETRY_FIELDS)
