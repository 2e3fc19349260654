"""The entity_df of ``get_historical_features``: what it may be, its timestamp column, and
its join keys checked and converted to their entities' types the same way on every warehouse.

"Kinds" (integer, float, string, bytes, bool, timestamp, null) describe a column whatever
holds it: a pandas dtype, an Arrow type or a warehouse's SQL type name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featurehouse.errors import RequestError
from featurehouse.spec.model import EVENT_TIMESTAMP

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def spine_timestamp(columns: list[tuple[Any, str]]) -> str:
    """The column to join on: ``event_timestamp``, else the only column of kind timestamp."""
    names = [n for n, _ in columns]
    if EVENT_TIMESTAMP in names:
        return EVENT_TIMESTAMP
    timestamps = [n for n, kind in columns if kind == "timestamp"]
    if len(timestamps) == 1:
        return timestamps[0]
    if not timestamps:
        raise RequestError(
            f"entity_df needs a timestamp column, '{EVENT_TIMESTAMP}' or any single timestamp column; "
            f"it has {', '.join(map(str, names)) or 'no columns'}"
        )
    raise RequestError(
        f"entity_df has several timestamp columns ({', '.join(map(str, timestamps))}); name the one to join on "
        f"'{EVENT_TIMESTAMP}'"
    )


def spine_columns(entity_df: Any) -> tuple[list[Any], list[str]]:
    """The entity_df's column names and their kinds (see arrow_kind), without converting its data."""
    import pyarrow as pa

    if isinstance(entity_df, pa.Table):
        return entity_df.column_names, [arrow_kind(f.type) for f in entity_df.schema]
    check_entity_df_type(entity_df)
    import pandas as pd

    check_unique_columns(entity_df)
    kinds = []
    for name in entity_df.columns:
        series = entity_df[name]
        timestamp = pd.api.types.is_datetime64_any_dtype(series.dtype) or (
            series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in ("datetime", "date")
        )
        kinds.append("timestamp" if timestamp else str(series.dtype))
    return list(entity_df.columns), kinds


def check_unique_columns(frame: pd.DataFrame) -> None:
    """RequestError when two columns of ``frame`` have the same name."""
    duplicated = frame.columns[frame.columns.duplicated()]
    if len(duplicated):
        raise RequestError(f"entity_df has more than one column named '{duplicated[0]}'")


def check_entity_df_type(entity_df: Any) -> None:
    """Reject what is neither a DataFrame nor an Arrow table (SQL strings are handled apart)."""
    import pyarrow as pa

    if isinstance(entity_df, pa.Table):
        return
    import pandas as pd

    if not isinstance(entity_df, pd.DataFrame):
        raise RequestError(
            "entity_df must be a pandas DataFrame, a pyarrow Table or a SQL query string, "
            f"not {type(entity_df).__name__}"
        )


def as_arrow(entity_df: Any) -> pa.Table:
    """``entity_df`` (a pandas DataFrame or an Arrow table) as an Arrow table."""
    import pyarrow as pa

    check_entity_df_type(entity_df)
    if isinstance(entity_df, pa.Table):
        return entity_df
    check_unique_columns(entity_df)
    return pandas_to_arrow(entity_df)


def pandas_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as an Arrow table without its index; RequestError when a column does not convert."""
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
        # pyarrow says what and where in two parts: "Could not convert 'a' ...", "Conversion failed for column x ..."
        reason = "; ".join(str(part) for part in error.args) if error.args else type(error).__name__
        raise RequestError(f"entity_df cannot be converted to Arrow: {reason}") from None


# ---- join key and timestamp types ------------------------------------------------------------
_KEY_KINDS = {
    "int32": ("integer", "float"),
    "int64": ("integer", "float"),
    "float32": ("integer", "float"),
    "float64": ("integer", "float"),
    "string": ("string",),
    "bytes": ("bytes",),
    "bool": ("bool",),
    "timestamp": ("timestamp",),
}


def arrow_kind(arrow_type: pa.DataType) -> str:
    """integer, float, string, bytes, bool, timestamp (dates included), null, or the type's name."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        return arrow_kind(arrow_type.value_type)
    checks = [
        ("integer", pa.types.is_integer),
        ("float", pa.types.is_floating),
        ("float", pa.types.is_decimal),
        ("string", pa.types.is_string),
        ("string", pa.types.is_large_string),
        ("bytes", pa.types.is_binary),
        ("bytes", pa.types.is_large_binary),
        ("bool", pa.types.is_boolean),
        ("timestamp", pa.types.is_timestamp),
        ("timestamp", pa.types.is_date),
        ("null", pa.types.is_null),
    ]
    for kind, check in checks:
        if check(arrow_type):
            return kind
    return str(arrow_type)


def sql_kind(sql_type: str) -> str:
    """The kind (as arrow_kind) of a DuckDB or Postgres column type name; each engine's own
    names are its warehouse's ``column_kind`` (featurehouse/warehouse/)."""
    from featurehouse.warehouse.base import sql_kind as warehouse_sql_kind

    return warehouse_sql_kind(sql_type)


def check_timestamp_kind(name: Any, kind: str) -> None:
    """RequestError when the timestamp column ``name`` holds values of another kind than timestamps."""
    if kind not in ("timestamp", "null"):
        raise RequestError(
            f"entity_df column '{name}' holds {kind} values, not timestamps; convert it first "
            f"(pandas: pd.to_datetime(df['{name}'], utc=True); SQL: cast(... as timestamp))"
        )


def check_key_kind(key: str, kind: str, dtype: str, entity: str) -> None:
    """RequestError when join key column ``key`` holds values that are not ``dtype`` keys of ``entity``."""
    allowed = _KEY_KINDS.get(dtype)
    if allowed is not None and kind != "null" and kind not in allowed:
        raise RequestError(
            f"entity_df column '{key}' holds {kind} values, but entity '{entity}' has {dtype} join keys; "
            "convert the column to match"
        )


def key_column(key: str, column: pa.ChunkedArray, dtype: str, entity: str) -> pa.ChunkedArray:
    """``column`` as the entity's key type; values that do not convert exactly are an error."""
    import pyarrow as pa

    from featurehouse.spec.types import arrow_type

    check_key_kind(key, arrow_kind(column.type), dtype, entity)
    if dtype not in _KEY_KINDS or dtype == "timestamp":
        return column  # the warehouse compares timestamps by instant whatever their unit or zone
    target = arrow_type(dtype)
    if column.type == target:
        return column
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise RequestError(
            f"entity_df column '{key}' has values that are not {dtype} join keys of entity '{entity}': "
            f"{str(error).splitlines()[0]}"
        ) from None
