"""A read-only copy of a DuckDB warehouse for BI tools, refreshed by ``featurehouse sync``.

DuckDB lets one process write a database file, and no process write while another holds
it open, even read-only: a BI tool connected to the warehouse makes the next ``dbt run``
fail with "Could not set lock on file". With ``bi_export: <folder>`` in featurehouse.yml,
sync copies the warehouse to ``<folder>/<warehouse file name>`` whenever the warehouse
changed since the last copy; BI tools open the copy (read-only), never the warehouse.

The copy is written to a temporary file next to it and renamed over the old one, so a BI
session sees the old copy or the new one, never half of one, and an open session keeps
the old file until it reconnects (POSIX rename). Keeping the warehouse's file name keeps
its catalog name, so views dbt created with database-qualified names still resolve.
See docs/decisions/0010-relations-from-manifest.md.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from featurehouse.errors import ConfigError, WarehouseError

if TYPE_CHECKING:
    from featurehouse.warehouse import Warehouse


@dataclass(frozen=True)
class ExportResult:
    """What happened to the BI copy of the warehouse, and why."""

    path: Path
    state: str  # "refreshed", "up to date" (as new as the warehouse) or "skipped" (see reason)
    reason: str = ""

    def summary(self) -> str:
        """The result as one line of the sync's output."""
        return f"bi_export {self.path}: {self.state}" + (f" ({self.reason})" if self.reason else "")


def export_path(root: Path, folder: str, warehouse_file: Path) -> Path:
    """Where the copy of ``warehouse_file`` goes: ``folder``/<the warehouse's file name>."""
    target = Path(folder)
    target = target if target.is_absolute() else root / target
    path = target / warehouse_file.name
    if path.resolve() == warehouse_file.resolve():
        raise ConfigError(
            f"featurehouse.yml: bi_export '{folder}' is the warehouse's own folder; "
            "name another folder for the copy BI tools read"
        )
    return path


def _changed_at(database: Path) -> int:
    """The last write to a DuckDB file, its write-ahead log included."""
    stamps = [database.stat().st_mtime_ns]
    wal = database.with_name(database.name + ".wal")
    with contextlib.suppress(OSError):
        stamps.append(wal.stat().st_mtime_ns)
    return max(stamps)


def refresh(warehouse: Warehouse, root: Path, folder: str, force: bool = False) -> ExportResult:
    """Copy the warehouse behind ``warehouse`` (DuckDB) to ``folder`` if it changed since the last copy."""
    from featurehouse.warehouse import DuckDBWarehouse

    if not isinstance(warehouse, DuckDBWarehouse) or warehouse.path is None:
        kind = warehouse.target.type
        return ExportResult(Path(folder), "skipped", f"the target is {kind}: BI tools read it directly")
    source = Path(warehouse.path)
    path = export_path(root, folder, source)
    if not force and path.exists() and path.stat().st_mtime_ns >= _changed_at(source):
        return ExportResult(path, "up to date")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"featurehouse.yml: cannot create the bi_export folder {path.parent}: {error.strerror or error}"
        ) from None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        warehouse.copy_database_to(temporary)
        os.replace(temporary, path)
    except (OSError, WarehouseError) as error:
        temporary.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            Path(str(temporary) + ".wal").unlink(missing_ok=True)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise WarehouseError(f"cannot write the bi_export copy {path}: {reason}") from error
    return ExportResult(path, "refreshed")
