"""The catalog commands: list, describe, search and plan, as a user runs them (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from featurehouse.cli.app import main
from support.repos import write_repo

DRIVERS = """\
entities:
  - name: driver
    join_keys: [driver_id]
    description: A driver of the fleet.
  - name: customer
    join_keys: [customer_id]
    value_type: string
    description: A rider.
    tags: {pii: "yes"}
sources:
  - name: driver_stats
    ref: raw_driver_stats
    timestamp_field: event_timestamp
    created_timestamp_column: created
    description: Hourly driver statistics.
  - name: customer_source
    table: raw.customers
    timestamp_field: ts
feature_views:
  - name: driver_hourly_stats
    entities: [driver]
    source: driver_stats
    ttl: 1d
    schema:
      - {name: conv_rate, dtype: float32, description: Share of offers converted.}
      - {name: acc_rate, dtype: float32, description: Share of offers accepted.}
      - {name: avg_daily_trips, dtype: int64, description: Mean trips per day., tags: {unit: trips}}
    description: Hourly conversion statistics per driver.
    owner: ml-platform@example.com
    tags: {team: driver_performance}
  - name: customer_profile
    entities: [customer]
    source: customer_source
    schema:
      - {name: current_balance, dtype: float64, description: Account balance.}
      - {name: avg_daily_trips, dtype: float64, description: Rides per day.}
    description: Daily customer profile.
    owner: growth@example.com
    tags: {team: growth}
feature_services:
  - name: driver_activity
    features: [driver_hourly_stats:conv_rate, driver_hourly_stats:acc_rate]
    description: What the ranking model reads.
    owner: ml-platform@example.com
    tags: {model: ride_ranking}
  - name: customer_everything
    features: [customer_profile]
    owner: growth@example.com
training_sets:
  - name: driver_training
    spine: {ref: driver_labels}
    features: driver_activity
    owner: ml-platform@example.com
  - name: customer_training
    spine: {table: raw.customer_labels}
    features: customer_everything
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_repo(tmp_path / "repo", {"specs.yml": DRIVERS})


def run(repo: Path, *args: str) -> "CliRunner.invoke":
    result = CliRunner().invoke(main, ["--repo", str(repo), *args])
    return result


def ok(repo: Path, *args: str) -> str:
    result = run(repo, *args)
    assert result.exit_code == 0, result.output
    return result.output


def fails(repo: Path, *args: str, code: int = 1) -> str:
    result = run(repo, *args)
    assert result.exit_code == code, result.output
    return result.output


# ---- list ------------------------------------------------------------------------------------------
def test_list_feature_views_shows_a_table(repo: Path) -> None:
    lines = ok(repo, "list", "feature-views").splitlines()
    assert lines[0].split()[:4] == ["NAME", "ENTITIES", "FEATURES", "TTL"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"customer_profile", "driver_hourly_stats"}
    assert rows["driver_hourly_stats"][1:6] == ["driver", "3", "1d", "yes", "ml-platform@example.com"]
    assert rows["customer_profile"][3] == "unlimited"


def test_list_every_kind_as_json(repo: Path) -> None:
    entities = json.loads(ok(repo, "list", "entities", "--json"))
    assert [(e["name"], e["join_keys"], e["value_type"]) for e in entities] == [
        ("customer", ["customer_id"], "string"), ("driver", ["driver_id"], "int64")]
    views = json.loads(ok(repo, "list", "feature-views", "--json"))
    stats = next(v for v in views if v["name"] == "driver_hourly_stats")
    assert [(f["name"], f["dtype"]) for f in stats["features"]] == [
        ("conv_rate", "float32"), ("acc_rate", "float32"), ("avg_daily_trips", "int64")]
    services = json.loads(ok(repo, "list", "feature-services", "--json"))
    assert {s["name"]: s["features"] for s in services} == {
        "customer_everything": ["customer_profile:current_balance", "customer_profile:avg_daily_trips"],
        "driver_activity": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate"],
    }
    features = json.loads(ok(repo, "list", "features", "--json"))
    assert len(features) == 5
    trips = next(f for f in features if f["name"] == "driver_hourly_stats:avg_daily_trips")
    # a feature inherits its view's owner and tags, and keeps its own
    assert trips["owner"] == "ml-platform@example.com"
    assert trips["tags"] == {"team": "driver_performance", "unit": "trips"}


def test_list_filters_by_tag_and_owner(repo: Path) -> None:
    names = [f["name"] for f in json.loads(ok(repo, "list", "features", "--tag", "team=growth", "--json"))]
    assert names == ["customer_profile:current_balance", "customer_profile:avg_daily_trips"]
    # several tags must all match; a bare key matches any value
    names = [f["name"] for f in json.loads(ok(repo, "list", "features", "--tag", "team", "--tag", "unit", "--json"))]
    assert names == ["driver_hourly_stats:avg_daily_trips"]
    views = json.loads(ok(repo, "list", "feature-views", "--owner", "growth", "--json"))
    assert [v["name"] for v in views] == ["customer_profile"]
    services = json.loads(ok(repo, "list", "feature-services", "--owner", "ML-Platform@example.com", "--json"))
    assert [s["name"] for s in services] == ["driver_activity"]
    assert [e["name"] for e in json.loads(ok(repo, "list", "entities", "--tag", "pii=yes", "--json"))] == ["customer"]
    assert ok(repo, "list", "feature-views", "--tag", "team=nobody").strip() == \
        "No feature views match --tag team=nobody."


def test_list_errors(repo: Path) -> None:
    assert "Error: --tag expects KEY=VALUE or KEY, got '=x'" in fails(repo, "list", "features", "--tag", "=x")
    assert "entities have no owner" in fails(repo, "list", "entities", "--owner", "someone")
    output = fails(repo, "list", "feature-view", code=2)
    assert "'feature-view' is not one of" in output
    missing = run(repo.parent / "nowhere", "list", "features")
    assert missing.exit_code == 1 and "no featurehouse.yml found" in missing.output


# ---- describe --------------------------------------------------------------------------------------
def test_describe_a_feature_view(repo: Path) -> None:
    out = ok(repo, "describe", "driver_hourly_stats", "--no-online")
    assert out.startswith("feature view driver_hourly_stats  (feature_specs/specs.yml:")
    assert "Hourly conversion statistics per driver." in out
    assert "owner:          ml-platform@example.com" in out
    assert "tags:           team=driver_performance" in out
    assert "entities:       driver; join keys driver_id (int64)" in out
    assert "source:         driver_stats (ref raw_driver_stats; timestamp event_timestamp, created created)" in out
    assert "ttl:            1d" in out
    assert "services:       driver_activity" in out
    assert "training sets:  driver_training (via driver_activity)" in out
    schema = out.split("schema:\n")[1].splitlines()
    assert [line.split()[:2] for line in schema] == [
        ["conv_rate", "float32"], ["acc_rate", "float32"], ["avg_daily_trips", "int64"]]
    assert "Mean trips per day. [unit=trips]" in schema[2]


def test_describe_json_has_usage_per_feature(repo: Path) -> None:
    view = json.loads(ok(repo, "describe", "driver_hourly_stats", "--json", "--no-online"))
    assert view["feature_services"] == [{"name": "driver_activity", "features": ["conv_rate", "acc_rate"]}]
    assert view["training_sets"] == [
        {"name": "driver_training", "features": ["conv_rate", "acc_rate"], "via": "driver_activity"}]
    assert view["join_keys"] == [{"name": "driver_id", "dtype": "int64"}]
    assert view["ttl_seconds"] == 86400


def test_describe_features_services_training_sets_entities_sources(repo: Path) -> None:
    feature = json.loads(ok(repo, "describe", "driver_hourly_stats:conv_rate", "--json", "--no-online"))
    assert (feature["dtype"], feature["feature_services"], feature["training_sets"]) == (
        "float32", ["driver_activity"], ["driver_training"])
    # a bare feature name works when one view alone has it
    assert "feature driver_hourly_stats:acc_rate" in ok(repo, "describe", "acc_rate", "--no-online")
    unused = json.loads(ok(repo, "describe", "driver_hourly_stats:avg_daily_trips", "--json", "--no-online"))
    assert unused["feature_services"] == [] and unused["training_sets"] == []
    service = ok(repo, "describe", "customer_everything", "--no-online")
    assert "customer_profile:current_balance" in service and "training sets:  customer_training" in service
    training = ok(repo, "describe", "customer_training", "--no-online")
    assert "spine:          table raw.customer_labels" in training and "dbt model:      ts_customer_training" in training
    entity = ok(repo, "describe", "customer", "--no-online")
    assert "join keys:      customer_id" in entity and "value type:     string" in entity
    source = ok(repo, "describe", "customer_source", "--no-online")
    assert "location:       table raw.customers" in source and "feature views:  customer_profile" in source


def test_describe_errors(repo: Path) -> None:
    out = fails(repo, "describe", "driver_hourly_stat", "--no-online")
    assert "Error: nothing in the repo is named 'driver_hourly_stat' (did you mean 'driver_hourly_stats'?)" in out
    out = fails(repo, "describe", "avg_daily_trips", "--no-online")
    assert "feature 'avg_daily_trips' is in several feature views (customer_profile, driver_hourly_stats)" in out
    assert "nothing in the repo is named 'driver_hourly_stats:nope'" in fails(
        repo, "describe", "driver_hourly_stats:nope", "--no-online")
    assert "Missing argument 'NAME'" in fails(repo, "describe", code=2)


# ---- search ----------------------------------------------------------------------------------------
def test_search_names_descriptions_tags_and_owners(repo: Path) -> None:
    def hits(*text: str) -> list[tuple[str, str]]:
        return [(m["kind"], m["name"]) for m in json.loads(ok(repo, "search", *text, "--json"))]

    assert hits("conv_rate")[0] == ("feature", "driver_hourly_stats:conv_rate")
    assert ("feature view", "driver_hourly_stats") in hits("conversion")
    assert hits("ride_ranking") == [("feature service", "driver_activity")]
    # every word must match somewhere; matching is case-insensitive
    assert hits("BALANCE", "account") == [("feature", "customer_profile:current_balance")]
    assert hits("pii") == [("entity", "customer")]
    # an exact name ranks first, then name hits, and more matching fields rank higher
    assert hits("driver")[0] == ("entity", "driver")
    assert hits("trips") == [("feature", "driver_hourly_stats:avg_daily_trips"),
                             ("feature", "customer_profile:avg_daily_trips")]


def test_search_table_and_no_match(repo: Path) -> None:
    out = ok(repo, "search", "growth")
    assert out.splitlines()[0].split() == ["KIND", "NAME", "MATCHED", "DESCRIPTION"]
    assert "customer_profile" in out
    assert ok(repo, "search", "convrate").strip() == "Nothing matches 'convrate' (did you mean 'conv_rate'?)."
    assert "Missing argument 'TEXT...'" in fails(repo, "search", code=2)
    assert "search needs some text" in fails(repo, "search", "  ")


# ---- plan ------------------------------------------------------------------------------------------
def edit(repo: Path, old: str, new: str) -> None:
    path = repo / "feature_specs" / "specs.yml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_plan_before_and_after_compile(repo: Path) -> None:
    out = ok(repo, "plan")
    assert out.startswith("Plan for models/featurehouse (duckdb):")
    assert "+ fv_driver_hourly_stats.sql" in out and "+ schema.yml" in out
    assert "+ feature view 'driver_hourly_stats': new, 3 feature(s)" in out
    ok(repo, "compile")
    assert ok(repo, "plan").startswith("No changes: ")


def test_plan_lists_additions_and_documentation_changes(repo: Path) -> None:
    ok(repo, "compile")
    edit(repo, "      - {name: acc_rate, dtype: float32, description: Share of offers accepted.}\n",
         "      - {name: acc_rate, dtype: float32, description: Share of offers accepted.}\n"
         "      - {name: rating, dtype: float64}\n")
    edit(repo, "description: Daily customer profile.", "description: The daily customer profile.")
    plan = json.loads(ok(repo, "plan", "--json"))
    assert "fv_driver_hourly_stats.sql" in plan["changed"] and "schema.yml" in plan["changed"]
    assert [(c["subject"], c["action"], c["detail"]) for c in plan["changes"]] == [
        ("feature view 'customer_profile'", "change", "description updated (documentation only)"),
        ("feature view 'driver_hourly_stats'", "add", "feature 'rating' (float64)"),
    ]
    assert plan["breaking"] == []


def test_plan_calls_out_a_dtype_change(repo: Path) -> None:
    ok(repo, "compile")
    edit(repo, "{name: conv_rate, dtype: float32", "{name: conv_rate, dtype: float64")
    out = ok(repo, "plan")
    assert "~ feature view 'driver_hourly_stats': feature 'conv_rate' dtype float32 → float64" in out
    assert "Breaking changes (1):" in out
    assert ("'conv_rate' changes type for feature service 'driver_activity', training set 'driver_training'"
            in out)
    assert fails(repo, "plan", "--fail-on-breaking", code=2)


def test_plan_calls_out_a_removed_feature_still_read(repo: Path) -> None:
    ok(repo, "compile")
    edit(repo, "      - {name: avg_daily_trips, dtype: float64, description: Rides per day.}\n", "")
    plan = json.loads(ok(repo, "plan", "--json"))
    assert [c["detail"] for c in plan["breaking"]] == ["feature 'avg_daily_trips' (float64)"]
    assert plan["breaking"][0]["breaking"] == (
        "feature service 'customer_everything', training set 'customer_training' still read the whole view "
        "and lose column 'avg_daily_trips'")
    # the same removal from a view nobody reads whole is a plain change
    edit(repo, "      - {name: avg_daily_trips, dtype: int64, description: Mean trips per day., tags: {unit: trips}}\n",
         "")
    plan = json.loads(ok(repo, "plan", "--json"))
    removed = [c for c in plan["changes"] if c["subject"] == "feature view 'driver_hourly_stats'"]
    assert removed == [{"subject": "feature view 'driver_hourly_stats'", "action": "remove",
                        "detail": "feature 'avg_daily_trips' (int64)", "breaking": None}]


def test_plan_calls_out_entity_changes_and_removed_views(repo: Path) -> None:
    ok(repo, "compile")
    edit(repo, "    entities: [customer]\n    source: customer_source\n",
         "    entities: [driver]\n    source: customer_source\n")
    plan = json.loads(ok(repo, "plan", "--json"))
    [change] = plan["breaking"]
    assert change["detail"] == "entities customer → driver"
    assert "the join keys change" in change["breaking"]
    text = (repo / "feature_specs" / "specs.yml").read_text()
    (repo / "feature_specs" / "specs.yml").write_text(text.split("feature_services:")[0].replace(
        text[text.index("  - name: customer_profile"):text.index("feature_services:")], ""))
    plan = json.loads(ok(repo, "plan", "--json"))
    assert "fv_customer_profile.sql" in plan["removed"] and "ts_driver_training.sql" in plan["removed"]
    assert [c["subject"] for c in plan["breaking"]] == ["feature view 'customer_profile'"]


def test_plan_when_compile_would_fail(repo: Path) -> None:
    ok(repo, "compile")
    # a feature removed while a service still names it: the plan says what compile would say
    edit(repo, "      - {name: conv_rate, dtype: float32, description: Share of offers converted.}\n", "")
    out = fails(repo, "plan")
    assert "feature service 'driver_activity': feature view 'driver_hourly_stats' has no feature 'conv_rate'" in out
    assert "specs.yml:" in out


def test_aggregations_are_features_too(tmp_path: Path) -> None:
    specs = DRIVERS.replace("feature_services:", """\
  - name: driver_windows
    entities: [driver]
    source: driver_stats
    aggregations:
      - {column: avg_daily_trips, function: sum, window: 7d, description: Trips in the last week.}
      - {column: avg_daily_trips, function: count, window: 1d, name: active_hours}
feature_services:""", 1)
    repo = write_repo(tmp_path / "repo", {"specs.yml": specs})
    view = json.loads(ok(repo, "describe", "driver_windows", "--json", "--no-online"))
    assert [(f["name"], f["dtype"], f["aggregation"]) for f in view["features"]] == [
        ("avg_daily_trips_sum_7d", "float64", {"column": "avg_daily_trips", "function": "sum", "window": "7d"}),
        ("active_hours", "int64", {"column": "avg_daily_trips", "function": "count", "window": "1d"}),
    ]
    assert "avg_daily_trips_sum_7d  float64  Trips in the last week. = sum(avg_daily_trips) over 7d" in ok(
        repo, "describe", "driver_windows", "--no-online")
    assert "driver_windows:active_hours" in [f["name"] for f in json.loads(ok(repo, "list", "features", "--json"))]
    assert [m["name"] for m in json.loads(ok(repo, "search", "last", "week", "--json"))] == [
        "driver_windows:avg_daily_trips_sum_7d"]


def test_plan_sees_aggregations_change(tmp_path: Path) -> None:
    specs = DRIVERS.replace("feature_services:", """\
  - name: driver_windows
    entities: [driver]
    source: driver_stats
    aggregations:
      - {column: avg_daily_trips, function: max, window: 7d, name: busiest}
      - {column: avg_daily_trips, function: count, window: 1d, name: active_hours}
feature_services:
  - name: windows
    features: [driver_windows]""", 1)
    repo = write_repo(tmp_path / "repo", {"specs.yml": specs})
    ok(repo, "compile")
    edit(repo, "function: max, window: 7d", "function: min, window: 7d")
    edit(repo, "      - {column: avg_daily_trips, function: count, window: 1d, name: active_hours}\n",
         "      - {column: avg_daily_trips, function: sum, window: 1d}\n")
    plan = json.loads(ok(repo, "plan", "--json"))
    changes = [(c["action"], c["detail"], c["breaking"]) for c in plan["changes"]
               if c["subject"] == "feature view 'driver_windows'"]
    assert changes == [
        ("add", "feature 'avg_daily_trips_sum_1d' (float64)", None),
        ("change", "feature 'busiest' aggregation max(avg_daily_trips) over 7d → min(avg_daily_trips) over 7d: "
                   "its values are recomputed", None),
        ("remove", "feature 'active_hours' (int64)",
         "feature service 'windows' still read the whole view and lose column 'active_hours'"),
    ]
