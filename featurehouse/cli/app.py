"""The ``featurehouse`` command line.

User mistakes print one red ``Error: ...`` line and exit 1; ``--debug`` adds the traceback.
Heavy libraries are imported inside commands so that ``featurehouse --help`` is instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from featurehouse.errors import FeaturehouseError

if TYPE_CHECKING:
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.spec.repo import FeatureRepo


class FeaturehouseGroup(click.Group):
    """A click group that turns FeaturehouseError into one clear line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FeaturehouseError as error:
            if ctx.obj and ctx.obj.get("debug"):
                _show_hidden_causes(error)
                raise
            click.secho(f"Error: {error}", fg="red", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.secho("Interrupted.", fg="red", err=True)
            sys.exit(130)
        except ModuleNotFoundError as error:
            # `pip install featurehouse` leaves out the extras: Postgres, Redis, the server
            package = (error.name or "").split(".")[0]
            extra = _EXTRAS.get(package)
            if extra is None or (ctx.obj and ctx.obj.get("debug")):
                raise
            click.secho(
                f"Error: this needs the Python package {package}, which is not installed; "
                f"pip install 'featurehouse[{extra}]'",
                fg="red",
                err=True,
            )
            sys.exit(1)


def _show_hidden_causes(error: BaseException) -> None:
    """Make the traceback show every exception behind ``error``, also those ``raise ... from None`` hides.

    ``from None`` keeps a driver's or parser's exception out of the one-line message and out of
    the SDK's tracebacks; ``--debug`` asks for all of it.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__suppress_context__ = False
        current = current.__cause__ or current.__context__


# the optional dependencies' import names -> the pyproject extra that installs them
_EXTRAS = {
    "psycopg": "postgres",
    "redis": "redis",
    "hiredis": "redis",
    "fastapi": "server",
    "uvicorn": "server",
    "orjson": "server",
    "pyspark": "spark",
}


@click.group(cls=FeaturehouseGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks, with the exceptions that caused the error.")
@click.option(
    "--repo",
    "repo_path",
    default=".",
    type=click.Path(file_okay=False),
    show_default=True,
    help="The feature repo (a folder with featurehouse.yml, or below one).",
)
@click.option("--target", default=None, help="dbt target to use instead of the profile's default.")
@click.option(
    "--profiles-dir", default=None, type=click.Path(file_okay=False), help="Folder with profiles.yml, as for dbt."
)
@click.version_option(package_name="featurehouse")
@click.pass_context
def main(ctx: click.Context, debug: bool, repo_path: str, target: str | None, profiles_dir: str | None) -> None:
    """featurehouse: a warehouse-native, dbt-first feature store."""
    ctx.ensure_object(dict)
    ctx.obj.update(debug=debug, repo_path=repo_path, target=target, profiles_dir=profiles_dir)


def load_repo_from(ctx: click.Context) -> FeatureRepo:
    """The feature repo at ``--repo``, loaded and checked."""
    from featurehouse.spec.repo import load_repo

    return load_repo(ctx.obj["repo_path"])


def open_store(ctx: click.Context) -> FeatureStore:
    """A FeatureStore over ``--repo`` with the command's ``--target`` and ``--profiles-dir``."""
    from featurehouse.sdk.store import FeatureStore

    return FeatureStore(ctx.obj["repo_path"], target=ctx.obj["target"], profiles_dir=ctx.obj["profiles_dir"])


@main.command()
@click.option("--check", is_flag=True, help="Exit 1 if the committed models differ from what compile would write.")
@click.option("--dialect", default=None, help="SQL dialect to compile for; default: the type of the dbt target.")
@click.option(
    "--no-render",
    is_flag=True,
    help="Do not have dbt render each view's point-in-time join for the SDK (then the first training-set "
    "call starts dbt).",
)
@click.pass_context
def compile(ctx: click.Context, check: bool, dialect: str | None, no_render: bool) -> None:
    """Compile feature_specs/ into dbt models under models/featurehouse/."""
    from sqlglot.dialects.dialect import Dialect

    from featurehouse import __version__
    from featurehouse.compile import compiler
    from featurehouse.dbt import package_macros
    from featurehouse.dbt.profile import load_target
    from featurehouse.errors import CompileError, ConfigError

    repo = load_repo_from(ctx)
    _check_models_dir_is_built(repo.root, repo.config.models_dir)
    if dialect is None:
        try:
            dialect = load_target(repo.root, ctx.obj["target"], ctx.obj["profiles_dir"]).dialect
        except ConfigError as error:
            if ctx.obj["target"] or ctx.obj["profiles_dir"]:
                raise  # a target asked for by name must exist: compiling for another would mislead
            if (repo.root / "dbt_project.yml").is_file():
                # a dbt project whose profile is not found here (CI, DBT_PROFILES_DIR unset): DuckDB
                # models would silently replace, or be checked against, the warehouse's own
                raise ConfigError(f"{error}; or name the SQL dialect to compile for, e.g. --dialect postgres") from None
            dialect = "duckdb"  # specs without a dbt project yet: DuckDB is the embedded default
    try:
        Dialect.get_or_raise(dialect)
    except ValueError as error:  # sqlglot: "Unknown dialect 'x'. Did you mean y?"
        raise CompileError(f"cannot compile for the SQL dialect '{dialect}': {error}") from None
    files = compiler.compile_repo(repo, dialect)
    models_dir = repo.root / repo.config.models_dir
    if check:
        result = compiler.diff(models_dir, files)
        stale = result.written + result.removed
        macros = package_macros.vendored_differences(repo.root)
        if macros:
            click.secho(
                f"Error: {len(macros)} file(s) of featurehouse's macros differ from the installed featurehouse "
                f"{__version__} ({', '.join(macros)}); run 'featurehouse compile', then 'dbt deps'",
                fg="red",
                err=True,
            )
            sys.exit(1)
        package_macros.check_version(repo.root)
        if stale:
            click.secho(
                f"Error: {len(stale)} file(s) under {repo.config.models_dir} are stale "
                f"({', '.join(stale)}); run 'featurehouse compile'",
                fg="red",
                err=True,
            )
            sys.exit(1)
        click.echo(f"{len(files)} file(s) under {repo.config.models_dir} are up to date.")
        return
    macros = package_macros.write_vendored_copy(repo.root)
    if macros:
        click.echo(
            f"Updated {len(macros)} file(s) of featurehouse's macros to {__version__} "
            f"({', '.join(macros)}); run 'dbt deps' before 'dbt build'."
        )
    package_macros.check_version(repo.root)
    result = compiler.write(models_dir, files)
    click.echo(
        f"Compiled {len(repo.feature_views)} feature view(s) and {len(repo.training_sets)} training set(s) "
        f"for {dialect}: {len(result.written)} written, {len(result.removed)} removed, "
        f"{len(result.unchanged)} unchanged in {repo.config.models_dir}."
    )
    if not no_render and not macros:
        _render_pieces(ctx, repo, dialect)


def _render_pieces(ctx: click.Context, repo: FeatureRepo, dialect: str) -> None:
    """Have dbt render every view's point-in-time join once, so that no training-set call starts dbt
    (docs/decisions/0031-cold-training-calls.md). Not being able to is a note, not a failure."""
    from featurehouse.dbt.rendering import render_many
    from featurehouse.errors import FeaturehouseError
    from featurehouse.plan.joins import piece_call

    if not repo.feature_views or not (repo.root / "dbt_project.yml").is_file():
        return
    try:
        store = open_store(ctx)
        if store.target.dialect != dialect:
            return  # compiled for another warehouse than the target's: nothing to render against
        calls = [piece_call(repo, repo.feature_views[name], dialect) for name in sorted(repo.feature_views)]
        render_many(repo.root, store.target, calls, write_manifest=True)
    except FeaturehouseError as error:
        click.echo(f"Note: the training-set SQL was not rendered ahead ({error}); the first call will start dbt.")
        return
    click.echo(f"Rendered the point-in-time join of {len(calls)} feature view(s) with dbt for the SDK.")


def _check_models_dir_is_built(root: Path, models_dir: str) -> None:
    """Stop when dbt would not see the generated models: `dbt build` would then skip every feature view."""
    import yaml

    from featurehouse.errors import ConfigError

    project_file = root / "dbt_project.yml"
    if not project_file.is_file():
        return
    try:
        project = yaml.safe_load(project_file.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        return  # dbt itself will say what is wrong with it
    paths = (project.get("model-paths") if isinstance(project, dict) else None) or ["models"]
    if not isinstance(paths, list) or any("{{" in str(path) for path in paths):
        return  # rendered by dbt (e.g. per target): cannot be told here
    target = (root / models_dir).resolve()
    if not any(target.is_relative_to((root / str(path)).resolve()) for path in paths):
        raise ConfigError(
            f"featurehouse.yml: models_dir '{models_dir}' is not under the model-paths of dbt_project.yml "
            f"({', '.join(map(str, paths))}), so dbt would not build the feature views; set models_dir: "
            f"{Path(str(paths[0]), 'featurehouse').as_posix()}"
        )


@main.command("example-data")
@click.option("--seed", default=7, show_default=True, help="Random seed.")
@click.pass_context
def example_data(ctx: click.Context, seed: int) -> None:
    """Write the example repo's seed CSVs (timestamps relative to now) under seeds/."""
    from featurehouse.cli.example import write_example_data

    repo = load_repo_from(ctx)
    written = write_example_data(repo.root / "seeds", seed=seed)
    for path, rows in written.items():
        click.echo(f"wrote {rows:>6} rows to {Path(path).relative_to(repo.root)}")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", default=None, help="Project name (default: the folder's name).")
def init(directory: str, name: str | None) -> None:
    """Create a new feature repo in DIRECTORY from the driver-statistics example."""
    from featurehouse.cli.example import init_repo

    path = init_repo(Path(directory), name)
    click.echo(f"Created feature repo in {path}. Next:\n  cd {directory}\n  dbt deps && dbt build\n  featurehouse sync")
