"""featurehouse dtypes and their Arrow types (the SDK's and the online stores' common ground)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


def arrow_type(dtype: str) -> pa.DataType:
    """The Arrow type of a featurehouse dtype; timestamps are UTC."""
    import pyarrow as pa

    if dtype.startswith("array<"):
        return pa.list_(arrow_type(dtype[len("array<") : -1]))
    return {
        "bool": pa.bool_(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "string": pa.string(),
        "bytes": pa.binary(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }[dtype]
