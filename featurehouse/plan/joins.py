"""The point-in-time macro call, shared by training-set models, the SDK and online reads.

Kept free of sqlglot (and of everything the compiler needs to write SQL) because the SDK
builds a call on every ``get_historical_features`` and the feature server on start-up.
"""

from __future__ import annotations

import json

from featurehouse.spec.repo import FeatureRepo
from featurehouse.spec.model import FeatureView
from featurehouse.plan.jinja import jinja_string
from featurehouse.spec.outputs import JoinPlan

FEATURE_VIEW_PREFIX = "fv_"
ONLINE_PREFIX = "online_"


def feature_view_model(view_name: str) -> str:
    return f"{FEATURE_VIEW_PREFIX}{view_name}"


def online_model(view_name: str) -> str:
    """The dbt model holding the latest snapshot of ``view_name`` (what sync copies)."""
    return f"{ONLINE_PREFIX}{view_name}"


def macro_views_argument(repo: FeatureRepo, plan: JoinPlan) -> str:
    """The ``views=[...]`` argument of ``featurehouse.point_in_time_join`` as Jinja text."""
    items = []
    for selection in plan.selections:
        view = selection.view
        dtypes = feature_dtypes(view)
        features = ", ".join(
            "{'name': %s, 'dtype': %s}" % (jinja_string(name), jinja_string(dtypes[name]))
            for name in selection.features
        )
        # a full tie compares every schema feature, not only the requested ones, so a
        # value never depends on what else was asked for (docs/decisions/0001)
        all_features = ", ".join(
            "{'name': %s, 'dtype': %s}" % (jinja_string(f.name), jinja_string(f.dtype)) for f in view.features
        )
        items.append(
            "{"
            f"'name': {jinja_string(view.name)}, "
            f"'relation': ref({jinja_string(feature_view_model(view.name))}), "
            f"'join_keys': {json.dumps(repo.join_keys(view))}, "
            f"'features': [{features}], "
            f"'all_features': [{all_features}], "
            f"'ttl_seconds': {view.ttl}, "
            f"'filter_by_created': {'true' if view.filter_by_created_timestamp else 'false'}, "
            f"'prefix': {jinja_string(plan.prefix(view))}"
            + (f", 'aggregations': {_macro_aggregations(view, selection.features)}"
               if view.aggregations else "")
            + "}"
        )
    return "[\n        " + ",\n        ".join(items) + "\n    ]"


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
) -> str:
    """The Jinja expression (without braces) that renders the point-in-time join."""
    args = [
        f"spine={spine}",
        f"views={macro_views_argument(repo, plan)}",
        f"timestamp_column={jinja_string(timestamp_column)}",
    ]
    if spine_columns is not None:
        args.append(f"spine_columns={json.dumps(spine_columns)}")
    if order_column is not None:
        args.append(f"order_column={jinja_string(order_column)}")
    return "featurehouse.point_in_time_join(\n    " + ",\n    ".join(args) + "\n)"


def _macro_aggregations(view: FeatureView, outputs: tuple[str, ...]) -> str:
    from featurehouse.plan import aggregations

    return aggregations.macro_aggregations(view, outputs)
