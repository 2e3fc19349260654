"""The catalog shows request views (request fields, expressions, what they read) and push sources (which
batch source they extend), as a user runs `list`, `describe` and `search` (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.repos import write_repo

from featurehouse.cli.app import main

SPECS = """\
entities:
  - name: driver
    join_keys: [driver_id]
sources:
  - name: driver_stats
    ref: raw_driver_stats
    timestamp_field: event_timestamp
    created_timestamp_column: created
    description: Hourly driver statistics.
  - name: driver_stats_push
    push: {batch_source: driver_stats}
    description: Fresh statistics from the trips service.
feature_views:
  - name: driver_hourly_stats
    entities: [driver]
    source: driver_stats
    ttl: 1d
    schema:
      - {name: conv_rate, dtype: float32}
      - {name: avg_daily_trips, dtype: int64}
    owner: ml-platform@example.com
request_views:
  - name: trip_request
    description: Features of the trip being priced.
    owner: pricing@example.com
    tags: {team: pricing}
    request:
      - {name: fare, dtype: float64, description: The quoted fare.}
      - {name: distance_km, dtype: float64}
    schema:
      - name: fare_per_trip
        dtype: float64
        expression: "fare / nullif(driver_hourly_stats__avg_daily_trips, 0)"
        description: Fare against the driver's daily trips.
      - {name: long_trip, dtype: bool, expression: "distance_km > 20", tags: {unit: km}}
feature_services:
  - name: pricing
    features: [driver_hourly_stats:conv_rate, "trip_request:fare_per_trip"]
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_repo(tmp_path / "repo", {"specs.yml": SPECS})


def ok(repo: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--repo", str(repo), *args])
    assert result.exit_code == 0, result.output
    return result.output


def fails(repo: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--repo", str(repo), *args])
    assert result.exit_code == 1, result.output
    return result.output


def test_describe_a_request_view(repo: Path) -> None:
    output = ok(repo, "describe", "trip_request", "--no-online")
    assert "request view trip_request" in output and "Features of the trip being priced." in output
    assert "reads:          driver_hourly_stats:avg_daily_trips" in output
    assert "services:       pricing" in output
    assert "    fare         float64  The quoted fare.\n    distance_km  float64\n" in output
    assert "fare_per_trip  float64  Fare against the driver's daily trips. = " in output
    assert "= fare / nullif(driver_hourly_stats__avg_daily_trips, 0)" in output
    assert "long_trip      bool     = distance_km > 20 [unit=km]" in output


def test_describe_a_request_view_as_json(repo: Path) -> None:
    item = json.loads(ok(repo, "describe", "trip_request", "--json", "--no-online"))
    assert item["kind"] == "request_view"
    assert item["request"] == [
        {"name": "fare", "dtype": "float64", "description": "The quoted fare."},
        {"name": "distance_km", "dtype": "float64", "description": ""},
    ]
    assert [(f["name"], f["expression"]) for f in item["features"]] == [
        ("fare_per_trip", "fare / nullif(driver_hourly_stats__avg_daily_trips, 0)"),
        ("long_trip", "distance_km > 20"),
    ]
    assert item["reads"] == ["driver_hourly_stats:avg_daily_trips"]
    assert item["feature_views"] == ["driver_hourly_stats"]
    assert item["feature_services"] == [{"name": "pricing", "features": ["fare_per_trip"]}]
    assert item["spec"].endswith("specs.yml:23")  # the "- name: trip_request" line


def test_describe_a_request_time_feature(repo: Path) -> None:
    by_ref = ok(repo, "describe", "trip_request:long_trip", "--no-online")
    assert "request-time feature trip_request:long_trip" in by_ref
    assert "expression:     distance_km > 20" in by_ref
    assert "request fields: distance_km (float64)" in by_ref  # the fields its own expression uses
    assert "reads:          no other view" in by_ref
    assert "services:       none" in by_ref
    # a bare name one view alone has is enough, as for other features
    item = json.loads(ok(repo, "describe", "fare_per_trip", "--json", "--no-online"))
    assert (item["kind"], item["name"], item["feature_services"]) == (
        "request_feature",
        "trip_request:fare_per_trip",
        ["pricing"],
    )
    assert item["tags"] == {"team": "pricing"} and item["owner"] == "pricing@example.com"
    assert [f["name"] for f in item["request"]] == ["fare"] and item["reads"] == ["driver_hourly_stats:avg_daily_trips"]


def test_a_service_with_request_features(repo: Path) -> None:
    output = ok(repo, "describe", "pricing", "--no-online")
    assert "request views:  trip_request" in output
    assert output.endswith("features:\n    driver_hourly_stats:conv_rate\n    trip_request:fare_per_trip\n")
    assert "services:       pricing" in ok(repo, "describe", "driver_hourly_stats", "--no-online")
    row = json.loads(ok(repo, "list", "feature-services", "--json"))[0]
    assert (row["feature_views"], row["request_views"]) == (["driver_hourly_stats"], ["trip_request"])


def test_a_typo_suggests_the_request_view(repo: Path) -> None:
    assert "did you mean 'trip_request'?" in fails(repo, "describe", "trip_requests", "--no-online")
    assert "did you mean 'trip_request:long_trip'?" in fails(repo, "describe", "trip_request:long_trp", "--no-online")


def test_list_request_views_and_their_features(repo: Path) -> None:
    table = ok(repo, "list", "request-views")
    assert "REQUEST FIELDS" in table and "fare,distance_km" in table and "driver_hourly_stats" in table
    assert json.loads(ok(repo, "list", "request-views", "--owner", "pricing", "--json"))[0]["name"] == "trip_request"
    assert "No request views match --tag team=growth." in ok(repo, "list", "request-views", "--tag", "team=growth")
    features = json.loads(ok(repo, "list", "features", "--json"))
    assert [f["name"] for f in features] == [
        "driver_hourly_stats:conv_rate",
        "driver_hourly_stats:avg_daily_trips",
        "trip_request:fare_per_trip",
        "trip_request:long_trip",
    ]
    assert [f["name"] for f in json.loads(ok(repo, "list", "features", "--tag", "unit=km", "--json"))] == [
        "trip_request:long_trip"
    ]


def test_push_sources_say_which_batch_source_they_extend(repo: Path) -> None:
    output = ok(repo, "describe", "driver_stats_push", "--no-online")
    assert "push source driver_stats_push" in output
    assert "location:       push extends driver_stats" in output
    assert "feature views:  driver_hourly_stats" in output  # the views its rows feed
    table = ok(repo, "list", "sources")
    line = next(row for row in table.splitlines() if row.startswith("driver_stats_push"))
    assert "push extends driver_stats" in line and "driver_hourly_stats" in line
    sources = json.loads(ok(repo, "list", "sources", "--json"))
    assert [(s["name"], s["location"]) for s in sources] == [
        ("driver_stats", {"ref": "raw_driver_stats"}),
        ("driver_stats_push", {"push": "extends driver_stats"}),
    ]
    assert "sources have no tags or owner" in fails(repo, "list", "sources", "--owner", "x")


def test_search_finds_request_views_by_name_and_expression(repo: Path) -> None:
    hits = json.loads(ok(repo, "search", "distance_km", "--json"))
    # the expression and the request fields are searched: both features of the view can use distance_km
    assert {(h["kind"], h["name"]) for h in hits} == {
        ("feature", "trip_request:long_trip"),
        ("feature", "trip_request:fare_per_trip"),
    }
    assert all(h["matched"] == ["expression"] for h in hits)
    names = [h["name"] for h in json.loads(ok(repo, "search", "trip_request", "--json"))]
    assert names[0] == "trip_request"
