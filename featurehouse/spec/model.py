"""Spec models: entities, sources, feature views, feature services and training sets.

Every model forbids unknown fields; names are plain identifiers so that nothing can
smuggle SQL through a name. Cross-references are checked in ``featurehouse.spec.repo``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from featurehouse.errors import excerpt
from featurehouse.spec.durations import parse_duration

# \Z, not $: "$" also matches before a trailing newline, and "conv_rate\n" is no identifier
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_IDENTIFIER_LENGTH = 63  # Postgres truncates longer identifiers silently

SCALAR_DTYPES = ("bool", "int32", "int64", "float32", "float64", "string", "bytes", "timestamp")
ARRAY_DTYPE = re.compile(r"^array<\s*([a-z0-9]+)\s*>$")

# Columns every normalised feature-view model carries, and the bookkeeping columns of the
# incremental online snapshots (macros/incremental_latest_snapshot.sql); a feature may not
# take these names.
EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
# snapshot_built_at: when the dbt invocation that wrote a row started; `featurehouse sync`
# fetches only the rows written after the newest one it saw (featurehouse/sync/snapshot.py)
SNAPSHOT_BUILT_AT = "snapshot_built_at"
SNAPSHOT_COLUMNS = ("snapshot_as_of", SNAPSHOT_BUILT_AT, "snapshot_definition")
RESERVED_COLUMNS = frozenset({EVENT_TIMESTAMP, CREATED_TIMESTAMP, *SNAPSHOT_COLUMNS})

AGGREGATION_FUNCTIONS = ("sum", "count", "mean", "min", "max", "stddev")
# other spellings of the functions (SQL's, pandas'), for "did you mean ...?"
_FUNCTION_SYNONYMS = {
    "avg": "mean",
    "average": "mean",
    "std": "stddev",
    "stdev": "stddev",
    "std_dev": "stddev",
    "stddev_samp": "stddev",
    "cnt": "count",
    "total": "sum",
    "minimum": "min",
    "maximum": "max",
}
# the longest prefix of a model named after a view (online_<view>) or a training set (ts_<name>),
# so that the model's name fits in MAX_IDENTIFIER_LENGTH too
VIEW_MODEL_PREFIX_LENGTH = len("online_")
TRAINING_SET_MODEL_PREFIX_LENGTH = len("ts_")
# a ttl beyond a century is a typo (0 means unlimited) and would overflow timestamp arithmetic
MAX_TTL = 36500 * 86400


def check_identifier(value: str) -> str:
    """``value`` if it is a SQL identifier featurehouse accepts, else ValueError with a suggestion."""
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        # a name with dashes, dots or spaces has an obvious identifier spelling; one with
        # quotes or semicolons looks like SQL, and guessing a name for it would not help
        plain = re.sub(r"[-. ]", "_", value) if isinstance(value, str) else ""
        suggest = plain != value and IDENTIFIER.match(plain) and len(plain) <= MAX_IDENTIFIER_LENGTH
        hint = f" (did you mean '{plain}'?)" if suggest else ""
        raise ValueError(
            "expected a plain identifier (letters, digits and _, not starting with a digit), "
            f"got {excerpt(value)}{hint}"
        )
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(f"names are at most {MAX_IDENTIFIER_LENGTH} characters, {excerpt(value)} has {len(value)}")
    return value


def check_key_dtype(value: str) -> str:
    """``value`` as a scalar dtype (join keys cannot be arrays), else ValueError."""
    dtype = check_dtype(value)
    if dtype.startswith("array<"):
        raise ValueError(f"join keys are scalars: expected one of {', '.join(SCALAR_DTYPES)}, got {excerpt(value)}")
    return dtype


def check_dtype(value: str) -> str:
    """``value`` normalised (lower case, no spaces) if it is a supported dtype, else ValueError."""
    if isinstance(value, str):
        normalised = value.strip().lower()
        if normalised in SCALAR_DTYPES:
            return normalised
        match = ARRAY_DTYPE.match(normalised)
        if match and match.group(1) in SCALAR_DTYPES:
            return f"array<{match.group(1)}>"
    from featurehouse.errors import did_you_mean

    hint = did_you_mean(str(value), SCALAR_DTYPES) or " (arrays are written array<float32>)"
    raise ValueError(f"expected one of {', '.join(SCALAR_DTYPES)} or array<T>, got {excerpt(value)}{hint}")


def _duration(value: object) -> int:
    return parse_duration(value)


# What starts Jinja in a file dbt renders; no spec text may contain one
# (docs/decisions/0009-no-templates-from-specs.md)
JINJA_OPENERS = ("{{", "{%", "{#")


def jinja_opener(text: str) -> str | None:
    """The first Jinja opening delimiter in ``text`` (``{{``, ``{%`` or ``{#``), or None.

    Only openers matter: outside a tag, Jinja copies ``}}``, ``%}`` and ``#}`` as text, and
    featurehouse never places spec text inside a tag (only validated identifiers go there).
    """
    return next((mark for mark in JINJA_OPENERS if mark in text), None)


def check_path(value: str) -> str:
    """``value`` if it holds no Jinja (the path is written into a dbt model), else ValueError."""
    # the path lands in a dbt model, where Jinja would be rendered
    if jinja_opener(value):
        raise ValueError(f"expected a file path without Jinja ({{{{, {{% or {{#), got {excerpt(value)}")
    return value


Identifier = Annotated[str, AfterValidator(check_identifier)]
FilePath = Annotated[str, AfterValidator(check_path)]
DType = Annotated[str, AfterValidator(check_dtype)]
KeyDType = Annotated[str, AfterValidator(check_key_dtype)]
Duration = Annotated[int, BeforeValidator(_duration)]


class SpecModel(BaseModel):
    """Base of the spec objects: unknown fields are errors, and specs are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Entity(SpecModel):
    """An ``entities:`` entry: what features are about, and the join keys that identify it."""

    name: Identifier
    join_keys: list[Identifier] = Field(min_length=1)
    value_type: KeyDType = "int64"
    description: str = ""
    tags: dict[str, str] = {}


def _exactly_one_location(model: BaseModel, kinds: tuple[str, ...], what: str) -> None:
    given = [kind for kind in kinds if getattr(model, kind) is not None]
    if len(given) != 1:
        options = ", ".join(f"{kind}:" for kind in kinds)
        found = f"found {', '.join(given)}" if given else "found none"
        raise ValueError(f"{what} needs exactly one of {options} ({found})")


class PushField(SpecModel):
    """A column a push source declares: its name (the batch source's column) and dtype."""

    name: Identifier
    dtype: DType


class PushConfig(SpecModel):
    """``push:`` of a push source: the batch source it extends (Feast's ``PushSource(batch_source=...)``).

    Its schema is the columns the feature views over the batch source read, typed by those
    views; ``schema:`` declares (or overrides) the dtype of a column no plain feature types.
    """

    batch_source: Identifier
    schema_: list[PushField] = Field(default=[], alias="schema")


class Source(SpecModel):
    """A ``sources:`` entry: where feature rows are (a dbt ref or source, a table, or a file) and their timestamps.

    With ``push:`` it is a push source instead: rows pushed by ``store.push`` / ``POST /push``
    feed every feature view over its batch source (docs/push.md).
    """

    name: Identifier
    path: FilePath | None = None
    table: str | None = None
    ref: Identifier | None = None
    source: str | None = None
    timestamp_field: Identifier = ""  # required unless push: (checked below)
    created_timestamp_column: Identifier | None = None
    field_mapping: dict[Identifier, Identifier] = {}
    columns: list[Identifier] = []
    description: str = ""
    push: PushConfig | None = None

    @model_validator(mode="after")
    def _one_location(self) -> Source:
        if self.push is not None:
            extra = [k for k in ("path", "table", "ref", "source", "created_timestamp_column") if getattr(self, k)]
            extra += [k for k in ("timestamp_field", "field_mapping", "columns") if getattr(self, k)]
            if extra:
                raise ValueError(
                    f"a push source takes its location and columns from its batch source "
                    f"'{self.push.batch_source}'; remove {', '.join(extra)}"
                )
            return self
        if not self.timestamp_field:
            raise ValueError("missing required field 'timestamp_field'")
        _exactly_one_location(self, ("path", "table", "ref", "source"), "a source")
        mapped: dict[str, str] = {}
        for column, name in self.field_mapping.items():
            if name in mapped:
                raise ValueError(
                    f"field_mapping: columns '{mapped[name]}' and '{column}' are both mapped to '{name}'; "
                    "map one column to each name"
                )
            mapped[name] = column
        if self.table is not None:
            _check_dotted(self.table, "table", 3)
        if self.source is not None:
            _check_dotted(self.source, "source", 2, exact=True)
        return self


def _check_dotted(value: str, field: str, max_parts: int, exact: bool = False) -> None:
    parts = value.split(".")
    if (exact and len(parts) != max_parts) or len(parts) > max_parts or not all(IDENTIFIER.match(p) for p in parts):
        example = "raw.driver_stats (dbt source name, then table name)" if exact else "schema.table"
        raise ValueError(f"{field}: expected {example}, got {excerpt(value)}")


VECTOR_METRICS = ("cosine", "l2", "inner_product")
MAX_VECTOR_DIMENSIONS = 16000  # pgvector's limit for a vector column
VECTOR_DTYPE = "array<float32>"
# other spellings of the metrics (Feast's, pgvector's, numpy's), for "did you mean ...?"
_METRIC_SYNONYMS = {
    "euclidean": "l2",
    "l2_distance": "l2",
    "dot": "inner_product",
    "dot_product": "inner_product",
    "ip": "inner_product",
    "inner": "inner_product",
    "innerproduct": "inner_product",
    "cosine_distance": "cosine",
    "cos": "cosine",
}


def check_metric(value: object) -> object:
    """``value`` if it is a vector metric, else ValueError with "did you mean ...?"."""
    if value in VECTOR_METRICS:
        return value
    from featurehouse.errors import did_you_mean

    lowered = str(value).strip().lower().replace("-", "_").replace(" ", "_")
    closest = lowered if lowered in VECTOR_METRICS else _METRIC_SYNONYMS.get(lowered)
    hint = f" (did you mean '{closest}'?)" if closest else did_you_mean(lowered, VECTOR_METRICS)
    raise ValueError(f"expected one of {', '.join(VECTOR_METRICS)}, got {excerpt(value)}{hint}")


def check_dimensions(value: object) -> object:
    """``value`` if it is a whole number of dimensions in 1..16000, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"expected a whole number of dimensions from 1 to {MAX_VECTOR_DIMENSIONS}, got {excerpt(value)}"
        )
    if not 1 <= value <= MAX_VECTOR_DIMENSIONS:
        raise ValueError(f"expected from 1 to {MAX_VECTOR_DIMENSIONS} dimensions, got {value}")
    return value


class VectorIndex(SpecModel):
    """A feature's ``vector:``: the embedding's length and the distance its searches rank by."""

    dimensions: Annotated[int, BeforeValidator(check_dimensions)]
    metric: Annotated[Literal["cosine", "l2", "inner_product"], BeforeValidator(check_metric)] = "cosine"


class Feature(SpecModel):
    """One ``schema:`` entry of a feature view: a column of the source (or an expression over it)."""

    name: Identifier
    dtype: DType
    description: str = ""
    expression: str | None = None
    tags: dict[str, str] = {}
    vector: VectorIndex | None = None

    @model_validator(mode="after")
    def _vector_dtype(self) -> Feature:
        if self.vector is not None and self.dtype != VECTOR_DTYPE:
            raise ValueError(
                f"vector: a vector index needs dtype {VECTOR_DTYPE}, but '{self.name}' is {self.dtype}; "
                f"declare it as dtype: {VECTOR_DTYPE}"
            )
        return self


MAX_AGGREGATION_WINDOW = 365 * 86400


class Aggregation(SpecModel):
    """An ``aggregations:`` entry: a function over a column in a time window before each row."""

    column: Identifier
    function: str
    window: Duration
    name: Identifier | None = None
    description: str = ""
    # the window as written (``7d``), so the default name reads like the spec, not ``1w``
    _window_text: str | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_window_text(cls, data: object, handler: Any) -> Aggregation:
        aggregation = handler(data)
        if isinstance(data, dict) and isinstance(data.get("window"), str):
            aggregation._window_text = "".join(data["window"].split())
        return aggregation

    @model_validator(mode="after")
    def _check(self) -> Aggregation:
        from featurehouse.errors import did_you_mean

        if self.function not in AGGREGATION_FUNCTIONS:
            lowered = self.function.strip().lower()
            closest = lowered if lowered in AGGREGATION_FUNCTIONS else _FUNCTION_SYNONYMS.get(lowered)
            hint = f" (did you mean '{closest}'?)" if closest else did_you_mean(lowered, AGGREGATION_FUNCTIONS)
            raise ValueError(
                f"function: expected one of {', '.join(AGGREGATION_FUNCTIONS)}, got {excerpt(self.function)}{hint}"
            )
        if self.window <= 0:
            raise ValueError("window: an aggregation needs a window greater than 0")
        if self.window > MAX_AGGREGATION_WINDOW:
            from featurehouse.spec.durations import format_duration

            raise ValueError(f"window: at most 365d, got {format_duration(self.window)}")
        return self

    @property
    def window_text(self) -> str:
        """The window as written (``7d``), or its shortest spelling."""
        from featurehouse.spec.durations import format_duration

        return self._window_text or format_duration(self.window)

    @property
    def output_name(self) -> str:
        """``name``, or ``<column>_<function>_<window as written>`` (``amount_sum_7d``)."""
        return self.name or f"{self.column}_{self.function}_{self.window_text}"


class FeatureView(SpecModel):
    """A ``feature_views:`` entry: features of entities read from one source, with their ttl."""

    name: Identifier
    entities: list[Identifier] = Field(min_length=1)
    source: Identifier
    ttl: Duration = 0
    features: list[Feature] = Field(default=[], alias="schema")
    aggregations: list[Aggregation] = []
    online: bool = True
    filter_by_created_timestamp: bool = False
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = {}

    @model_validator(mode="after")
    def _check(self) -> FeatureView:
        # clashes between feature names are checked in featurehouse.spec.repo, which knows their lines
        if not self.features and not self.aggregations:
            raise ValueError("a feature view needs a schema: (its features) or aggregations:")
        vectors = [f.name for f in self.features if f.vector is not None]
        if len(vectors) > 1:
            raise ValueError(
                f"features '{vectors[0]}' and '{vectors[1]}' both have a vector index; a feature view has at most "
                "one (put the other embedding in a feature view of its own)"
            )
        return self

    @field_validator("ttl")
    @classmethod
    def _ttl_fits(cls, ttl: int) -> int:
        if ttl > MAX_TTL:
            from featurehouse.spec.durations import format_duration

            raise ValueError(
                f"at most {format_duration(MAX_TTL)} (100 years), got {format_duration(ttl)}; 0 means unlimited"
            )
        return ttl

    @property
    def feature_names(self) -> list[str]:
        """The view's output features: the schema's, then the aggregations'."""
        return [f.name for f in self.features] + [a.output_name for a in self.aggregations]

    @property
    def vector_feature(self) -> Feature | None:
        """The feature with a vector index, or None."""
        return next((f for f in self.features if f.vector is not None), None)

    @property
    def is_aggregation(self) -> bool:
        """Whether the view's features are windowed aggregations."""
        return bool(self.aggregations)


class FeatureService(SpecModel):
    """A ``feature_services:`` entry: a named list of features to read together."""

    name: Identifier
    features: list[str] = Field(min_length=1)
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = {}


class Spine(SpecModel):
    """A training set's spine: the entity rows and times features are joined to."""

    ref: Identifier | None = None
    path: FilePath | None = None
    table: str | None = None
    source: str | None = None
    timestamp_field: Identifier | None = None

    @model_validator(mode="after")
    def _one_location(self) -> Spine:
        _exactly_one_location(self, ("ref", "path", "table", "source"), "a spine")
        if self.table is not None:
            _check_dotted(self.table, "table", 3)
        if self.source is not None:
            _check_dotted(self.source, "source", 2, exact=True)
        return self


class TrainingSet(SpecModel):
    """A ``training_sets:`` entry: features joined point in time to a spine, built as a dbt model."""

    name: Identifier
    spine: Spine
    features: str | list[str]
    full_feature_names: bool = False
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = {}


class RequestField(SpecModel):
    """A ``request:`` entry of a request view: a value the caller sends with each entity row."""

    name: Identifier
    dtype: KeyDType
    description: str = ""


class RequestFeature(SpecModel):
    """A ``schema:`` entry of a request view: a SQL expression over request fields and other views' features."""

    name: Identifier
    dtype: KeyDType
    expression: str
    description: str = ""
    tags: dict[str, str] = {}


class RequestView(SpecModel):
    """A ``request_views:`` entry (Feast's on-demand feature view): features computed at request time,
    by the same expression in the warehouse (training sets) and in-process (online reads).
    The expressions are checked in ``featurehouse.spec.request_views``."""

    name: Identifier
    request: list[RequestField] = []
    features: list[RequestFeature] = Field(min_length=1, alias="schema")
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = {}
    # the checked expressions (featurehouse.spec.request_views.RequestPlan), set by load_repo
    _compiled: Any = PrivateAttr(default=None)

    @property
    def feature_names(self) -> list[str]:
        """The view's output features, in order."""
        return [f.name for f in self.features]


class SpecFile(SpecModel):
    """The top level of one spec file; every key is optional."""

    entities: list[Entity] = []
    sources: list[Source] = []
    feature_views: list[FeatureView] = []
    feature_services: list[FeatureService] = []
    training_sets: list[TrainingSet] = []
    request_views: list[RequestView] = []

    @field_validator(
        "entities", "sources", "feature_views", "feature_services", "training_sets", "request_views", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # `feature_views:` with every item commented out is YAML's null: an empty list
        return [] if value is None else value


KIND_LABELS = {
    "entities": "entity",
    "sources": "source",
    "feature_views": "feature view",
    "feature_services": "feature service",
    "training_sets": "training set",
    "request_views": "request view",
}


class OnlineStoreConfig(SpecModel):
    """``online_store:`` of featurehouse.yml: which store sync writes and reads serve from."""

    type: Literal["sqlite", "postgres", "redis"] = "sqlite"
    path: str | None = None
    url: str | None = None
    key_prefix: str = "fh"
    schema_: Identifier = Field(default="featurehouse_online", alias="schema")
    # type redis only: the url names any node of a Redis Cluster (featurehouse.sync.redis_cluster)
    cluster: bool = False

    @model_validator(mode="after")
    def _cluster_is_redis(self) -> OnlineStoreConfig:
        if self.cluster and self.type != "redis":
            raise ValueError(f"cluster: true is for type redis (a Redis Cluster), but the type is {self.type}")
        return self


class ProjectConfig(SpecModel):
    """featurehouse.yml: the project's name, its folders and its online store."""

    project: Identifier
    specs: str = "feature_specs"
    online_store: OnlineStoreConfig = OnlineStoreConfig()
    models_dir: str = "models/featurehouse"
    # a folder: `featurehouse sync` keeps a read-only copy of a DuckDB warehouse there for BI tools
    bi_export: str | None = None
