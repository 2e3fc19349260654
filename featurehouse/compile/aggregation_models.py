"""``online_<view>.sql`` of aggregation views: the aggregates of every entity as of the
dbt run (README, "Window aggregations")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurehouse.compile.header import model_header
from featurehouse.plan.aggregations import macro_aggregations
from featurehouse.plan.jinja import jinja_call, macro_call
from featurehouse.plan.joins import feature_view_model, online_model
from featurehouse.spec.aggregation_checks import validate

if TYPE_CHECKING:
    from featurehouse.spec.model import FeatureView
    from featurehouse.spec.repo import FeatureRepo


def online_model_sql(repo: FeatureRepo, view: FeatureView) -> str:
    """``online_<view>.sql``: one row per entity with the aggregates as of the dbt run."""
    origin = repo.origin("feature_views", view.name)
    call = macro_call(
        "featurehouse.window_aggregation_snapshot",
        {
            "relation": jinja_call("ref", feature_view_model(view.name)),
            "join_keys": repo.join_keys(view),
            "aggregations": macro_aggregations(view),
        },
    )
    return (
        model_header(f"online snapshot of aggregation view '{view.name}'", origin)
        + "{{ config(materialized='table') }}\n\n"
        + "{{ "
        + call
        + " }}\n"
    )


def generate(repo: FeatureRepo, dialect: str) -> dict[str, str]:
    """One of compile_repo's generators: validate aggregation views and emit their online models."""
    validate(repo)
    return {
        f"{online_model(name)}.sql": online_model_sql(repo, view)
        for name, view in sorted(repo.feature_views.items())
        if view.aggregations and view.online
    }
