"""Read the warehouse connection the way dbt does: dbt_project.yml's profile, profiles.yml's target.

featurehouse never keeps a connection config of its own, so `dbt run`, the SDK and
`featurehouse sync` always talk to the same warehouse.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from featurehouse.errors import ConfigError, did_you_mean

# the adapters featurehouse's Python side reads (featurehouse.warehouse.ENGINES has their modules)
SUPPORTED_TYPES = ("duckdb", "postgres", "spark")


@dataclass(frozen=True)
class DbtTarget:
    """One output of profiles.yml, rendered (env_var() resolved)."""

    project_name: str
    profile_name: str
    target_name: str
    profiles_dir: Path
    config: dict[str, Any]

    @property
    def type(self) -> str:
        """The adapter type of the target (``duckdb``, ``postgres``...)."""
        return str(self.config.get("type", ""))

    @property
    def schema(self) -> str:
        """The schema dbt builds into (dbt's default when the profile names none)."""
        default = "main" if self.type == "duckdb" else "public"
        return str(self.config.get("schema", default))

    @property
    def dialect(self) -> str:
        """The sqlglot dialect name for this target."""
        return {
            "postgres": "postgres",
            "duckdb": "duckdb",
            "spark": "spark",
            "databricks": "databricks",
            "snowflake": "snowflake",
            "bigquery": "bigquery",
            "trino": "trino",
            "clickhouse": "clickhouse",
            "redshift": "redshift",
        }.get(self.type, self.type)


def _env_var(name: str, default: str | None = None) -> str:
    if name in os.environ:
        return os.environ[name]
    if default is not None:
        return default
    raise ConfigError(f"profiles.yml uses env_var('{name}'), but the environment variable {name} is not set")


# dbt's type filters (`port: "{{ env_var('PGPORT') | as_number }}"`): they ask for the rendered
# text to be read as a YAML value instead of kept as a string
_NATIVE_FILTERS = ("as_number", "as_bool", "as_native")


def _render(value: Any) -> Any:
    """Render dbt's Jinja in profile values (env_var, dbt's as_* filters, plain expressions)."""
    if isinstance(value, dict):
        return {k: _render(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v) for v in value]
    if isinstance(value, str) and "{{" in value:
        import jinja2

        environment = jinja2.Environment()
        environment.filters.update({name: lambda v: v for name in (*_NATIVE_FILTERS, "as_text")})
        try:
            rendered = environment.from_string(value).render(env_var=_env_var)
        except jinja2.TemplateError as error:
            raise ConfigError(f"profiles.yml: cannot render {value!r}: {error}") from None
        native = rendered.strip().isdigit() or any(name in value for name in _NATIVE_FILTERS)
        try:
            return yaml.safe_load(rendered) if native else rendered
        except yaml.YAMLError:
            return rendered
    return value


def profiles_dir_for(root: Path, profiles_dir: str | os.PathLike[str] | None = None) -> Path:
    """dbt's search order: --profiles-dir, DBT_PROFILES_DIR, the project folder, ~/.dbt."""
    candidates = [profiles_dir, os.environ.get("DBT_PROFILES_DIR"), root, Path.home() / ".dbt"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "profiles.yml").is_file():
            return Path(candidate).resolve()
    raise ConfigError(
        f"no profiles.yml found (looked in DBT_PROFILES_DIR, {root} and ~/.dbt); "
        "featurehouse uses dbt's own warehouse connection"
    )


def load_target(root: Path, target: str | None = None, profiles_dir: str | os.PathLike[str] | None = None) -> DbtTarget:
    """The dbt target the repo at ``root`` runs against (``target`` overrides the default)."""
    project_file = root / "dbt_project.yml"
    if not project_file.is_file():
        raise ConfigError(f"{project_file} does not exist: a feature repo is also a dbt project")
    project = yaml.safe_load(project_file.read_text()) or {}
    profile_name = project.get("profile")
    if not profile_name:
        raise ConfigError("dbt_project.yml has no 'profile:'; name the profiles.yml entry to use")
    folder = profiles_dir_for(root, profiles_dir)
    profiles = yaml.safe_load((folder / "profiles.yml").read_text()) or {}
    if profile_name not in profiles:
        raise ConfigError(
            f"profiles.yml in {folder} has no profile '{profile_name}'{did_you_mean(profile_name, profiles)}"
        )
    profile = profiles[profile_name]
    outputs = profile.get("outputs") or {}
    target_name = target or os.environ.get("DBT_TARGET") or _render(profile.get("target")) or "dev"
    if target_name not in outputs:
        raise ConfigError(f"profile '{profile_name}' has no target '{target_name}'{did_you_mean(target_name, outputs)}")
    config = _render(outputs[target_name])
    return DbtTarget(str(project.get("name", "")), profile_name, target_name, folder, config)
