"""What the analysis reads of the geometry Parquet (its schema is the contract's:
:data:`phantom.schema.GEOMETRY_SCHEMA`), the precision label of a trial record, and the DuckDB
names of the project's Arrow types."""

from __future__ import annotations

import pyarrow as pa

from phantom.schema import GEOMETRY_SCHEMA

# the model's columns: every one before the sentence's (GeometryRow)
MODEL_COLUMNS = GEOMETRY_SCHEMA.names[: GEOMETRY_SCHEMA.names.index("sentence_id")]
SENTENCE_COLUMNS = ["model", "sentence_id", "target", "competitor", "n_contexts", "gmax",
                    "gmax_head", "born_rank0", "B0", "eps0", "phi0"]

# The precision label of a trial record (its columns train_precision, obs_precision, config,
# device; docs/design/precision.md, phantom.analysis.views.precision). Records written
# before 2026-12-07 have no precision columns: the config says what was asked, the device what
# it meant — `auto` was fp32 on a CPU; accelerate ignored fp16 on a CPU (fp32 ran); the
# observables were read from the training forward.
LABEL_SQL = """CASE
    WHEN train_precision IS NOT NULL THEN
        CASE WHEN obs_precision IS NULL OR obs_precision = train_precision THEN train_precision
             ELSE train_precision || '/' || obs_precision END
    WHEN device IS NULL THEN NULL
    ELSE CASE coalesce(json_extract_string(config, '$.training.precision'), 'auto')
        WHEN 'auto' THEN CASE WHEN device LIKE 'cuda%' THEN 'auto-cuda' ELSE 'fp32' END
        WHEN 'fp16' THEN CASE WHEN device LIKE 'cuda%' THEN 'fp16' ELSE 'fp32' END
        ELSE json_extract_string(config, '$.training.precision')
    END
END"""

MIXED_SEPARATOR = " + "


def labels_sql(column: str = "precision", where: str = "evaluations IS NOT NULL") -> str:
    """The aggregate that names a group's labels, e.g. ``'bf16/fp32 + fp32'`` (measured trials only)."""
    return f"string_agg(DISTINCT {column}, '{MIXED_SEPARATOR}' ORDER BY {column}) FILTER (WHERE {where})"


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
