"""Offline, point-in-time retrieval: ``FeatureStore.get_historical_documents``.

Each row of the entity_df carries a query vector and a timestamp; the answer is the top-k
documents of a vector feature view as they were at that time, computed in the warehouse by
the ``featurehouse.point_in_time_retrieval`` macro (macros/point_in_time_retrieval.sql),
rendered and cached like the point-in-time join (docs/decisions/0003). The result has one
row per hit (docs/decisions/0020-offline-retrieval-one-row-per-hit.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurehouse.errors import RequestError, did_you_mean

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from featurehouse.spec.model import Feature, FeatureView
    from featurehouse.spec.repo import FeatureRepo
    from featurehouse.warehouse import Warehouse

ROW_COLUMN = "__fh_row"
MAX_TOP_K = 1000
RANK_COLUMN = "rank"
DISTANCE_COLUMN = "distance"


@dataclass(frozen=True)
class DocumentRequest:
    """What one retrieval asks for: the view, its vector feature, the output features."""

    view: FeatureView
    vector: Feature
    features: tuple[str, ...]
    top_k: int
    query_column: str
    full_feature_names: bool

    def prefix(self) -> str:
        """``view__`` with full feature names, else nothing."""
        return f"{self.view.name}__" if self.full_feature_names else ""

    def output_names(self, repo: FeatureRepo) -> list[str]:
        """The columns a hit adds to its spine row, in order."""
        return [
            RANK_COLUMN,
            *repo.join_keys(self.view),
            *(self.prefix() + f for f in self.features),
            DISTANCE_COLUMN,
        ]


def document_request(
    repo: FeatureRepo, features: list[str] | str, top_k: int, query_column: str, full_feature_names: bool
) -> DocumentRequest:
    """Check a request against the specs: one vector view, a valid top_k."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise RequestError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, got {top_k!r}")
    if not isinstance(query_column, str) or not query_column:
        raise RequestError(f"query_column must name the entity_df's query vector column, got {query_column!r}")
    selections = repo.resolve_features(features)
    if len(selections) != 1:
        names = ", ".join(s.view.name for s in selections)
        raise RequestError(f"get_historical_documents searches one feature view at a time; the features name {names}")
    view = selections[0].view
    vector = view.vector_feature
    if vector is None:
        vector_views = [v.name for v in repo.feature_views.values() if v.vector_feature is not None]
        hint = did_you_mean(view.name, vector_views) if vector_views else " (no feature view declares one)"
        raise RequestError(
            f"feature view '{view.name}' has no feature with a vector index (vector: {{dimensions, metric}}), "
            f"so it cannot be searched{hint}"
        )
    if view.aggregations:
        raise RequestError(f"feature view '{view.name}' aggregates windows; search a view of documents instead")
    return DocumentRequest(view, vector, tuple(selections[0].features), top_k, query_column, full_feature_names)


def check_queries(request: DocumentRequest, column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The query column as list<float32>; RequestError naming the first bad row.

    A NULL query is allowed (that spine row gets no hits, like a NULL time); a query of
    another length, with NaN or infinity, or (cosine) all zeros is refused.
    """
    import numpy as np
    import pyarrow as pa

    vector = request.vector
    assert vector.vector is not None
    dimensions, metric = vector.vector.dimensions, vector.vector.metric
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), pa.list_(pa.float32()))
    if not (
        pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type)
    ):
        raise RequestError(
            f"entity_df column '{request.query_column}' must hold query vectors (lists of {dimensions} floats), "
            f"not {column.type}"
        )
    values = column.to_pylist()
    queries: list[np.ndarray | None] = []
    for index, value in enumerate(values):
        if value is None:
            queries.append(None)
            continue
        try:
            query = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise RequestError(f"entity_df row {index}: the query vector holds a value that is not a number") from None
        if query.shape != (dimensions,):
            raise RequestError(
                f"entity_df row {index}: the query vector has {query.size} values; feature "
                f"'{request.view.name}:{vector.name}' has {dimensions} dimensions"
            )
        if not np.isfinite(query).all():
            raise RequestError(f"entity_df row {index}: the query vector holds NaN or infinity")
        if metric == "cosine" and not query.any():
            raise RequestError(
                f"entity_df row {index}: the query vector is all zeros, which has no direction for a cosine search"
            )
        queries.append(query.astype(np.float32))
    return pa.array([None if q is None else q.tolist() for q in queries], type=pa.list_(pa.float32()))


def retrieval_call(
    repo: FeatureRepo, request: DocumentRequest, spine: str, timestamp: str, pgvector: bool | None
) -> str:
    """The Jinja call of ``featurehouse.point_in_time_retrieval`` for a spine uploaded by the SDK."""
    from featurehouse.plan.jinja import JinjaCode, jinja_call, macro_call
    from featurehouse.plan.joins import feature_dtypes, feature_view_model

    view, vector = request.view, request.vector
    assert vector.vector is not None
    keys = repo.join_keys(view)
    dtypes = feature_dtypes(view)
    argument = {
        "name": view.name,
        "relation": jinja_call("ref", feature_view_model(view.name)),
        "join_keys": keys,
        "key_dtypes": [repo.join_key_dtype(view, key) for key in keys],
        "features": [{"name": name, "dtype": dtypes[name]} for name in request.features],
        "all_features": [{"name": f.name, "dtype": f.dtype} for f in view.features],
        "vector": {"name": vector.name, "dimensions": vector.vector.dimensions, "metric": vector.vector.metric},
        "ttl_seconds": view.ttl,
        "filter_by_created": view.filter_by_created_timestamp,
        "prefix": request.prefix(),
    }
    arguments: dict[str, Any] = {
        "spine": JinjaCode(spine),
        "view": argument,
        "query_column": request.query_column,
        "top_k": request.top_k,
        "timestamp_column": timestamp,
        "spine_columns": [ROW_COLUMN],
        "order_column": ROW_COLUMN,
        "rank_column": RANK_COLUMN,
        "distance_column": DISTANCE_COLUMN,
    }
    if pgvector is not None:
        arguments["use_pgvector"] = pgvector
    return str(macro_call("featurehouse.point_in_time_retrieval", arguments))


@dataclass
class DocumentRetrievalJob:
    """A pending offline retrieval; ``to_arrow()`` or ``to_df()`` runs it.

    One row per hit, best first within each spine row: the spine row's columns (unchanged),
    ``rank`` (1..top_k), the view's join keys, the requested features and ``distance``. A
    spine row with no hit comes back once with those columns NULL.
    """

    store: Any
    request: DocumentRequest
    entity_df: Any

    def to_arrow(self) -> pa.Table:
        """Run the retrieval and return the hits as an Arrow table."""
        spine = self._spine()
        hits = self._run(spine)
        rows = hits.column(ROW_COLUMN)
        out = spine.take(rows)
        for name in self.request.output_names(self.store.repo):
            out = out.append_column(name, hits.column(name))
        return out

    def to_df(self) -> pd.DataFrame:
        """The hits as pandas; a DataFrame entity_df's rows keep their index (repeated per hit)."""
        import pandas as pd

        if not isinstance(self.entity_df, pd.DataFrame):
            return _nullable_pandas(self.to_arrow())
        hits = self._run(self._spine())
        rows = hits.column(ROW_COLUMN).to_numpy()
        frame = self.entity_df.iloc[rows]
        added = _nullable_pandas(hits.select(self.request.output_names(self.store.repo)))
        added.index = frame.index
        return pd.concat([frame, added], axis=1)

    # --------------------------------------------------------------------------------------
    def _spine(self) -> pa.Table:
        from featurehouse.sdk.entity_df import as_arrow

        if isinstance(self.entity_df, str):
            raise RequestError(
                "get_historical_documents takes the queries as a DataFrame or an Arrow table, not a SQL "
                "query; read its rows first (the query vectors travel to the warehouse with them)"
            )
        return as_arrow(self.entity_df)

    def _run(self, spine: pa.Table) -> pa.Table:
        import numpy as np
        import pyarrow as pa

        from featurehouse.dbt.rendering import render
        from featurehouse.plan.jinja import jinja_string
        from featurehouse.sdk.entity_df import arrow_kind, check_timestamp_kind, spine_timestamp
        from featurehouse.warehouse import SPINE_PLACEHOLDER

        repo: FeatureRepo = self.store.repo
        request = self.request
        names = [str(n) for n in spine.column_names]
        timestamp = spine_timestamp(list(zip(names, (arrow_kind(f.type) for f in spine.schema))))
        if request.query_column not in names:
            raise RequestError(
                f"entity_df has no column '{request.query_column}' with the query vectors"
                f"{did_you_mean(request.query_column, names)}; pass query_column='...'"
            )
        reserved = [n for n in names if n.startswith("__fh_")]
        if reserved:
            raise RequestError(
                f"entity_df may not have a column named '{reserved[0]}' "
                "(names starting with '__fh_' are featurehouse's own)"
            )
        for name in request.output_names(repo):
            if name in names:
                raise RequestError(
                    f"entity_df already has a column '{name}', which the retrieval adds; rename it"
                    + (" or ask for full_feature_names=True" if name in request.features else "")
                )
        times = _utc_microseconds(timestamp, spine.column(timestamp))
        queries = check_queries(request, spine.column(request.query_column))
        upload = pa.table(
            {
                ROW_COLUMN: pa.array(np.arange(spine.num_rows, dtype=np.int64)),
                timestamp: times,
                request.query_column: queries,
            }
        )
        check_timestamp_kind(timestamp, arrow_kind(times.type))
        warehouse = self.store._warehouse()
        try:
            placeholder = "__fh_spine_relation__"
            call = retrieval_call(repo, request, jinja_string(placeholder), timestamp, warehouse.has_pgvector())
            sql = render(self.store.repo_path, self.store.target, call).replace(placeholder, SPINE_PLACEHOLDER)
            with warehouse.spine(upload):
                result = self._query(warehouse, sql)
        finally:
            warehouse.close()
        return _typed(result, request, repo)

    def _query(self, warehouse: Warehouse, sql: str) -> pa.Table:
        from featurehouse.errors import WarehouseError
        from featurehouse.plan.joins import feature_view_model

        try:
            return warehouse.arrow(sql)
        except WarehouseError as error:
            model = feature_view_model(self.request.view.name)
            if model in str(error):
                raise WarehouseError(
                    f"feature view '{self.request.view.name}' has no table {warehouse.relation(model)} in the "
                    "warehouse; run 'featurehouse compile' and 'dbt build'"
                ) from None
            raise


def _utc_microseconds(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The spine's times, nanoseconds floored to microseconds as the point-in-time join does."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_null(column.type):
        return column.cast(pa.timestamp("us"))
    if pa.types.is_timestamp(column.type) and column.type.unit == "ns":
        floored: pa.ChunkedArray = pc.floor_temporal(column, unit="microsecond")
        return floored.cast(pa.timestamp("us", tz=column.type.tz))
    return column


def _typed(result: pa.Table, request: DocumentRequest, repo: FeatureRepo) -> pa.Table:
    """Hits with the columns typed as the specs say: keys as their entity, features as their dtype."""
    import pyarrow as pa

    from featurehouse.plan.joins import feature_dtypes
    from featurehouse.spec.types import arrow_type

    dtypes = feature_dtypes(request.view)
    wanted: dict[str, pa.DataType] = {ROW_COLUMN: pa.int64(), RANK_COLUMN: pa.int64(), DISTANCE_COLUMN: pa.float64()}
    for key in repo.join_keys(request.view):
        wanted[key] = arrow_type(repo.join_key_dtype(request.view, key))
    for name in request.features:
        wanted[request.prefix() + name] = arrow_type(dtypes[name])
    columns = []
    for name in result.column_names:
        column = result.column(name)
        target = wanted.get(name)
        if target is not None and column.type != target:
            column = column.cast(target)
        columns.append(column)
    return pa.table(columns, names=result.column_names)


def _nullable_pandas(table: pa.Table) -> pd.DataFrame:
    """As pandas, with nullable integer and boolean dtypes (a spine row without hits has NULL rank)."""
    import pandas as pd
    import pyarrow as pa

    nullable = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=nullable.get)
