"""The Python SDK: ``FeatureStore``, with Feast's method names so users can switch.

Training data is computed in the warehouse by the same ``point_in_time_join`` macro that
``dbt run`` uses for training-set models: there is one implementation of the join.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurehouse.errors import RequestError, did_you_mean
from featurehouse.specs import EVENT_TIMESTAMP

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from featurehouse.dbt_profile import DbtTarget
    from featurehouse.repo import FeatureRepo
    from featurehouse.warehouse import Warehouse

ROW_NUMBER_COLUMN = "__fh_row"


class FeatureStore:
    """A feature repo: its specs, its dbt target and its online store.

    ``target`` picks a dbt target other than the profile's default; ``profiles_dir`` a
    profiles.yml folder other than dbt's search path.
    """

    def __init__(
        self,
        repo_path: str | os.PathLike[str] = ".",
        target: str | None = None,
        profiles_dir: str | os.PathLike[str] | None = None,
    ):
        from featurehouse.repo import load_repo

        self.repo: FeatureRepo = load_repo(repo_path)
        self.repo_path: Path = self.repo.root
        self._target_name = target
        self._profiles_dir = profiles_dir
        self._online = None

    @cached_property
    def target(self) -> "DbtTarget":
        from featurehouse.dbt_profile import load_target

        return load_target(self.repo_path, self._target_name, self._profiles_dir)

    def _warehouse(self) -> "Warehouse":
        from featurehouse.warehouse import connect

        return connect(self.target, self.repo_path)

    # ---- offline ------------------------------------------------------------------------
    def get_historical_features(
        self,
        entity_df: "pd.DataFrame | pa.Table | str",
        features: list[str] | str,
        full_feature_names: bool = False,
    ) -> "RetrievalJob":
        """Point-in-time correct features for every row of ``entity_df``.

        ``entity_df`` is a DataFrame, an Arrow table or a SQL query run in the warehouse;
        its timestamp column is ``event_timestamp`` or its only timestamp column (naive
        timestamps are UTC). Every row comes back once, in order, with all its columns.
        """
        from featurehouse.join_plan import JoinPlan, check_output_names

        plan = JoinPlan(tuple(self.repo.resolve_features(features)), full_feature_names)
        check_output_names(plan)
        return RetrievalJob(self, plan, entity_df)

    # ---- online -------------------------------------------------------------------------
    def get_online_features(
        self,
        features: list[str] | str,
        entity_rows: list[dict[str, Any]],
        full_feature_names: bool = False,
    ) -> Any:
        """The latest synced value of each feature for each entity row (see featurehouse.online)."""
        from featurehouse.online import get_online_features

        return get_online_features(self, features, entity_rows, full_feature_names)


@dataclass
class RetrievalJob:
    """A pending training-set query; ``to_arrow()`` or ``to_df()`` runs it."""

    store: FeatureStore
    plan: Any
    entity_df: Any

    def to_arrow(self) -> "pa.Table":
        if isinstance(self.entity_df, str):
            return self._run_sql_spine(self.entity_df)
        return self._run_table_spine(_as_arrow(self.entity_df))

    def to_df(self) -> "pd.DataFrame":
        """The result as pandas; integer and boolean features are nullable (Int64, boolean)."""
        import pandas as pd

        nullable = {"int32": pd.Int32Dtype(), "int64": pd.Int64Dtype(), "bool": pd.BooleanDtype()}
        table = self.to_arrow()
        frame = table.to_pandas()
        for name in self.plan.output_names():
            column = table.column(name)
            dtype = nullable.get(str(column.type))
            if dtype is not None:
                frame[name] = column.to_pandas(types_mapper={column.type: dtype}.get)
        return frame

    # --------------------------------------------------------------------------------------
    def _run_table_spine(self, spine: "pa.Table") -> "pa.Table":
        import pyarrow as pa

        columns = spine.column_names
        if ROW_NUMBER_COLUMN in columns:
            raise RequestError(f"entity_df may not have a column named '{ROW_NUMBER_COLUMN}'")
        timestamp = _spine_timestamp(
            [(f.name, "timestamp" if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type) else str(f.type))
             for f in spine.schema]
        )
        self._check_join_keys(columns)
        self._check_clashes(columns)
        # numpy's arange, not range(): building 1M Python ints costs ~0.3 s
        import numpy as np

        numbered = spine.append_column(ROW_NUMBER_COLUMN, pa.array(np.arange(spine.num_rows, dtype=np.int64)))
        from featurehouse.warehouse import SPINE_PLACEHOLDER

        sql = self._render(SPINE_PLACEHOLDER, timestamp, columns, ROW_NUMBER_COLUMN)
        warehouse = self.store._warehouse()
        try:
            with warehouse.spine(numbered):
                result = warehouse.arrow(sql)
        finally:
            warehouse.close()
        return _restore_spine_types(result, spine.schema, self.plan, self.store.repo)

    def _run_sql_spine(self, query: str) -> "pa.Table":
        warehouse = self.store._warehouse()
        try:
            described = warehouse.columns(f"({query})")
            names = [name for name, _ in described]
            timestamp = _spine_timestamp(
                [(n, "timestamp" if "timestamp" in t.lower() or t.lower() == "date" else t) for n, t in described]
            )
            self._check_join_keys(names)
            self._check_clashes(names)
            sql = self._render(f"({query}) as __fh_entity_sql", timestamp, names, None)
            result = warehouse.arrow(sql)
        finally:
            warehouse.close()
        return _restore_spine_types(result, None, self.plan, self.store.repo)

    def _render(self, spine: str, timestamp: str, columns: list[str], order_column: str | None) -> str:
        from featurehouse.join_plan import point_in_time_call
        from featurehouse.rendering import render

        placeholder = "__fh_spine_relation__"
        call = point_in_time_call(
            self.store.repo, self.plan, repr(placeholder), timestamp, columns, order_column
        )
        sql = render(self.store.repo_path, self.store.target, call)
        return sql.replace(placeholder, spine)

    def _check_join_keys(self, columns: list[str]) -> None:
        for selection in self.plan.selections:
            for key in self.store.repo.join_keys(selection.view):
                if key not in columns:
                    raise RequestError(
                        f"entity_df has no column '{key}', the join key of feature view "
                        f"'{selection.view.name}'{did_you_mean(key, columns)}"
                    )

    def _check_clashes(self, columns: list[str]) -> None:
        for name in self.plan.output_names():
            if name in columns:
                raise RequestError(
                    f"entity_df already has a column '{name}', which a requested feature would overwrite; "
                    "rename it or ask for full_feature_names=True"
                )


def _spine_timestamp(columns: list[tuple[str, str]]) -> str:
    names = [n for n, _ in columns]
    if EVENT_TIMESTAMP in names:
        return EVENT_TIMESTAMP
    timestamps = [n for n, kind in columns if kind == "timestamp"]
    if len(timestamps) == 1:
        return timestamps[0]
    if not timestamps:
        raise RequestError(
            f"entity_df needs a timestamp column, '{EVENT_TIMESTAMP}' or any single timestamp column; "
            f"it has {', '.join(names) or 'no columns'}"
        )
    raise RequestError(
        f"entity_df has several timestamp columns ({', '.join(timestamps)}); name the one to join on "
        f"'{EVENT_TIMESTAMP}'"
    )


def _as_arrow(entity_df: Any) -> "pa.Table":
    import pyarrow as pa

    if isinstance(entity_df, pa.Table):
        return entity_df
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(entity_df, pd.DataFrame):
        frame = entity_df.reset_index(drop=True)
        return pa.Table.from_pandas(frame, preserve_index=False)
    raise RequestError(
        f"entity_df must be a pandas DataFrame, a pyarrow Table or a SQL query string, not {type(entity_df).__name__}"
    )


def _feature_arrow_types(plan: Any, repo: "FeatureRepo") -> dict[str, "pa.DataType"]:
    from featurehouse.join_plan import feature_dtypes
    from featurehouse.types import arrow_type

    types: dict[str, pa.DataType] = {}
    for selection in plan.selections:
        dtypes = feature_dtypes(selection.view)
        for feature in selection.features:
            types[plan.prefix(selection.view) + feature] = arrow_type(dtypes[feature])
    return types


def _restore_spine_types(result: "pa.Table", spine_schema: "pa.Schema | None", plan: Any, repo: "FeatureRepo") -> "pa.Table":
    """Give spine columns back their input types (zones included) and features their dtypes."""
    import pyarrow as pa

    wanted = _feature_arrow_types(plan, repo)
    if spine_schema is not None:
        wanted.update({f.name: f.type for f in spine_schema})
    columns = []
    for name in result.column_names:
        column = result.column(name)
        target = wanted.get(name)
        if target is not None:
            # an entity_df column (a naive one stays naive) or a feature of known dtype
            if column.type != target:
                try:
                    column = column.cast(target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pass
        elif pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
        columns.append(column)
    return pa.table(columns, names=result.column_names)
