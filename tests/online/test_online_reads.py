"""Online reads from SQLite, Postgres and Redis equal the training data at the same instant."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import pytest
from click.testing import CliRunner

from featurehouse.cli.app import main
from featurehouse.errors import RequestError
from featurehouse.sdk.store import FeatureStore
from featurehouse.sync import sync
from support.online import (
    KINDS,
    all_keys,
    build_repo,
    online_values,
    postgres_store,
    set_store,
    sqlite_store,
    sync_to_every_store,
    training_values,
    utc_hour,
)

DRIVERS = range(1, 41)
STATS = ["stats:conv_rate", "stats:trips", "stats:city", "stats:active"]
PAIRS = ["pairs:rating", "pairs:last_seen"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, postgres_url, redis_url):
    """One repo, synced once to each kind of store: {kind: FeatureStore}."""
    root = tmp_path_factory.mktemp("online_reads")
    now = utc_hour()
    build_repo(root, DRIVERS, sqlite_store(), now)
    synced = sync_to_every_store(root, postgres_url, redis_url, "reads")
    stores = synced.stores
    for report in synced.reports.values():
        assert report.written == report.rows_read > 0
    yield root, now, stores
    synced.drop(postgres_url, redis_url)


@pytest.mark.parametrize("kind", KINDS)
def test_online_values_equal_training_data_at_the_same_instant(built, kind):
    root, now, stores = built
    store = stores[kind]
    at = now + timedelta(minutes=30)
    for refs, keys in ((STATS, ["driver_id"]), (PAIRS, ["driver_id", "rider_id"])):
        entities = all_keys(root, refs[0].split(":")[0], keys)
        expected = training_values(store, refs, entities, at)
        response = online_values(store, refs, entities, at)
        for ref in refs:
            name = ref.split(":")[1]
            assert response.values[name] == expected[name], (kind, name)
    # driver 9's newest row was already older than the ttl (1d) when dbt ran: it is not in
    # the snapshot at all, like driver 999 that never existed
    response = online_values(store, STATS, {"driver_id": [9, 10, 999]}, at)
    assert response.statuses["conv_rate"] == ["NOT_FOUND", "PRESENT", "NOT_FOUND"]
    assert response.values["conv_rate"][0] is None and response.values["conv_rate"][2] is None
    assert response.event_timestamps["conv_rate"] == [None, (now - timedelta(hours=1)).replace(tzinfo=timezone.utc), None]


@pytest.mark.parametrize("kind", KINDS)
def test_ttl_is_enforced_at_read_time(built, kind):
    _, now, stores = built
    newest = now - timedelta(hours=1)  # driver 10's newest row; ttl is 1 day
    boundary = newest.replace(tzinfo=timezone.utc) + timedelta(days=1)
    fresh = online_values(stores[kind], ["stats:trips"], [{"driver_id": 10}], boundary)
    assert fresh.statuses["trips"] == ["PRESENT"] and fresh.values["trips"][0] is not None  # exactly ttl old counts
    stale = online_values(stores[kind], ["stats:trips"], [{"driver_id": 10}], boundary + timedelta(microseconds=1))
    assert stale.statuses["trips"] == ["OUTSIDE_MAX_AGE"]
    assert stale.values["trips"] == [None]
    assert stale.event_timestamps["trips"] == [newest.replace(tzinfo=timezone.utc)]


def test_response_is_shaped_like_feasts(built):
    _, now, stores = built
    store = stores["sqlite"]
    response = store.get_online_features(["pairs:rating", "stats:trips"], [{"driver_id": 1, "rider_id": "r\\x"},
                                                                           {"driver_id": 2, "rider_id": "nobody"}])
    as_dict = response.to_dict()
    assert list(as_dict) == ["driver_id", "rider_id", "rating", "trips"]
    assert as_dict["driver_id"] == [1, 2] and as_dict["rider_id"] == ["r\\x", "nobody"]
    assert response.statuses["rating"][1] == "NOT_FOUND" and response.statuses["trips"] == ["PRESENT", "PRESENT"]
    with_ts = response.to_dict(include_event_timestamps=True)
    assert list(with_ts)[:4] == ["driver_id", "driver_id__ts", "rider_id", "rider_id__ts"]
    assert with_ts["trips__ts"] == [int((now - timedelta(hours=1)).replace(tzinfo=timezone.utc).timestamp())] * 2
    body = response.to_feast_json()
    assert body["metadata"]["feature_names"] == ["driver_id", "rider_id", "rating", "trips"]
    assert body["results"][3]["values"] == as_dict["trips"]
    assert body["results"][2]["statuses"][1] == "NOT_FOUND"
    assert body["results"][2]["event_timestamps"][1] == "1970-01-01T00:00:00Z"
    json.dumps(body)
    full = store.get_online_features("ranking", {"driver_id": [1], "rider_id": ["r\\x"]}, full_feature_names=True)
    assert full.feature_names == ["driver_id", "rider_id", "stats__conv_rate", "stats__trips", "pairs__rating"]


@pytest.mark.parametrize(("features", "rows", "message"), [
    (["stats:conv_rat"], [{"driver_id": 1}], "feature view 'stats' has no feature 'conv_rat' (did you mean 'conv_rate'?)"),
    (["stat:conv_rate"], [{"driver_id": 1}], "unknown feature view 'stat'"),
    (["stats:trips"], [{"driver": 1}], "entity row 0 has no 'driver_id'"),
    (["stats:trips"], [{"driver_id": "1"}], "join key 'driver_id' of entity 'driver' must be an integer (int64), got '1'"),
    (["pairs:rating"], [{"driver_id": 1, "rider_id": 7}], "join key 'rider_id' of entity 'rider' must be a string"),
    (["stats:trips"], {"driver_id": [1, 2], "rider_id": [1]}, None),
    (["stats:trips"], "driver_id=1", "entity_rows must be a list of dicts"),
    (["stats:trips"], {"driver_id": 5}, "entity column 'driver_id' must be a list of values, such as {'driver_id': [5]}"),
    (["stats:trips"], [{"driver_id": 1 << 63}], "join key 'driver_id' of entity 'driver' is int64, and "
                                                "9223372036854775808 is outside its range"),
    (["ranking"], [{"driver_id": 1}], "'ranking' is a feature service, not a feature view"),
])
def test_bad_requests_get_one_sentence(built, features, rows, message):
    _, _, stores = built
    if message is None:  # extra columns are ignored
        assert stores["sqlite"].get_online_features(features, rows).values["trips"][0] is not None
        return
    with pytest.raises(RequestError) as error:
        stores["sqlite"].get_online_features(features, rows)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_redis_reads_every_view_and_entity_in_one_round_trip(built, monkeypatch):
    from redis.connection import AbstractConnection

    _, _, stores = built
    sent = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    store = stores["redis"]
    store.get_online_features("ranking", [{"driver_id": 1, "rider_id": "r:1"}])  # plan + connect first
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    entities = {"driver_id": list(range(1, 21)), "rider_id": ["r:1"] * 20}
    response = store.get_online_features("ranking", entities)
    assert len(sent) == 1
    assert response.to_dict() == stores["sqlite"].get_online_features("ranking", entities).to_dict()
    assert response.statuses["trips"].count("PRESENT") == 18  # drivers 9 and 19 expired before the sync


def test_cli_get_online_features_prints_json(built):
    root, _, stores = built
    result = CliRunner().invoke(main, ["--repo", str(root), "get-online-features", "-f", "stats:trips",
                                       "-f", "stats:city", "-e", "driver_id=3", "-e", "driver_id=999"])
    assert result.exit_code == 0, result.output
    expected = stores["sqlite"].get_online_features(["stats:trips", "stats:city"], [{"driver_id": 3}, {"driver_id": 999}])
    assert json.loads(result.output) == expected.to_dict()
    bad = CliRunner().invoke(main, ["--repo", str(root), "get-online-features", "-f", "stats:trips", "-e", "driver_id=x"])
    assert bad.exit_code == 1
    assert "join key 'driver_id' is int64, and 'x' is not an integer" in bad.output


@pytest.mark.parametrize(("args", "message"), [
    (["-f", "rankin", "-e", "driver_id=3"],
     "unknown feature view or feature service 'rankin' (did you mean 'ranking'?)"),
    (["-f", "ranking", "-f", "stats:trips", "-e", "driver_id=3"],
     "'ranking' is a feature service, not a feature view: ask for it alone"),
    (["-f", "stats:trips", "-e", "driver_id=9223372036854775808"],
     "join key 'driver_id' of entity 'driver' is int64, and 9223372036854775808 is outside its range"),
])
def test_cli_get_online_features_bad_input_is_one_line(built, args, message):
    root, _, _ = built
    result = CliRunner().invoke(main, ["--repo", str(root), "get-online-features", *args])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # not a traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output


def test_cli_get_online_features_prints_nan_as_null(built):
    """A NaN feature (Postgres keeps one from the warehouse) is null: the output stays JSON."""
    import psycopg

    root, _, stores = built
    config = stores["postgres"].repo.config.online_store
    table = f'"{config.schema_}".stats'
    with psycopg.connect(config.url, autocommit=True) as con:
        before = con.execute(f"select conv_rate from {table} where driver_id = 3").fetchone()[0]
        con.execute(f"update {table} set conv_rate = 'NaN' where driver_id = 3")
        set_store(root, postgres_store(config.url, config.schema_))
        try:
            for extra in ([], ["--feast-json"]):
                result = CliRunner().invoke(main, ["--repo", str(root), "get-online-features", "-f", "stats:conv_rate",
                                                   "-e", "driver_id=3", *extra])
                assert result.exit_code == 0, result.output
                body = json.loads(result.output, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
                values = body["results"][1]["values"] if extra else body["conv_rate"]
                assert values == [None]
        finally:
            set_store(root, sqlite_store())
            con.execute(f"update {table} set conv_rate = %s where driver_id = 3", (before,))


def test_check_finds_no_skew_then_reports_a_tampered_value(built):
    import sqlite3

    root, _, _ = built
    result = CliRunner().invoke(main, ["--repo", str(root), "check"])
    assert result.exit_code == 0, result.output
    assert "stats: 36 entities compared" in result.output and "0 difference(s)" in result.output
    con = sqlite3.connect(root / "data" / "online.db")
    before = con.execute("select trips from stats where driver_id = 4").fetchone()[0]
    con.execute("update stats set trips = trips + 1 where driver_id = 4")
    con.commit()
    try:
        result = CliRunner().invoke(main, ["--repo", str(root), "check", "--views", "stats"])
        assert result.exit_code == 1
        assert f"stats [driver_id=4] trips: online {before + 1} (PRESENT), training {before}" in result.output
    finally:
        con.execute("update stats set trips = trips - 1 where driver_id = 4")
        con.commit()
        con.close()
    set_store(root, sqlite_store("data/never_synced.db"))
    try:  # a store nobody synced: every view is reported, and the audit does not create the file
        result = CliRunner().invoke(main, ["--repo", str(root), "check"])
        assert result.exit_code == 1 and "stats: never synced; run 'featurehouse sync'" in result.output
        assert not (root / "data" / "never_synced.db").exists()
    finally:
        set_store(root, sqlite_store())
    for sample in ("0", "-1"):  # no entity to compare is a usage error, not a traceback
        result = CliRunner().invoke(main, ["--repo", str(root), "check", "--sample", sample])
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
        assert "Invalid value for '--sample'" in result.output


def test_postgres_warehouse_snapshot_equals_training_data(tmp_path, postgres_url, postgres_schema):
    """The latest_snapshot macro on Postgres (byte-wise string ties) agrees with the point-in-time join."""
    import psycopg
    import pyarrow as pa

    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo
    from support.online import STATS_SCHEMA, stats_rows
    from support.repos import run_dbt, write_repo

    now = utc_hour()
    specs = {"specs.yml": f"""\
    entities:
      - {{name: driver, join_keys: [driver_id], value_type: int64}}
    sources:
      - {{name: src, table: {postgres_schema}.raw_stats, timestamp_field: event_timestamp, created_timestamp_column: created}}
    feature_views:
      - name: stats
        entities: [driver]
        source: src
        ttl: 1d
        schema:
          - {{name: conv_rate, dtype: float32}}
          - {{name: trips, dtype: int64}}
          - {{name: city, dtype: string}}
          - {{name: active, dtype: bool}}
    """}
    root = write_repo(tmp_path / "pg", specs, postgres_url=postgres_url, postgres_schema=postgres_schema, target="pg")
    rows = stats_rows(range(1, 31), now)
    for i, row in enumerate(rows):  # strings that tie-break differently byte-wise and by locale
        if row["driver_id"] % 7 == 3 and i % 2:
            row["city"] = "b" if row["city"] is None else "B"
    table = pa.Table.from_pylist(rows, schema=STATS_SCHEMA)
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{postgres_schema}"')
        con.execute(f'CREATE TABLE "{postgres_schema}".raw_stats (driver_id bigint, event_timestamp timestamp, '
                    'created timestamp, conv_rate real, trips bigint, city text, active boolean)')
        with con.cursor().copy(f'COPY "{postgres_schema}".raw_stats FROM STDIN') as copy:
            for row in table.to_pylist():
                copy.write_row(list(row.values()))
    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "postgres"))
    run_dbt(root, "build", "--quiet", target="pg")
    store = FeatureStore(root, target="pg")
    report = sync(store)
    assert report.rows_read == 27  # 30 drivers, 3 expired at the run
    at = now + timedelta(minutes=10)
    entities = {"driver_id": list(range(1, 32))}
    refs = ["stats:conv_rate", "stats:trips", "stats:city", "stats:active"]
    expected = training_values(store, refs, entities, at)
    response = online_values(store, refs, entities, at)
    for ref in refs:
        name = ref.split(":")[1]
        assert response.values[name] == expected[name], name
