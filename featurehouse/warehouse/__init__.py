"""Connections to the warehouse dbt builds into, for the SDK, `featurehouse sync` and `check`.

One module per engine, each a `Warehouse` subclass (``base``): ``duckdb``, ``postgres``,
``spark``. ``connect`` picks it by the dbt target's adapter type (``ENGINES``); a new engine
is one module here, one entry in ``ENGINES`` and one macro file of ``<adapter>__``
overrides (docs/recipes/add-a-warehouse.md). Heavy imports stay inside functions.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from featurehouse.dbt.profile import DbtTarget
from featurehouse.errors import WarehouseError
from featurehouse.warehouse.base import SPINE_PLACEHOLDER, Warehouse
from featurehouse.warehouse.duckdb import DuckDBWarehouse
from featurehouse.warehouse.postgres import PostgresWarehouse, postgres_conninfo, postgres_type
from featurehouse.warehouse.spark import SparkWarehouse

__all__ = [
    "ENGINES",
    "SPINE_PLACEHOLDER",
    "DuckDBWarehouse",
    "PostgresWarehouse",
    "SparkWarehouse",
    "Warehouse",
    "connect",
    "postgres_conninfo",
    "postgres_type",
]

# dbt adapter type -> the module and class that read it
ENGINES: dict[str, tuple[str, str]] = {
    "duckdb": ("featurehouse.warehouse.duckdb", "DuckDBWarehouse"),
    "postgres": ("featurehouse.warehouse.postgres", "PostgresWarehouse"),
    "spark": ("featurehouse.warehouse.spark", "SparkWarehouse"),
}


def connect(target: DbtTarget, root: Path, read_only: bool = True, models_dir: Path | None = None) -> Warehouse:
    """A connection to the dbt target's warehouse; model relations as dbt's manifest places them
    (``models_dir``: the folder of the generated models, for staleness and to tell them apart)."""
    from featurehouse.dbt.manifest import Relations

    if target.type not in ENGINES:
        raise WarehouseError(
            f"the dbt target '{target.target_name}' is of type '{target.type}'; featurehouse's Python side "
            f"reads from {', '.join(sorted(ENGINES))} (the dbt models and macros run on any adapter)"
        )
    module, name = ENGINES[target.type]
    engine: type[Warehouse] = getattr(importlib.import_module(module), name)
    warehouse = engine.open(target, root, read_only=read_only)
    warehouse.relations = Relations(root, target, models_dir)
    return warehouse
