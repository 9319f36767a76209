"""The Parquet column contract that SQL users, the orchestrator and the analysis depend on.

One typed row per table, and each table's schema generated from its row (:func:`schema_of`), so
the rows the code fills, the schemas and the docs cannot drift apart:

- ``steps/<trial_id>.parquet``: :class:`StepRow` (:class:`StepMeta`, then :class:`Observables`),
  one per step and context — STEP_SCHEMA;
- ``trials/<trial_id>.parquet``: one :class:`TrialRecord` — TRIAL_SCHEMA;
- ``geometry/<model>.parquet``: :class:`GeometryRow` — GEOMETRY_SCHEMA;
- ``skipped.parquet``: :class:`SkippedRow` — SKIPPED_SCHEMA.

Where the files live: :mod:`phantom.layout`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import pyarrow as pa

from phantom.outcomes import TrialStatus

T = TypeVar("T")


def _col(arrow: pa.DataType, doc: str, default: Any = None, *, name: str | None = None) -> Any:
    """A column of a row type: its Arrow type, what it means, and its name in Parquet when that
    is not the field's (``class``, a Python keyword)."""
    meta = {"arrow": arrow, "doc": doc} | ({"name": name} if name else {})
    return field(default=default, metadata=meta)


def column_name(f: dataclasses.Field) -> str:
    return f.metadata.get("name", f.name)


def schema_of(row: type) -> pa.Schema:
    """The Arrow schema of a row type: its fields in order, each with the Arrow type its
    metadata names. Every Parquet table Phantom writes has its schema from here."""
    return pa.schema([pa.field(column_name(f), f.metadata["arrow"]) for f in dataclasses.fields(row)])


def row_of(row: Any) -> dict[str, Any]:
    """A row object as the dict of its columns, named as in Parquet."""
    return {column_name(f): getattr(row, f.name) for f in dataclasses.fields(row)}


def row_from(row_type: type[T], columns: dict[str, Any]) -> T:
    """A row of ``row_type`` from values named as its Parquet columns (a name it does not have
    is a TypeError: the row type is the contract)."""
    names = {column_name(f): f.name for f in dataclasses.fields(row_type)}
    return row_type(**{names.get(k, k): v for k, v in columns.items()})


def project(schema: pa.Schema, columns) -> pa.Schema:
    """``schema``'s fields named in ``columns`` (those it has), in the order of ``columns``."""
    return pa.schema([schema.field(c) for c in columns if c in schema.names])


# The precision columns of the step rows and the trial record (docs/design/precision.md)
PRECISION_DOCS = {
    "train_precision": "arithmetic of the forward and backward of every step so far: fp32, bf16 or fp16 "
                       "(autocast), fp64 (a float64 model); `auto` resolved on the device. NULL: written "
                       "before 2026-12-07 (the views infer it from the config and device)",
    "obs_precision": "arithmetic of the forward the loss and the observables are read from: fp32 (fp64 for "
                     "a float64 model) whatever train_precision is. NULL: written before 2026-12-07, "
                     "when they were read from the training forward, in train_precision",
}


# ----------------------------------------------------------------------------------------------
# steps/<trial_id>.parquet: one row per step and context (science §3). Row ``step = 0`` is the
# base model; row ``step = t`` is the model after t optimizer steps.


@dataclass
class StepMeta:
    """What a step row is about, its loss, and what its step cost."""

    trial_id: str | None = _col(pa.string(), "the trial (first 16 hex of the SHA-256 of its config)")
    step: int | None = _col(pa.int32(), "optimizer steps taken by this row's model (0: the base model)")
    context_id: int | None = _col(pa.int32(), "which of the trial's contexts (all train together)")
    model: str | None = _col(pa.string(), "as in the trial record")
    protocol: str | None = _col(pa.string(), "as in the trial record")
    sentence_id: str | None = _col(pa.string(), "as in the trial record")
    lr: float | None = _col(pa.float64(), "learning rate (constant)")
    seed: int | None = _col(pa.int64(), "torch seed")
    loss: float | None = _col(pa.float64(), "cross-entropy on g of this row's model at this context")
    grad_norm: float | None = _col(pa.float64(), "gradient norm of the step that produced the row (NULL at step 0)")
    step_ms: float | None = _col(pa.float64(), "wall ms of that step: forward, backward, update (NULL at step 0)")
    obs_ms: float | None = _col(pa.float64(), "wall ms of this row's observables")
    train_precision: str | None = _col(pa.string(), PRECISION_DOCS["train_precision"])
    obs_precision: str | None = _col(pa.string(), PRECISION_DOCS["obs_precision"])


@dataclass
class Observables:
    """What one context measures at one step (science §3): :func:`phantom.workers.observables.observe`
    returns one. ``P`` is the nucleus pool, ``p̃`` its renormalised probabilities."""

    p_g: float | None = _col(pa.float64(), "softmax probability of g (full vocabulary)")
    p_c: float | None = _col(pa.float64(), "softmax probability of c")
    z_g: float | None = _col(pa.float64(), "logit of g")
    z_c: float | None = _col(pa.float64(), "logit of c")
    logit_gap: float | None = _col(pa.float64(), "Δ = z_g − z_c (Eq. 8)")
    rank_g: int | None = _col(pa.int64(), "softmax rank of g over the vocabulary (1 = top)")
    rank_c: int | None = _col(pa.int64(), "softmax rank of c")
    pool_size: int | None = _col(pa.int32(), "|P|: tokens in the nucleus pool (g and c always in)")
    pool_mass: float | None = _col(pa.float64(), "Σ_{j∈P} p_j")
    pool_capped: bool | None = _col(pa.bool_(), "the pool hit its cap K_max before reaching mass q")
    born_g: float | None = _col(pa.float64(), "Born score b_g = Σ_j p̃_j G_gj² (Eq. 2–3)")
    born_c: float | None = _col(pa.float64(), "Born score b_c")
    phi: float | None = _col(pa.float64(), "Born gap Φ = b_g − b_c, the order parameter (Eq. 4, 18); > 0: resolved")
    signal: float | None = _col(pa.float64(), "S = (p̃_g − p̃_c)(1 − G_gc²) (Eq. 6)")
    drag: float | None = _col(pa.float64(), "D = Σ_{k∉{g,c}} p̃_k (G_kg² − G_kc²) (Eq. 6); Φ = S + D")
    born_rank: int | None = _col(pa.int32(), "rank of g among the pool by Born score (1 = top)")
    phi_ablated: float | None = _col(pa.float64(), "Φ with p̃_c set to 0 and the pool renormalised (Table 5)")
    purity: float | None = _col(pa.float64(), "γ = Tr ρ² (Eq. 15)")
    pr: float | None = _col(pa.float64(), "participation ratio 1/γ")
    ipr: float | None = _col(pa.float64(), "classical inverse participation Σ p̃_i²")
    pr_classical: float | None = _col(pa.float64(), "classical participation ratio 1/IPR")
    xi: float | None = _col(pa.float64(), "localisation length ξ about the cloud's mean direction, radians (Eq. 16)")
    xi_pair: float | None = _col(pa.float64(), "pairwise localisation length, radians")
    burial: float | None = _col(pa.float64(), "burial depth B = ξ / arccos(G_gc) (Eq. 19)")
    efficiency: float | None = _col(pa.float64(), "geometric efficiency ε = G_gc² / Σ_{k∈P∖{g}} G_kg² (Eq. 20)")
    drive_pred: float | None = _col(pa.float64(), "kinetic drive (1 − G_gc)(1 − p_g + p_c) − D_lin (Eq. 10)")
    h_norm: float | None = _col(pa.float64(), "‖h‖ of the hidden state the LM head reads")
    h_dot_g: float | None = _col(pa.float64(), "ψ_g · h")
    h_dot_c: float | None = _col(pa.float64(), "ψ_c · h")
    gmax: float | None = _col(pa.float64(), "G_max = G_gc = ψ_g · ψ_c from the input embedding")
    dG_max: float | None = _col(pa.float64(), "largest change of any G_ij over P₀ ∪ {g, c} since step 0 (0 exactly when E is frozen)")
    psi_g_rotation: float | None = _col(pa.float64(), "angle ψ_g turned since step 0, radians")


@dataclass
class StepRow(Observables, StepMeta):
    """One row of ``steps/<trial_id>.parquet``: :class:`StepMeta`'s columns, then
    :class:`Observables`' (a dataclass collects its bases' fields last base first)."""

STEP_SCHEMA = schema_of(StepRow)
STEP_COLUMNS = STEP_SCHEMA.names
STEP_FIELDS: list[tuple[str, pa.DataType]] = [(f.name, f.type) for f in STEP_SCHEMA]
OBSERVABLE_COLUMNS = [f.name for f in dataclasses.fields(Observables)]  # the observables proper


def steps_table(rows: list[StepRow]) -> pa.Table:
    return pa.Table.from_pylist([row_of(r) for r in rows], schema=STEP_SCHEMA)


# ----------------------------------------------------------------------------------------------
# trials/<trial_id>.parquet: one row, written last


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
    train_precision: str | None = _col(pa.string(), PRECISION_DOCS["train_precision"])
    obs_precision: str | None = _col(pa.string(), PRECISION_DOCS["obs_precision"])
    config: str | None = _col(pa.string(), "canonical JSON of the resolved TrialConfig")
    versions: str | None = _col(pa.string(), "JSON: python, torch, transformers, peft, accelerate, phantom, lock")

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["status"] = str(TrialStatus(row["status"]))
        return row

    def table(self) -> pa.Table:
        return pa.Table.from_pylist([self.to_row()], schema=TRIAL_SCHEMA)


TRIAL_SCHEMA = schema_of(TrialRecord)
TRIAL_COLUMNS = TRIAL_SCHEMA.names


# ----------------------------------------------------------------------------------------------
# the geometry Parquet (``DIR/geometry/<model>.parquet``), written by ``phantom geometry``
# (phantom.workers.geometry) and read by the analysis: one row per (model, sentence); the model-level
# bulk statistics repeat on every row, so one file per model is self-contained. A model none of
# whose sentences could be evaluated still gets one row, with ``sentence_id`` NULL.

@dataclass
class GeometryRow:
    """One row of ``geometry/<model>.parquet``: the model's bulk statistics, then one sentence's
    base values (science §5.8)."""

    model: str | None = _col(pa.string(), "registered name, hub id or local directory")
    family: str | None = _col(pa.string(), "the model's architecture family")
    tied: bool | None = _col(pa.bool_(), "the LM head is the input embedding")
    vocab_size: int | None = _col(pa.int64(), "rows of the input embedding")
    dim: int | None = _col(pa.int64(), "its width d")
    n_pairs: int | None = _col(pa.int64(), "random distinct token pairs sampled (seeded)")
    tau: float | None = _col(pa.float64(), "τ of frac_above_tau")
    seed: int | None = _col(pa.int64(), "seed of the pair sample")
    mean_g2: float | None = _col(pa.float64(), "bulk density: mean G² over the sampled pairs")
    frac_above_tau: float | None = _col(pa.float64(), "fraction of pairs with G > τ")
    ks_norm: float | None = _col(pa.float64(), "KS distance of the G² sample to a fitted normal")
    ks_exp: float | None = _col(pa.float64(), "... and to a fitted exponential (origin 0)")
    class_: str | None = _col(pa.string(), "'A' (the normal fits better) or 'B'", name="class")
    class_index: float | None = _col(pa.float64(), "ks_exp − ks_norm: > 0 leans A")
    hist_edges: list | None = _col(pa.list_(pa.float64()), "histogram of the G² sample: bin edges (Figure 6)")
    hist_counts: list | None = _col(pa.list_(pa.int64()), "... and counts")
    sentence_id: str | None = _col(pa.string(), "NULL: no sentence of the model could be evaluated")
    target: str | None = _col(pa.string(), "g")
    competitor: str | None = _col(pa.string(), "c")
    n_contexts: int | None = _col(pa.int32(), "contexts averaged over")
    gmax: float | None = _col(pa.float64(), "G_gc from the input embedding")
    gmax_head: float | None = _col(pa.float64(), "G_gc from the LM-head rows")
    born_rank0: float | None = _col(pa.float64(), "base-model Born rank of g (mean over contexts)")
    B0: float | None = _col(pa.float64(), "base-model burial depth (mean over contexts)")
    eps0: float | None = _col(pa.float64(), "base-model geometric efficiency (mean over contexts)")
    phi0: float | None = _col(pa.float64(), "base-model Born gap (mean over contexts)")
    created_at: datetime | None = _col(pa.timestamp("us", tz="UTC"), "UTC")
    versions: str | None = _col(pa.string(), "JSON: phantom")



GEOMETRY_SCHEMA = schema_of(GeometryRow)
GEOMETRY_FIELDS: list[tuple[str, pa.DataType]] = [(f.name, f.type) for f in GEOMETRY_SCHEMA]


def geometry_table(rows: list[GeometryRow]) -> pa.Table:
    return pa.Table.from_pylist([row_of(r) for r in rows], schema=GEOMETRY_SCHEMA)


# ----------------------------------------------------------------------------------------------
# skipped.parquet: the (model, sentence) pairs a sweep leaves out, and why


@dataclass
class SkippedRow:
    """One row of ``skipped.parquet``: a pair left out (a word that is not one token, ...)."""

    model: str | None = _col(pa.string(), "the model")
    sentence_id: str | None = _col(pa.string(), "the sentence")
    reason: str | None = _col(pa.string(), "why, in one line")


SKIPPED_SCHEMA = schema_of(SkippedRow)


def skipped_table(rows: list[SkippedRow]) -> pa.Table:
    return pa.Table.from_pylist([row_of(r) for r in rows], schema=SKIPPED_SCHEMA)
