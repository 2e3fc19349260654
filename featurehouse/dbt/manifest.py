"""Where dbt put the models, read from its own artifacts (``target/manifest.json``), without starting dbt.

A ``+schema``/``+alias``/``+database`` config or a project's own ``generate_schema_name``
macro moves a model away from ``<target schema>.<model>``. dbt writes where every model
goes into the manifest of its last parse/build; reading that JSON costs milliseconds
(starting dbt ~3 s), and it is read once per file version (cached by mtime and size).

- No manifest (dbt never ran here): the default layout, ``<target schema>.<model>``.
- A manifest, and the project keeps dbt's own naming macros: the location is worked out
  for the target asked for from the model's configured schema/alias/database, exactly as
  dbt's default macros do, so a manifest written by ``dbt build --target ci`` still
  places the ``dev`` tables right.
- A manifest, and the project overrides a naming macro: only dbt can evaluate it, so the
  manifest's own location is used when it was written for this target's adapter and
  database; otherwise the caller is told to run dbt for this target.

It also says which generated models changed after the manifest was written (their SQL's
hash differs from the manifest's checksum): those tables are stale until ``dbt build``.
See docs/decisions/0010-relations-from-manifest.md.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurehouse.errors import WarehouseError

if TYPE_CHECKING:
    from featurehouse.dbt.profile import DbtTarget

MANIFEST = "manifest.json"
CATALOG = "catalog.json"
_NAMING_MACROS = ("generate_schema_name", "generate_alias_name", "generate_database_name")


@dataclass(frozen=True)
class Node:
    """What featurehouse needs of one model, seed, snapshot or source of the manifest."""

    unique_id: str
    resource_type: str
    package: str
    name: str
    database: str | None
    schema: str
    alias: str
    config_database: str | None
    config_schema: str | None
    config_alias: str | None
    checksum: str
    path: str  # original_file_path, relative to its project
    columns: tuple[str, ...]  # documented in a properties file (may be a subset)


@dataclass(frozen=True)
class Manifest:
    """The parts of dbt's target/manifest.json featurehouse reads: nodes, sources, naming overrides."""

    path: Path
    adapter_type: str
    project_name: str
    generated_at: str
    nodes: dict[str, tuple[Node, ...]]  # by name: models, seeds, snapshots
    sources: dict[tuple[str, str], Node]  # (source name, table name)
    custom_naming: tuple[str, ...]  # naming macros the project or a package overrides
    catalog_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)  # unique_id -> real columns

    def find(self, name: str, prefer_path: str | None = None) -> Node | None:
        """The model/seed/snapshot ``name`` as ``ref('name')`` in the root project finds it."""
        found = self.nodes.get(name, ())
        if len(found) <= 1:
            return found[0] if found else None
        # ref() prefers the root project's node; then the one in the folder featurehouse writes
        for node in found:
            if node.package == self.project_name and (prefer_path is None or node.path.startswith(prefer_path)):
                return node
        own = [n for n in found if n.package == self.project_name]
        return own[0] if own else found[0]


_cache: dict[str, tuple[tuple[int, int, int], Manifest | None]] = {}
_cache_lock = threading.Lock()


def target_dir(root: Path) -> Path:
    """dbt's target path for the project at ``root``: DBT_TARGET_PATH, dbt_project.yml's target-path, target."""
    configured = os.environ.get("DBT_TARGET_PATH")
    if not configured:
        import yaml

        try:
            project = yaml.safe_load((root / "dbt_project.yml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            project = {}
        configured = project.get("target-path") if isinstance(project, dict) else None
    path = Path(str(configured or "target"))
    return path if path.is_absolute() else root / path


def load(root: Path) -> Manifest | None:
    """The manifest of the project at ``root``, or None when dbt never wrote one (or it is unreadable)."""
    path = target_dir(root) / MANIFEST
    try:
        stat = path.stat()
    except OSError:
        return None
    catalog = path.with_name(CATALOG)
    try:
        catalog_version = catalog.stat().st_mtime_ns
    except OSError:
        catalog_version = 0
    version = (stat.st_mtime_ns, stat.st_size, catalog_version)
    key = str(path)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
    manifest = _read_index(path, version)
    if manifest is None:
        manifest = _parse(path, catalog if catalog_version else None)
        if manifest is not None:
            _write_index(manifest, version)
    with _cache_lock:
        _cache[key] = (version, manifest)
    return manifest


# What featurehouse needs of a manifest (kilobytes), next to the rendered-SQL cache: a large
# project's manifest is tens of MB and takes seconds to parse, and every cron sync is a new process.
INDEX = Path("featurehouse") / "manifest_index.json"
_INDEX_FORMAT = 1


def _read_index(path: Path, version: tuple[int, int, int]) -> Manifest | None:
    try:
        document = json.loads((path.parent / INDEX).read_text(encoding="utf-8"))
        if document.get("format") != _INDEX_FORMAT or tuple(document.get("version") or ()) != version:
            return None
        return Manifest(
            path=path,
            adapter_type=document["adapter_type"],
            project_name=document["project_name"],
            generated_at=document["generated_at"],
            nodes={name: tuple(_node_from_index(n) for n in found) for name, found in document["nodes"].items()},
            sources={(n["source"][0], n["source"][1]): _node_from_index(n["node"]) for n in document["sources"]},
            custom_naming=tuple(document["custom_naming"]),
            catalog_columns={k: tuple(v) for k, v in document["catalog_columns"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None  # none yet, another format, or damaged: parse the manifest itself


def _node_from_index(fields: dict[str, Any]) -> Node:
    return Node(**{**fields, "columns": tuple(fields["columns"])})


def _write_index(manifest: Manifest, version: tuple[int, int, int]) -> None:
    from dataclasses import asdict

    document = {
        "format": _INDEX_FORMAT,
        "version": list(version),
        "adapter_type": manifest.adapter_type,
        "project_name": manifest.project_name,
        "generated_at": manifest.generated_at,
        "nodes": {name: [asdict(n) for n in found] for name, found in manifest.nodes.items()},
        "sources": [{"source": list(key), "node": asdict(node)} for key, node in manifest.sources.items()],
        "custom_naming": list(manifest.custom_naming),
        "catalog_columns": manifest.catalog_columns,
    }
    index = manifest.path.parent / INDEX
    temporary = index.with_name(f"{index.name}.{os.getpid()}.tmp")
    try:
        index.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(document), encoding="utf-8")
        temporary.replace(index)  # atomic: a concurrent reader sees the old index or the new one
    except OSError:
        temporary.unlink(missing_ok=True)  # a read-only target folder: parse again next time


def _parse(path: Path, catalog_path: Path | None) -> Manifest | None:
    try:
        with path.open("rb") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return None  # half-written by a dbt run right now, or not JSON: as if there were none
    if not isinstance(document, dict):
        return None
    metadata = _mapping(document.get("metadata"))
    nodes: dict[str, list[Node]] = {}
    for raw in _mapping(document.get("nodes")).values():
        if isinstance(raw, dict) and raw.get("resource_type") in ("model", "seed", "snapshot"):
            node = _node(raw)
            nodes.setdefault(node.name, []).append(node)
    sources = {}
    for raw in _mapping(document.get("sources")).values():
        if isinstance(raw, dict):
            sources[(str(raw.get("source_name", "")), str(raw.get("name", "")))] = _node(raw)
    custom = sorted(
        {
            str(macro.get("name"))
            for macro in _mapping(document.get("macros")).values()
            if isinstance(macro, dict) and _is_custom_naming(macro)
        }
    )
    return Manifest(
        path=path,
        adapter_type=str(metadata.get("adapter_type") or ""),
        project_name=str(metadata.get("project_name") or ""),
        generated_at=str(metadata.get("generated_at") or ""),
        nodes={name: tuple(found) for name, found in nodes.items()},
        sources=sources,
        custom_naming=tuple(custom),
        catalog_columns=_catalog_columns(catalog_path) if catalog_path else {},
    )


def _mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: a foreign or damaged file is read as far as it goes."""
    return value if isinstance(value, dict) else {}


def _node(raw: dict[str, Any]) -> Node:
    config = _mapping(raw.get("config"))
    checksum = _mapping(raw.get("checksum"))
    return Node(
        unique_id=str(raw.get("unique_id", "")),
        resource_type=str(raw.get("resource_type", "")),
        package=str(raw.get("package_name", "")),
        name=str(raw.get("name", "")),
        database=raw.get("database"),
        schema=str(raw.get("schema", "")),
        alias=str(raw.get("alias") or raw.get("identifier") or raw.get("name", "")),
        config_database=config.get("database"),
        config_schema=config.get("schema"),
        config_alias=config.get("alias"),
        checksum=str(checksum.get("checksum", "")),
        path=str(raw.get("original_file_path", "")),
        columns=tuple(str(c.get("name", k)) for k, c in _mapping(raw.get("columns")).items() if isinstance(c, dict)),
    )


def _is_custom_naming(macro: dict[str, Any]) -> bool:
    name = str(macro.get("name", ""))
    package = str(macro.get("package_name", ""))
    naming = any(name == m or name.endswith("__" + m) for m in _NAMING_MACROS)
    # dbt's global project and the adapters' own packages (dbt_duckdb, dbt_postgres) are dbt's defaults
    return naming and package != "dbt" and not (package.startswith("dbt_") and "__" in name)


def _catalog_columns(path: Path) -> dict[str, tuple[str, ...]]:
    """The real columns of every node and source ``dbt docs generate`` saw, by unique_id."""
    try:
        with path.open("rb") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return {}
    found: dict[str, tuple[str, ...]] = {}
    for section in ("nodes", "sources"):
        for unique_id, entry in _mapping(_mapping(document).get(section)).items():
            columns = [
                c for c in _mapping(_mapping(entry).get("columns")).values() if isinstance(c, dict) and c.get("name")
            ]
            ordered = sorted(columns, key=_column_index)
            found[unique_id] = tuple(str(c["name"]) for c in ordered)
    return found


def _column_index(column: dict[str, Any]) -> int:
    """A catalog column's position (0 when the catalog gives none)."""
    index = column.get("index")
    return index if isinstance(index, int) else 0


def model_checksum(text: str) -> str:
    """The checksum dbt records for a SQL file: sha256 of its stripped text."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Relations:
    """Where ``ref(model)`` is in the warehouse of one dbt target (see the module docstring)."""

    def __init__(self, root: Path, target: DbtTarget, models_dir: Path | None = None):
        self.root = root
        self.target = target
        self.models_dir = models_dir

    @functools.cached_property
    def manifest(self) -> Manifest | None:
        """The project's parsed manifest, or None when dbt has not written one."""
        # on first use: a training-set query never needs it, only sync, check and error messages
        return load(self.root)

    # ---- the target's defaults, as dbt's default naming macros compute them --------------------
    def _target_database(self) -> str:
        config = self.target.config
        if self.target.type == "duckdb":
            if config.get("database"):
                return str(config["database"])
            path = str(config.get("path", ":memory:"))
            return "memory" if path == ":memory:" else Path(path).stem
        return str(config.get("dbname") or config.get("database") or "")

    def _default_location(self, node: Node | None, model: str) -> tuple[str | None, str, str]:
        """(database or None for the connection's own, schema, identifier) by dbt's default macros."""
        schema = self.target.schema
        if node is not None and node.config_schema:
            schema = f"{schema}_{str(node.config_schema).strip()}"
        alias = str(node.config_alias).strip() if node is not None and node.config_alias else model
        database = str(node.config_database).strip() if node is not None and node.config_database else None
        if database is None and self.target.type == "duckdb" and self.target.config.get("database"):
            database = str(self.target.config["database"])  # as before: the profile names the catalog
        return database, schema, alias

    def _matches_target(self, node: Node) -> bool:
        assert self.manifest is not None
        return (
            self.manifest.adapter_type == self.target.type
            and (node.database or "").lower() == self._target_database().lower()
        )

    def _models_prefix(self) -> str | None:
        if self.models_dir is None:
            return None
        try:
            return self.models_dir.resolve().relative_to(self.root.resolve()).as_posix() + "/"
        except ValueError:
            return None

    def node(self, model: str) -> Node | None:
        """The manifest's node of the model ``model``, or None without a manifest or such a model."""
        if self.manifest is None:
            return None
        found = self.manifest.find(model, self._models_prefix())
        return found if found is not None and found.resource_type == "model" else None

    def location(self, model: str) -> tuple[str | None, str, str]:
        """(database, schema, identifier) of ``model`` for this target; database None: the connection's."""
        node = self.node(model)
        if node is None:
            return self._default_location(None, model)
        assert self.manifest is not None
        if not self.manifest.custom_naming:
            return self._default_location(node, model)
        if self._matches_target(node):
            database = node.database if self.target.type == "duckdb" else None
            return database, node.schema, node.alias
        written_for = f"{self.manifest.adapter_type} database '{node.database}'"
        raise WarehouseError(
            f"{self._manifest_name()} was written for another dbt target ({written_for}), and the project "
            f"overrides {', '.join(self.manifest.custom_naming)}, so only dbt knows where model {model} is "
            f"in target '{self.target.target_name}': run 'dbt build --target {self.target.target_name}' "
            "(or 'dbt parse' with that target) first"
        )

    def relation(self, model: str) -> str:
        """The quoted relation name of ``model`` in this target's warehouse."""
        database, schema, identifier = self.location(model)
        parts = ([database] if database else []) + [schema, identifier]
        return ".".join(_quote(p) for p in parts)

    def _manifest_name(self) -> str:
        assert self.manifest is not None
        try:
            return self.manifest.path.relative_to(self.root).as_posix()
        except ValueError:
            return str(self.manifest.path)

    # ---- staleness ------------------------------------------------------------------------------
    def stale(self, models: list[str]) -> list[str]:
        """One sentence per generated model whose SQL changed after dbt last parsed or built the project.

        Nothing when there is no manifest (nothing to compare) or no models folder.
        """
        if self.manifest is None or self.models_dir is None:
            return []
        when = self.manifest.generated_at.replace("T", " ")[:19]
        messages = []
        for model in models:
            path = self.models_dir / f"{model}.sql"
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                continue  # not compiled yet: compile --check says so
            shown = _relative(path, self.root)
            node = self.node(model)
            if node is None:
                messages.append(
                    f"model {model} ({shown}) is not in {self._manifest_name()} of {when} UTC: "
                    "it was compiled after the last dbt build; run 'dbt build'"
                )
            elif node.checksum and node.checksum != model_checksum(text):
                messages.append(
                    f"model {model} ({shown}) changed after the last dbt build "
                    f"({self._manifest_name()} of {when} UTC), so its table is stale; run 'dbt build'"
                )
        return messages

    def describe(self, model: str) -> str:
        """Where the relation name came from, for error messages."""
        if self.manifest is None:
            return f"the default location (no {_relative(target_dir(self.root) / MANIFEST, self.root)} yet)"
        if self.node(model) is None:
            return f"the default location (model {model} is not in {self._manifest_name()})"
        return f"placed by {self._manifest_name()}"


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
