"""What the analysis reads of the geometry Parquet (its schema is the contract's:
:data:`phantom.schema.GEOMETRY_SCHEMA`), and the DuckDB names of the project's Arrow types."""

from __future__ import annotations

import pyarrow as pa

from phantom.schema import GEOMETRY_SCHEMA

# the model's columns: every one before the sentence's (GeometryRow)
MODEL_COLUMNS = GEOMETRY_SCHEMA.names[: GEOMETRY_SCHEMA.names.index("sentence_id")]
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
