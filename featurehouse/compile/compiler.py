"""Compile a feature repo into dbt models under ``models/featurehouse/``.

Per feature view, ``fv_<view>.sql`` normalises the source (join keys, UTC event and
created timestamps, features cast to their dtypes, field_mapping, expressions), built as
sqlglot expressions for the target's dialect. Per training set, ``ts_<name>.sql`` calls
the point-in-time macro on its spine. ``schema.yml`` carries descriptions, owners and tags
(in ``meta``) and the data tests. Output is deterministic: the same specs give
byte-identical files.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from sqlglot import exp

from featurehouse.compile.header import GENERATED_MARK, model_header
from featurehouse.compile.types import sql_type
from featurehouse.errors import CompileError, SpecError, did_you_mean, excerpt
from featurehouse.plan.jinja import JinjaCode, jinja_call, jinja_literal
from featurehouse.plan.joins import (  # noqa: F401  (re-exported: the compiler's public names)
    FEATURE_VIEW_PREFIX,
    event_time_winners_call,
    feature_dtypes,
    feature_view_model,
    has_event_time_winners,
    macro_views_argument,
    point_in_time_call,
)
from featurehouse.spec.durations import format_duration
from featurehouse.spec.model import CREATED_TIMESTAMP, EVENT_TIMESTAMP, FeatureView, Source, Spine, jinja_opener
from featurehouse.spec.repo import FeatureRepo
from featurehouse.spec.sources import file_reader, known_source_columns

TRAINING_SET_PREFIX = "ts_"
SCHEMA_FILE = "schema.yml"

_FORBIDDEN_IN_EXPRESSIONS: dict[type[exp.Expr], str] = {
    exp.Query: "a subquery",
    exp.Subquery: "a subquery",
    exp.AggFunc: "an aggregate function",
    exp.Window: "a window function",
    exp.Star: "*",
    exp.Placeholder: "a placeholder",
}


def training_set_model(name: str) -> str:
    """The dbt model a training set is built into."""
    return f"{TRAINING_SET_PREFIX}{name}"


# ---- placeholders: Jinja inside sqlglot-built SQL -----------------------------------------------
class _Jinja:
    """Collects Jinja snippets and hands out identifiers that stand for them in sqlglot trees.

    The identifiers carry a random part, so that no spec can name one (a column or string
    ``__fh_jinja_0__`` would otherwise be replaced by featurehouse's Jinja); it never reaches
    the output, which stays byte-identical from run to run.
    """

    def __init__(self) -> None:
        self.snippets: dict[str, str] = {}
        self._nonce = secrets.token_hex(8)

    def _token(self, snippet: str) -> str:
        token = f"__fh_jinja_{self._nonce}_{len(self.snippets)}__"
        self.snippets[token] = snippet
        return token

    def __call__(self, snippet: str) -> exp.Expr:
        return exp.column(self._token(snippet))

    def table(self, snippet: str) -> exp.Table:
        return exp.to_table(self._token(snippet))

    def substitute(self, sql: str, what: str) -> str:
        """``sql`` (spec-derived, as sqlglot wrote it) with featurehouse's own Jinja put in.

        Checked first: dbt renders the model, so the SQL that came from the specs may not
        open Jinja however the spec spelt it (escape strings, unicode escapes: sqlglot
        decodes them), nor end in a '{' that would join the '{{' of featurehouse's snippet.
        """
        mark = jinja_opener(sql)
        if mark is None and any("{" + token in sql or '{"' + token in sql for token in self.snippets):
            mark = "{{"
        if mark is not None:
            raise CompileError(
                f"{what}: the generated SQL would contain '{mark}', which dbt would render as "
                "Jinja; specs hold plain SQL, not templates (docs/decisions/0009)"
            )
        for token, snippet in self.snippets.items():
            if sql.count(token) > 1:
                raise CompileError(f"{what}: internal placeholder {token} appears {sql.count(token)} times")
            # as the dialect quotes identifiers: "x" (ANSI) or `x` (Spark, BigQuery, MySQL)
            quoted = next((q + token + q for q in ('"', "`") if q + token + q in sql), token)
            sql = sql.replace(quoted, snippet)
        return sql


def _relation_call(source: Source | Spine) -> JinjaCode | None:
    """``ref('x')`` or ``source('s', 't')`` when dbt names the relation, else None."""
    if source.ref is not None:
        return jinja_call("ref", source.ref)
    if source.source is not None:
        source_name, table_name = source.source.split(".")
        return jinja_call("source", source_name, table_name)
    return None


def source_relation_jinja(source: Source | Spine, dialect: str) -> str:
    """The Jinja/SQL text that names a source or spine inside a model."""
    code = _relation_call(source)
    if code is not None:
        return "{{ " + code + " }}"
    if source.table is not None:
        return exp.to_table(source.table).sql(dialect=dialect, identify=True)
    assert source.path is not None
    if dialect != "duckdb":
        raise CompileError(
            f"path: sources are read by DuckDB, but the dbt target is {dialect}; "
            f"load {source.path} into a table and use table: or ref: instead"
        )
    return f"{file_reader(source.path)}({exp.Literal.string(source.path).sql(dialect='duckdb')})"


# ---- expressions ----------------------------------------------------------------------------------


def parse_expression(repo: FeatureRepo, view: FeatureView, index: int, dialect: str, columns: set[str]) -> exp.Expr:
    """Parse and check ``schema[index].expression``: one scalar expression over source columns."""
    feature = view.features[index]
    text = feature.expression or ""

    def fail(message: str) -> SpecError:
        return repo.spec_error(
            "feature_views",
            view.name,
            ("schema", index, "expression"),
            f"expression {excerpt(text)} {message}",
            feature=feature.name,
        )

    # the expression lands in a dbt model, where Jinja would be rendered (and could run anything)
    if jinja_opener(text):
        raise fail("may not contain Jinja ({{, {% or {#): write plain SQL over source columns")
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except sqlglot.errors.SqlglotError as error:
        raise fail(f"is not valid SQL{_parse_error_position(error)}") from None
    if not statements:
        raise fail("is empty: write one scalar expression over source columns, such as 'trips * 2'")
    if len(statements) != 1:
        raise fail(f"must be one scalar expression, not {len(statements)} statements")
    tree = statements[0]
    # what counts is what dbt will see: sqlglot decodes escapes (E'\x7b\x7b', U&'\007B'), so
    # the SQL it writes can open Jinja where the spec's text did not
    mark = jinja_opener(tree.sql(dialect=dialect)) or jinja_opener(tree.sql(dialect=dialect, pretty=True))
    if mark:
        raise fail(
            f"becomes SQL containing '{mark}' once its escapes are decoded, which dbt would render as "
            "Jinja; write the characters without escapes and apart, such as '{' || '{'"
        )
    keyword = _statement_keyword(text, dialect)
    if keyword or (isinstance(tree, exp.Query) and not isinstance(tree, exp.Subquery)):
        keyword = keyword or tree.key.upper()
        article = "an" if keyword[0] in "AEIOU" else "a"
        raise fail(f"must be a scalar expression over source columns, not {article} {keyword} statement")
    for node in tree.walk():
        for forbidden, label in _FORBIDDEN_IN_EXPRESSIONS.items():
            if isinstance(node, forbidden):
                raise fail(f"may not contain {label}: it must give one value per source row")
        if isinstance(node, exp.Column):
            if node.table:
                raise fail(
                    f"uses the qualified column {node.sql(dialect=dialect)!r}; "
                    f"write source columns unqualified, as {node.name!r}"
                )
            if node.name not in columns:
                hint = did_you_mean(node.name, columns) or (
                    "; declare it under the source's columns:" if repo.sources[view.source].path is None else ""
                )
                raise fail(f"uses unknown column '{node.name}'{hint}")
    return tree


def _statement_keyword(text: str, dialect: str) -> str | None:
    """The keyword (``DROP``) when ``text`` starts a statement rather than an expression."""
    from sqlglot.dialects.dialect import Dialect

    dialect_ = Dialect.get_or_raise(dialect)
    try:
        tokens = dialect_.tokenize(text)
    except sqlglot.errors.SqlglotError:
        return None
    if not tokens:
        return None
    first = tokens[0]
    statement_tokens = set(dialect_.parser_class.STATEMENT_PARSERS) | set(dialect_.tokenizer_class.COMMANDS)
    if first.token_type in statement_tokens and first.token_type != sqlglot.tokens.TokenType.SEMICOLON:
        return first.text.upper()
    return None


def _parse_error_position(error: Exception) -> str:
    """`` near '*' (column 7)`` from a sqlglot ParseError; sqlglot's own text names its classes."""
    details = getattr(error, "errors", None) or [{}]
    near, column = details[0].get("highlight"), details[0].get("col")
    if near and column:
        return f" near {excerpt(near)} (column {column})"
    return f" (column {column})" if column else ""


# ---- feature view models --------------------------------------------------------------------------
def feature_view_sql(repo: FeatureRepo, view: FeatureView, dialect: str) -> str:
    """The ``fv_`` model of ``view``: the source's rows with the view's columns, in ``dialect``."""
    source = repo.sources[view.source]
    reverse = {feature: column for column, feature in source.field_mapping.items()}
    jinja = _Jinja()
    columns = known_source_columns(repo, view)

    def source_column(name: str) -> exp.Expr:
        return exp.column(reverse.get(name, name), quoted=True)

    selects: list[exp.Expr] = []
    for key in repo.join_keys(view):
        selects.append(exp.cast(source_column(key), sql_type(repo.join_key_dtype(view, key))).as_(key, quoted=True))
    selects.append(_utc(jinja, source.timestamp_field, dialect).as_(EVENT_TIMESTAMP, quoted=True))
    if source.created_timestamp_column:
        created = _utc(jinja, source.created_timestamp_column, dialect)
    else:
        created = exp.cast(exp.null(), sql_type("timestamp"))
    selects.append(created.as_(CREATED_TIMESTAMP, quoted=True))
    for index, feature in enumerate(view.features):
        value = (
            parse_expression(repo, view, index, dialect, columns)
            if feature.expression is not None
            else source_column(feature.name)
        )
        if feature.dtype == "timestamp" and feature.expression is None:
            cast = _utc(jinja, reverse.get(feature.name, feature.name), dialect)
        else:
            cast = exp.cast(value, sql_type(feature.dtype))
        selects.append(cast.as_(feature.name, quoted=True))
    for aggregation in view.aggregations:
        # aggregation views keep the raw column; the window macro aggregates it
        if aggregation.column not in [s.alias for s in selects]:
            selects.append(source_column(aggregation.column).as_(aggregation.column, quoted=True))
    select = exp.select(*selects).from_(jinja.table(source_relation_jinja(source, dialect)))
    query = _with_push_log(repo, view, dialect, select, jinja)
    body = jinja.substitute(query.sql(dialect=dialect, pretty=True, identify=True), f"feature view '{view.name}'")
    origin = repo.origin("feature_views", view.name)
    return model_header(f"feature view '{view.name}'", origin) + _feature_view_config(repo, view, dialect) + body + "\n"


def _with_push_log(repo: FeatureRepo, view: FeatureView, dialect: str, query: exp.Select, jinja: _Jinja) -> exp.Query:
    """``query`` UNION ALL the same columns over the push log, when a push source extends the view's
    source (docs/decisions/0022): pushed rows carry their created time (the arrival time when they
    had none) in the batch source's created column, or ``created_timestamp``."""
    from featurehouse.errors import RequestError
    from featurehouse.spec.push import push_schema, push_view_of

    push = push_view_of(repo, view)
    if push is None:
        return query
    try:
        schema = push_schema(repo, push)
    except RequestError as error:
        raise repo.spec_error("sources", push, ("push",), str(error).split(": ", 1)[-1]) from None
    columns = [[c.name, sql_type(c.dtype).sql(dialect=dialect)] for c in schema.columns]
    log = jinja.table("{{ " + jinja_call("featurehouse.push_log", push, columns) + " }}")
    pushed = query.copy()
    for column in list(pushed.find_all(exp.Column)):  # each Jinja placeholder appears once: fresh ones
        if column.name in jinja.snippets:
            column.replace(jinja(jinja.snippets[column.name]))
    created = _utc(jinja, schema.created, dialect).as_(CREATED_TIMESTAMP, quoted=True)
    pushed.set("expressions", [created if e.alias == CREATED_TIMESTAMP else e for e in pushed.expressions])
    pushed = pushed.from_(log, copy=False)
    return exp.union(query, pushed, distinct=False)


def _feature_view_config(repo: FeatureRepo, view: FeatureView, dialect: str) -> str:
    """The model config; on Postgres with the btree index (join keys, event_timestamp) that the
    point-in-time join's index probe reads (dbt-postgres ``indexes``; decision 0016), and an
    ANALYZE after the build: the macros choose their plans from the table's statistics
    (probe or sort, RANGE frame or time buckets), which a table just created does not have
    until autovacuum gets to it."""
    if has_event_time_winners(view, dialect):
        # the winner of each (keys, event time), written in the model's own step (decision 0032)
        call = event_time_winners_call(repo, view, JinjaCode("this"))
        # keys and features are spec identifiers ([A-Za-z_][A-Za-z0-9_]*): nothing in them can end
        # the string or open Jinja, so the hook reads as written, like Postgres' ANALYZE hook
        return "{{ config(materialized='table', post_hook=\"{{ " + call + ' }}") }}\n\n'
    if dialect != "postgres":
        return "{{ config(materialized='table') }}\n\n"
    columns = [exp.column(c, quoted=True).sql(dialect=dialect) for c in [*repo.join_keys(view), EVENT_TIMESTAMP]]
    indexes = jinja_literal([{"columns": columns}])
    return "{{ config(materialized='table', indexes=" + indexes + ", post_hook='analyze {{ this }}') }}\n\n"


def _utc(jinja: _Jinja, column: str, dialect: str) -> exp.Expr:
    quoted = exp.column(column, quoted=True).sql(dialect=dialect)
    return jinja("{{ " + jinja_call("featurehouse.utc_timestamp", quoted) + " }}")


def training_set_sql(repo: FeatureRepo, name: str, dialect: str) -> str:
    """The ``ts_`` model of training set ``name``: its features joined point in time to the spine."""
    training_set = repo.training_sets[name]
    # output names were checked when the repo was loaded (repo._check_training_set_columns)
    from featurehouse.compile import request_sql
    from featurehouse.spec.request_views import RequestJoinPlan, join_plan

    # with request views: the join, then their expressions around it (compile/request_sql.py)
    plan = join_plan(repo, training_set.features, training_set.full_feature_names)
    spine = training_set.spine
    # ref('labels') / source('s', 't'), or a string literal naming the relation
    spine_argument = _relation_call(spine) or jinja_literal(source_relation_jinja(spine, dialect))
    call = point_in_time_call(repo, plan, spine_argument, spine.timestamp_field or EVENT_TIMESTAMP, dialect=dialect)
    origin = repo.origin("training_sets", name)
    # Postgres: JIT compiling the join cost ~16% of its time; off for this statement's
    # transaction only (a pre-hook runs inside the model's transaction), never server-wide
    hooks = (", pre_hook=" + jinja_literal("set local jit = off")) if dialect == "postgres" else ""
    body = "{{ " + call + " }}"
    if isinstance(plan, RequestJoinPlan):
        body = request_sql.wrap_join(plan, body, dialect)
    config = "{{ config(materialized='table'" + hooks + ") }}\n\n"
    return model_header(f"training set '{name}'", origin) + config + body + "\n"


# ---- schema.yml -----------------------------------------------------------------------------------
def dbt_tags(tags: dict[str, str]) -> dict[str, Any]:
    """Spec tags as dbt tags (``team:growth``): shown in dbt docs, selectable with ``-s tag:team:growth``."""
    return {"tags": [f"{k}:{v}" for k, v in sorted(tags.items())]} if tags else {}


def service_exposure(repo: FeatureRepo, name: str) -> dict[str, Any]:
    """A feature service as a dbt exposure (type ml), so dbt docs' lineage ends at its consumers."""
    service = repo.feature_services[name]
    views = [s.view.name for s in repo.resolve_features(service.features)]
    owner = service.owner or repo.config.project
    exposure: dict[str, Any] = {
        "name": name,
        "type": "ml",
        "description": service.description or f"Feature service {name}.",
        "owner": {"email": owner} if "@" in owner else {"name": owner},
        "depends_on": [str(jinja_call("ref", feature_view_model(v))) for v in views],
        "config": {
            "meta": {"featurehouse": {"kind": "feature_service", "name": name, "features": list(service.features)}}
        },
    }
    exposure["config"].update(dbt_tags(service.tags))
    return exposure


def _aggregation_meta(view: FeatureView) -> dict[str, dict[str, str]]:
    dtypes = feature_dtypes(view)
    return {
        a.output_name: {"dtype": dtypes[a.output_name], "aggregation": f"{a.function}({a.column}) over {a.window_text}"}
        for a in view.aggregations
    }


def schema_yml(repo: FeatureRepo) -> str:
    """The generated models' schema.yml: descriptions, columns and tests of every model."""
    models: list[dict[str, Any]] = []
    for name in sorted(repo.feature_views):
        view = repo.feature_views[name]
        source = repo.sources[view.source]
        origin = repo.origin("feature_views", name)
        keys = repo.join_keys(view)
        columns: list[dict[str, Any]] = []
        for key in keys:
            entity = next(e for e in view.entities if key in repo.entities[e].join_keys)
            description = repo.entities[entity].description or f"Join key of entity {entity}."
            # quoted: dbt's not_null test writes the column name as is, and a key may be
            # a keyword (group) or need its case kept (Driver_ID)
            columns.append({"name": key, "description": description, "quote": True, "data_tests": ["not_null"]})
        columns.append(
            {
                "name": EVENT_TIMESTAMP,
                "description": "When the feature values were true (UTC).",
                "data_tests": ["not_null"],
            }
        )
        columns.append(
            {
                "name": CREATED_TIMESTAMP,
                "description": "When the row was written (UTC); breaks ties on event_timestamp.",
            }
        )
        for feature in view.features:
            column: dict[str, Any] = {"name": feature.name, "description": feature.description}
            meta: dict[str, Any] = {"dtype": feature.dtype}
            if feature.expression:
                meta["expression"] = feature.expression
            if feature.tags:
                meta["tags"] = dict(sorted(feature.tags.items()))
            column["config"] = {"meta": meta}
            if feature.vector is not None:
                meta["vector"] = {"dimensions": feature.vector.dimensions, "metric": feature.vector.metric}
                # a wrong-length embedding fails `dbt build` naming the view, the key and the length
                column["quote"] = True
                column["data_tests"] = [
                    {
                        "featurehouse.vector_dimensions": {
                            "arguments": {"dimensions": feature.vector.dimensions, "keys": list(keys), "view": name}
                        }
                    }
                ]
            columns.append(column)
        models.append(
            {
                "name": feature_view_model(name),
                "description": view.description or f"Feature view {name}.",
                "config": {
                    "meta": {
                        "owner": view.owner,
                        "featurehouse": {
                            "kind": "feature_view",
                            "name": name,
                            "spec": origin.file if origin else "",
                            "entities": list(view.entities),
                            "source": source.name,
                            "ttl": format_duration(view.ttl),
                            "online": view.online,
                            "tags": dict(sorted(view.tags.items())),
                            # the outputs are columns of online_<view> and training sets, not of this
                            # model; kept here so that `featurehouse plan` sees them change
                            **({"aggregations": _aggregation_meta(view)} if view.aggregations else {}),
                        },
                    },
                    **dbt_tags(view.tags),
                },
                "columns": columns,
                # an aggregation counts every event, so two at one instant are data, not a double load
                **(
                    {}
                    if view.is_aggregation
                    else {
                        "data_tests": [
                            {
                                "featurehouse.no_full_ties": {
                                    "arguments": {"columns": [*keys, EVENT_TIMESTAMP, CREATED_TIMESTAMP]},
                                    "config": {"severity": "warn"},
                                }
                            }
                        ]
                    }
                ),
            }
        )
    for name in sorted(repo.training_sets):
        training_set = repo.training_sets[name]
        origin = repo.origin("training_sets", name)
        features = training_set.features
        models.append(
            {
                "name": training_set_model(name),
                "description": training_set.description
                or f"Training set {name}: its spine with point-in-time features.",
                "config": {
                    "meta": {
                        "owner": training_set.owner,
                        "featurehouse": {
                            "kind": "training_set",
                            "name": name,
                            "spec": origin.file if origin else "",
                            "features": features if isinstance(features, str) else list(features),
                            "tags": dict(sorted(training_set.tags.items())),
                        },
                    },
                    **dbt_tags(training_set.tags),
                },
            }
        )
    document: dict[str, Any] = {"version": 2, "models": models}
    if repo.feature_services:
        document["exposures"] = [service_exposure(repo, name) for name in sorted(repo.feature_services)]
    header = f"# {GENERATED_MARK}. Do not edit: change the specs and run `featurehouse compile`.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


# ---- the whole repo -------------------------------------------------------------------------------
def compile_repo(repo: FeatureRepo, dialect: str) -> dict[str, str]:
    """File name (relative to the models folder) → content, for every generated file."""
    from featurehouse.spec.vector_checks import check_vector_sources

    check_vector_sources(repo)
    files: dict[str, str] = {}
    for name in sorted(repo.feature_views):
        files[f"{feature_view_model(name)}.sql"] = feature_view_sql(repo, repo.feature_views[name], dialect)
    for name in sorted(repo.training_sets):
        files[f"{training_set_model(name)}.sql"] = training_set_sql(repo, name, dialect)
    files[SCHEMA_FILE] = schema_yml(repo)
    for extension in _extensions():
        files.update(extension(repo, dialect))
    for name, text in files.items():
        check_generated_jinja(name, text)
    return dict(sorted(files.items()))


# Every name the Jinja featurehouse writes into models uses: its macros and their arguments,
# and dbt's config/ref/source. A generator that emits another must add it here, on purpose.
GENERATED_JINJA_NAMES = frozenset(
    {
        "config",
        "materialized",
        "incremental_strategy",
        "unique_key",
        "post_hook",
        "ref",
        "source",
        "this",
        "true",
        "false",
        "featurehouse",
        "utc_timestamp",
        "point_in_time_join",
        "spine",
        "views",
        "timestamp_column",
        "spine_columns",
        "order_column",
        "incremental_latest_snapshot",
        "relation",
        "join_keys",
        "features",
        "ttl_seconds",
        "filter_by_created",
        "expire_latest_snapshot",
        "window_aggregation_snapshot",
        "aggregations",
        "indexes",
        "columns",
        "pre_hook",
        "push_log",
        "event_time_winners",
    }
)


def check_generated_jinja(name: str, text: str) -> None:
    """The last line of defence (docs/decisions/0009): a generated file holds no Jinja but
    featurehouse's own, whatever a spec slipped past the checks before.

    ``schema.yml`` holds none at all (dbt renders its values after YAML decoding, so the
    decoded strings are what is checked); a model's Jinja may use only GENERATED_JINJA_NAMES,
    which keeps out ``run_query``, ``env_var``, ``var`` and everything else dbt offers.
    """
    if name.endswith((".yml", ".yaml")):
        # libyaml where installed: dbt reads with it too, and it is ~10x faster than pure Python
        for value in _yaml_strings(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))):
            mark = jinja_opener(value)
            if mark:
                raise CompileError(
                    f"{name} would contain '{mark}' in {excerpt(value)}, which dbt would render as "
                    "Jinja; specs hold plain text, not templates (docs/decisions/0009)"
                )
        return
    _check_jinja_names(name, text)


def _check_jinja_names(name: str, text: str) -> None:
    import jinja2

    try:
        tokens = list(jinja2.Environment().lex(text))
    except jinja2.TemplateSyntaxError as error:
        raise CompileError(
            f"{name}: the generated Jinja does not parse (line {error.lineno}): {excerpt(error.message or '', 100)}"
        ) from error
    for line, kind, value in tokens:
        if kind == "comment_begin" or (kind == "name" and value not in GENERATED_JINJA_NAMES):
            raise CompileError(
                f"{name}:{line}: the generated Jinja uses {excerpt(value)}, which featurehouse does "
                "not write: dbt would render something a spec put there (docs/decisions/0009)"
            )
        if kind == "string" and jinja_opener(value):  # a hook: dbt renders the string later
            _check_jinja_names(name, value)


def _yaml_strings(data: Any) -> list[str]:
    """Every string (keys too) in loaded YAML."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for key, value in data.items() for s in _yaml_strings(key) + _yaml_strings(value)]
    if isinstance(data, list):
        return [s for item in data for s in _yaml_strings(item)]
    return []


def _extensions() -> list[Any]:
    """The generators of the online snapshot models, listed here (not registered by importing them)."""
    from featurehouse.compile import aggregation_models, online_models

    return [online_models.generate, aggregation_models.generate]


def generated_files_on_disk(models_dir: Path) -> dict[str, str]:
    """The files in ``models_dir`` that featurehouse generated (by their header)."""
    found: dict[str, str] = {}
    if not models_dir.is_dir():
        return found
    for path in sorted(models_dir.iterdir()):
        if path.is_file() and path.suffix in (".sql", ".yml"):
            data = path.read_bytes()
            # a user's file in another encoding is not ours and must not stop the compile
            if GENERATED_MARK.encode() in data.split(b"\n", 1)[0]:
                found[path.name] = data.decode("utf-8", errors="replace")
    return found


@dataclass(frozen=True)
class CompileResult:
    """Which generated files a compile wrote, removed and left as they were."""

    written: list[str]
    removed: list[str]
    unchanged: list[str]


def diff(models_dir: Path, files: dict[str, str]) -> CompileResult:
    """What writing ``files`` into ``models_dir`` would change."""
    on_disk = generated_files_on_disk(models_dir)
    written = [n for n, text in files.items() if on_disk.get(n) != text]
    removed = [n for n in on_disk if n not in files]
    unchanged = [n for n, text in files.items() if on_disk.get(n) == text]
    return CompileResult(written, removed, unchanged)


def write(models_dir: Path, files: dict[str, str]) -> CompileResult:
    """Write changed files and remove stale generated ones, all or nothing as far as the OS allows.

    Every file goes to a temporary first; only when all are written do they replace the
    originals (renames within a folder), so a full disk or a read-only file leaves the
    folder as it was instead of half old and half new models.
    """
    if models_dir.exists() and not models_dir.is_dir():
        raise CompileError(f"models_dir {models_dir} is a file, not a folder; change models_dir in featurehouse.yml")
    result = diff(models_dir, files)
    generated = generated_files_on_disk(models_dir)
    # checked before writing anything, so a clash leaves the folder as it was
    for name in result.written:
        if (models_dir / name).exists() and name not in generated:
            raise CompileError(
                f"{models_dir / name} was not generated by featurehouse (it has no '{GENERATED_MARK}' header) "
                "and compile would overwrite it; rename it or move it out of that folder"
            )
    temporaries: list[Path] = []
    current = models_dir
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        for name in result.written:
            current = models_dir / name
            temporaries.append(models_dir / f".{name}.tmp")
            temporaries[-1].write_text(files[name], encoding="utf-8")
        for temporary, name in zip(temporaries, result.written):
            current = models_dir / name
            temporary.replace(current)
        for name in result.removed:
            current = models_dir / name
            current.unlink()
    except OSError as error:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        raise CompileError(f"could not write {current}: {error.strerror or error}") from error
    return result
