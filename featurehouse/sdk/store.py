"""The Python SDK: ``FeatureStore``, with Feast's method names so users can switch.

Training data is computed in the warehouse by the same ``point_in_time_join`` macro that
``dbt run`` uses for training-set models: there is one implementation of the join.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from featurehouse.errors import RequestError, did_you_mean
from featurehouse.sdk import request_spine
from featurehouse.sdk.entity_df import (
    arrow_kind,
    as_arrow,
    check_key_kind,
    check_timestamp_kind,
    key_column,
    pandas_to_arrow,
    spine_columns,
    spine_timestamp,
)
from featurehouse.spec.model import EVENT_TIMESTAMP

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from featurehouse.dbt.profile import DbtTarget
    from featurehouse.spec.model import Entity
    from featurehouse.spec.repo import FeatureRepo
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
        from featurehouse.spec.repo import load_repo

        self.repo: FeatureRepo = load_repo(repo_path)
        self.repo_path: Path = self.repo.root
        self._target_name = target
        self._profiles_dir = profiles_dir

    @cached_property
    def target(self) -> DbtTarget:
        """The dbt target the store reads from (``target=`` or the profile's default)."""
        from featurehouse.dbt.profile import load_target

        return load_target(self.repo_path, self._target_name, self._profiles_dir)

    def _warehouse(self) -> Warehouse:
        from featurehouse.warehouse import connect

        return connect(self.target, self.repo_path, models_dir=self.repo.root / self.repo.config.models_dir)

    # ---- offline ------------------------------------------------------------------------
    def get_historical_features(
        self,
        entity_df: pd.DataFrame | pa.Table | str,
        features: list[str] | str,
        full_feature_names: bool = False,
    ) -> RetrievalJob:
        """Point-in-time correct features for every row of ``entity_df``.

        ``entity_df`` is a DataFrame, an Arrow table or a SQL query run in the warehouse;
        its timestamp column is ``event_timestamp`` or its only timestamp column (naive
        timestamps are UTC). Every row comes back once, in order, with all its columns.
        """
        from featurehouse.spec.outputs import JoinPlan, check_output_names
        from featurehouse.spec.request_views import join_plan

        # with request views: a RequestJoinPlan (featurehouse.sdk.request_spine)
        plan: JoinPlan = join_plan(self.repo, features, full_feature_names)
        check_output_names(plan)
        return RetrievalJob(self, plan, entity_df)

    def get_historical_documents(
        self,
        entity_df: pd.DataFrame | pa.Table,
        features: list[str] | str,
        top_k: int = 10,
        query_column: str = "query",
        full_feature_names: bool = False,
    ) -> Any:
        """The top-k documents nearest each row's query vector, as they were at the row's time.

        One row per hit (spine columns, ``rank``, join keys, features, ``distance``); see
        featurehouse.sdk.documents and docs/vector-search.md, "Offline retrieval".
        """
        from featurehouse.sdk.documents import DocumentRetrievalJob, document_request

        request = document_request(self.repo, features, top_k, query_column, full_feature_names)
        return DocumentRetrievalJob(self, request, entity_df)

    # ---- push and write (featurehouse.online.push; docs/push.md) -------------------------
    def push(self, push_source_name: str, df: Any, to: str = "online") -> Any:
        """Push rows (a DataFrame, an Arrow table or a dict of columns) to a push source's views.

        ``to``: ``"online"``, ``"offline"`` (the push log the views' models read) or
        ``"online_and_offline"``. The batch is validated whole first: a bad row raises
        RequestError naming it and nothing is written. Returns a ``PushResult``.
        """
        from featurehouse.online.push import push

        return push(self, push_source_name, df, to)

    def write_to_online_store(self, feature_view_name: str, df: Any) -> Any:
        """Write rows of one view's columns to the online store only (never over newer stored values)."""
        from featurehouse.online.push import write_to_online_store

        return write_to_online_store(self, feature_view_name, df)

    # ---- online -------------------------------------------------------------------------
    def get_online_features(
        self,
        features: list[str] | str,
        entity_rows: list[dict[str, Any]],
        full_feature_names: bool = False,
        request_data: dict[str, list[Any]] | None = None,
    ) -> Any:
        """The latest synced value of each feature for each entity row (see featurehouse.online.reader).

        ``request_data`` (Feast's name) gives the request fields of request-time features, one
        value per entity row; they may also be columns of the entity rows.
        """
        from featurehouse.online.reader import get_online_features

        return get_online_features(self, features, entity_rows, full_feature_names, request_data)

    def retrieve_online_documents(
        self,
        features: list[str],
        query: Any,
        top_k: int = 10,
        distance_metric: str | None = None,
        where: dict[str, Any] | None = None,
        exact: bool = False,
    ) -> Any:
        """The ``top_k`` documents nearest ``query`` (best first) in a view with a vector feature.

        ``.to_dict()`` / ``.to_df()``: join keys, the requested features and ``distance``; see
        featurehouse.online.search and docs/vector-search.md.
        """
        from featurehouse.online.search import retrieve_online_documents

        return retrieve_online_documents(self, features, query, top_k, distance_metric, where, exact)


@dataclass
class RetrievalJob:
    """A pending training-set query; ``to_arrow()`` or ``to_df()`` runs it.

    Only the join keys and the timestamp of a DataFrame or Arrow entity_df travel to the
    warehouse; its rows come back as they were given (every column, dtype and, for
    ``to_df()``, the index), with the features appended.
    """

    store: FeatureStore
    plan: Any
    entity_df: Any

    def to_arrow(self) -> pa.Table:
        """Run the point-in-time join and return the training rows as an Arrow table."""
        if isinstance(self.entity_df, str):
            return self._run_sql_spine(self.entity_df)
        spine = as_arrow(self.entity_df)
        features = self._run_table_spine(spine)  # the converted table: the DataFrame is converted once
        for name in features.column_names:
            spine = spine.append_column(name, features.column(name))
        return spine

    def to_df(self) -> pd.DataFrame:
        """The result as pandas; integer and boolean features are nullable (Int64, boolean).

        A DataFrame entity_df comes back as it was given (dtypes and index included),
        with the features as new columns.
        """
        import pandas as pd

        if isinstance(self.entity_df, pd.DataFrame):
            features = _features_to_pandas(self._run_table_spine(self.entity_df))
            frame = pd.concat([self.entity_df.reset_index(drop=True), features], axis=1)
            frame.index = self.entity_df.index
            return frame
        table = self.to_arrow()
        frame = table.to_pandas()
        features = _features_to_pandas(table.select(self.plan.output_names()))
        for name in features.columns:
            # by position: the frame's index may be an Arrow table's pandas index
            frame[name] = features[name].array
        return frame

    # --------------------------------------------------------------------------------------
    def _run_table_spine(self, entity_df: pd.DataFrame | pa.Table) -> pa.Table:
        """The feature columns for a DataFrame or Arrow entity_df, one row per spine row, in order."""
        import numpy as np
        import pyarrow as pa

        from featurehouse.dbt.rendering import lookup, render_many
        from featurehouse.spec.outputs import JoinPlan
        from featurehouse.warehouse import SPINE_PLACEHOLDER

        columns, kinds = spine_columns(entity_df)
        timestamp = spine_timestamp(list(zip(columns, kinds)))
        self._check_join_keys(columns)
        self._check_clashes(columns)
        spine = self._join_input(entity_df, timestamp)
        timestamp = str(timestamp)  # pandas may label columns with anything; Arrow names are strings
        if timestamp.startswith("__fh_"):
            raise RequestError(
                f"entity_df's timestamp column may not be named '{timestamp}' "
                "(names starting with '__fh_' are featurehouse's own)"
            )
        # numpy's arange, not range(): building 1M Python ints costs ~0.3 s
        numbered = spine.append_column(ROW_NUMBER_COLUMN, pa.array(np.arange(spine.num_rows, dtype=np.int64)))
        # request fields go in too: the request-time expressions read them
        passed = [ROW_NUMBER_COLUMN, *request_spine.field_names(self.plan)]
        calls = self._calls(timestamp, passed, ROW_NUMBER_COLUMN)
        found = lookup(self.store.repo_path, self.store.target, calls)
        # a feature set never asked before (a plain plan: request-time features are computed
        # around the whole join): each view's piece, and dbt not started
        if found[0] is None and type(self.plan) is JoinPlan and all(sql is not None for sql in found[1:]):
            pieces = {s.view.name: cast(str, sql) for s, sql in zip(self.plan.selections, found[1:])}
            return self._run_pieces(numbered.rename_columns(_piece_names(numbered, timestamp)), pieces)
        whole = found[0] if found[0] is not None else render_many(self.store.repo_path, self.store.target, calls)[0]
        sql = self._finish(whole, SPINE_PLACEHOLDER, passed, ROW_NUMBER_COLUMN)
        warehouse = self.store._warehouse()
        try:
            with warehouse.spine(numbered):
                result = self._query(warehouse, sql)
        finally:
            warehouse.close()
        return _typed_result(result.drop_columns([ROW_NUMBER_COLUMN]), self.plan, self.store.repo)

    def _run_pieces(self, spine: pa.Table, pieces: dict[str, str]) -> pa.Table:
        """One query per view (its piece), each one row per spine row in order; the requested
        features of each, side by side. Every piece is dbt's rendering of the view's join."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from featurehouse.errors import WarehouseError
        from featurehouse.plan.joins import PIECE_ROW, PIECE_SPINE
        from featurehouse.warehouse import SPINE_PLACEHOLDER

        columns: list[pa.ChunkedArray] = []
        names: list[str] = []
        warehouse = self.store._warehouse()
        try:
            with warehouse.spine(spine):
                for selection in self.plan.selections:
                    sql = pieces[selection.view.name].replace(PIECE_SPINE, SPINE_PLACEHOLDER)
                    result = self._query(warehouse, sql)
                    rows = result.column(PIECE_ROW).to_numpy()
                    if len(rows) != spine.num_rows:
                        raise WarehouseError(
                            f"the point-in-time join of feature view '{selection.view.name}' returned "
                            f"{len(rows):,} rows for {spine.num_rows:,} entity_df rows"
                        )
                    if not np.array_equal(rows, np.arange(len(rows))):  # the macro orders by row; be sure
                        result = result.take(pc.sort_indices(result.column(PIECE_ROW)))
                    for feature in selection.features:
                        columns.append(result.column(feature))
                        names.append(self.plan.prefix(selection.view) + feature)
        finally:
            warehouse.close()
        table = pa.table(columns, names=names) if columns else pa.table({})
        return _typed_result(table, self.plan, self.store.repo)

    def _join_input(self, entity_df: pd.DataFrame | pa.Table, timestamp: str) -> pa.Table:
        """The join keys and the timestamp of the entity_df, typed for the join.

        Keys are cast to their entity's type (so an int64 key given as float64, as pandas
        does for a column with NaN, joins the same on every warehouse); a key of another
        kind (strings for an int64 entity) is an error rather than a warehouse-specific
        implicit cast.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        keys = self._keys()
        names = list(dict.fromkeys([*keys, timestamp]))
        if isinstance(entity_df, pa.Table):
            table = entity_df.select(names)
        else:
            table = pandas_to_arrow(entity_df[names])
        for i, name in enumerate(table.column_names):
            column = table.column(name)
            if name == str(timestamp):
                if pa.types.is_null(column.type):
                    column = column.cast(pa.timestamp("us"))
                check_timestamp_kind(name, arrow_kind(column.type))
                if pa.types.is_timestamp(column.type) and column.type.unit == "ns":
                    # warehouses keep microseconds, and DuckDB truncates nanoseconds where
                    # Postgres rounds them: floor here so that both join at the same instant
                    column = pc.floor_temporal(column, unit="microsecond").cast(pa.timestamp("us", tz=column.type.tz))
            else:
                column = key_column(name, column, keys[name].value_type, keys[name].name)
            table = table.set_column(i, name, column)
        return request_spine.with_fields(self.plan, entity_df, table)

    def _run_sql_spine(self, query: str) -> pa.Table:
        from featurehouse.errors import WarehouseError

        # a query copied from a SQL console often ends with ';', which a subquery cannot
        query = query.strip().rstrip(";").rstrip()
        warehouse = self.store._warehouse()
        try:
            try:
                described = warehouse.columns(f"({query})")
            except WarehouseError as error:
                reason = str(error).removeprefix("the warehouse query failed: ")
                raise WarehouseError(f"the entity_df query failed: {reason}") from None
            names = [name for name, _ in described]
            reserved = [name for name in names if name.startswith("__fh_")]
            if reserved:
                raise RequestError(
                    f"entity_df may not have a column named '{reserved[0]}' (names starting "
                    "with '__fh_' are featurehouse's own)"
                )
            kinds = {name: warehouse.column_kind(kind) for name, kind in described}
            timestamp = spine_timestamp([(n, "timestamp" if kinds[n] == "timestamp" else t) for n, t in described])
            self._check_join_keys(names)
            self._check_clashes(names)
            check_timestamp_kind(timestamp, kinds[timestamp])
            for key, entity in self._keys().items():
                check_key_kind(key, kinds[key], entity.value_type, entity.name)
            spine = f"({query}) as __fh_entity_sql"
            from featurehouse.dbt.rendering import render_many

            calls = self._calls(timestamp, names, None)
            whole = render_many(self.store.repo_path, self.store.target, calls)[0]
            sql = self._finish(whole, spine, names, None)
            result = self._query(warehouse, sql)
        finally:
            warehouse.close()
        return _typed_result(result, self.plan, self.store.repo)

    def _query(self, warehouse: Warehouse, sql: str) -> pa.Table:
        """Run the join; if it fails because the warehouse is behind the specs, say so."""
        from featurehouse.errors import WarehouseError

        try:
            return warehouse.arrow(sql)
        except WarehouseError as error:
            raise self._explain_failure(warehouse, error) from None

    def _explain_failure(self, warehouse: Warehouse, error: Exception) -> Exception:
        """A clearer error when a feature view's table is missing or lacks a column of its spec.

        Both happen when specs changed (or were compiled) without a ``dbt build`` after.
        """
        from sqlglot import exp

        from featurehouse.errors import WarehouseError
        from featurehouse.plan.joins import feature_view_model, winners_model

        for selection in self.plan.selections:
            view = selection.view
            model = feature_view_model(view.name)
            relation = warehouse.relation(model)
            table = exp.to_table(relation, dialect=warehouse.dialect)
            query = exp.paren(exp.select(exp.Star()).from_(table)).sql(dialect=warehouse.dialect)
            try:
                present = {name for name, _ in warehouse.columns(query)}
            except WarehouseError:
                if model in str(error):
                    return WarehouseError(
                        f"feature view '{view.name}' has no table {relation} in the warehouse; run 'dbt build'"
                    )
                continue
            needed = [
                *self.store.repo.join_keys(view),
                EVENT_TIMESTAMP,
                *(f.name for f in view.features),
                *(a.column for a in view.aggregations),
            ]
            missing = [name for name in dict.fromkeys(needed) if name not in present]
            if missing:
                return WarehouseError(
                    f"the warehouse table {relation} of feature view '{view.name}' has no column "
                    f"'{missing[0]}': the specs changed after the last 'dbt build'; run "
                    "'featurehouse compile' and 'dbt build'"
                )
            winners = winners_model(view.name)
            if winners in str(error):
                # models compiled before the hook existed (or edited): decision 0032
                return WarehouseError(
                    f"feature view '{view.name}' has no table {winners} beside {relation} (its model's "
                    "post-hook writes it); run 'featurehouse compile' and 'dbt build'"
                )
        return error

    def _calls(self, timestamp: str, columns: list[str], order_column: str | None) -> list[str]:
        """The macro call of this join (a placeholder, PIECE_SPINE, for the spine relation), then the
        call of each requested view's piece: dbt renders them together, in one start."""
        from featurehouse.plan.jinja import jinja_string
        from featurehouse.plan.joins import PIECE_SPINE, piece_call, point_in_time_call

        dialect = self.store.target.dialect
        whole = point_in_time_call(
            self.store.repo, self.plan, jinja_string(PIECE_SPINE), timestamp, columns, order_column, dialect=dialect
        )
        return [whole, *(piece_call(self.store.repo, selection.view, dialect) for selection in self.plan.selections)]

    def _finish(self, sql: str, spine: str, columns: list[str], order_column: str | None) -> str:
        """The rendered join over ``spine``, with request-time features computed around it."""
        from featurehouse.plan.joins import PIECE_SPINE

        sql = sql.replace(PIECE_SPINE, spine)
        return request_spine.wrap(self.plan, sql, self.store.target.dialect, columns, order_column)

    def _keys(self) -> dict[str, Entity]:
        """Every requested view's join keys, in order, with the entity each belongs to."""
        repo = self.store.repo
        keys: dict[str, Entity] = {}
        for selection in self.plan.selections:
            for key in repo.join_keys(selection.view):
                keys.setdefault(key, repo.key_entity(selection.view, key))
        return keys

    def _check_join_keys(self, columns: list[Any]) -> None:
        for selection in self.plan.selections:
            for key in self.store.repo.join_keys(selection.view):
                if key not in columns:
                    raise RequestError(
                        f"entity_df has no column '{key}', the join key of feature view "
                        f"'{selection.view.name}'{did_you_mean(key, [str(c) for c in columns])}"
                    )
        request_spine.check_fields(self.plan, columns)

    def _check_clashes(self, columns: list[Any]) -> None:
        for name in self.plan.output_names():
            if name in columns:
                raise RequestError(
                    f"entity_df already has a column '{name}', which a requested feature would overwrite; "
                    "rename it or ask for full_feature_names=True"
                )


def _piece_names(spine: pa.Table, timestamp: str) -> list[str]:
    """The spine's column names with its timestamp column under the pieces' fixed name."""
    from featurehouse.plan.joins import PIECE_TIMESTAMP

    return [PIECE_TIMESTAMP if name == timestamp else name for name in spine.column_names]


def _features_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Feature columns as pandas, with nullable integer and boolean dtypes (NULLs stay NULL)."""
    import pandas as pd
    import pyarrow as pa

    nullable = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=nullable.get)


def _feature_arrow_types(plan: Any, repo: FeatureRepo) -> dict[str, pa.DataType]:
    from featurehouse.plan.joins import feature_dtypes
    from featurehouse.spec.types import arrow_type

    types: dict[str, pa.DataType] = {}
    for selection in plan.selections:
        dtypes = feature_dtypes(selection.view)
        for feature in selection.features:
            types[plan.prefix(selection.view) + feature] = arrow_type(dtypes[feature])
    return types


def _typed_result(result: pa.Table, plan: Any, repo: FeatureRepo) -> pa.Table:
    """Features cast to their dtypes; other columns (a SQL spine's) with naive timestamps as UTC."""
    import pyarrow as pa

    wanted = _feature_arrow_types(plan, repo)
    columns = []
    for name in result.column_names:
        column = result.column(name)
        target = wanted.get(name)
        if target is not None:
            if column.type != target:
                try:
                    column = column.cast(target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pass
        elif pa.types.is_timestamp(column.type) and column.type.tz is None:
            # the warehouse stores UTC without a zone (see utc_timestamp); say so
            column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
        columns.append(column)
    return pa.table(columns, names=result.column_names)
