"""Request-time features in ``get_historical_features``: request fields come from the spine.

The point-in-time join is the one ``dbt run`` runs (the macro); around it, one ``select``
computes the request features with the SQL of ``featurehouse.compile.request_sql``, the same
function the training-set models are written with. A plan that names no request view passes
through every function here unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featurehouse.errors import RequestError, did_you_mean
from featurehouse.spec.request_views import RequestJoinPlan

if TYPE_CHECKING:
    import pyarrow as pa


def field_names(plan: Any) -> list[str]:
    """The request fields the plan's request views read (none for a plain plan)."""
    return list(plan.fields()) if isinstance(plan, RequestJoinPlan) else []


def check_fields(plan: Any, columns: list[Any]) -> None:
    """Every request field is a column of the entity_df."""
    names = [str(c) for c in columns]
    if isinstance(plan, RequestJoinPlan):
        for view, feature in plan.hidden:
            column = plan.column(view, feature)
            if column in names:
                raise RequestError(
                    f"the request-time features read '{view}:{feature}', whose column '{column}' is also a column "
                    "of entity_df; rename that column or ask for full_feature_names=True"
                )
    for name, dtype in (plan.fields() if isinstance(plan, RequestJoinPlan) else {}).items():
        if name not in names:
            raise RequestError(
                f"entity_df has no column '{name}' ({dtype}), a request field of the requested request-time "
                f"features{did_you_mean(name, names)}"
            )


def with_fields(plan: Any, entity_df: Any, table: pa.Table) -> pa.Table:
    """``table`` (the join input) with the request fields of ``entity_df`` appended, typed by their dtypes.

    Timestamps become naive UTC (the warehouse's convention); a value that does not convert is
    one RequestError naming the column.
    """
    if not isinstance(plan, RequestJoinPlan):
        return table
    import pyarrow as pa
    import pyarrow.compute as pc

    from featurehouse.sdk.entity_df import pandas_to_arrow
    from featurehouse.spec.types import arrow_type

    for name, dtype in plan.fields().items():
        if name in table.column_names:
            continue
        if isinstance(entity_df, pa.Table):
            column = entity_df.column(name)
        else:
            column = pandas_to_arrow(entity_df[[name]]).column(0)
        target = arrow_type(dtype)
        try:
            if pa.types.is_timestamp(target):
                if pa.types.is_timestamp(column.type) and column.type.tz is not None:
                    column = column.cast(pa.timestamp("us", tz="UTC"))
                column = column.cast(pa.timestamp("us")) if not pa.types.is_null(column.type) else column
                column = pc.cast(column, pa.timestamp("us"))
            else:
                column = column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise RequestError(
                f"entity_df column '{name}' is the request field '{name}' ({dtype}), but its values "
                f"({column.type}) do not convert to {dtype} exactly"
            ) from None
        table = table.append_column(name, column)
    return table


def wrap(plan: Any, sql: str, dialect: str, columns: list[str], order_column: str | None) -> str:
    """The join ``sql`` with the request features computed around it (a plain plan: ``sql`` itself)."""
    if not isinstance(plan, RequestJoinPlan):
        return sql
    from featurehouse.compile.request_sql import wrap_join

    fields = set(plan.fields())
    # a DataFrame spine (numbered): its fields went in only to be read, and come back with the DataFrame
    passthrough = [c for c in columns if c == order_column or c not in fields] if order_column else list(columns)
    return wrap_join(plan, sql, dialect, passthrough, order_column)
