"""featurehouse dtypes as sqlglot types: the casts every generated model and expression writes."""

from __future__ import annotations

from sqlglot import exp

SCALAR_TYPES = {
    "bool": exp.DataType.Type.BOOLEAN,
    "int32": exp.DataType.Type.INT,
    "int64": exp.DataType.Type.BIGINT,
    "float32": exp.DataType.Type.FLOAT,
    "float64": exp.DataType.Type.DOUBLE,
    "string": exp.DataType.Type.TEXT,
    "bytes": exp.DataType.Type.VARBINARY,
    "timestamp": exp.DataType.Type.TIMESTAMP,
}


def sql_type(dtype: str) -> exp.DataType:
    """The sqlglot type of a featurehouse dtype (``array<float32>`` → ``FLOAT[]``)."""
    if dtype.startswith("array<"):
        inner = sql_type(dtype[len("array<") : -1])
        return exp.DataType(this=exp.DataType.Type.ARRAY, expressions=[inner], nested=True)
    return exp.DataType(this=SCALAR_TYPES[dtype])
