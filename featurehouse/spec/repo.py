"""Load a feature repo: ``featurehouse.yml`` plus every spec file, validated as a whole.

Each user mistake becomes one ``SpecError`` naming the file, the line, the field, what
was expected and, for misspelt names, the closest existing one.
"""

from __future__ import annotations

import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from featurehouse.errors import ConfigError, RequestError, SpecError, did_you_mean, excerpt
from featurehouse.spec.model import (
    KIND_LABELS,
    MAX_IDENTIFIER_LENGTH,
    RESERVED_COLUMNS,
    TRAINING_SET_MODEL_PREFIX_LENGTH,
    VIEW_MODEL_PREFIX_LENGTH,
    Entity,
    FeatureService,
    FeatureView,
    ProjectConfig,
    RequestView,
    Source,
    SpecFile,
    TrainingSet,
    jinja_opener,
)
from featurehouse.spec.yaml_lines import LineMap, load_yaml_with_lines

CONFIG_FILE = "featurehouse.yml"
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Origin:
    """Where a spec object was written."""

    file: str
    line: int | None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class ViewSelection:
    """Some features of one feature view, as requested."""

    view: FeatureView
    features: tuple[str, ...]


@dataclass
class FeatureRepo:
    """Everything a feature repo defines, validated and cross-referenced."""

    root: Path
    config: ProjectConfig
    entities: dict[str, Entity] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    feature_views: dict[str, FeatureView] = field(default_factory=dict)
    feature_services: dict[str, FeatureService] = field(default_factory=dict)
    training_sets: dict[str, TrainingSet] = field(default_factory=dict)
    request_views: dict[str, RequestView] = field(default_factory=dict)
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)
    spec_files: list[Path] = field(default_factory=list)
    line_maps: dict[str, LineMap] = field(default_factory=dict)

    # ---- lookups -------------------------------------------------------------------
    def join_keys(self, view: FeatureView) -> list[str]:
        """The join keys of a view, in entity order."""
        keys: list[str] = []
        for entity_name in view.entities:
            for key in self.entities[entity_name].join_keys:
                if key not in keys:
                    keys.append(key)
        return keys

    def key_entity(self, view: FeatureView, key: str) -> Entity:
        """The first of ``view``'s entities that has the join key ``key`` (all share its dtype)."""
        for entity_name in view.entities:
            entity = self.entities[entity_name]
            if key in entity.join_keys:
                return entity
        raise KeyError(key)

    def join_key_dtype(self, view: FeatureView, key: str) -> str:
        """The dtype of ``key``, a join key of ``view``."""
        return self.key_entity(view, key).value_type

    def origin(self, kind: str, name: str) -> Origin | None:
        """Where the named object was defined (file and line), if known."""
        return self.origins.get((kind, name))

    def spec_error(
        self, kind: str, name: str, field_path: tuple[Any, ...], message: str, *, feature: str | None = None
    ) -> SpecError:
        """A SpecError about ``field_path`` of the named object, pointing at its file and line.

        ``feature`` names the feature of a view the message is about, so that the message
        reads ``feature view 'v', feature 'f': ...``.
        """
        origin = self.origins[(kind, name)]
        line = origin.line
        lines = self.line_maps.get(origin.file)
        if lines is not None:
            # LineMaps are per file, so the index that counts is the one within that file
            same_file = [n for n in getattr(self, kind) if self.origins[(kind, n)].file == origin.file]
            line = lines.line((kind, same_file.index(name), *field_path)) or line
        subject = f"{KIND_LABELS[kind]} '{name}'" + (f", feature '{feature}'" if feature else "")
        return SpecError(f"{subject}: {message}", origin.file, line)

    def resolve_features(self, features: str | list[str] | tuple[str, ...]) -> list[ViewSelection]:
        """Turn a service name or a list of ``view:feature`` / ``view`` refs into selections.

        Views keep the order of their first mention; features keep the order asked for.
        """
        if isinstance(features, str):
            if features in self.feature_services:
                return self.resolve_features(self.feature_services[features].features)
            if features in self.feature_views or ":" in features:
                return self.resolve_features([features])
            raise RequestError(
                f"unknown feature view or feature service '{features}'"
                f"{did_you_mean(features, list(self.feature_services) + list(self.feature_views))}"
            )
        if not features:
            raise RequestError("no features requested: pass a feature service name or a list of 'view:feature' refs")
        order: list[str] = []
        chosen: dict[str, list[str]] = {}
        for ref in features:
            view_name, names = self._parse_ref(ref)
            if view_name not in chosen:
                order.append(view_name)
                chosen[view_name] = []
            for name in names:
                if name not in chosen[view_name]:
                    chosen[view_name].append(name)
        return [ViewSelection(self.feature_views[v], tuple(chosen[v])) for v in order]

    def _parse_ref(self, ref: object) -> tuple[str, list[str]]:
        if not isinstance(ref, str) or not ref:
            raise RequestError(f"expected a feature ref such as 'driver_hourly_stats:conv_rate', got {excerpt(ref)}")
        view_name, _, feature_name = ref.partition(":")
        if ref in self.feature_services and ref not in self.feature_views:
            raise RequestError(
                f"'{ref}' is a feature service, not a feature view: ask for it alone "
                "(not in a list of refs), or list its features as 'view:feature' refs"
            )
        if view_name not in self.feature_views:
            raise RequestError(
                f"unknown feature view '{view_name}' in '{ref}'{did_you_mean(view_name, self.feature_views)}"
            )
        view = self.feature_views[view_name]
        if not feature_name:
            if ref.endswith(":"):
                raise RequestError(
                    f"'{ref}' names no feature after ':'; write '{view_name}' for all its features "
                    f"or '{view_name}:{view.feature_names[0]}' for one"
                )
            return view_name, view.feature_names
        if feature_name not in view.feature_names:
            raise RequestError(
                f"feature view '{view_name}' has no feature '{feature_name}'"
                f"{did_you_mean(feature_name, view.feature_names)}"
            )
        return view_name, [feature_name]


# ---- loading ---------------------------------------------------------------------------
def find_repo_root(start: str | os.PathLike[str] = ".") -> Path:
    """The nearest folder at or above ``start`` holding featurehouse.yml."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ConfigError(
        f"no {CONFIG_FILE} found in {here} or any folder above it; run 'featurehouse init DIR' to create a feature repo"
    )


def expand_env(value: str, where: str, file: str | None = None, line: int | None = None) -> str:
    """Replace ``${VAR}`` with the environment's value; an unset variable is an error.

    With ``file`` the error is a SpecError pointing at ``file:line``.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            message = f"{where} uses ${{{name}}}, but the environment variable {name} is not set"
            raise SpecError(message, file, line) if file else ConfigError(message)
        return os.environ[name]

    return _ENV_VAR.sub(replace, value)


def expand_url_env(url: str, where: str, file: str | None = None, line: int | None = None) -> str:
    """``expand_env`` for a URL: values substituted into its user info or query are percent-encoded.

    So a password such as ``Sup3r@Secret/9`` stays a password instead of turning into a host
    name. A variable that holds the whole URL (or its scheme) is taken as it is.
    """
    from urllib.parse import quote

    scheme_end = url.find("://")
    if scheme_end < 0:
        return expand_env(url, where, file, line)
    rest = url[scheme_end + 3 :]
    host_start = rest.rfind("@") + 1  # the template's user info ends at its last '@'
    path_start = min((i for i in (rest.find("/", host_start), rest.find("?", host_start)) if i >= 0), default=len(rest))
    query_start = rest.find("?", host_start)
    pieces = [(url[: scheme_end + 3], False), (rest[:host_start], True), (rest[host_start:path_start], False)]
    if query_start >= 0:
        pieces += [(rest[path_start:query_start], False), (rest[query_start:], True)]
    else:
        pieces.append((rest[path_start:], False))
    out = []
    for text, encode in pieces:
        if encode:
            text = _ENV_VAR.sub(lambda m: quote(expand_env(m.group(0), where, file, line), safe=""), text)
        else:
            text = expand_env(text, where, file, line)
        out.append(text)
    return "".join(out)


# the suffix of the table each feature view model's DuckDB hook writes beside it
# (macros/event_time_winners.sql; docs/decisions/0032-event-time-winners.md)
WINNERS_SUFFIX = "__winners"
INTERNAL_PREFIX = "__fh_"
_RESERVED_FOLDED = frozenset(column.lower() for column in RESERVED_COLUMNS)  # compared ignoring case


def _check_url(store: Any, line: int | None) -> None:
    """A Postgres or Redis URL that cannot work is one sentence at load time (the URL redacted)."""
    from urllib.parse import urlsplit

    url = str(store.url)
    schemes = {"postgres": ("postgresql", "postgres"), "redis": ("redis", "rediss", "unix")}[store.type]
    if store.type == "postgres" and "://" not in url:
        return  # a libpq key=value string: libpq checks it
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise SpecError(
            f"online_store.url must start with {' or '.join(s + '://' for s in schemes)} for type "
            f"{store.type}, not {(parts.scheme + '://') if parts.scheme else 'no scheme'}",
            CONFIG_FILE,
            line,
        )
    try:
        # reading the port raises ValueError for a port that is not a number in 0-65535
        parts.port  # noqa: B018
    except ValueError:
        port = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        shown = port if port.isdigit() or len(port) < 12 else "(not a number)"
        raise SpecError(
            f"online_store.url (host {parts.hostname or 'localhost'}) has the port {shown!r}, "
            "which is not a number from 1 to 65535",
            CONFIG_FILE,
            line,
        ) from None


def load_config(root: Path) -> ProjectConfig:
    """Read and check featurehouse.yml at ``root``; ConfigError with file and line otherwise."""
    path = root / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; run 'featurehouse init DIR' to create a feature repo")
    _check_inside_repo(root, path, CONFIG_FILE)
    data, lines = load_yaml_with_lines(path, CONFIG_FILE)
    if not isinstance(data, dict):
        raise SpecError("expected a mapping with at least 'project:'", CONFIG_FILE, 1)
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as error:
        raise _spec_error(error, data, lines, CONFIG_FILE, ProjectConfig) from None
    store = config.online_store
    # a url with type sqlite (or a path with postgres) is a store switched halfway: sync would
    # silently write somewhere else than the user meant
    misplaced = {"url": "postgres or redis", "path": "sqlite", "schema_": "postgres", "key_prefix": "redis"}
    for key, types in misplaced.items():
        if key in store.model_fields_set and store.type not in types.split(" or "):
            shown = key.rstrip("_")
            raise SpecError(
                f"online_store.{shown} is for type {types}, but online_store.type is {store.type}; "
                f"remove {shown}: or change the type",
                CONFIG_FILE,
                lines.line(("online_store", shown)),
            )
    updates: dict[str, Any] = {}
    for key in ("path", "url"):
        value = getattr(store, key)
        if value:
            expand = expand_url_env if key == "url" else expand_env
            updates[key] = expand(value, f"online_store.{key}", CONFIG_FILE, lines.line(("online_store", key)))
    if store.type == "sqlite" and not (updates.get("path") or store.path):
        updates["path"] = "data/online.db"
    if store.type in ("postgres", "redis") and not (updates.get("url") or store.url):
        raise SpecError(
            f"online_store.type {store.type} needs online_store.url (e.g. "
            + ("postgresql://user@host:5432/db)" if store.type == "postgres" else "redis://localhost:6379/0)"),
            CONFIG_FILE,
            lines.line(("online_store",)),
        )
    if updates:
        config = config.model_copy(update={"online_store": store.model_copy(update=updates)})
    if config.online_store.type in ("postgres", "redis"):
        _check_url(config.online_store, lines.line(("online_store", "url")))
    return config


def load_repo(start: str | os.PathLike[str] = ".") -> FeatureRepo:
    """Load and validate the feature repo at or above ``start``."""
    root = find_repo_root(start)
    config = load_config(root)
    specs_dir = root / config.specs
    if not specs_dir.is_dir():
        problem = "is a file, not a folder" if specs_dir.exists() else f"does not exist under {root}"
        raise ConfigError(f"{CONFIG_FILE}: specs folder '{config.specs}' {problem}")
    if (root / config.models_dir).resolve().is_relative_to(specs_dir.resolve()):
        # compile would write schema.yml where the next compile reads specs
        raise ConfigError(
            f"{CONFIG_FILE}: models_dir '{config.models_dir}' is inside the specs folder "
            f"'{config.specs}'; put the generated models elsewhere, e.g. models/featurehouse"
        )
    repo = FeatureRepo(root=root, config=config)
    for path in spec_files(specs_dir):
        display = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
        # the specs folder featurehouse.yml names may be elsewhere (shared specs), but what
        # it holds may not lead out of it
        _check_inside_repo(root, path, display, specs_dir)
        spec_file, lines = _load_spec_file(path, display)
        repo.line_maps[display] = lines
        repo.spec_files.append(path)
        for kind in KIND_LABELS:
            for index, item in enumerate(getattr(spec_file, kind)):
                _register(repo, kind, item, Origin(display, lines.line((kind, index))))
    _check_references(repo)
    from featurehouse.spec.request_views import validate as validate_request_views

    validate_request_views(repo)
    _check_sources(repo)
    return repo


def _check_sources(repo: FeatureRepo) -> None:
    """What compile checks against the data: file columns and types, aggregation columns (not the
    SQL dialect's own checks, expressions and path sources, which need the dbt target)."""
    from featurehouse.spec import aggregation_checks
    from featurehouse.spec.sources import known_source_columns

    for name in sorted(repo.feature_views):
        known_source_columns(repo, repo.feature_views[name])
    aggregation_checks.validate(repo)


def spec_files(specs_dir: Path) -> list[Path]:
    """Every *.yml / *.yaml file under ``specs_dir``, sorted; hidden files and folders are skipped
    (editor backups, ``.ipynb_checkpoints`` copies would otherwise define everything twice)."""
    return sorted(
        path
        for path in specs_dir.rglob("*")
        if path.suffix.lower() in (".yml", ".yaml")
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(specs_dir).parts)
    )


def _check_inside_repo(root: Path, path: Path, display: str, specs_dir: Path | None = None) -> None:
    """Refuse a spec or config file that is a link to a file outside the repo (``/etc/shadow``)
    and outside the specs folder featurehouse.yml names: featurehouse reads the repo, and its
    error messages must not show another file's text."""
    target = path.resolve()
    allowed = [root.resolve()] + ([specs_dir.resolve()] if specs_dir is not None else [])
    if not any(target.is_relative_to(folder) for folder in allowed):
        raise SpecError(
            "this file is a link to a file outside the feature repo; featurehouse reads only files inside "
            f"{root}: copy the file into the repo instead",
            display,
        )


def _refuse_templates(document: dict[str, Any], lines: LineMap, file: str) -> None:
    """No string anywhere in a spec file (key or value) may open Jinja.

    Descriptions, owners and tags land in schema.yml and expressions in the models, and dbt
    renders both: ``owner: "{{ env_var('SECRET') }}"`` would put a secret into the manifest,
    ``{{ run_query(...) }}`` would run SQL. Specs hold text and SQL, never templates
    (docs/decisions/0009-no-templates-from-specs.md); the compiler checks what it emits too.
    """
    for loc, text, is_key in _strings(document, ()):
        mark = jinja_opener(text)
        if mark is None:
            continue
        subject = _subject(document, loc)
        inner = loc[4:] if ", feature '" in subject else loc[2:] if subject else loc
        field_path = _field_path(inner[:-1] if is_key else inner)
        what = f"{field_path}: the key {excerpt(text)}" if is_key else field_path
        advice = (
            "write plain SQL over source columns"
            if loc[-1] == "expression" and not is_key
            else "specs hold plain text and SQL, not templates: remove it"
        )
        message = (
            f"{what} contains '{mark}', which dbt would render as Jinja (a template can read environment "
            f"variables and run SQL); {advice}"
        ).lstrip(": ")
        raise SpecError(f"{subject}: {message}" if subject else message, file, lines.line(loc))


def _strings(data: Any, loc: tuple[Any, ...]) -> typing.Iterator[tuple[tuple[Any, ...], str, bool]]:
    """(location, text, is it a key) of every string in a loaded YAML document."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        here = (*loc, key)
        if isinstance(data, dict) and isinstance(key, str):
            yield here, key, True
        if isinstance(value, str):
            yield here, value, False
        else:
            yield from _strings(value, here)


def _load_spec_file(path: Path, display: str) -> tuple[SpecFile, LineMap]:
    mark = jinja_opener(display)
    if mark:  # the name is written into the models' headers and schema.yml, which dbt renders
        raise SpecError(f"the file name contains '{mark}', which dbt would render as Jinja; rename the file", display)
    if not display.isprintable():  # a newline would end the header's SQL comment: what follows would run
        raise SpecError(
            "the file name contains a newline or another control character; rename the file", excerpt(display, 200)
        )
    data, lines = load_yaml_with_lines(path, display)
    if data is None:
        return SpecFile(), lines
    if not isinstance(data, dict):
        raise SpecError(f"expected a mapping with keys {', '.join(KIND_LABELS)}, got {type(data).__name__}", display, 1)
    _refuse_templates(data, lines, display)
    try:
        return SpecFile.model_validate(data), lines
    except ValidationError as error:
        raise _spec_error(error, data, lines, display, SpecFile) from None


def _register(repo: FeatureRepo, kind: str, item: Any, origin: Origin) -> None:
    table: dict[str, Any] = getattr(repo, kind)
    if item.name in table:
        first = repo.origins[(kind, item.name)]
        raise SpecError(
            f"{KIND_LABELS[kind]} '{item.name}' is defined twice: first at {first}, again here",
            origin.file,
            origin.line,
        )
    # DuckDB, SQLite and case-insensitive file systems see fv_Driver and fv_driver as one
    same = next((n for n in table if n.lower() == item.name.lower()), None)
    if same is not None:
        raise SpecError(
            f"{KIND_LABELS[kind]} '{item.name}' differs only in case from the {KIND_LABELS[kind]} '{same}' at "
            f"{repo.origins[(kind, same)]}; names must differ in more than case",
            origin.file,
            origin.line,
        )
    prefix = {"feature_views": VIEW_MODEL_PREFIX_LENGTH, "training_sets": TRAINING_SET_MODEL_PREFIX_LENGTH}.get(kind)
    if prefix and len(item.name) + prefix > MAX_IDENTIFIER_LENGTH:
        raise SpecError(
            f"{KIND_LABELS[kind]} '{item.name}' is {len(item.name)} characters; at most "
            f"{MAX_IDENTIFIER_LENGTH - prefix}, so that the name of its dbt model fits in "
            f"{MAX_IDENTIFIER_LENGTH} characters",
            origin.file,
            origin.line,
        )
    if kind == "feature_views" and item.name.lower().endswith(WINNERS_SUFFIX):
        raise SpecError(
            f"feature view '{item.name}' ends in '{item.name[-len(WINNERS_SUFFIX) :]}', which is reserved: on DuckDB "
            f"fv_<view>{WINNERS_SUFFIX} is the table of a view's point-in-time winners, so fv_{item.name} would "
            f"also name that of view '{item.name[: -len(WINNERS_SUFFIX)]}'; choose another name",
            origin.file,
            origin.line,
        )
    # views, request views and services share one namespace: all can be named in `features:`
    namespace = ("feature_views", "feature_services", "request_views")
    twin = next((k for k in namespace if kind in namespace and k != kind and item.name in getattr(repo, k)), None)
    if twin and item.name in getattr(repo, twin):
        first = repo.origins[(twin, item.name)]
        raise SpecError(
            f"{KIND_LABELS[kind]} '{item.name}' has the same name as the {KIND_LABELS[twin]} at {first}; "
            "views and services share one namespace",
            origin.file,
            origin.line,
        )
    table[item.name] = item
    repo.origins[(kind, item.name)] = origin


def _check_references(repo: FeatureRepo) -> None:
    def fail(kind: str, name: str, field_path: tuple[Any, ...], message: str) -> typing.NoReturn:
        raise repo.spec_error(kind, name, field_path, message)

    from featurehouse.spec.push import check_push_sources
    from featurehouse.spec.request_views import regular_selections

    check_push_sources(repo)  # first: the checks below read a view's source as a batch source
    for declared in repo.entities.values():
        _check_join_key_names(repo, declared)
    for view in repo.feature_views.values():
        for i, entity in enumerate(view.entities):
            if entity not in repo.entities:
                fail(
                    "feature_views",
                    view.name,
                    ("entities", i),
                    f"unknown entity '{entity}'{did_you_mean(entity, repo.entities)}",
                )
        if view.source not in repo.sources:
            fail(
                "feature_views",
                view.name,
                ("source",),
                f"unknown source '{view.source}'{did_you_mean(view.source, repo.sources)}",
            )
        _check_key_types(repo, view)
        _check_feature_names(repo, view)
    for service in repo.feature_services.values():
        for i, ref in enumerate(service.features):
            try:
                regular_selections(repo, [ref])
            except RequestError as error:
                fail("feature_services", service.name, ("features", i), str(error))
    for training_set in repo.training_sets.values():
        features = training_set.features
        try:
            if isinstance(features, str):
                if features not in repo.feature_services and features not in repo.feature_views:
                    raise RequestError(
                        f"unknown feature service '{features}'"
                        f"{did_you_mean(features, list(repo.feature_services) + list(repo.feature_views))}"
                    )
            selections = regular_selections(repo, features)
        except RequestError as error:
            fail("training_sets", training_set.name, ("features",), str(error))
        _check_training_set_columns(repo, training_set, selections)


def _check_join_key_names(repo: FeatureRepo, entity: Entity) -> None:
    """A join key is a column beside the timestamps and the macros' own columns in every model
    and query: one named like them would be read as them, or make the SQL ambiguous."""
    for i, key in enumerate(entity.join_keys):
        message = _reserved_name_message("join key", key)
        if message is not None:
            raise repo.spec_error("entities", entity.name, ("join_keys", i), message)


def _reserved_name_message(label: str, name: str) -> str | None:
    """Why ``name`` (a feature, aggregation or join key) may not be used, or None: featurehouse's
    own columns, and the prefix of the columns the macros add beside them (__fh_row, __fh_e ...)."""
    folded = name.lower()
    if folded in _RESERVED_FOLDED:
        return (
            f"{label} '{name}' has a name featurehouse reserves for its own columns "
            f"({', '.join(sorted(RESERVED_COLUMNS))}); rename the {label}"
        )
    if folded.startswith(INTERNAL_PREFIX):
        return (
            f"{label} '{name}' starts with '{INTERNAL_PREFIX}', which featurehouse reserves for its own "
            f"columns; rename the {label}"
        )
    return None


def _check_key_types(repo: FeatureRepo, view: FeatureView) -> None:
    """The join keys of a view are distinct columns, and one shared by two entities has one dtype."""
    seen: dict[str, Entity] = {}
    folded: dict[str, str] = {}
    for entity_name in view.entities:
        entity = repo.entities[entity_name]
        for key in entity.join_keys:
            other = folded.setdefault(key.lower(), key)
            if other != key:
                raise repo.spec_error(
                    "feature_views",
                    view.name,
                    ("entities",),
                    f"join keys '{other}' and '{key}' differ only in case, and warehouses treat the two as one "
                    "column; rename one",
                )
            first = seen.setdefault(key, entity)
            if first.value_type != entity.value_type:
                raise repo.spec_error(
                    "feature_views",
                    view.name,
                    ("entities",),
                    f"join key '{key}' is {first.value_type} in entity '{first.name}' but {entity.value_type} "
                    f"in entity '{entity.name}'; give both entities the same value_type",
                )


def _check_training_set_columns(repo: FeatureRepo, training_set: TrainingSet, selections: list[ViewSelection]) -> None:
    """Each feature column of a training set has its own name, of at most 63 characters."""
    from featurehouse.spec.outputs import JoinPlan, output_clash

    plan = JoinPlan(tuple(selections), training_set.full_feature_names)
    columns = plan.output_names()
    clash = output_clash(plan)
    for column in columns[: clash.index if clash else len(columns)]:
        if len(column) > MAX_IDENTIFIER_LENGTH:
            raise repo.spec_error(
                "training_sets",
                training_set.name,
                ("full_feature_names",),
                f"column '{column}' is {len(column)} characters, more than the {MAX_IDENTIFIER_LENGTH} "
                "Postgres keeps; shorten the view or feature name",
            )
    if clash is not None:
        hint = (
            "; set full_feature_names: true on the training set to get 'view__feature' columns"
            if not training_set.full_feature_names
            else ""
        )
        raise repo.spec_error(
            "training_sets",
            training_set.name,
            ("features",),
            f"column '{columns[clash.index]}' would come from both feature view '{clash.earlier}' and "
            f"'{clash.view}'{hint}",
        )


def _check_feature_names(repo: FeatureRepo, view: FeatureView) -> None:
    """Each output column of a view (join keys, timestamps, features) has its own name."""
    # compared ignoring case: DuckDB and SQLite treat "Conv_Rate" and "conv_rate" as one column
    key_owner = {key.lower(): (key, entity) for entity in view.entities for key in repo.entities[entity].join_keys}
    named: list[tuple[tuple[str | int, ...], str, str]] = [
        (("schema", i, "name"), f.name, "feature") for i, f in enumerate(view.features)
    ]
    named += [(("aggregations", i), a.output_name, "aggregation") for i, a in enumerate(view.aggregations)]
    first: dict[str, tuple[str, int | None]] = {}
    for field_path, name, label in named:
        where = repo.spec_error("feature_views", view.name, field_path, "")
        folded = name.lower()
        if folded in key_owner:
            key, entity = key_owner[folded]
            message = f"{label} '{name}' has the name of the join key '{key}' of entity '{entity}'; rename the {label}"
            if key == name:
                message = f"{label} '{name}' has the name of the join key of entity '{entity}'; rename the {label}"
        elif (reserved_message := _reserved_name_message(label, name)) is not None:
            message = reserved_message
        elif folded in first:
            other, line = first[folded]
            message = f"{label} '{name}' is declared twice (first at line {line})"
            if other != name:
                message = (
                    f"{label} '{name}' differs only in case from '{other}' (line {line}), "
                    "and warehouses treat the two as one column; rename one"
                )
        elif len(name) > MAX_IDENTIFIER_LENGTH:
            message = (
                f"{label} name '{name}' is {len(name)} characters, more than {MAX_IDENTIFIER_LENGTH}; "
                "give the aggregation a shorter name:"
            )
        else:
            first[folded] = (name, where.line)
            continue
        raise repo.spec_error("feature_views", view.name, field_path, message)


# ---- pydantic errors → one sentence ---------------------------------------------------------
def _spec_error(error: ValidationError, data: Any, lines: LineMap, file: str, root_model: type[BaseModel]) -> SpecError:
    errors = error.errors()
    # a misspelt key also makes the real one "missing": the misspelling is the one to report
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(first["loc"])
    # pydantic adds the union member or validator name to the loc in some cases; drop them
    loc = tuple(part for part in loc if not (isinstance(part, str) and ("[" in part or part.startswith("function-"))))
    line = lines.line(loc)
    subject = _subject(data, loc)
    # the path of the field inside the object the subject names
    inner = loc[4:] if ", feature '" in subject else loc[2:] if subject else loc
    kind = first["type"]
    if kind == "extra_forbidden":
        owner = _model_at(root_model, loc[:-1])
        allowed = _field_names(owner) if owner else []
        what = "top-level key" if len(loc) == 1 else "field"
        hint = did_you_mean(str(loc[-1]), allowed)
        message = f"unknown {what} '{loc[-1]}'{hint}"
        if not hint and allowed:
            message += f"; expected one of {', '.join(allowed)}"
        parent = _field_path(inner[:-1])
        message = f"{parent}: {message}" if parent else message
    elif kind == "missing":
        message = f"missing required field '{loc[-1]}'"
        parent = _field_path(inner[:-1])
        message = f"{parent}: {message}" if parent else message
    else:
        text = first["msg"]
        if text.startswith("Value error, "):
            text = text[len("Value error, ") :]
        elif kind == "literal_error":
            choices = re.findall(r"'([^']*)'", str(first.get("ctx", {}).get("expected", "")))
            text = (
                f"expected {first['ctx']['expected']}, got {excerpt(first.get('input'))}"
                f"{did_you_mean(str(first.get('input')), choices)}"
            )
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            example = " such as {name: conv_rate, dtype: float32}" if inner[-2:-1] == ("schema",) else ""
            text = f"expected a mapping{example}, got {_shown(first.get('input'))}"
        elif kind == "list_type":
            value = first.get("input")
            example = f" such as [{value}]" if isinstance(value, (str, int, float)) else ""
            text = f"expected a list{example}, got {_shown(value)}"
            if isinstance(value, dict):
                text += " (write each item on its own line, starting with '- ')"
        elif kind in ("bool_type", "bool_parsing"):
            text = f"expected true or false, got {_shown(first.get('input'))}"
        elif text.startswith("Input should be "):
            value = first.get("input")
            text = "expected " + text[len("Input should be ") :] + f", got {_shown(value)}"
            if isinstance(value, bool):
                text += " (YAML reads yes, no, on and off as booleans: quote the value)"
        elif text.startswith("List should have at least 1 item"):
            text = "expected at least one item"
        field_path = _field_path(inner)
        message = f"{field_path}: {text}" if field_path else text
    if subject:
        message = f"{subject}: {message}"
    return SpecError(message, file, line)


def _shown(value: Any) -> str:
    """A value as the user wrote it in YAML, briefly: a whole mapping would not fit in one sentence."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    return excerpt(value)


def _printable(name: str) -> str:
    """``conv_rate\\n`` for a name with a newline, so that the message stays one line."""
    return name if name.isprintable() and len(name) <= 60 else excerpt(name)[1:-1]


def _subject(data: Any, loc: tuple[Any, ...]) -> str:
    """``feature view 'driver_hourly_stats'`` for a loc inside that item, else empty.

    Inside a view's ``schema:`` list it also names the feature:
    ``feature view 'driver_hourly_stats', feature 'conv_rate'``.
    """
    if len(loc) >= 2 and loc[0] in KIND_LABELS and isinstance(loc[1], int):
        try:
            item = data[loc[0]][loc[1]]
        except (KeyError, IndexError, TypeError):
            return ""
        label = KIND_LABELS[loc[0]]
        if not (isinstance(item, dict) and isinstance(item.get("name"), str)):
            return f"{label} #{loc[1] + 1}"
        subject = f"{label} '{_printable(item['name'])}'"
        if _in_feature(loc) and len(loc) > 4:
            schema = item.get("schema")
            feature = schema[loc[3]] if isinstance(schema, list) and loc[3] < len(schema) else None
            if isinstance(feature, dict) and isinstance(feature.get("name"), str):
                subject += f", feature '{_printable(feature['name'])}'"
        return subject
    return ""


def _in_feature(loc: tuple[Any, ...]) -> bool:
    """Is ``loc`` inside one feature of a view's ``schema:`` list?"""
    return len(loc) >= 4 and loc[0] == "feature_views" and loc[2] == "schema" and isinstance(loc[3], int)


def _field_path(loc: tuple[Any, ...]) -> str:
    """``schema[1].dtype`` for ``('schema', 1, 'dtype')``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _unwrap_model(arg)
        if found:
            return found
    return None


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        info = next((f for name, f in model.model_fields.items() if name == part or f.alias == part), None)
        if info is None:
            return None
        model = _unwrap_model(info.annotation)
    return model


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]
