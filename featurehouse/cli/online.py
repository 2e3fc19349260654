"""CLI commands of the online half: sync, get-online-features, check."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from featurehouse.cli.app import main, open_store

EXIT_BUSY = 75  # EX_TEMPFAIL: another sync runs; cron may simply try again next time


class _Bar:
    """A one-line progress bar on stderr, for terminals."""

    def __init__(self) -> None:
        self.view = ""
        self.total = 0
        self.done = 0

    def start(self, view: str, total: int) -> None:
        self.view, self.total, self.done = view, total, 0
        self._draw()

    def advance(self, rows: int) -> None:
        self.done += rows
        self._draw()

    def finish(self) -> None:
        if self.view:
            click.echo("", err=True)

    def _draw(self) -> None:
        width = 30
        share = self.done / self.total if self.total else 1.0
        filled = int(width * share)
        click.echo(
            f"\r{self.view:<32.32} [{'#' * filled}{'.' * (width - filled)}] {self.done:>12,}/{self.total:,}",
            err=True,
            nl=False,
        )


@main.command()
@click.option("--views", default=None, help="Comma-separated feature views to sync (default: every online view).")
@click.option(
    "--full-refresh", is_flag=True, help="Rebuild each view from its snapshot, dropping entities that are gone."
)
@click.option(
    "--wait",
    default=0.0,
    type=float,
    show_default=True,
    help="Seconds to wait for a sync that is already running before giving up.",
)
@click.pass_context
def sync(ctx: click.Context, views: str | None, full_refresh: bool, wait: float) -> None:
    """Copy the latest snapshots (dbt models online_<view>) to the online store; meant for cron.

    Writes only entities whose row changed since the last sync, never an older row over
    a newer one. Exit status: 0 done, 1 error (nothing committed for the failing view),
    75 another sync holds the lock.
    """
    from featurehouse.sync import Progress, SyncBusyError
    from featurehouse.sync import sync as run_sync

    store = open_store(ctx)
    names = [v.strip() for v in views.split(",") if v.strip()] if views else None
    progress = _Bar() if sys.stderr.isatty() else Progress()
    try:
        report = run_sync(store, names, full_refresh=full_refresh, wait=wait, progress=progress)  # type: ignore[arg-type]
    except SyncBusyError as error:
        click.echo(f"featurehouse sync: {error}", err=True)
        sys.exit(EXIT_BUSY)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(report.summary())
    if report.bi_export is not None:
        click.echo(report.bi_export.summary())


def _parse_entity(option: str, key_types: dict[str, str]) -> tuple[str, Any]:
    from featurehouse.errors import RequestError, did_you_mean

    key, sep, text = option.partition("=")
    if not sep or not key:
        raise RequestError(f"-e expects key=value such as driver_id=1001, got {option!r}")
    if key not in key_types:
        raise RequestError(
            f"-e {option}: '{key}' is not a join key of the requested features{did_you_mean(key, key_types)}"
        )
    dtype = key_types[key]
    if dtype in ("int32", "int64"):
        try:
            return key, int(text)  # out of range: the reader says so
        except ValueError:
            raise RequestError(f"-e {option}: join key '{key}' is {dtype}, and {text!r} is not an integer") from None
    if dtype == "bool":
        if text.lower() not in ("true", "false", "1", "0"):
            raise RequestError(f"-e {option}: join key '{key}' is bool; write true or false")
        return key, text.lower() in ("true", "1")
    if dtype == "bytes":
        return key, text.encode()
    return key, text


@main.command("get-online-features")
@click.option(
    "-f",
    "--feature",
    "features",
    multiple=True,
    required=True,
    help="view:feature or view, repeat for more; or a feature service name, alone.",
)
@click.option(
    "-e",
    "--entity",
    "entities",
    multiple=True,
    required=True,
    help="join_key=value; repeat a key for more entity rows.",
)
@click.option("--full-feature-names", is_flag=True, help="Name outputs view__feature.")
@click.option("--with-timestamps", is_flag=True, help="Add name__ts (event time, epoch seconds) as Feast does.")
@click.option("--feast-json", is_flag=True, help="Print Feast's HTTP response body (values, statuses, timestamps).")
@click.pass_context
def get_online_features(
    ctx: click.Context,
    features: tuple[str, ...],
    entities: tuple[str, ...],
    full_feature_names: bool,
    with_timestamps: bool,
    feast_json: bool,
) -> None:
    """Print the online features of some entities as JSON."""
    from featurehouse.online.reader import json_value, reader_for
    from featurehouse.sync.layout import ViewLayout

    store = open_store(ctx)
    # a lone name without ':' may be a feature service (or a whole view)
    wanted: str | list[str] = features[0] if len(features) == 1 and ":" not in features[0] else list(features)
    key_types: dict[str, str] = {}
    from featurehouse.spec.request_views import regular_selections

    for selection in regular_selections(store.repo, wanted):
        layout = ViewLayout.of(store.repo, selection.view)
        key_types.update(zip(layout.join_keys, layout.key_dtypes))
    columns: dict[str, list[Any]] = {}
    for option in entities:
        key, value = _parse_entity(option, key_types)
        columns.setdefault(key, []).append(value)
    reader = reader_for(store)
    try:
        response = reader.read(wanted, columns, full_feature_names)
    finally:
        reader.close()
    if feast_json:
        body = response.to_feast_json()
    else:  # the same JSON forms as the Feast body: bytes base64, timestamps ISO 8601, NaN null
        body = {
            name: [json_value(v) for v in values]
            for name, values in response.to_dict(include_event_timestamps=with_timestamps).items()
        }
    click.echo(json.dumps(body, indent=2, allow_nan=False))


@main.command("retrieve-online-documents")
@click.option("-f", "--feature", "features", multiple=True, required=True, help="view:feature, repeat for more.")
@click.option("-q", "--query", required=True, help="The query vector: a JSON list, or numbers split by commas.")
@click.option("-k", "--top-k", default=10, show_default=True, type=int, help="How many documents (1-1000).")
@click.option("-w", "--where", "where", multiple=True, help="feature=value: only documents with that value; repeat.")
@click.option("--distance-metric", default=None, help="The index's metric, checked (cosine, l2, inner_product).")
@click.option("--exact", is_flag=True, help="Exact search where the store has an approximate index.")
@click.option("--feast-json", is_flag=True, help="Print Feast's HTTP response body (values, statuses, timestamps).")
@click.pass_context
def retrieve_online_documents(
    ctx: click.Context,
    features: tuple[str, ...],
    query: str,
    top_k: int,
    where: tuple[str, ...],
    distance_metric: str | None,
    exact: bool,
    feast_json: bool,
) -> None:
    """Print the documents nearest a query vector (best first) as JSON: keys, features, distance."""
    from featurehouse.online.search import cli_query, cli_where, to_json

    store = open_store(ctx)
    response = store.retrieve_online_documents(
        list(features), cli_query(query), top_k, distance_metric, cli_where(store.repo, features, where), exact
    )
    body = to_json(response) if feast_json else to_json(response, columns=True)
    click.echo(json.dumps(body, indent=2, allow_nan=False))


@main.command()
@click.option("--views", default=None, help="Comma-separated feature views to audit (default: every online view).")
@click.option(
    "--sample", default=100, show_default=True, type=click.IntRange(min=1), help="Entities to compare per view."
)
@click.pass_context
def check(ctx: click.Context, views: str | None, sample: int) -> None:
    """Skew audit: online values against get_historical_features for the same entities.

    Plain views are compared at the last sync time, aggregation views at their snapshot's
    as-of time (floats within a relative 1e-9). Exits 1 and lists the differences when
    any entity differs or a view was never synced.
    """
    from featurehouse.online.check import audit

    store = open_store(ctx)
    names = [v.strip() for v in views.split(",") if v.strip()] if views else None
    result = audit(store, names, sample)
    for line in result.lines():
        click.echo(line)
    if result.differences:
        sys.exit(1)
