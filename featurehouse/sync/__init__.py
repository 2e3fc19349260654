"""``featurehouse sync``: copy the latest snapshots (``online_<view>`` models) to the online store.

Per view: read the snapshot from the warehouse as Arrow, fingerprint every row, compare
with the fingerprints of the last synced snapshot kept in the store's sync state, write
only the changed entities
(each only if it beats the stored row by the point-in-time tie-break), then commit the
new state. The state advances only after the rows are written, so a sync killed at any
point is repaired by the next one; ``--full-refresh`` rebuilds a view from its snapshot
and drops entities that are gone. One store module per kind: sqlite, postgres, redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from featurehouse.errors import OnlineStoreError, RequestError, did_you_mean
from featurehouse.sync.base import Backend, SyncBusyError
from featurehouse.sync.layout import STATE_TABLE, SyncState, ViewLayout, changed_rows, fingerprints, normalise, utc_now

if TYPE_CHECKING:
    from featurehouse.repo import FeatureRepo
    from featurehouse.specs import OnlineStoreConfig
    from featurehouse.store import FeatureStore
    from featurehouse.warehouse import Warehouse

__all__ = ["SyncBusyError", "ViewReport", "SyncReport", "open_backend", "online_layouts", "sync"]


def open_backend(config: "OnlineStoreConfig", root: Path) -> Backend:
    """The online store ``featurehouse.yml`` configures (not connected yet)."""
    if config.type == "sqlite":
        from featurehouse.sync.sqlite import SQLiteBackend

        path = Path(config.path or "data/online.db")
        return SQLiteBackend(path if path.is_absolute() else root / path)
    if config.type == "postgres":
        from featurehouse.sync.postgres import PostgresBackend

        return PostgresBackend(str(config.url), config.schema_)
    if config.type == "redis":
        from featurehouse.sync.redis import RedisBackend

        return RedisBackend(str(config.url), config.key_prefix)
    raise OnlineStoreError(f"unknown online_store.type {config.type!r}")  # pragma: no cover - specs forbid it


def online_layouts(repo: "FeatureRepo", names: Sequence[str] | None = None) -> list[ViewLayout]:
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
    view: str
    rows_read: int = 0
    written: int = 0
    full_refresh: bool = False

    @property
    def unchanged(self) -> int:
        return self.rows_read - self.written


@dataclass
class SyncReport:
    views: list[ViewReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_read(self) -> int:
        return sum(v.rows_read for v in self.views)

    @property
    def written(self) -> int:
        return sum(v.written for v in self.views)

    @property
    def unchanged(self) -> int:
        return sum(v.unchanged for v in self.views)

    def summary(self) -> str:
        names = ", ".join(v.view + (" (full refresh)" if v.full_refresh else "") for v in self.views)
        return (f"synced {len(self.views)} view(s) [{names}]: {self.rows_read:,} rows read, "
                f"{self.written:,} written, {self.unchanged:,} unchanged in {self.seconds:.2f} s")


class Progress:
    """Callbacks for a progress display: start(view, total rows), advance(rows), finish()."""

    def start(self, view: str, total: int) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass

    def finish(self) -> None:
        pass


def sync(
    store: "FeatureStore",
    views: Sequence[str] | None = None,
    full_refresh: bool = False,
    wait: float = 0.0,
    progress: Progress | None = None,
    read_snapshot: Callable[["Warehouse", ViewLayout], object] | None = None,
) -> SyncReport:
    """Sync the online views (or the named ones) and return what was done.

    Raises OnlineStoreError / WarehouseError (store or warehouse unreachable: nothing is
    committed) and SyncBusyError (another sync holds the lock and ``wait`` ran out).
    """
    started = time.perf_counter()
    progress = progress or Progress()
    layouts = online_layouts(store.repo, views)
    backend = open_backend(store.repo.config.online_store, store.repo_path)
    report = SyncReport()
    try:
        backend.connect()
        with backend.lock(wait):
            warehouse = store._warehouse()
            try:
                for layout in layouts:
                    report.views.append(_sync_view(backend, warehouse, layout, full_refresh, progress, read_snapshot))
            finally:
                warehouse.close()
                progress.finish()
    finally:
        backend.close()
    report.seconds = time.perf_counter() - started
    return report


def read_snapshot_table(warehouse: "Warehouse", layout: ViewLayout) -> object:
    from featurehouse.errors import WarehouseError

    columns = ", ".join(f'"{c}"' for c in layout.columns)
    try:
        return warehouse.arrow(f"select {columns} from {warehouse.relation(layout.model)}")
    except WarehouseError as error:
        raise WarehouseError(
            f"cannot read the model {layout.model} from the warehouse ({error}); "
            "run 'featurehouse compile' and 'dbt build' first"
        ) from None


def _sync_view(backend: Backend, warehouse: "Warehouse", layout: ViewLayout, full_refresh: bool,
               progress: Progress, read_snapshot: Callable[["Warehouse", ViewLayout], object] | None) -> ViewReport:
    synced_at = utc_now()
    table = normalise((read_snapshot or read_snapshot_table)(warehouse, layout), layout)  # type: ignore[arg-type]
    hashes = fingerprints(table)
    state = backend.read_state(layout)
    full = full_refresh or state is None or state.signature != layout.signature
    report = ViewReport(layout.name, rows_read=table.num_rows, full_refresh=full)
    after = SyncState(layout.name, layout.signature, synced_at, table.num_rows, hashes)
    if full:
        changed = None
        to_write = table.num_rows
    else:
        assert state is not None
        changed = changed_rows(state, hashes)
        to_write = int(changed.sum())
    progress.start(layout.name, to_write)
    report.written = backend.write(layout, table, changed, after, progress.advance)
    return report
