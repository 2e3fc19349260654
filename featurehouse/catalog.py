"""The feature catalog: list, describe and search what a feature repo defines, and plan a compile.

Everything here works from the specs alone (no warehouse, no dbt), so it is instant and
safe to call from the CLI, the HTTP server and CI; only ``online_state`` asks the online
store, and ``plan`` reads the generated files on disk. Results are plain dicts and lists
that serialise to JSON as they are; ``featurehouse.cli.catalog`` renders them for terminals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurehouse.errors import FeaturehouseError, RequestError, did_you_mean
from featurehouse.plan.joins import feature_dtypes
from featurehouse.spec.durations import format_duration
from featurehouse.spec.request_views import compiled, nodes, regular_selections, request_selections, split_refs

if TYPE_CHECKING:
    from featurehouse.spec.repo import FeatureRepo

KINDS = ("entities", "sources", "feature-views", "request-views", "feature-services", "features")


class CatalogError(RequestError):
    """A catalog lookup names nothing the repo defines, or a filter is malformed."""


# ---- small helpers ---------------------------------------------------------------------------------
def _ttl(seconds: int) -> str:
    return format_duration(seconds) if seconds else "unlimited"


def _origin(repo: FeatureRepo, kind: str, name: str) -> str:
    origin = repo.origin(kind, name)
    return str(origin) if origin else ""


def parse_tag_filters(values: Iterable[str]) -> dict[str, str | None]:
    """``["team=growth", "pii"]`` → ``{"team": "growth", "pii": None}`` (None: the key is enough)."""
    filters: dict[str, str | None] = {}
    for value in values:
        key, sep, wanted = value.partition("=")
        key = key.strip()
        if not key:
            raise CatalogError(f"--tag expects KEY=VALUE or KEY, got {value!r}")
        filters[key] = wanted.strip() if sep else None
    return filters


def _tags_match(tags: dict[str, str], filters: dict[str, str | None]) -> bool:
    return all(key in tags and (wanted is None or tags[key] == wanted) for key, wanted in filters.items())


def _owner_matches(owner: str, wanted: str) -> bool:
    """Case-insensitive; ``ml-platform`` also matches ``ml-platform@example.com``."""
    owner, wanted = owner.lower(), wanted.lower()
    return bool(owner) and (owner == wanted or owner.split("@")[0] == wanted)


# ---- who uses what ---------------------------------------------------------------------------------
def service_usage(repo: FeatureRepo, view_name: str) -> list[dict[str, Any]]:
    """The feature services reading ``view_name``, with the features each one reads."""
    used = []
    for service in repo.feature_services.values():
        for selection in regular_selections(repo, service.features):
            if selection.view.name == view_name:
                used.append({"name": service.name, "features": list(selection.features)})
    return used


def training_set_usage(repo: FeatureRepo, view_name: str) -> list[dict[str, Any]]:
    """The training sets joining ``view_name``, with the features and the service they go through."""
    used = []
    for training_set in repo.training_sets.values():
        for selection in regular_selections(repo, training_set.features):
            if selection.view.name == view_name:
                via = training_set.features if isinstance(training_set.features, str) else None
                used.append(
                    {
                        "name": training_set.name,
                        "features": list(selection.features),
                        "via": via if via in repo.feature_services else None,
                    }
                )
    return used


def _views_of(repo: FeatureRepo, features: str | list[str]) -> list[str]:
    return [s.view.name for s in regular_selections(repo, features)]


def _request_views_of(repo: FeatureRepo, features: str | list[str]) -> list[str]:
    return [s.view.name for s in request_selections(repo, split_refs(repo, features)[1])]


def _feature_refs(repo: FeatureRepo, features: str | list[str]) -> list[str]:
    """``view:feature`` for every feature of a list or service: feature views' first, then request views'."""
    refs = [f"{s.view.name}:{f}" for s in regular_selections(repo, features) for f in s.features]
    selections = request_selections(repo, split_refs(repo, features)[1])
    return refs + [f"{s.view.name}:{f}" for s in selections for f in s.features]


# ---- one object each -------------------------------------------------------------------------------
def entity_info(repo: FeatureRepo, name: str) -> dict[str, Any]:
    """What ``describe`` shows for an entity: join keys, value type, description, tags."""
    entity = repo.entities[name]
    return {
        "kind": "entity",
        "name": name,
        "join_keys": list(entity.join_keys),
        "value_type": entity.value_type,
        "description": entity.description,
        "tags": dict(entity.tags),
        "feature_views": [v.name for v in repo.feature_views.values() if name in v.entities],
        "spec": _origin(repo, "entities", name),
    }


def source_info(repo: FeatureRepo, name: str) -> dict[str, Any]:
    """What ``describe`` shows for a source: where its data is, its timestamps, description."""
    source = repo.sources[name]
    fed = source.push.batch_source if source.push is not None else name  # the views read this source
    if source.push is not None:  # a push source: where its rows go, and the batch source's timestamps
        batch = repo.sources.get(source.push.batch_source, source)
        location: tuple[str, Any] = ("push", f"extends {source.push.batch_source}")
        source = batch.model_copy(update={"name": name, "description": source.description})
    else:
        location = next((k, getattr(source, k)) for k in ("ref", "source", "table", "path") if getattr(source, k))
    return {
        "kind": "source",
        "name": name,
        "location": {location[0]: location[1]},
        "timestamp_field": source.timestamp_field,
        "created_timestamp_column": source.created_timestamp_column,
        "field_mapping": dict(source.field_mapping),
        "description": source.description,
        "feature_views": [v.name for v in repo.feature_views.values() if v.source == fed],
        "spec": _origin(repo, "sources", name),
    }


def view_info(repo: FeatureRepo, name: str) -> dict[str, Any]:
    """What ``describe`` shows for a feature view: entities, source, ttl, features and their dbt model."""
    from featurehouse.compile.compiler import feature_view_model

    view = repo.feature_views[name]
    dtypes = feature_dtypes(view)
    features = [
        {
            "name": f.name,
            "dtype": f.dtype,
            "description": f.description,
            "tags": dict(f.tags),
            **({"expression": f.expression} if f.expression else {}),
        }
        for f in view.features
    ]
    features += [
        {
            "name": a.output_name,
            "dtype": dtypes[a.output_name],
            "description": a.description,
            "tags": {},
            "aggregation": {"column": a.column, "function": a.function, "window": a.window_text},
        }
        for a in view.aggregations
    ]
    return {
        "kind": "feature_view",
        "name": name,
        "description": view.description,
        "owner": view.owner,
        "tags": dict(view.tags),
        "entities": list(view.entities),
        "join_keys": [{"name": k, "dtype": repo.join_key_dtype(view, k)} for k in repo.join_keys(view)],
        "source": source_info(repo, view.source),
        "ttl": _ttl(view.ttl),
        "ttl_seconds": view.ttl,
        "online": view.online,
        "filter_by_created_timestamp": view.filter_by_created_timestamp,
        "features": features,
        "model": feature_view_model(name),
        "feature_services": service_usage(repo, name),
        "training_sets": training_set_usage(repo, name),
        "spec": _origin(repo, "feature_views", name),
    }


def service_info(repo: FeatureRepo, name: str) -> dict[str, Any]:
    """What ``describe`` shows for a feature service: the features it groups."""
    service = repo.feature_services[name]
    return {
        "kind": "feature_service",
        "name": name,
        "description": service.description,
        "owner": service.owner,
        "tags": dict(service.tags),
        "features": _feature_refs(repo, service.features),
        "feature_views": _views_of(repo, service.features),
        "request_views": _request_views_of(repo, service.features),
        "training_sets": [t.name for t in repo.training_sets.values() if t.features == name],
        "spec": _origin(repo, "feature_services", name),
    }


def training_set_info(repo: FeatureRepo, name: str) -> dict[str, Any]:
    """What ``describe`` shows for a training set: its spine, features and dbt model."""
    from featurehouse.compile.compiler import training_set_model

    training_set = repo.training_sets[name]
    spine = training_set.spine
    location = next((k, getattr(spine, k)) for k in ("ref", "source", "table", "path") if getattr(spine, k))
    features = training_set.features
    return {
        "kind": "training_set",
        "name": name,
        "description": training_set.description,
        "owner": training_set.owner,
        "tags": dict(training_set.tags),
        "spine": {location[0]: location[1]},
        "feature_service": features if isinstance(features, str) and features in repo.feature_services else None,
        "features": _feature_refs(repo, features),
        "feature_views": _views_of(repo, features),
        "request_views": _request_views_of(repo, features),
        "full_feature_names": training_set.full_feature_names,
        "model": training_set_model(name),
        "spec": _origin(repo, "training_sets", name),
    }


def feature_info(repo: FeatureRepo, view_name: str, feature_name: str) -> dict[str, Any]:
    """What ``describe`` shows for one feature (``view:feature``) of a view."""
    view = repo.feature_views[view_name]
    entry = next(f for f in view_info(repo, view_name)["features"] if f["name"] == feature_name)
    return {
        "kind": "feature",
        "name": f"{view_name}:{feature_name}",
        "feature_view": view_name,
        **{k: v for k, v in entry.items() if k != "name"},
        "owner": view.owner,
        # a feature inherits its view's tags; its own win
        "tags": {**view.tags, **entry["tags"]},
        "join_keys": repo.join_keys(view),
        "ttl": _ttl(view.ttl),
        "feature_services": [u["name"] for u in service_usage(repo, view_name) if feature_name in u["features"]],
        "training_sets": [u["name"] for u in training_set_usage(repo, view_name) if feature_name in u["features"]],
    }


def request_usage(repo: FeatureRepo, view_name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(feature services, training sets) reading request view ``view_name``, with the features each reads."""
    services = []
    for service in repo.feature_services.values():
        for selection in request_selections(repo, split_refs(repo, service.features)[1]):
            if selection.view.name == view_name:
                services.append({"name": service.name, "features": list(selection.features)})
    sets = []
    for training_set in repo.training_sets.values():
        for selection in request_selections(repo, split_refs(repo, training_set.features)[1]):
            if selection.view.name == view_name:
                via = training_set.features if isinstance(training_set.features, str) else None
                sets.append(
                    {
                        "name": training_set.name,
                        "features": list(selection.features),
                        "via": via if via in repo.feature_services else None,
                    }
                )
    return services, sets


def request_view_info(repo: FeatureRepo, name: str) -> dict[str, Any]:
    """What ``describe`` shows for a request view: its request fields, expressions and the features they read."""
    view = repo.request_views[name]
    reads = compiled(repo, view).refs
    services, sets = request_usage(repo, name)
    return {
        "kind": "request_view",
        "name": name,
        "description": view.description,
        "owner": view.owner,
        "tags": dict(view.tags),
        "request": [{"name": f.name, "dtype": f.dtype, "description": f.description} for f in view.request],
        "features": [
            {
                "name": f.name,
                "dtype": f.dtype,
                "expression": f.expression,
                "description": f.description,
                "tags": dict(f.tags),
            }
            for f in view.features
        ],
        "reads": [f"{v}:{f}" for v, f in reads],
        "feature_views": list(dict.fromkeys(v for v, _ in reads)),
        "feature_services": services,
        "training_sets": sets,
        "spec": _origin(repo, "request_views", name),
    }


def request_feature_info(repo: FeatureRepo, view_name: str, feature_name: str) -> dict[str, Any]:
    """What ``describe`` shows for one feature (``view:feature``) of a request view."""
    info = request_view_info(repo, view_name)
    entry = next(f for f in info["features"] if f["name"] == feature_name)
    used = nodes(compiled(repo, repo.request_views[view_name]).feature(feature_name).tree)
    fields = {n.value for n in used if n.op == "field"}
    reads = list(dict.fromkeys(f"{n.value[0]}:{n.value[1]}" for n in used if n.op == "ref"))
    return {
        "kind": "request_feature",
        "name": f"{view_name}:{feature_name}",
        "request_view": view_name,
        **{k: v for k, v in entry.items() if k != "name"},
        "owner": info["owner"],
        "tags": {**info["tags"], **entry["tags"]},
        "request": [f for f in info["request"] if f["name"] in fields],  # the fields its expression uses
        "reads": reads,
        "feature_services": [u["name"] for u in info["feature_services"] if feature_name in u["features"]],
        "training_sets": [u["name"] for u in info["training_sets"] if feature_name in u["features"]],
    }


# ---- list ------------------------------------------------------------------------------------------
def list_objects(
    repo: FeatureRepo, kind: str, tags: dict[str, str | None] | None = None, owner: str | None = None
) -> list[dict[str, Any]]:
    """Every object of ``kind`` (one of KINDS) whose tags and owner match the filters."""
    tags = tags or {}
    if kind == "entities":
        if owner:
            raise CatalogError("entities have no owner; filter them with --tag, or list feature-views --owner")
        rows = [entity_info(repo, n) for n in sorted(repo.entities)]
    elif kind == "sources":
        if tags or owner:
            raise CatalogError("sources have no tags or owner; list feature-views --tag/--owner instead")
        rows = [{**source_info(repo, n), "tags": {}, "owner": ""} for n in sorted(repo.sources)]
    elif kind == "request-views":
        rows = [request_view_info(repo, n) for n in sorted(repo.request_views)]
    elif kind == "feature-views":
        rows = [view_info(repo, n) for n in sorted(repo.feature_views)]
    elif kind == "feature-services":
        rows = [service_info(repo, n) for n in sorted(repo.feature_services)]
    elif kind == "features":
        rows = [
            feature_info(repo, v, f) for v in sorted(repo.feature_views) for f in feature_dtypes(repo.feature_views[v])
        ]
        rows += [
            request_feature_info(repo, v, f)
            for v in sorted(repo.request_views)
            for f in repo.request_views[v].feature_names
        ]
    else:
        raise CatalogError(f"unknown kind '{kind}'; expected one of {', '.join(KINDS)}{did_you_mean(kind, KINDS)}")
    return [r for r in rows if _tags_match(r["tags"], tags) and (not owner or _owner_matches(r["owner"], owner))]


# ---- describe --------------------------------------------------------------------------------------
def all_names(repo: FeatureRepo) -> list[str]:
    """Every name ``describe`` accepts: objects, then ``view:feature`` for each feature."""
    names = [*repo.entities, *repo.sources, *repo.feature_views, *repo.feature_services, *repo.training_sets]
    names += [*repo.request_views]
    names += [f"{v.name}:{f}" for v in repo.feature_views.values() for f in v.feature_names]
    names += [f"{v.name}:{f}" for v in repo.request_views.values() for f in v.feature_names]
    return names


def describe(repo: FeatureRepo, name: str) -> list[dict[str, Any]]:
    """Everything named ``name``: a view, service, entity, source, training set or feature.

    A feature is ``view:feature``, or its bare name when one view alone has it. Several
    objects may share a name across kinds (an entity and a view called ``driver``): all
    come back, views first.
    """
    found: list[dict[str, Any]] = []
    if name in repo.feature_views:
        found.append(view_info(repo, name))
    if name in repo.request_views:
        found.append(request_view_info(repo, name))
    if name in repo.feature_services:
        found.append(service_info(repo, name))
    if name in repo.training_sets:
        found.append(training_set_info(repo, name))
    if name in repo.entities:
        found.append(entity_info(repo, name))
    if name in repo.sources:
        found.append(source_info(repo, name))
    view_name, colon, feature_name = name.partition(":")
    if colon:
        view = repo.feature_views.get(view_name)
        if view is not None and feature_name in feature_dtypes(view):
            found.append(feature_info(repo, view_name, feature_name))
        request_view = repo.request_views.get(view_name)
        if request_view is not None and feature_name in request_view.feature_names:
            found.append(request_feature_info(repo, view_name, feature_name))
    elif not found:
        owners = sorted(v.name for v in repo.feature_views.values() if name in feature_dtypes(v))
        owners += sorted(v.name for v in repo.request_views.values() if name in v.feature_names)
        if len(owners) > 1:
            raise CatalogError(
                f"feature '{name}' is in several feature views ({', '.join(owners)}); "
                f"name one, e.g. '{owners[0]}:{name}'"
            )
        if owners and owners[0] in repo.request_views:
            found.append(request_feature_info(repo, owners[0], name))
        elif owners:
            found.append(feature_info(repo, owners[0], name))
    if not found:
        raise CatalogError(
            f"nothing in the repo is named '{name}'{did_you_mean(name, all_names(repo))}; "
            "try 'featurehouse search' or 'featurehouse list features'"
        )
    return found


# ---- online state ----------------------------------------------------------------------------------
def online_state(store: Any, view_names: list[str]) -> dict[str, dict[str, Any]]:
    """Last sync time and row count per view, from the sync state kept in the online store.

    Returns ``{view: {"last_sync": iso or None, "rows": int or None}}`` (None: never
    synced), or ``{view: {"error": sentence}}`` for every view when the store cannot be read.
    """
    from featurehouse.sync import open_backend

    backend = open_backend(store.repo.config.online_store, store.repo_path)
    never: dict[str, dict[str, Any]] = {v: {"last_sync": None, "rows": None} for v in view_names}
    path = getattr(backend, "path", None)
    if path is not None and not Path(path).exists():
        return never  # an embedded store nobody synced yet: don't create its file just to look
    try:
        backend.connect()
        states = {s.view: s for s in backend.states()}
        pushes = backend.push_times()  # the last push per view (docs/push.md)
    except FeaturehouseError as error:
        return {v: {"error": str(error)} for v in view_names}
    finally:
        backend.close()
    from featurehouse.sync.layout import PUSHED_ONLY

    for view in view_names:
        state = states.get(view)
        if state is not None and state.origin != PUSHED_ONLY:  # a state only a push wrote: never synced
            never[view] = {"last_sync": state.synced_at.isoformat(), "rows": state.rows}
        if view in pushes:
            never[view]["last_push"] = pushes[view].isoformat()
    _offline_pushes(store, never)
    return never


def _offline_pushes(store: Any, found: dict[str, dict[str, Any]]) -> None:
    """Add ``last_offline_push`` (the newest batch in the push log) to the views a push source feeds."""
    from featurehouse.spec.push import push_view_of
    from featurehouse.sync.offline_log import last_offline_push

    for view, state in found.items():
        push = push_view_of(store.repo, store.repo.feature_views[view]) if view in store.repo.feature_views else None
        if push is None or "error" in state:
            continue
        try:
            when = last_offline_push(store.target, store.repo_path, push)
        except FeaturehouseError:  # no dbt target: the log cannot be found
            continue
        if when is not None:
            state["last_offline_push"] = when.isoformat()


# ---- search ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    """One search hit: what it is, its name, and which of its fields matched."""

    kind: str
    name: str
    description: str
    matched: tuple[str, ...]  # which fields matched: name, description, tags, owner
    score: int

    def as_dict(self) -> dict[str, Any]:
        """The hit as JSON (``featurehouse search --json``, the catalog API)."""
        return {"kind": self.kind, "name": self.name, "description": self.description, "matched": list(self.matched)}


def _documents(repo: FeatureRepo) -> Iterable[tuple[str, str, dict[str, str]]]:
    """(kind, name, searchable fields) for everything in the repo."""
    for e in repo.entities.values():
        yield (
            "entity",
            e.name,
            {
                "name": e.name,
                "description": e.description,
                "tags": _tag_text(e.tags),
                "join keys": " ".join(e.join_keys),
            },
        )
    for s in repo.sources.values():
        yield "source", s.name, {"name": s.name, "description": s.description}
    for v in repo.feature_views.values():
        yield (
            "feature view",
            v.name,
            {"name": v.name, "description": v.description, "tags": _tag_text(v.tags), "owner": v.owner},
        )
        for f in v.features:
            yield (
                "feature",
                f"{v.name}:{f.name}",
                {
                    "name": f.name,
                    "description": f.description,
                    "tags": _tag_text({**v.tags, **f.tags}),
                    "owner": v.owner,
                },
            )
        for a in v.aggregations:
            yield (
                "feature",
                f"{v.name}:{a.output_name}",
                {"name": a.output_name, "description": a.description, "tags": _tag_text(v.tags), "owner": v.owner},
            )
    for r in repo.request_views.values():
        fields = " ".join(f.name for f in r.request)
        yield (
            "request view",
            r.name,
            {"name": r.name, "description": r.description, "tags": _tag_text(r.tags), "owner": r.owner},
        )
        for rf in r.features:
            yield (
                "feature",
                f"{r.name}:{rf.name}",
                {
                    "name": rf.name,
                    "description": rf.description,
                    "tags": _tag_text({**r.tags, **rf.tags}),
                    "owner": r.owner,
                    "expression": f"{rf.expression} {fields}",
                },
            )
    for fs in repo.feature_services.values():
        yield (
            "feature service",
            fs.name,
            {"name": fs.name, "description": fs.description, "tags": _tag_text(fs.tags), "owner": fs.owner},
        )
    for t in repo.training_sets.values():
        yield (
            "training set",
            t.name,
            {"name": t.name, "description": t.description, "tags": _tag_text(t.tags), "owner": t.owner},
        )


def _tag_text(tags: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(tags.items()))


_FIELD_WEIGHT = {"name": 8, "tags": 4, "owner": 2, "description": 1, "join keys": 4, "expression": 1}


def search(repo: FeatureRepo, text: str) -> list[Match]:
    """Objects whose name, description, tags or owner contain every word of ``text``.

    Case-insensitive; name hits rank above tag hits above description hits.
    """
    words = text.lower().split()
    if not words:
        raise CatalogError("search needs some text, e.g. 'featurehouse search conversion'")
    matches = []
    for kind, name, fields in _documents(repo):
        lowered = {k: v.lower() for k, v in fields.items() if v}
        if not all(any(w in v for v in lowered.values()) for w in words):
            continue
        hit = tuple(k for k, v in lowered.items() if any(w in v for w in words))
        score = sum(_FIELD_WEIGHT[k] for k in hit) + (16 if " ".join(words) == fields["name"].lower() else 0)
        matches.append(Match(kind, name, fields.get("description", ""), hit, score))
    rank = {
        "feature view": 0,
        "request view": 1,
        "feature service": 2,
        "training set": 3,
        "entity": 4,
        "source": 5,
        "feature": 6,
    }
    return sorted(matches, key=lambda m: (-m.score, rank[m.kind], m.name))


def search_suggestion(repo: FeatureRepo, text: str) -> str:
    """`` (did you mean 'x'?)`` over every name, for a search that found nothing."""
    names = all_names(repo) + [f for v in repo.feature_views.values() for f in v.feature_names]
    names += [f for v in repo.request_views.values() for f in v.feature_names]
    return did_you_mean(text.strip(), names)


# ---- plan ------------------------------------------------------------------------------------------
@dataclass
class Change:
    """One thing the next compile changes; ``breaking`` says why it may break a consumer."""

    subject: str  # e.g. "feature view 'driver_hourly_stats'"
    action: str  # add | change | remove
    detail: str
    breaking: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The change as JSON (``featurehouse plan --json``)."""
        return {
            "subject": self.subject,
            "action": self.action,
            "detail": self.detail,
            "breaking": self.breaking or None,
        }


@dataclass
class Plan:
    """What ``featurehouse compile`` would change in the models folder, file by file and view by view."""

    models_dir: str
    dialect: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @property
    def breaking(self) -> list[Change]:
        """The changes that break readers of the models or the online store."""
        return [c for c in self.changes if c.breaking]

    @property
    def empty(self) -> bool:
        """Whether compile would leave every model file as it is."""
        return not (self.added or self.changed or self.removed)

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON (``featurehouse plan --json``)."""
        return {
            "models_dir": self.models_dir,
            "dialect": self.dialect,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "changes": [c.as_dict() for c in self.changes],
            "breaking": [c.as_dict() for c in self.breaking],
        }


def _views_in_schema(text: str | None) -> dict[str, dict[str, Any]]:
    """Feature views as the compiled schema.yml describes them: the previous compile's view of the repo."""
    import yaml

    if not text:
        return {}
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return {}
    views: dict[str, dict[str, Any]] = {}
    for model in document.get("models") or []:
        meta = (model.get("config") or {}).get("meta") or {}
        info = meta.get("featurehouse") or {}
        if info.get("kind") != "feature_view":
            continue
        features = {}
        for column in model.get("columns") or []:
            column_meta = (column.get("config") or {}).get("meta") or {}
            if "dtype" in column_meta:
                features[column["name"]] = {"dtype": column_meta["dtype"], "expression": column_meta.get("expression")}
        for output, spec in (info.get("aggregations") or {}).items():
            features[output] = {"dtype": spec.get("dtype"), "aggregation": spec.get("aggregation")}
        views[info["name"]] = {
            "entities": list(info.get("entities") or []),
            "source": info.get("source"),
            "ttl": info.get("ttl"),
            "online": info.get("online"),
            "owner": meta.get("owner", ""),
            "description": model.get("description", ""),
            "tags": dict(info.get("tags") or {}),
            "features": features,
        }
    return views


def _consumers(repo: FeatureRepo, view_name: str, feature: str | None) -> str:
    """``service driver_activity, training set driver_training`` reading the view (or that feature)."""
    services = [u["name"] for u in service_usage(repo, view_name) if feature is None or feature in u["features"]]
    sets = [u["name"] for u in training_set_usage(repo, view_name) if feature is None or feature in u["features"]]
    parts = [f"feature service '{s}'" for s in services] + [f"training set '{t}'" for t in sets]
    return ", ".join(parts)


def _removed_feature_consumers(repo: FeatureRepo, view_name: str) -> str:
    """Who read a removed feature: whoever still reads the whole view named bare."""
    services = [s.name for s in repo.feature_services.values() if view_name in s.features]
    sets = [
        t.name
        for t in repo.training_sets.values()
        if (isinstance(t.features, str) and (t.features == view_name or t.features in services))
        or (isinstance(t.features, list) and view_name in t.features)
    ]
    return ", ".join([f"feature service '{s}'" for s in services] + [f"training set '{t}'" for t in sets])


def plan(repo: FeatureRepo, dialect: str) -> Plan:
    """What ``featurehouse compile`` would change under the models folder, and which changes break consumers.

    Files come from comparing the compiler's output with the generated files on disk; the
    meaning of the change from comparing the repo with the ``meta`` of the schema.yml on disk
    (what the last compile saw).
    """
    from featurehouse.compile import compiler

    models_dir = repo.root / repo.config.models_dir
    files = compiler.compile_repo(repo, dialect)
    on_disk = compiler.generated_files_on_disk(models_dir)
    result = Plan(models_dir=repo.config.models_dir, dialect=dialect)
    for name, text in files.items():
        if name not in on_disk:
            result.added.append(name)
        elif on_disk[name] != text:
            result.changed.append(name)
        else:
            result.unchanged.append(name)
    result.removed = [n for n in on_disk if n not in files]

    before = _views_in_schema(on_disk.get(compiler.SCHEMA_FILE))
    after = _views_in_schema(files.get(compiler.SCHEMA_FILE))
    for name in sorted(set(before) | set(after)):
        subject = f"feature view '{name}'"
        old, new = before.get(name), after.get(name)
        if old is None:
            assert new is not None  # the name comes from one of the two
            result.changes.append(Change(subject, "add", f"new, {len(new['features'])} feature(s)"))
            continue
        if new is None:
            result.changes.append(
                Change(
                    subject,
                    "remove",
                    "removed: its model and its online table are no longer built",
                    f"model {compiler.feature_view_model(name)} disappears; dbt models or queries reading it fail",
                )
            )
            continue
        _compare_view(repo, name, old, new, result)
    return result


def _compare_view(repo: FeatureRepo, name: str, old: dict[str, Any], new: dict[str, Any], result: Plan) -> None:
    subject = f"feature view '{name}'"
    add = result.changes.append
    for feature in new["features"]:
        if feature not in old["features"]:
            add(Change(subject, "add", f"feature '{feature}' ({new['features'][feature]['dtype']})"))
    for feature, spec in old["features"].items():
        if feature not in new["features"]:
            users = _removed_feature_consumers(repo, name)
            add(
                Change(
                    subject,
                    "remove",
                    f"feature '{feature}' ({spec['dtype']})",
                    f"{users} still read the whole view and lose column '{feature}'" if users else "",
                )
            )
            continue
        now = new["features"][feature]
        if spec["dtype"] != now["dtype"]:
            users = _consumers(repo, name, feature)
            add(
                Change(
                    subject,
                    "change",
                    f"feature '{feature}' dtype {spec['dtype']} → {now['dtype']}",
                    f"'{feature}' changes type for {users or 'every reader'}; re-sync the online store "
                    "with --full-refresh after dbt run",
                )
            )
        if spec.get("aggregation") != now.get("aggregation"):
            add(
                Change(
                    subject,
                    "change",
                    f"feature '{feature}' aggregation {spec.get('aggregation') or '(column)'} → "
                    f"{now.get('aggregation') or '(column)'}: its values are recomputed",
                )
            )
        if spec.get("expression") != now.get("expression"):
            add(
                Change(
                    subject,
                    "change",
                    f"feature '{feature}' expression {spec.get('expression') or '(column)'} → "
                    f"{now.get('expression') or '(column)'}: its values are recomputed",
                )
            )
    if old["entities"] != new["entities"]:
        users = _consumers(repo, name, None)
        add(
            Change(
                subject,
                "change",
                f"entities {', '.join(old['entities'])} → {', '.join(new['entities'])}",
                "the join keys change: entity dataframes, online requests"
                + (f" and {users}" if users else "")
                + " must use the new keys",
            )
        )
    if old["ttl"] != new["ttl"]:
        add(
            Change(
                subject,
                "change",
                f"ttl {old['ttl'] or 'unlimited'} → {new['ttl'] or 'unlimited'}: "
                "training sets and online reads see values of a different age",
            )
        )
    if old["source"] != new["source"]:
        add(Change(subject, "change", f"source {old['source']} → {new['source']}"))
    if old["online"] != new["online"]:
        add(
            Change(
                subject,
                "change",
                "online " + ("on" if new["online"] else "off"),
                "" if new["online"] else "online reads of this view stop working after the next sync",
            )
        )
    for label in ("description", "owner", "tags"):
        if old[label] != new[label]:
            add(Change(subject, "change", f"{label} updated (documentation only)"))


def plan_dialect(repo: FeatureRepo, target: str | None, profiles_dir: str | None) -> str:
    """The dialect ``compile`` would use: the dbt target's type, DuckDB without a profile."""
    from featurehouse.dbt.profile import load_target
    from featurehouse.errors import ConfigError

    try:
        return load_target(repo.root, target, profiles_dir).dialect
    except ConfigError:
        return "duckdb"
