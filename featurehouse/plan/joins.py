"""The point-in-time macro call, shared by training-set models, the SDK and online reads.

Kept free of sqlglot (and of everything the compiler needs to write SQL) because the SDK
builds a call on every ``get_historical_features`` and the feature server on start-up.
"""

from __future__ import annotations

from typing import Any

from featurehouse.plan.jinja import JinjaCode, jinja_call, jinja_literal, macro_call
from featurehouse.spec.model import FeatureView
from featurehouse.spec.outputs import JoinPlan
from featurehouse.spec.repo import WINNERS_SUFFIX, FeatureRepo

FEATURE_VIEW_PREFIX = "fv_"
ONLINE_PREFIX = "online_"


def feature_view_model(view_name: str) -> str:
    """The dbt model holding the history of ``view_name`` (what training sets join)."""
    return f"{FEATURE_VIEW_PREFIX}{view_name}"


def online_model(view_name: str) -> str:
    """The dbt model holding the latest snapshot of ``view_name`` (what sync copies)."""
    return f"{ONLINE_PREFIX}{view_name}"


def winners_model(view_name: str) -> str:
    """The table the DuckDB hook of ``view_name``'s model writes beside it (macros/event_time_winners.sql)."""
    return feature_view_model(view_name) + WINNERS_SUFFIX


def event_time_winners_call(repo: FeatureRepo, view: FeatureView, relation: JinjaCode) -> JinjaCode:
    """The hook's macro call for ``view`` over ``relation`` (``this`` in the model's config)."""
    features = [f.name for f in view.features]
    return jinja_call("featurehouse.event_time_winners", relation, repo.join_keys(view), features)


def macro_views_argument(repo: FeatureRepo, plan: JoinPlan, dialect: str) -> JinjaCode:
    """The ``views=[...]`` argument of ``featurehouse.point_in_time_join`` as Jinja text, for a
    warehouse of sqlglot dialect ``dialect`` (which decides whether views have winners tables)."""
    items = []
    for selection in plan.selections:
        view = selection.view
        dtypes = feature_dtypes(view)
        item: dict[str, Any] = {
            "name": view.name,
            "relation": jinja_call("ref", feature_view_model(view.name)),
            "join_keys": repo.join_keys(view),
            "features": [{"name": name, "dtype": dtypes[name]} for name in selection.features],
            # a full tie compares every schema feature, not only the requested ones, so a
            # value never depends on what else was asked for (docs/decisions/0001)
            "all_features": [{"name": f.name, "dtype": f.dtype} for f in view.features],
            "ttl_seconds": view.ttl,
            "filter_by_created": view.filter_by_created_timestamp,
            "prefix": plan.prefix(view),
        }
        if has_event_time_winners(view, dialect):
            item["event_time_winners"] = True
        if view.aggregations:
            item["aggregations"] = _macro_aggregations(view, selection.features)
        items.append(jinja_literal(item))
    return JinjaCode("[\n        " + ",\n        ".join(items) + "\n    ]")


def has_event_time_winners(view: FeatureView, dialect: str) -> bool:
    """Whether ``view``'s model writes its winners table (macros/event_time_winners.sql) on a
    warehouse of sqlglot dialect ``dialect``: on DuckDB, the one join that reads it.

    The join reads it for every view that takes the latest row; a created-time filter needs
    every row (a later-created row may not be visible yet), and window aggregations need every
    event, so those views have none (docs/decisions/0032-event-time-winners.md).
    """
    return dialect == "duckdb" and not view.aggregations and not view.filter_by_created_timestamp


def feature_dtypes(view: FeatureView) -> dict[str, str]:
    """Feature name → dtype for every feature of ``view``, aggregation outputs included."""
    dtypes = {f.name: f.dtype for f in view.features}
    if view.aggregations:
        from featurehouse.plan import aggregations

        dtypes.update({a.output_name: aggregations.output_dtype(a) for a in view.aggregations})
    return dtypes


def point_in_time_call(
    repo: FeatureRepo,
    plan: JoinPlan,
    spine: str,
    timestamp_column: str,
    spine_columns: list[str] | None = None,
    order_column: str | None = None,
    *,
    dialect: str,
) -> str:
    """The Jinja expression (without braces) that renders the point-in-time join.

    ``spine`` is Jinja code (``ref('labels')``, or a string literal naming a relation).
    """
    args: dict[str, Any] = {
        "spine": JinjaCode(spine),
        "views": macro_views_argument(repo, plan, dialect),
        "timestamp_column": timestamp_column,
    }
    if spine_columns is not None:
        args["spine_columns"] = spine_columns
    if order_column is not None:
        args["order_column"] = order_column
    return macro_call("featurehouse.point_in_time_join", args)


# A view's "piece": its point-in-time join alone, every feature, over a DataFrame spine whose
# names are fixed. Rendered by dbt (featurehouse compile, or the first call that starts dbt),
# pieces let a feature set never asked before run without starting dbt: one query per view,
# each returning one row per spine row in spine order (docs/decisions/0031-cold-training-calls.md).
PIECE_SPINE = "__fh_spine_relation__"
PIECE_TIMESTAMP = "__fh_spine_time"
PIECE_ROW = "__fh_row"


def piece_call(repo: FeatureRepo, view: FeatureView, dialect: str) -> str:
    """The macro call of ``view``'s piece (see PIECE_SPINE)."""
    from featurehouse.plan.jinja import jinja_string
    from featurehouse.spec.repo import ViewSelection

    plan = JoinPlan((ViewSelection(view, tuple(feature_dtypes(view))),), full_feature_names=False)
    return point_in_time_call(
        repo, plan, jinja_string(PIECE_SPINE), PIECE_TIMESTAMP, [PIECE_ROW], PIECE_ROW, dialect=dialect
    )


def _macro_aggregations(view: FeatureView, outputs: tuple[str, ...]) -> list[dict[str, Any]]:
    from featurehouse.plan import aggregations

    return aggregations.macro_aggregations(view, outputs)
