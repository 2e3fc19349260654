"""Window aggregations: output dtypes, empty windows and the window macros' arguments.

A feature view with ``aggregations:`` serves, for each entity and time t, aggregates of its
events with ``t - W < event_timestamp <= t``. Offline the ``window_aggregation`` macro
computes them per spine row inside ``point_in_time_join``; online the compiler emits
``online_<view>.sql``, which computes them for every entity as of the dbt run (see
docs/window-aggregations.md; featurehouse.compile.aggregation_models). load_repo checks them
(featurehouse.spec.aggregation_checks).
"""

from __future__ import annotations

from typing import Any

from featurehouse.spec.model import Aggregation, FeatureView

# count is a number of values; every other function is computed in double precision
_OUTPUT_DTYPES = {"count": "int64"}


def output_dtype(aggregation: Aggregation) -> str:
    """The dtype of an aggregation's output column."""
    return _OUTPUT_DTYPES.get(aggregation.function, "float64")


def empty_window_values(view: FeatureView) -> dict[str, int | None]:
    """What each aggregation gives over an empty window: count 0, everything else NULL.

    Online reads use it for an entity the snapshot does not hold (it never had an event),
    so that they agree with get_historical_features, which gives these values.
    """
    return {a.output_name: 0 if a.function == "count" else None for a in view.aggregations}


# ---- validation --------------------------------------------------------------------------------


# ---- the macro argument -------------------------------------------------------------------------
def macro_aggregations(view: FeatureView, outputs: tuple[str, ...] | list[str] | None = None) -> list[dict[str, Any]]:
    """The ``aggregations`` argument of the window macros, for ``outputs`` (all by default).

    Python values; featurehouse.plan.jinja.jinja_literal writes them into the macro call.
    """
    chosen = [a for a in view.aggregations if outputs is None or a.output_name in outputs]
    if outputs is not None:  # keep the order asked for
        chosen.sort(key=lambda a: list(outputs).index(a.output_name))
    return [
        {"name": a.output_name, "column": a.column, "function": a.function, "window_seconds": a.window} for a in chosen
    ]


# ---- online snapshot models ---------------------------------------------------------------------
