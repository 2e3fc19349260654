"""Bad specs: each mistake gives exactly one sentence naming the file, line, object and field.

Every case edits one valid repo (BASE below, whose line numbers the messages quote) and
checks the exact message, so a change in wording is a deliberate change of this table.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from featurehouse.compile import compiler
from featurehouse.cli.app import main
from featurehouse.errors import FeaturehouseError
from featurehouse.spec.repo import load_repo

BASE = textwrap.dedent("""\
    entities:
      - name: driver
        join_keys: [driver_id]
    sources:
      - name: driver_stats
        table: raw.driver_stats
        timestamp_field: event_timestamp
        columns: [driver_id, trips, conv_rate]
    feature_views:
      - name: driver_hourly_stats
        entities: [driver]
        source: driver_stats
        ttl: 1d
        schema:
          - {name: conv_rate, dtype: float32}
          - {name: trips, dtype: int64}
    feature_services:
      - name: driver_activity
        features: [driver_hourly_stats:conv_rate]
    training_sets:
      - name: driver_training
        spine: {ref: driver_labels}
        features: driver_activity
    """)
CONFIG = "project: test_repo\nspecs: feature_specs\n"
F = "feature_specs/drivers.yml"
VIEW = f"{F}:10: feature view 'driver_hourly_stats'"


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def with_expression(expression: str) -> str:
    """BASE with a third feature derived by ``expression`` (line 17)."""
    return edit("      - {name: trips, dtype: int64}\n",
                f"      - {{name: trips, dtype: int64}}\n      - {{name: derived, dtype: float64, expression: \"{expression}\"}}\n")


EXPRESSION = f"{F}:17: feature view 'driver_hourly_stats', feature 'derived': expression"

# (id, spec files, featurehouse.yml, exact message)
CASES: list[tuple[str, dict[str, str], str, str]] = [
    ("misspelt entity", {"drivers.yml": edit("entities: [driver]", "entities: [drivr]")}, CONFIG,
     f"{F}:11: feature view 'driver_hourly_stats': unknown entity 'drivr' (did you mean 'driver'?)"),
    ("unknown source", {"drivers.yml": edit("source: driver_stats", "source: driver_stat")}, CONFIG,
     f"{F}:12: feature view 'driver_hourly_stats': unknown source 'driver_stat' (did you mean 'driver_stats'?)"),
    ("unknown field", {"drivers.yml": edit("ttl: 1d", "tll: 1d")}, CONFIG,
     f"{F}:13: feature view 'driver_hourly_stats': unknown field 'tll' (did you mean 'ttl'?)"),
    ("unknown field of a feature", {"drivers.yml": edit("{name: trips, dtype: int64}", "{name: trips, dtpye: int64}")},
     CONFIG, f"{F}:16: feature view 'driver_hourly_stats', feature 'trips': unknown field 'dtpye' (did you mean 'dtype'?)"),
    ("bad duration", {"drivers.yml": edit("ttl: 1d", "ttl: 1 day")}, CONFIG,
     f"{F}:13: feature view 'driver_hourly_stats': ttl: expected a duration such as 90s, 30m, 12h, 1d or 2w, "
     "got '1 day' (did you mean '1d'?)"),
    ("duration without unit", {"drivers.yml": edit("ttl: 1d", "ttl: 3600")}, CONFIG,
     f"{F}:13: feature view 'driver_hourly_stats': ttl: expected a duration such as 90s, 30m, 12h, 1d or 2w, "
     "got 3600 (did you mean '1h'?)"),
    ("bad dtype", {"drivers.yml": edit("dtype: float32", "dtype: flaot32")}, CONFIG,
     f"{F}:15: feature view 'driver_hourly_stats', feature 'conv_rate': dtype: expected one of bool, int32, int64, "
     "float32, float64, string, bytes, timestamp or array<T>, got 'flaot32' (did you mean 'float32'?)"),
    ("name with a dash", {"drivers.yml": edit("- name: driver_hourly_stats", "- name: driver-stats")}, CONFIG,
     f"{F}:10: feature view 'driver-stats': name: expected a plain identifier (letters, digits and _, "
     "not starting with a digit), got 'driver-stats' (did you mean 'driver_stats'?)"),
    ("name smuggling SQL", {"drivers.yml": edit("- name: driver_hourly_stats", "- name: 'x; drop table y'")}, CONFIG,
     f"{F}:10: feature view 'x; drop table y': name: expected a plain identifier (letters, digits and _, "
     "not starting with a digit), got 'x; drop table y'"),
    ("duplicate name across files",
     {"drivers.yml": BASE, "more.yml": "entities:\n  - name: driver\n    join_keys: [id]\n"}, CONFIG,
     "feature_specs/more.yml:2: entity 'driver' is defined twice: first at feature_specs/drivers.yml:2, again here"),
    ("view and service with one name",
     {"drivers.yml": edit("- name: driver_activity", "- name: driver_hourly_stats")}, CONFIG,
     f"{F}:18: feature service 'driver_hourly_stats' has the same name as the feature view at {F}:10; "
     "views and services share one namespace"),
    ("missing timestamp_field", {"drivers.yml": edit("    timestamp_field: event_timestamp\n", "")}, CONFIG,
     f"{F}:5: source 'driver_stats': missing required field 'timestamp_field'"),
    ("source with path and table",
     {"drivers.yml": edit("    table: raw.driver_stats\n", "    table: raw.driver_stats\n    path: data/stats.parquet\n")},
     CONFIG, f"{F}:5: source 'driver_stats': a source needs exactly one of path:, table:, ref:, source: "
     "(found path, table)"),
    ("source with no location", {"drivers.yml": edit("    table: raw.driver_stats\n", "")}, CONFIG,
     f"{F}:5: source 'driver_stats': a source needs exactly one of path:, table:, ref:, source: (found none)"),
    ("dbt source without table name", {"drivers.yml": edit("table: raw.driver_stats", "source: raw")}, CONFIG,
     f"{F}:5: source 'driver_stats': source: expected raw.driver_stats (dbt source name, then table name), "
     "got 'raw'"),
    ("unknown feature in a service",
     {"drivers.yml": edit("[driver_hourly_stats:conv_rate]", "[driver_hourly_stats:conv_rat]")}, CONFIG,
     f"{F}:19: feature service 'driver_activity': feature view 'driver_hourly_stats' has no feature 'conv_rat' "
     "(did you mean 'conv_rate'?)"),
    ("unknown view in a service",
     {"drivers.yml": edit("[driver_hourly_stats:conv_rate]", "[driver_hourly_stat:conv_rate]")}, CONFIG,
     f"{F}:19: feature service 'driver_activity': unknown feature view 'driver_hourly_stat' in "
     "'driver_hourly_stat:conv_rate' (did you mean 'driver_hourly_stats'?)"),
    ("unknown service in a training set", {"drivers.yml": edit("features: driver_activity", "features: driver_activty")},
     CONFIG, f"{F}:23: training set 'driver_training': unknown feature service 'driver_activty' "
     "(did you mean 'driver_activity'?)"),
    ("expression with a subquery", {"drivers.yml": with_expression("trips + (select max(x) from t)")}, CONFIG,
     f"{EXPRESSION} 'trips + (select max(x) from t)' may not contain a subquery: it must give one value per source row"),
    ("expression with two statements", {"drivers.yml": with_expression("a; drop table t")}, CONFIG,
     f"{EXPRESSION} 'a; drop table t' must be one scalar expression, not 2 statements"),
    ("expression that is DDL", {"drivers.yml": with_expression("drop table t")}, CONFIG,
     f"{EXPRESSION} 'drop table t' must be a scalar expression over source columns, not a DROP statement"),
    ("expression that is DML", {"drivers.yml": with_expression("insert into t values (1)")}, CONFIG,
     f"{EXPRESSION} 'insert into t values (1)' must be a scalar expression over source columns, "
     "not an INSERT statement"),
    ("expression with an aggregate", {"drivers.yml": with_expression("sum(trips)")}, CONFIG,
     f"{EXPRESSION} 'sum(trips)' may not contain an aggregate function: it must give one value per source row"),
    ("expression with an unknown column", {"drivers.yml": with_expression("trip * 2")}, CONFIG,
     f"{EXPRESSION} 'trip * 2' uses unknown column 'trip' (did you mean 'trips'?)"),
    ("expression with a qualified column", {"drivers.yml": with_expression("s.trips * 2")}, CONFIG,
     f"{EXPRESSION} 's.trips * 2' uses the qualified column 's.trips'; write source columns unqualified, as 'trips'"),
    ("expression that is not SQL", {"drivers.yml": with_expression("trips *")}, CONFIG,
     f"{EXPRESSION} 'trips *' is not valid SQL near '*' (column 7)"),
    ("expression with Jinja", {"drivers.yml": with_expression("'{{ env_var(\\\"SECRET\\\") }}'")}, CONFIG,
     f"{EXPRESSION} contains '{{{{', which dbt would render as Jinja (a template can read environment variables "
     "and run SQL); write plain SQL over source columns"),
    ("feature named like a join key", {"drivers.yml": edit("{name: trips, dtype: int64}", "{name: driver_id, dtype: int64}")},
     CONFIG, f"{F}:16: feature view 'driver_hourly_stats': feature 'driver_id' has the name of the join key of "
     "entity 'driver'; rename the feature"),
    ("feature named event_timestamp",
     {"drivers.yml": edit("{name: trips, dtype: int64}", "{name: event_timestamp, dtype: timestamp}")}, CONFIG,
     f"{F}:16: feature view 'driver_hourly_stats': feature 'event_timestamp' has a name featurehouse reserves for "
     "its own columns (created_timestamp, event_timestamp, snapshot_as_of, snapshot_built_at, "
     "snapshot_definition); rename the feature"),
    ("feature declared twice", {"drivers.yml": edit("{name: trips, dtype: int64}", "{name: conv_rate, dtype: int64}")},
     CONFIG, f"{F}:16: feature view 'driver_hourly_stats': feature 'conv_rate' is declared twice (first at line 15)"),
    ("feature as a bare name", {"drivers.yml": edit("      - {name: trips, dtype: int64}\n", "      - trips\n")},
     CONFIG, f"{F}:16: feature view 'driver_hourly_stats': schema[1]: expected a mapping such as "
     "{name: conv_rate, dtype: float32}, got 'trips'"),
    ("entities not a list", {"drivers.yml": edit("entities: [driver]", "entities: driver")}, CONFIG,
     f"{F}:11: feature view 'driver_hourly_stats': entities: expected a list such as [driver], got 'driver'"),
    ("online not a boolean", {"drivers.yml": edit("ttl: 1d", "ttl: 1d\n    online: maybe")}, CONFIG,
     f"{F}:14: feature view 'driver_hourly_stats': online: expected true or false, got 'maybe'"),
    ("YAML syntax error", {"drivers.yml": edit("ttl: 1d", "ttl: [1d")}, CONFIG,
     f"{F}:14: invalid YAML: expected ',' or ']', but got ':' (is the '[' on line 13 closed?)"),
    ("tab indentation", {"drivers.yml": edit("    ttl: 1d", "\tttl: 1d")}, CONFIG,
     f"{F}:13: invalid YAML: found character '\\t' that cannot start any token "
     "(indent with spaces: YAML does not allow tabs)"),
    ("two YAML documents in one file", {"drivers.yml": BASE + "---\nentities: []\n"}, CONFIG,
     f"{F}:24: invalid YAML: expected a single document in the stream but found another document"),
    ("a list as a key", {"drivers.yml": edit("    ttl: 1d", "    [ttl]: 1d")}, CONFIG,
     f"{F}:13: a key must be a plain name, not list ['ttl']"),
    ("list of objects written as a mapping",
     {"drivers.yml": edit("  - name: driver\n    join_keys: [driver_id]", "  driver:\n    join_keys: [driver_id]")},
     CONFIG, f"{F}:1: entities: expected a list, got a mapping (write each item on its own line, starting with '- ')"),
    ("name that YAML reads as a boolean", {"drivers.yml": edit("- name: driver\n", "- name: yes\n")}, CONFIG,
     f"{F}:2: entity #1: name: expected a valid string, got true "
     "(YAML reads yes, no, on and off as booleans: quote the value)"),
    ("name with a trailing newline", {"drivers.yml": edit("{name: trips,", '{name: "trips\\n",')}, CONFIG,
     f"{F}:16: feature view 'driver_hourly_stats', feature 'trips\\n': name: expected a plain identifier "
     "(letters, digits and _, not starting with a digit), got 'trips\\n'"),
    ("feature named like a join key in capitals",
     {"drivers.yml": edit("{name: trips, dtype: int64}", "{name: Driver_ID, dtype: int64}")}, CONFIG,
     f"{VIEW}: feature 'Driver_ID' has the name of the join key 'driver_id' of entity 'driver'; rename the feature"
     .replace(f"{F}:10", f"{F}:16")),
    ("join key with featurehouse's prefix",
     {"drivers.yml": edit("join_keys: [driver_id]", "join_keys: [__FH_row]").replace("columns: [driver_id,", "columns: [__FH_row,")},
     CONFIG, f"{F}:3: entity 'driver': join key '__FH_row' starts with '__fh_', which featurehouse reserves for its "
     "own columns; rename the join key"),
    ("join key named like a reserved column",
     {"drivers.yml": edit("join_keys: [driver_id]", "join_keys: [Event_Timestamp]")
      .replace("columns: [driver_id,", "columns: [Event_Timestamp,")},
     CONFIG, f"{F}:3: entity 'driver': join key 'Event_Timestamp' has a name featurehouse reserves for its own "
     "columns (created_timestamp, event_timestamp, snapshot_as_of, snapshot_built_at, snapshot_definition); "
     "rename the join key"),
    ("feature named like a reserved column in capitals",
     {"drivers.yml": edit("{name: trips, dtype: int64}", "{name: Snapshot_As_Of, dtype: int64}")}, CONFIG,
     f"{F}:16: feature view 'driver_hourly_stats': feature 'Snapshot_As_Of' has a name featurehouse reserves for "
     "its own columns (created_timestamp, event_timestamp, snapshot_as_of, snapshot_built_at, "
     "snapshot_definition); rename the feature"),
    ("features that differ only in case",
     {"drivers.yml": edit("{name: trips, dtype: int64}", "{name: Conv_Rate, dtype: int64}")}, CONFIG,
     f"{F}:16: feature view 'driver_hourly_stats': feature 'Conv_Rate' differs only in case from 'conv_rate' "
     "(line 15), and warehouses treat the two as one column; rename one"),
    ("views that differ only in case",
     {"drivers.yml": BASE, "more.yml": "feature_views:\n  - name: Driver_Hourly_Stats\n    entities: [driver]\n"
                                       "    source: driver_stats\n    schema: [{name: trips, dtype: int64}]\n"},
     CONFIG, "feature_specs/more.yml:2: feature view 'Driver_Hourly_Stats' differs only in case from the feature "
     f"view 'driver_hourly_stats' at {F}:10; names must differ in more than case"),
    ("view name too long for its models", {"drivers.yml": BASE.replace("driver_hourly_stats", "v" * 57)}, CONFIG,
     f"{F}:10: feature view '{'v' * 57}' is 57 characters; at most 56, so that the name of its dbt model fits "
     "in 63 characters"),
    ("default aggregation name too long",
     {"drivers.yml": edit("          - {name: conv_rate, dtype: float32}\n          - {name: trips, dtype: int64}\n"
                          .replace("          ", "      "),
                          f"    aggregations: [{{column: {'t' * 56}, function: mean, window: 7d}}]\n")
      .replace("    schema:\n", "").replace("[driver_hourly_stats:conv_rate]", "[driver_hourly_stats]")
      .replace("columns: [driver_id, trips, conv_rate]", f"columns: [driver_id, {'t' * 56}]")}, CONFIG,
     f"{F}:14: feature view 'driver_hourly_stats': aggregation name '{'t' * 56}_mean_7d' is 64 characters, "
     "more than 63; give the aggregation a shorter name:"),
    ("ttl beyond a century", {"drivers.yml": edit("ttl: 1d", "ttl: 99999999w")}, CONFIG,
     f"{F}:13: feature view 'driver_hourly_stats': ttl: at most 36500d (100 years), got 99999999w; "
     "0 means unlimited"),
    ("duration in capitals", {"drivers.yml": edit("ttl: 1d", "ttl: 1D")}, CONFIG,
     f"{F}:13: feature view 'driver_hourly_stats': ttl: expected a duration such as 90s, 30m, 12h, 1d or 2w, "
     "got '1D' (did you mean '1d'?)"),
    ("fractional duration", {"drivers.yml": edit("ttl: 1d", "ttl: 1.5h")}, CONFIG,
     f"{F}:13: feature view 'driver_hourly_stats': ttl: expected a duration such as 90s, 30m, 12h, 1d or 2w, "
     "got '1.5h' (did you mean '90m'?)"),
    ("negative duration", {"drivers.yml": edit("ttl: 1d", "ttl: -1h")}, CONFIG,
     f"{F}:13: feature view 'driver_hourly_stats': ttl: expected a duration such as 90s, 30m, 12h, 1d or 2w, "
     "got '-1h' (a duration cannot be negative)"),
    ("empty duration", {"drivers.yml": edit("ttl: 1d", "ttl:")}, CONFIG,
     f"{F}:13: feature view 'driver_hourly_stats': ttl: expected a duration such as 90s, 30m, 12h, 1d or 2w, "
     "got nothing"),
    ("aggregation function under another name",
     {"drivers.yml": edit("    schema:\n      - {name: conv_rate, dtype: float32}\n      - {name: trips, dtype: int64}\n",
                          "    aggregations: [{column: trips, function: AVG, window: 7d}]\n")}, CONFIG,
     f"{F}:14: feature view 'driver_hourly_stats': aggregations[0]: function: expected one of sum, count, mean, "
     "min, max, stddev, got 'AVG' (did you mean 'mean'?)"),
    ("two views offer one feature name in a training set",
     {"drivers.yml": edit("feature_services:", "  - name: driver_daily_stats\n    entities: [driver]\n"
                          "    source: driver_stats\n    schema: [{name: conv_rate, dtype: float64}]\nfeature_services:")
      .replace("features: driver_activity", "features: [driver_hourly_stats, driver_daily_stats]")}, CONFIG,
     f"{F}:27: training set 'driver_training': column 'conv_rate' would come from both feature view "
     "'driver_hourly_stats' and 'driver_daily_stats'; set full_feature_names: true on the training set to get "
     "'view__feature' columns"),
    ("join key shared with two types",
     {"drivers.yml": edit("    join_keys: [driver_id]\n", "    join_keys: [driver_id]\n  - name: car\n"
                          "    join_keys: [driver_id]\n    value_type: string\n")
      .replace("entities: [driver]", "entities: [driver, car]")}, CONFIG,
     f"{F}:14: feature view 'driver_hourly_stats': join key 'driver_id' is int64 in entity 'driver' but string in "
     "entity 'car'; give both entities the same value_type"),
    ("join keys that differ only in case",
     {"drivers.yml": edit("    join_keys: [driver_id]\n", "    join_keys: [driver_id, Driver_Id]\n")}, CONFIG,
     f"{F}:11: feature view 'driver_hourly_stats': join keys 'driver_id' and 'Driver_Id' differ only in case, and "
     "warehouses treat the two as one column; rename one"),
    ("array join key", {"drivers.yml": edit("    join_keys: [driver_id]\n",
                                            "    join_keys: [driver_id]\n    value_type: array<int64>\n")}, CONFIG,
     f"{F}:4: entity 'driver': value_type: join keys are scalars: expected one of bool, int32, int64, float32, "
     "float64, string, bytes, timestamp, got 'array<int64>'"),
    ("two columns mapped to one name",
     {"drivers.yml": edit("    columns:", "    field_mapping: {conv: conv_rate, cr: conv_rate}\n    columns:")}, CONFIG,
     f"{F}:5: source 'driver_stats': field_mapping: columns 'conv' and 'cr' are both mapped to 'conv_rate'; "
     "map one column to each name"),
    ("ref with nothing after the colon",
     {"drivers.yml": edit("[driver_hourly_stats:conv_rate]", "['driver_hourly_stats:']")}, CONFIG,
     f"{F}:19: feature service 'driver_activity': 'driver_hourly_stats:' names no feature after ':'; write "
     "'driver_hourly_stats' for all its features or 'driver_hourly_stats:conv_rate' for one"),
    ("key given twice", {"drivers.yml": edit("ttl: 1d", "ttl: 1d\n    ttl: 2d")}, CONFIG,
     f"{F}:14: key 'ttl' appears twice in the same mapping"),
    ("top-level key typo", {"drivers.yml": edit("feature_views:", "feature_view:")}, CONFIG,
     f"{F}:9: unknown top-level key 'feature_view' (did you mean 'feature_views'?)"),
    ("spec file that is a list", {"drivers.yml": "- driver\n"}, CONFIG,
     f"{F}:1: expected a mapping with keys entities, sources, feature_views, feature_services, training_sets, "
     "request_views, got list"),
    ("unknown online store type", {"drivers.yml": BASE}, CONFIG + "online_store:\n  type: redis2\n",
     "featurehouse.yml:4: online_store.type: expected 'sqlite', 'postgres' or 'redis', got 'redis2' "
     "(did you mean 'redis'?)"),
    ("unset environment variable", {"drivers.yml": BASE},
     CONFIG + "online_store:\n  type: redis\n  url: redis://${FH_TEST_UNSET_HOST}:6379/0\n",
     "featurehouse.yml:5: online_store.url uses ${FH_TEST_UNSET_HOST}, but the environment variable "
     "FH_TEST_UNSET_HOST is not set"),
    ("online store without url", {"drivers.yml": BASE}, CONFIG + "online_store:\n  type: postgres\n",
     "featurehouse.yml:3: online_store.type postgres needs online_store.url (e.g. postgresql://user@host:5432/db)"),
    ("config key typo", {"drivers.yml": BASE}, "project: test_repo\nspec: feature_specs\n",
     "featurehouse.yml:2: unknown top-level key 'spec' (did you mean 'specs'?)"),
    ("url of another store type", {"drivers.yml": BASE},
     CONFIG + "online_store:\n  type: sqlite\n  url: postgresql://localhost/db\n",
     "featurehouse.yml:5: online_store.url is for type postgres or redis, but online_store.type is sqlite; "
     "remove url: or change the type"),
    ("models_dir inside the specs folder", {"drivers.yml": BASE}, CONFIG + "models_dir: feature_specs/models\n",
     "featurehouse.yml: models_dir 'feature_specs/models' is inside the specs folder 'feature_specs'; put the "
     "generated models elsewhere, e.g. models/featurehouse"),
]


def write_specs(root: Path, files: dict[str, str], config: str = CONFIG) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "featurehouse.yml").write_text(config)
    (root / "feature_specs").mkdir(exist_ok=True)
    for name, text in files.items():
        (root / "feature_specs" / name).write_text(text)
    return root


def compile_specs(root: Path) -> dict[str, str]:
    return compiler.compile_repo(load_repo(root), "duckdb")


def test_base_spec_is_valid(tmp_path: Path) -> None:
    files = compile_specs(write_specs(tmp_path, {"drivers.yml": BASE}))
    assert "fv_driver_hourly_stats.sql" in files and "ts_driver_training.sql" in files


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 20
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("files", "config", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_spec_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], config: str,
                          message: str) -> None:
    monkeypatch.delenv("FH_TEST_UNSET_HOST", raising=False)
    write_specs(tmp_path, files, config)
    with pytest.raises(FeaturehouseError) as caught:
        compile_specs(tmp_path)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


# ---- through the CLI: exit 1, one line on stderr, nothing written ------------------------------
@pytest.fixture
def compiled_repo(tmp_path: Path) -> Path:
    root = write_specs(tmp_path / "repo", {"drivers.yml": BASE})
    result = CliRunner().invoke(main, ["--repo", str(root), "compile", "--dialect", "duckdb"])
    assert result.exit_code == 0, result.output
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


CLI_CASES = {"misspelt entity", "expression with two statements", "YAML syntax error", "duplicate name across files",
             "unset environment variable"}


@pytest.mark.parametrize(
    ("files", "config", "message"), [pytest.param(*c[1:], id=c[0]) for c in CASES if c[0] in CLI_CASES]
)
def test_cli_reports_a_bad_spec_without_writing(compiled_repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                files: dict[str, str], config: str, message: str) -> None:
    monkeypatch.delenv("FH_TEST_UNSET_HOST", raising=False)
    models = compiled_repo / "models"
    before = snapshot(models)
    # a spec change that would add a file and remove another, had it compiled
    for path in (compiled_repo / "feature_specs").iterdir():
        path.unlink()
    write_specs(compiled_repo, files, config)
    result = CliRunner().invoke(main, ["--repo", str(compiled_repo), "compile", "--dialect", "duckdb"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {message}\n"
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert snapshot(models) == before


def test_cli_check_reports_a_bad_spec(compiled_repo: Path) -> None:
    (compiled_repo / "feature_specs" / "drivers.yml").write_text(edit("dtype: float32", "dtype: flaot32"))
    result = CliRunner().invoke(main, ["--repo", str(compiled_repo), "compile", "--check"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {F}:15: feature view 'driver_hourly_stats', feature 'conv_rate': dtype:")


def test_cli_debug_shows_the_traceback(compiled_repo: Path) -> None:
    (compiled_repo / "feature_specs" / "drivers.yml").write_text(edit("ttl: 1d", "tll: 1d"))
    result = CliRunner().invoke(main, ["--debug", "--repo", str(compiled_repo), "compile"])
    assert result.exit_code == 1
    assert isinstance(result.exception, FeaturehouseError)


def test_no_repo_is_one_sentence(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--repo", str(tmp_path), "compile"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: no featurehouse.yml found in {tmp_path} or any folder above it; "
        "run 'featurehouse init DIR' to create a feature repo\n"
    )


# ---- what a spec folder may hold -------------------------------------------------------------------
def test_a_file_that_is_not_utf8_is_one_sentence(tmp_path: Path) -> None:
    write_specs(tmp_path, {"drivers.yml": BASE})
    (tmp_path / "feature_specs" / "notes.yml").write_bytes("entities: []\n# café\n".encode("latin-1"))
    with pytest.raises(FeaturehouseError) as caught:
        load_repo(tmp_path)
    assert str(caught.value) == "feature_specs/notes.yml:2: the file is not UTF-8 text (byte 0xe9); save it as UTF-8"


def test_which_files_are_specs(tmp_path: Path) -> None:
    # hidden: an editor backup or a Jupyter checkpoint would otherwise define everything twice
    write_specs(tmp_path, {"drivers.yml": BASE})
    (tmp_path / "feature_specs" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "feature_specs" / ".ipynb_checkpoints" / "drivers-checkpoint.yml").write_text(BASE)
    (tmp_path / "feature_specs" / ".drivers.yml").write_text("entities: [\n")
    (tmp_path / "feature_specs" / "README.md").write_text("# not a spec\n")
    (tmp_path / "feature_specs" / "LEGACY.YML").write_text("entities:\n  - {name: car, join_keys: [car_id]}\n")
    repo = load_repo(tmp_path)
    assert [p.name for p in repo.spec_files] == ["LEGACY.YML", "drivers.yml"]


def test_an_empty_kind_is_an_empty_list(tmp_path: Path) -> None:
    # every item under a key commented out leaves `training_sets:` with nothing, which YAML reads as null
    write_specs(tmp_path, {"drivers.yml": BASE.split("training_sets:")[0] + "training_sets:\n  # - name: later\n"})
    assert load_repo(tmp_path).training_sets == {}


def test_yaml_merge_keys_work_and_the_mapping_wins(tmp_path: Path) -> None:
    specs = BASE.replace("    ttl: 1d\n", "    <<: &defaults {ttl: 2d, online: false, owner: team@example.com}\n"
                                           "    ttl: 1d\n")
    # an anchored mapping that merges and overrides itself, used twice
    specs += ("  - name: other_training\n"
              "    <<: &ts {<<: {spine: {ref: old_labels}}, spine: {ref: driver_labels}, features: driver_activity}\n"
              "  - name: third_training\n    <<: *ts\n")
    write_specs(tmp_path, {"drivers.yml": specs})
    repo = load_repo(tmp_path)
    view = repo.feature_views["driver_hourly_stats"]
    assert (view.ttl, view.online, view.owner) == (86400, False, "team@example.com")
    for name in ("other_training", "third_training"):
        assert repo.training_sets[name].spine.ref == "driver_labels"
        assert repo.training_sets[name].features == "driver_activity"
    # errors still point at the line the user wrote: the mapping's own key, not the merged one
    (tmp_path / "feature_specs" / "drivers.yml").write_text(specs.replace("    ttl: 1d\n", "    ttl: 1 day\n"))
    with pytest.raises(FeaturehouseError) as caught:
        load_repo(tmp_path)
    assert str(caught.value).startswith(f"{F}:14: feature view 'driver_hourly_stats': ttl: expected a duration")


def test_a_specs_folder_outside_the_repo(tmp_path: Path) -> None:
    shared = write_specs(tmp_path / "shared", {"drivers.yml": BASE}) / "feature_specs"
    root = write_specs(tmp_path / "repo", {}, f"project: test_repo\nspecs: {shared}\n")
    repo = load_repo(root)
    assert repo.origin("feature_views", "driver_hourly_stats").file == f"{shared.as_posix()}/drivers.yml"


def test_a_specs_path_that_is_a_file(tmp_path: Path) -> None:
    write_specs(tmp_path, {"drivers.yml": BASE}, "project: test_repo\nspecs: feature_specs/drivers.yml\n")
    with pytest.raises(FeaturehouseError) as caught:
        load_repo(tmp_path)
    assert str(caught.value) == "featurehouse.yml: specs folder 'feature_specs/drivers.yml' is a file, not a folder"
