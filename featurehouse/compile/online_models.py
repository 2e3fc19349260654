"""Latest-snapshot models: ``online_<view>.sql`` for every ``online: true`` feature view.

Each holds, per entity, the row the point-in-time rule picks when dbt runs, built by the
``featurehouse.latest_snapshot`` macro over the same ``fv_<view>`` model and with the same
tie-break as the training sets, so the online store (``featurehouse sync`` copies these
tables) serves exactly what ``get_historical_features`` returns for (entity, run time).
Columns: join keys, event_timestamp, created_timestamp (naive UTC), features, then the
bookkeeping columns snapshot_as_of, snapshot_built_at and snapshot_definition.

On DuckDB and Postgres they are dbt incremental models (``incremental_latest_snapshot``,
delete+insert on the join keys; docs/decisions/0006-incremental-online-snapshots.md);
on other warehouses, untested, tables rebuilt by every run.

Views with ``aggregations:`` get their ``online_<view>`` model from the aggregation
generator instead; sync treats every ``online_<view>`` model alike.
"""

from __future__ import annotations

from sqlglot import exp

from featurehouse.compile.header import model_header
from featurehouse.plan.jinja import jinja_call, jinja_literal, macro_call
from featurehouse.plan.joins import feature_view_model, online_model
from featurehouse.spec.model import FeatureView
from featurehouse.spec.repo import FeatureRepo


def online_views(repo: FeatureRepo) -> list[FeatureView]:
    """Feature views served online, by name."""
    return [repo.feature_views[name] for name in sorted(repo.feature_views) if repo.feature_views[name].online]


# Warehouses whose dbt adapters build delete+insert incremental models and are tested here.
INCREMENTAL_DIALECTS = ("duckdb", "postgres")


def latest_snapshot_sql(repo: FeatureRepo, view: FeatureView, dialect: str = "duckdb") -> str:
    """The ``ol_`` model of ``view``: each entity's latest row within ttl, the table sync copies."""
    call = macro_call(
        "featurehouse.incremental_latest_snapshot",
        {
            "relation": jinja_call("ref", feature_view_model(view.name)),
            "join_keys": repo.join_keys(view),
            "features": [{"name": f.name, "dtype": f.dtype} for f in view.features],
            "ttl_seconds": view.ttl,
            "filter_by_created": view.filter_by_created_timestamp,
        },
    )
    origin = repo.origin("feature_views", view.name)
    return (
        model_header(f"latest snapshot of feature view '{view.name}' for `featurehouse sync`", origin)
        + _config(repo, view, dialect)
        + "\n\n"
        + "{{ "
        + call
        + " }}\n"
    )


def _config(repo: FeatureRepo, view: FeatureView, dialect: str) -> str:
    if dialect not in INCREMENTAL_DIALECTS:
        return "{{ config(materialized='table') }}"
    lines = [
        "materialized='incremental'",
        "incremental_strategy='delete+insert'",
        # quoted: dbt's delete+insert writes the keys into SQL as they are given
        "unique_key="
        + jinja_literal([exp.to_identifier(key, quoted=True).sql(dialect=dialect) for key in repo.join_keys(view)]),
    ]
    if view.ttl:  # rows that aged out leave the table after each build
        # a hook is a template dbt renders at run time, so it is written as Jinja text on
        # purpose; its only value is the ttl, an int from the validated spec
        lines.append(f'post_hook="{{{{ featurehouse.expire_latest_snapshot(this, ttl_seconds={view.ttl}) }}}}"')
    return "{{ config(\n    " + ",\n    ".join(lines) + "\n) }}"


def generate(repo: FeatureRepo, dialect: str) -> dict[str, str]:
    """``online_<view>.sql`` for every online view without aggregations."""
    return {
        f"{online_model(view.name)}.sql": latest_snapshot_sql(repo, view, dialect)
        for view in online_views(repo)
        if not view.is_aggregation
    }
