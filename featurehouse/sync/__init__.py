"""``featurehouse sync``: copy the latest snapshots (``online_<view>`` models) to the online store.

Per view: read from the warehouse, as Arrow, the snapshot rows that changed since the
last sync (by the ``snapshot_built_at`` watermark the model carries, or by comparing row
fingerprints with the sync state kept in the store: ``featurehouse.sync.snapshot``),
write them (each only if it beats the stored row by the point-in-time tie-break), then
commit the new state. The state advances only after the rows are written, so a sync killed at any
point is repaired by the next one; ``--full-refresh`` rebuilds a view from its snapshot
and drops entities that are gone. One store module per kind: sqlite, postgres, redis
(redis_cluster: the same Redis layout on a Redis Cluster, ``cluster: true``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from featurehouse.errors import OnlineStoreError, RequestError, did_you_mean
from featurehouse.sync.base import Backend, SyncBusyError
from featurehouse.sync.layout import STATE_TABLE, CorruptStateError, ViewLayout, utc_now
from featurehouse.sync.snapshot import read_changes, read_snapshot_table

if TYPE_CHECKING:
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.spec.model import OnlineStoreConfig
    from featurehouse.spec.repo import FeatureRepo
    from featurehouse.sync.bi_export import ExportResult
    from featurehouse.warehouse import Warehouse

__all__ = ["SyncBusyError", "ViewReport", "SyncReport", "open_backend", "online_layouts", "read_snapshot_table", "sync"]


def open_backend(config: OnlineStoreConfig, root: Path) -> Backend:
    """The online store ``featurehouse.yml`` configures (not connected yet)."""
    if config.type == "sqlite":
        from featurehouse.sync.sqlite import SQLiteBackend

        path = Path(config.path or "data/online.db")
        return SQLiteBackend(path if path.is_absolute() else root / path)
    if config.type == "postgres":
        from featurehouse.sync.postgres import PostgresBackend

        return PostgresBackend(str(config.url), config.schema_)
    if config.type == "redis" and config.cluster:
        from featurehouse.sync.redis_cluster import RedisClusterBackend

        return RedisClusterBackend(str(config.url), config.key_prefix)
    if config.type == "redis":
        from featurehouse.sync.redis import RedisBackend

        return RedisBackend(str(config.url), config.key_prefix)
    raise OnlineStoreError(f"unknown online_store.type {config.type!r}")  # pragma: no cover - specs forbid it


def online_layouts(repo: FeatureRepo, names: Sequence[str] | None = None) -> list[ViewLayout]:
    """Layouts of the online views, all of them or the named ones (in the order given)."""
    online = {name: view for name, view in sorted(repo.feature_views.items()) if view.online}
    if not names:
        chosen = list(online)
    else:
        chosen = []
        for name in names:
            if name not in online:
                if name in repo.feature_views:
                    raise RequestError(f"feature view '{name}' has online: false; set online: true to sync it")
                raise RequestError(f"unknown feature view '{name}'{did_you_mean(name, online)}")
            if name not in chosen:
                chosen.append(name)
    for name in chosen:
        if name == STATE_TABLE:
            raise RequestError(f"a feature view may not be named '{STATE_TABLE}': the online stores use that name")
    return [ViewLayout.of(repo, online[name]) for name in chosen]


@dataclass
class ViewReport:
    """What the sync did to one view: rows read, fetched, written and kept."""

    view: str
    rows_read: int = 0  # rows in the snapshot
    fetched: int = 0  # of those, rows that left the warehouse (all of them without a watermark)
    written: int = 0
    full_refresh: bool = False
    # rows not written because the store holds a row that beats them (a sync never writes an
    # older row over a newer one): the store and this snapshot disagree on them
    kept: int = 0

    @property
    def unchanged(self) -> int:
        """Rows the store already held as they are."""
        return self.rows_read - self.written - self.kept


@dataclass
class SyncReport:
    """What one ``featurehouse sync`` did: a report per view, time taken, warnings."""

    views: list[ViewReport] = field(default_factory=list)
    seconds: float = 0.0
    # generated models that changed after the last dbt build (their tables are stale)
    warnings: list[str] = field(default_factory=list)
    bi_export: ExportResult | None = None  # the copy for BI tools, when featurehouse.yml asks for one

    @property
    def rows_read(self) -> int:
        """Rows read from the snapshots, all views."""
        return sum(v.rows_read for v in self.views)

    @property
    def written(self) -> int:
        """Rows written to the store, all views."""
        return sum(v.written for v in self.views)

    @property
    def fetched(self) -> int:
        """Rows fetched from the warehouse, all views."""
        return sum(v.fetched for v in self.views)

    @property
    def unchanged(self) -> int:
        """Rows the store already held as they are, all views."""
        return sum(v.unchanged for v in self.views)

    @property
    def kept(self) -> int:
        """Rows not written because the store holds a newer one, all views."""
        return sum(v.kept for v in self.views)

    def summary(self) -> str:
        """The report as the CLI prints it."""
        names = ", ".join(v.view + (" (full refresh)" if v.full_refresh else "") for v in self.views)
        fetched = "" if self.fetched == self.rows_read else f" ({self.fetched:,} fetched)"
        text = (
            f"synced {len(self.views)} view(s) [{names}]: {self.rows_read:,} rows read{fetched}, "
            f"{self.written:,} written, {self.unchanged:,} unchanged in {self.seconds:.2f} s"
        )
        if self.kept:
            views = ",".join(v.view for v in self.views if v.kept)
            text += (
                f"\n{self.kept:,} kept: the store holds newer values than this snapshot "
                f"({', '.join(f'{v.view} {v.kept:,}' for v in self.views if v.kept)}); run "
                f"`featurehouse sync --full-refresh --views {views}` to replace them with this snapshot"
            )
        return text


class Progress:
    """Callbacks for a progress display: start(view, total rows), advance(rows), finish()."""

    def start(self, view: str, total: int) -> None:
        """A view's sync starts; it has ``total`` rows to write."""
        pass

    def advance(self, rows: int) -> None:
        """``rows`` more rows are written."""
        pass

    def finish(self) -> None:
        """The view's sync is done."""
        pass


def sync(
    store: FeatureStore,
    views: Sequence[str] | None = None,
    full_refresh: bool = False,
    wait: float = 0.0,
    progress: Progress | None = None,
) -> SyncReport:
    """Sync the online views (or the named ones) and return what was done.

    Views are synced one after the other, each in its own transaction. Raises OnlineStoreError /
    WarehouseError (store or warehouse unreachable: the failing view and those after it are
    left as they were), SyncBusyError (another sync holds the lock and ``wait`` ran out) and
    ConfigError (the repo's featurehouse macros are of another featurehouse version).
    """
    from featurehouse.dbt.package_macros import check_version

    started = time.perf_counter()
    check_version(store.repo_path)  # the online models were built by these macros
    progress = progress or Progress()
    layouts = online_layouts(store.repo, views)
    backend = open_backend(store.repo.config.online_store, store.repo_path)
    report = SyncReport()
    from featurehouse.warehouse import connect  # the layer below, not the SDK's private _warehouse()

    # first: a missing warehouse must not leave an empty SQLite store behind; models_dir: to
    # name the generated models changed since the last dbt build
    warehouse = connect(store.target, store.repo_path, models_dir=store.repo.root / store.repo.config.models_dir)
    try:
        report.warnings = stale_models(warehouse, layouts)
        backend.connect()
        backend.preflight(layouts)
        with backend.lock(wait):
            for layout in layouts:
                report.views.append(_sync_view(backend, warehouse, layout, full_refresh, progress))
            if store.repo.config.bi_export:
                from featurehouse.sync.bi_export import refresh

                report.bi_export = refresh(warehouse, store.repo_path, store.repo.config.bi_export)
    finally:
        progress.finish()
        warehouse.close()
        backend.close()
    report.seconds = time.perf_counter() - started
    return report


def stale_models(warehouse: Warehouse, layouts: Sequence[ViewLayout]) -> list[str]:
    """Why the tables of these views may be older than their generated models (see featurehouse.dbt.manifest)."""
    if warehouse.relations is None:
        return []
    from featurehouse.plan.joins import feature_view_model

    return warehouse.relations.stale([m for lay in layouts for m in (feature_view_model(lay.name), lay.model)])


def _sync_view(
    backend: Backend, warehouse: Warehouse, layout: ViewLayout, full_refresh: bool, progress: Progress
) -> ViewReport:
    try:
        previous = backend.read_state(layout)
    except CorruptStateError:
        if not full_refresh:
            raise
        previous = None  # what --full-refresh is for: rebuild the view and write a new state
    changes = read_changes(warehouse, layout, previous, full_refresh, utc_now())
    # the features (and dtypes) the store holds after this sync: readers answer only those
    changes.state.features = dict(zip(layout.features, layout.dtypes))
    report = ViewReport(
        layout.name, rows_read=changes.state.rows, fetched=changes.rows.num_rows, full_refresh=changes.changed is None
    )
    progress.start(layout.name, changes.to_write)
    report.written = backend.write(layout, changes.rows, changes.changed, changes.state, progress.advance)
    report.kept = backend.kept
    return report
