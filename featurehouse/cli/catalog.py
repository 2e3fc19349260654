"""CLI commands of the catalog: list, describe, search, plan, serve."""

from __future__ import annotations

import json
import shutil
import sys
from typing import Any

import click

from featurehouse.cli.app import load_repo_from, main, open_store


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _tags(tags: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(tags.items()))


def _table(headers: list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns; the last column is cut to the terminal's width."""
    if not rows:
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    if sys.stdout.isatty():  # piped output keeps whole descriptions
        room = shutil.get_terminal_size().columns - sum(w + 2 for w in widths[:-1])
        widths[-1] = max(20, min(widths[-1], room))

    def line(cells: list[str]) -> str:
        last = cells[-1] if len(cells[-1]) <= widths[-1] else cells[-1][: widths[-1] - 1] + "…"
        return "  ".join(c.ljust(w) for c, w in zip([*cells[:-1], last], widths)).rstrip()

    click.echo(line(headers))
    for row in rows:
        click.echo(line(row))


# ---- list ------------------------------------------------------------------------------------------
_LIST_COLUMNS = {
    "entities": (
        ["NAME", "JOIN KEYS", "TYPE", "FEATURE VIEWS", "DESCRIPTION"],
        lambda r: [
            r["name"],
            ",".join(r["join_keys"]),
            r["value_type"],
            ",".join(r["feature_views"]),
            r["description"],
        ],
    ),
    "sources": (
        ["NAME", "LOCATION", "TIMESTAMP", "FEATURE VIEWS", "DESCRIPTION"],
        lambda r: [
            r["name"],
            ", ".join(f"{k} {v}" for k, v in r["location"].items()),
            r["timestamp_field"],
            ",".join(r["feature_views"]),
            r["description"],
        ],
    ),
    "request-views": (
        ["NAME", "REQUEST FIELDS", "FEATURES", "READS", "OWNER", "TAGS", "DESCRIPTION"],
        lambda r: [
            r["name"],
            ",".join(f["name"] for f in r["request"]),
            str(len(r["features"])),
            ",".join(r["feature_views"]),
            r["owner"],
            _tags(r["tags"]),
            r["description"],
        ],
    ),
    "feature-views": (
        ["NAME", "ENTITIES", "FEATURES", "TTL", "ONLINE", "OWNER", "TAGS", "DESCRIPTION"],
        lambda r: [
            r["name"],
            ",".join(r["entities"]),
            str(len(r["features"])),
            r["ttl"],
            "yes" if r["online"] else "no",
            r["owner"],
            _tags(r["tags"]),
            r["description"],
        ],
    ),
    "feature-services": (
        ["NAME", "FEATURES", "FEATURE VIEWS", "OWNER", "TAGS", "DESCRIPTION"],
        lambda r: [
            r["name"],
            str(len(r["features"])),
            ",".join(r["feature_views"]),
            r["owner"],
            _tags(r["tags"]),
            r["description"],
        ],
    ),
    "features": (
        ["FEATURE", "DTYPE", "OWNER", "TAGS", "DESCRIPTION"],
        lambda r: [r["name"], r["dtype"], r["owner"], _tags(r["tags"]), r["description"]],
    ),
}


@main.command("list")
@click.argument("kind", type=click.Choice(list(_LIST_COLUMNS)))
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only objects with this tag (KEY alone: any value); repeat to require several.",
)
@click.option("--owner", default=None, help="Only objects with this owner (the part before @ is enough).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(ctx: click.Context, kind: str, tags: tuple[str, ...], owner: str | None, as_json: bool) -> None:
    """List entities, sources, feature-views, request-views, feature-services or features, optionally filtered."""
    from featurehouse import catalog

    repo = load_repo_from(ctx)
    rows = catalog.list_objects(repo, kind, catalog.parse_tag_filters(tags), owner)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        filters = [f"--tag {t}" for t in tags] + ([f"--owner {owner}"] if owner else [])
        click.echo(f"No {kind.replace('-', ' ')}" + (f" match {' '.join(filters)}." if filters else " defined."))
        return
    headers, cells = _LIST_COLUMNS[kind]
    _table(headers, [cells(r) for r in rows])


# ---- describe --------------------------------------------------------------------------------------
@main.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--no-online", is_flag=True, help="Do not ask the online store for its sync state.")
@click.pass_context
def describe(ctx: click.Context, name: str, as_json: bool, no_online: bool) -> None:
    """Describe a feature view, request view, feature (view:feature), service, training set, entity or source."""
    from featurehouse import catalog

    store = None if no_online else open_store(ctx)
    repo = store.repo if store is not None else load_repo_from(ctx)
    found = catalog.describe(repo, name)
    views = [d["name"] for d in found if d["kind"] == "feature_view" and d["online"]]
    if store is not None and views:
        state = catalog.online_state(store, views)
        for item in found:
            if item["name"] in state and item["kind"] == "feature_view":
                item["online_store"] = {"type": repo.config.online_store.type, **state[item["name"]]}
    if as_json:
        _echo_json(found if len(found) > 1 else found[0])
        return
    for i, item in enumerate(found):
        if i:
            click.echo()
        _DESCRIBERS[item["kind"]](item)


def _header(kind: str, item: dict[str, Any]) -> None:
    click.secho(f"{kind} {item['name']}", bold=True, nl=False)
    click.echo(f"  ({item['spec']})" if item.get("spec") else "")
    if item.get("description"):
        click.echo(f"  {item['description']}")


def _field(label: str, value: Any) -> None:
    if value not in (None, "", [], {}):
        click.echo(f"  {label + ':':<16}{value}")


def _uses(item: dict[str, Any]) -> None:
    services = item.get("feature_services") or []
    sets = item.get("training_sets") or []
    names = [s if isinstance(s, str) else s["name"] for s in services]
    _field("services", ", ".join(names) or "none")
    set_names = []
    for t in sets:
        if isinstance(t, str):
            set_names.append(t)
        else:
            set_names.append(t["name"] + (f" (via {t['via']})" if t.get("via") else ""))
    _field("training sets", ", ".join(set_names) or "none")


def _describe_view(item: dict[str, Any]) -> None:
    _header("feature view", item)
    _field("owner", item["owner"])
    _field("tags", _tags(item["tags"]))
    keys = ", ".join(f"{k['name']} ({k['dtype']})" for k in item["join_keys"])
    _field("entities", f"{', '.join(item['entities'])}; join keys {keys}")
    source = item["source"]
    where = ", ".join(f"{k} {v}" for k, v in source["location"].items())
    created = f", created {source['created_timestamp_column']}" if source["created_timestamp_column"] else ""
    _field("source", f"{source['name']} ({where}; timestamp {source['timestamp_field']}{created})")
    _field("ttl", item["ttl"])
    _field("online", "yes" if item["online"] else "no")
    _field("dbt model", item["model"])
    online = item.get("online_store")
    if online is not None:
        if "error" in online:
            state = f"unknown: {online['error']}"
        elif online.get("last_sync") is None:
            state = "never synced"
        else:
            rows = online.get("rows")
            state = f"last sync {online['last_sync']}" + (f", {rows} rows" if rows is not None else "")
        if online.get("last_push"):
            state += f"; last push {online['last_push']}"
        if online.get("last_offline_push"):
            state += f"; last push to the log {online['last_offline_push']}"
        _field("online store", f"{online['type']}: {state}")
    _uses(item)
    click.echo("  schema:")
    width = max(len(f["name"]) for f in item["features"])
    dwidth = max(len(f["dtype"]) for f in item["features"])
    for feature in item["features"]:
        extra = []
        if feature.get("expression"):
            extra.append(f"= {feature['expression']}")
        if feature.get("aggregation"):
            agg = feature["aggregation"]
            extra.append(f"= {agg['function']}({agg['column']}) over {agg['window']}")
        if feature["tags"]:
            extra.append(f"[{_tags(feature['tags'])}]")
        text = " ".join([feature["description"], *extra]).strip()
        click.echo(f"    {feature['name']:<{width}}  {feature['dtype']:<{dwidth}}  {text}".rstrip())


def _describe_feature(item: dict[str, Any]) -> None:
    _header("feature", item)
    _field("dtype", item["dtype"])
    _field("expression", item.get("expression"))
    _field("feature view", item["feature_view"])
    _field("join keys", ", ".join(item["join_keys"]))
    _field("ttl", item["ttl"])
    _field("owner", item["owner"])
    _field("tags", _tags(item["tags"]))
    _uses(item)


def _describe_request_view(item: dict[str, Any]) -> None:
    _header("request view", item)
    _field("owner", item["owner"])
    _field("tags", _tags(item["tags"]))
    _field("reads", ", ".join(item["reads"]) or "no other view")
    _uses(item)
    click.echo("  request fields (sent with each entity row):")
    fwidth = max((len(f["name"]) for f in item["request"]), default=0)
    fdwidth = max((len(f["dtype"]) for f in item["request"]), default=0)
    for request_field in item["request"]:
        text = f"{request_field['name']:<{fwidth}}  {request_field['dtype']:<{fdwidth}}  {request_field['description']}"
        click.echo(f"    {text.rstrip()}")
    click.echo("  schema:")
    width = max(len(f["name"]) for f in item["features"])
    dwidth = max(len(f["dtype"]) for f in item["features"])
    for feature in item["features"]:
        extra = [f"= {feature['expression']}"] + ([f"[{_tags(feature['tags'])}]"] if feature["tags"] else [])
        text = " ".join([feature["description"], *extra]).strip()
        click.echo(f"    {feature['name']:<{width}}  {feature['dtype']:<{dwidth}}  {text}".rstrip())


def _describe_request_feature(item: dict[str, Any]) -> None:
    _header("request-time feature", item)
    _field("dtype", item["dtype"])
    _field("expression", item["expression"])
    _field("request view", item["request_view"])
    _field("request fields", ", ".join(f"{f['name']} ({f['dtype']})" for f in item["request"]) or "none")
    _field("reads", ", ".join(item["reads"]) or "no other view")
    _field("owner", item["owner"])
    _field("tags", _tags(item["tags"]))
    _uses(item)


def _describe_service(item: dict[str, Any]) -> None:
    _header("feature service", item)
    _field("owner", item["owner"])
    _field("tags", _tags(item["tags"]))
    _field("feature views", ", ".join(item["feature_views"]))
    _field("request views", ", ".join(item.get("request_views", [])))
    _field("training sets", ", ".join(item["training_sets"]) or "none")
    click.echo("  features:")
    for ref in item["features"]:
        click.echo(f"    {ref}")


def _describe_training_set(item: dict[str, Any]) -> None:
    _header("training set", item)
    _field("owner", item["owner"])
    _field("tags", _tags(item["tags"]))
    _field("spine", ", ".join(f"{k} {v}" for k, v in item["spine"].items()))
    _field("service", item["feature_service"])
    _field("feature views", ", ".join(item["feature_views"]))
    _field("request views", ", ".join(item.get("request_views", [])))
    _field("dbt model", item["model"])
    click.echo("  features:")
    for ref in item["features"]:
        click.echo(f"    {ref}")


def _describe_entity(item: dict[str, Any]) -> None:
    _header("entity", item)
    _field("join keys", ", ".join(item["join_keys"]))
    _field("value type", item["value_type"])
    _field("tags", _tags(item["tags"]))
    _field("feature views", ", ".join(item["feature_views"]) or "none")


def _describe_source(item: dict[str, Any]) -> None:
    _header("push source" if "push" in item["location"] else "source", item)
    _field("location", ", ".join(f"{k} {v}" for k, v in item["location"].items()))
    _field("timestamp", item["timestamp_field"])
    _field("created", item["created_timestamp_column"])
    _field("field mapping", ", ".join(f"{k} → {v}" for k, v in item["field_mapping"].items()))
    _field("feature views", ", ".join(item["feature_views"]) or "none")


_DESCRIBERS = {
    "feature_view": _describe_view,
    "feature": _describe_feature,
    "feature_service": _describe_service,
    "training_set": _describe_training_set,
    "entity": _describe_entity,
    "source": _describe_source,
    "request_view": _describe_request_view,
    "request_feature": _describe_request_feature,
}


# ---- search ----------------------------------------------------------------------------------------
@main.command()
@click.argument("text", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def search(ctx: click.Context, text: tuple[str, ...], as_json: bool) -> None:
    """Find features, views, services, entities and training sets by name, description, tags or owner."""
    from featurehouse import catalog

    repo = load_repo_from(ctx)
    query = " ".join(text)
    matches = catalog.search(repo, query)
    if as_json:
        _echo_json([m.as_dict() for m in matches])
        return
    if not matches:
        click.echo(f"Nothing matches '{query}'{catalog.search_suggestion(repo, query)}.")
        return
    _table(
        ["KIND", "NAME", "MATCHED", "DESCRIPTION"],
        [[m.kind, m.name, ",".join(m.matched), m.description] for m in matches],
    )


# ---- plan ------------------------------------------------------------------------------------------
_MARKS = {"add": "+", "change": "~", "remove": "-"}


@main.command()
@click.option("--dialect", default=None, help="SQL dialect to compile for; default: the type of the dbt target.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--fail-on-breaking", is_flag=True, help="Exit 2 when the plan has breaking changes (for CI).")
@click.pass_context
def plan(ctx: click.Context, dialect: str | None, as_json: bool, fail_on_breaking: bool) -> None:
    """Show what the next 'featurehouse compile' would change, breaking changes first."""
    from featurehouse import catalog

    repo = load_repo_from(ctx)
    dialect = dialect or catalog.plan_dialect(repo, ctx.obj["target"], ctx.obj["profiles_dir"])
    result = catalog.plan(repo, dialect)
    if as_json:
        _echo_json(result.as_dict())
    elif result.empty:
        click.echo(f"No changes: {len(result.unchanged)} file(s) under {result.models_dir} are up to date ({dialect}).")
    else:
        click.echo(
            f"Plan for {result.models_dir} ({dialect}): {len(result.added)} to add, "
            f"{len(result.changed)} to change, {len(result.removed)} to remove."
        )
        for mark, names in (("+", result.added), ("~", result.changed), ("-", result.removed)):
            for name in names:
                click.echo(f"  {mark} {name}")
        if result.changes:
            click.echo("Changes:")
            for change in result.changes:
                click.echo(f"  {_MARKS[change.action]} {change.subject}: {change.detail}")
        if result.breaking:
            click.secho(f"Breaking changes ({len(result.breaking)}):", fg="red", bold=True)
            for change in result.breaking:
                click.secho(f"  ! {change.subject}: {change.detail}: {change.breaking}", fg="red")
        click.echo("Run 'featurehouse compile' to apply.")
    if fail_on_breaking and result.breaking:
        sys.exit(2)


# ---- serve -----------------------------------------------------------------------------------------
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=6566, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes; each loads the repo and opens the online store once.",
)
@click.option(
    "--access-log/--no-access-log", default=False, show_default=True, help="Log every request (costs throughput)."
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option(
    "--store-timeout",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.05, 600),
    metavar="SECONDS",
    help="Deadline of each online-store call; a request that misses it gets a 503 naming the store.",
)
@click.option(
    "--store-concurrency",
    default=32,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Online-store calls in flight per worker; beyond that a request gets a 503 at once.",
)
@click.option(
    "--redis-reads",
    default="loop",
    show_default=True,
    type=click.Choice(["loop", "threads"]),
    help="Read a Redis online store on each worker's event loop, or in its store threads as other stores.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    metavar="SECONDS",
    help="Time a client has to send complete request headers (else 408, closed).",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    metavar="SECONDS",
    help="Time a client has to send the request body after its headers.",
)
@click.option(
    "--keep-alive-timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    metavar="SECONDS",
    help="An idle keep-alive connection is closed after this.",
)
@click.option(
    "--keep-alive-requests",
    default=10_000,
    show_default=True,
    type=click.IntRange(1),
    help="Requests served on one connection before it is closed.",
)
@click.option(
    "--limit-connections",
    default=10_000,
    show_default=True,
    type=click.IntRange(1),
    help="Open connections per worker; more are answered 503 and closed.",
)
@click.option("--ssl-keyfile", default=None, type=click.Path(dir_okay=False), help="TLS private key (PEM).")
@click.option("--ssl-certfile", default=None, type=click.Path(dir_okay=False), help="TLS certificate chain (PEM).")
@click.option("--docs/--no-docs", default=False, show_default=True, help="Serve /docs and /openapi.json.")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    workers: int,
    access_log: bool,
    log_level: str,
    store_timeout: float,
    store_concurrency: int,
    redis_reads: str,
    header_timeout: float,
    body_timeout: float,
    keep_alive_timeout: float,
    keep_alive_requests: int,
    limit_connections: int,
    ssl_keyfile: str | None,
    ssl_certfile: str | None,
    docs: bool,
) -> None:
    """Serve features over HTTP (Feast-compatible POST /get-online-features) and the catalog.

    Authentication: set FEATUREHOUSE_AUTH_TOKENS to one or more bearer tokens (comma-separated);
    every endpoint but /health and /ready then needs "Authorization: Bearer <token>".
    """
    from featurehouse.server import ServerSettings
    from featurehouse.server import serve as run_server

    # load once here so that a broken repo fails with one line before any worker starts
    repo = load_repo_from(ctx)
    settings = ServerSettings(
        store_timeout=store_timeout,
        store_concurrency=store_concurrency,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        keep_alive_timeout=keep_alive_timeout,
        keep_alive_requests=keep_alive_requests,
        max_connections=limit_connections,
        docs=docs,
        loop_reads=redis_reads == "loop",
    )
    run_server(
        repo.root,
        target=ctx.obj["target"],
        profiles_dir=ctx.obj["profiles_dir"],
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level=log_level,
        settings=settings,
        ssl_keyfile=ssl_keyfile,
        ssl_certfile=ssl_certfile,
    )
