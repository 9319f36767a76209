"""The geometry Parquet (``DIR/geometry/<model>.parquet``) written by ``phantom geometry``.

One row per (model, sentence); the model-level bulk statistics repeat on every row, so one
file per model is self-contained. A model none of whose sentences could be evaluated still
gets one row, with ``sentence_id`` NULL.
"""

from __future__ import annotations

import pyarrow as pa

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
MODEL_COLUMNS = [n for n, _ in GEOMETRY_FIELDS[: GEOMETRY_FIELDS.index(("sentence_id", pa.string()))]]
SENTENCE_COLUMNS = ["model", "sentence_id", "target", "competitor", "n_contexts", "gmax",
                    "gmax_head", "born_rank0", "B0", "eps0", "phi0"]


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type name of an Arrow type used in the project's schemas."""
    if pa.types.is_string(t):
        return "VARCHAR"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_list(t):
        return duckdb_type(t.value_type) + "[]"
    raise TypeError(f"no DuckDB type for {t}")  # pragma: no cover


def empty_select(schema: pa.Schema) -> str:
    """``SELECT CAST(NULL AS T) AS c, ... LIMIT 0``: a typed, empty relation of ``schema``."""
    cols = ", ".join(f'CAST(NULL AS {duckdb_type(f.type)}) AS "{f.name}"' for f in schema)
    return f"SELECT {cols} LIMIT 0"
