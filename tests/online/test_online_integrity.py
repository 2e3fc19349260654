"""Never serve a wrong value: unsynced features, damaged stored values, damaged sync state, kept rows."""

from __future__ import annotations

import json
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from support.online import (
    KINDS,
    SPECS,
    build_repo,
    online_values,
    rebuild,
    set_store,
    sync_to_every_store,
    utc_hour,
)

from featurehouse.cli.app import main
from featurehouse.errors import OnlineStoreError
from featurehouse.sdk.store import FeatureStore
from featurehouse.sync import sync

DRIVERS = range(1, 6)


def _add_tier(root):
    """Add feature `tier` to view stats (specs and data) and build, without syncing."""
    specs = SPECS["specs.yml"].replace(
        "          - {name: active, dtype: bool}\n",
        "          - {name: active, dtype: bool}\n          - {name: tier, dtype: string}\n", 1)
    import textwrap

    (root / "feature_specs" / "specs.yml").write_text(textwrap.dedent(specs))
    table = pq.read_table(root / "data" / "stats.parquet")
    tiers = pa.array([f"tier-{d % 3}" for d in table.column("driver_id").to_pylist()])
    pq.write_table(table.append_column("tier", tiers), root / "data" / "stats.parquet")
    rebuild(root, full_refresh=True)  # the snapshot's columns changed


def _http(root, features, ids):
    from fastapi.testclient import TestClient

    from featurehouse.server import create_app

    with TestClient(create_app(root), raise_server_exceptions=False) as client:
        response = client.post("/get-online-features", json={"features": features, "entities": {"driver_id": ids}})
    assert response.status_code == 200, response.text
    body = response.json()
    names = body["metadata"]["feature_names"]
    return {n: r for n, r in zip(names, body["results"])}


@pytest.mark.postgres
@pytest.mark.redis
def test_a_feature_added_but_not_synced_is_not_found_on_every_store(tmp_path, postgres_url, redis_url):
    root = build_repo(tmp_path, DRIVERS, "  type: sqlite\n  path: data/online.db\n")
    every = sync_to_every_store(root, postgres_url, redis_url, "unsynced")
    try:
        _add_tier(root)
        ids = [1, 2, 99]
        for kind in KINDS:
            set_store(root, every.configs[kind])
            store = FeatureStore(root)
            sdk = online_values(store, ["stats:tier", "stats:trips"], {"driver_id": ids})
            assert sdk.values["tier"] == [None, None, None], kind
            assert sdk.statuses["tier"] == ["NOT_FOUND"] * 3, kind
            # the features that were synced still answer
            assert sdk.statuses["trips"] == ["PRESENT", "PRESENT", "NOT_FOUND"], kind
            assert all(isinstance(v, int) for v in sdk.values["trips"][:2]), kind

            result = CliRunner().invoke(main, ["--repo", str(root), "get-online-features", "-f", "stats:tier",
                                               "-f", "stats:trips", "-e", "driver_id=1", "--feast-json"])
            assert result.exit_code == 0, (kind, result.output)
            body = json.loads(result.output)
            tier = body["results"][body["metadata"]["feature_names"].index("tier")]
            assert tier["values"] == [None] and tier["statuses"] == ["NOT_FOUND"], kind

            http = _http(root, ["stats:tier", "stats:trips"], ids)
            assert http["tier"]["values"] == [None, None, None] and http["tier"]["statuses"] == ["NOT_FOUND"] * 3
            assert http["trips"]["statuses"] == ["PRESENT", "PRESENT", "NOT_FOUND"], kind

            # after the sync: the values the warehouse holds
            sync(store)
            after = online_values(store, ["stats:tier"], {"driver_id": ids})
            assert after.values["tier"][:2] == ["tier-1", "tier-2"], kind
            assert after.statuses["tier"] == ["PRESENT", "PRESENT", "NOT_FOUND"], kind
    finally:
        set_store(root, every.configs["sqlite"])
        every.drop(postgres_url, redis_url)


def test_a_long_lived_reader_follows_the_sync_that_adds_a_feature(tmp_path):
    """A server's reader, built before the sync, answers NOT_FOUND before and the value after."""
    from featurehouse.online.reader import OnlineReader

    root = build_repo(tmp_path, DRIVERS, "  type: sqlite\n  path: data/online.db\n")
    sync(FeatureStore(root))
    _add_tier(root)
    store = FeatureStore(root)
    reader = OnlineReader(store)
    try:
        before = reader.read(["stats:tier", "stats:city"], {"driver_id": [1]})
        assert before.statuses["tier"] == ["NOT_FOUND"] and before.values["tier"] == [None]
        assert before.statuses["city"] == ["PRESENT"]
        sync(store)
        after = reader.read(["stats:tier", "stats:city"], {"driver_id": [1]})
        assert after.values["tier"] == ["tier-1"] and after.statuses["tier"] == ["PRESENT"]
    finally:
        reader.close()


def test_sqlite_reads_never_turn_a_column_name_into_a_value(tmp_path):
    """The class of the bug: an identifier SQLite could read as a string literal."""
    root = build_repo(tmp_path, DRIVERS, "  type: sqlite\n  path: data/online.db\n")
    store = FeatureStore(root)
    sync(store)
    with sqlite3.connect(root / "data" / "online.db") as con:  # a store damaged by hand: a column is gone
        con.execute('ALTER TABLE stats DROP COLUMN "city"')
    # before: [' city', 'city'] PRESENT. The table and its state disagree: one clear error, no value
    with pytest.raises(OnlineStoreError, match="lacks a column its sync state records.*--full-refresh --views stats"):
        online_values(store, ["stats:city", "stats:trips"], {"driver_id": [1, 2]})
    sync(store, full_refresh=True)
    response = online_values(store, ["stats:city", "stats:trips"], {"driver_id": [1, 2]})
    assert response.statuses["city"] == ["PRESENT"] * 2 and response.statuses["trips"] == ["PRESENT"] * 2


# ---- damaged values ----------------------------------------------------------------------------------
def _damage(kind, store, root):
    """Damage driver 2's trips and driver 3's event time; make driver 4's key a string in Redis."""
    config = store.repo.config.online_store
    if kind == "sqlite":
        with sqlite3.connect(root / config.path) as con:
            con.execute("UPDATE stats SET trips = 'not-a-number' WHERE driver_id = 2")
            con.execute("UPDATE stats SET event_timestamp = '99999999999999999999' WHERE driver_id = 3")
            con.execute("UPDATE stats SET city = x'00ff' WHERE driver_id = 4")
    elif kind == "redis":
        import redis

        client = redis.Redis.from_url(config.url)
        prefix = config.key_prefix
        client.hset(f"{prefix}:stats:2", "trips", "not-a-float")
        client.hset(f"{prefix}:stats:3", "_ts", "99999999999999999999")
        client.delete(f"{prefix}:stats:4")
        client.set(f"{prefix}:stats:4", "a string where a hash belongs")
        client.close()


@pytest.mark.redis
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_one_damaged_value_is_invalid_alone(tmp_path, redis_url, kind, caplog):
    from support.online import drop_store, redis_store, unique

    root = build_repo(tmp_path, DRIVERS, "  type: sqlite\n  path: data/online.db\n", now=utc_hour())
    prefix = unique("fhbad")
    if kind == "redis":
        set_store(root, redis_store(redis_url, prefix))
    store = FeatureStore(root)
    try:
        sync(store)
        _damage(kind, store, root)
        ids = [1, 2, 3, 4, 5]
        with caplog.at_level("WARNING", logger="featurehouse.online.reader"):
            response = online_values(store, ["stats:trips", "stats:city"], {"driver_id": ids})
        trips, city = response.statuses["trips"], response.statuses["city"]
        assert trips[0] == "PRESENT" and trips[4] == "PRESENT"
        assert trips[1] == "INVALID" and response.values["trips"][1] is None
        assert city[1] == "PRESENT"  # only the damaged value
        assert trips[2] == city[2] == "INVALID"  # a damaged event time: the whole row
        assert response.values["city"][2] is None
        if kind == "sqlite":
            assert city[3] == "INVALID" and trips[3] == "PRESENT"
        else:  # a key of the wrong type: the whole entity
            assert trips[3] == city[3] == "INVALID"
        logged = caplog.text
        assert "'trips'" in logged and "not-a" in logged and "stats" in logged
        # the HTTP server answers 200 with the same statuses
        http = _http(root, ["stats:trips"], ids)
        assert http["trips"]["statuses"][1] == "INVALID" and http["trips"]["statuses"][0] == "PRESENT"
        if kind == "redis":
            # sync names the key; --full-refresh repairs it
            result = CliRunner().invoke(main, ["--repo", str(root), "sync", "--full-refresh"])
            assert result.exit_code == 0, result.output
            repaired = online_values(store, ["stats:trips"], {"driver_id": ids})
            assert repaired.statuses["trips"][3] == "PRESENT"
    finally:
        if kind == "redis":
            drop_store("redis", redis_url, prefix)


@pytest.mark.redis
def test_sync_names_a_redis_key_of_the_wrong_type(tmp_path, redis_url):
    import redis
    from support.online import drop_store, redis_store, unique

    root = build_repo(tmp_path, DRIVERS, "  type: sqlite\n  path: data/online.db\n")
    prefix = unique("fhtype")
    set_store(root, redis_store(redis_url, prefix))
    store = FeatureStore(root)
    try:
        sync(store)
        client = redis.Redis.from_url(redis_url)
        client.delete(f"{prefix}:stats:4")
        client.set(f"{prefix}:stats:4", "oops")
        client.close()
        rebuild(root, full_refresh=True)  # every snapshot row is new: the next sync writes driver 4 again
        result = CliRunner().invoke(main, ["--repo", str(root), "sync"])
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and f"the Redis key {prefix}:stats:4 " in lines[0], result.output
        assert "sync --full-refresh --views stats" in lines[0]
        result = CliRunner().invoke(main, ["--repo", str(root), "sync", "--full-refresh"])
        assert result.exit_code == 0, result.output
        response = online_values(store, ["stats:trips"], {"driver_id": [4]})
        assert response.statuses["trips"] == ["PRESENT"]
    finally:
        drop_store("redis", redis_url, prefix)


@pytest.mark.redis
@pytest.mark.parametrize("hidden", ["state", "entities"])
def test_a_redis_read_the_server_refuses_is_an_error_not_a_missing_value(tmp_path, redis_url, hidden):
    """An error reply (here an ACL's NOPERM) to the sync state or to an entity's key fails the read
    in one sentence: read as "never synced" or as a damaged value, it served every feature as
    NOT_FOUND or INVALID while the store held them."""
    import redis
    from redis.connection import parse_url
    from support.online import drop_store, redis_store, unique

    root = build_repo(tmp_path, DRIVERS, "  type: sqlite\n  path: data/online.db\n")
    prefix = unique("fhacl")
    user = unique("fhreader")
    set_store(root, redis_store(redis_url, prefix))
    admin = redis.Redis.from_url(redis_url)
    try:
        sync(FeatureStore(root))
        readable = f"~{prefix}:stats:*" if hidden == "state" else f"~{prefix}:#state:*"
        admin.acl_setuser(user, enabled=True, passwords=["+secret"], keys=[readable], commands=["+@all"])
        options = parse_url(redis_url)
        url = f"redis://{user}:secret@{options.get('host', '127.0.0.1')}:{options.get('port', 6379)}/0"
        set_store(root, redis_store(url, prefix))
        with pytest.raises(OnlineStoreError) as raised:
            online_values(FeatureStore(root), ["stats:trips"], {"driver_id": [1, 2]})
        text = str(raised.value)
        assert "\n" not in text and "secret" not in text
        assert text.startswith("reading the Redis online store") and "permission" in text.lower(), text
        # the server answers an error, not 200 with NOT_FOUND/INVALID statuses
        from fastapi.testclient import TestClient

        from featurehouse.server import create_app

        with TestClient(create_app(root), raise_server_exceptions=False) as client:
            response = client.post(
                "/get-online-features", json={"features": ["stats:trips"], "entities": {"driver_id": [1]}}
            )
        assert response.status_code == 503 and "cannot be read" in response.text, response.text
    finally:
        admin.acl_deluser(user)
        admin.close()
        drop_store("redis", redis_url, prefix)


# ---- damaged sync state ---------------------------------------------------------------------------------
def test_a_damaged_sync_state_is_one_line_and_full_refresh_repairs_it(tmp_path):
    root = build_repo(tmp_path, DRIVERS, "  type: sqlite\n  path: data/online.db\n")
    store = FeatureStore(root)
    sync(store)
    with sqlite3.connect(root / "data" / "online.db") as con:
        blob = con.execute("select state from _featurehouse_sync_state where view = 'stats'").fetchone()[0]
        con.execute("update _featurehouse_sync_state set state = ? where view = 'stats'", (blob[:8] + b"{not json" + blob[17:],))
    result = CliRunner().invoke(main, ["--repo", str(root), "sync"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "sync state of feature view 'stats'" in lines[0], result.output
    assert "--full-refresh --views stats" in lines[0]
    with pytest.raises(OnlineStoreError, match="damaged"):
        sync(store)
    result = CliRunner().invoke(main, ["--repo", str(root), "sync", "--full-refresh"])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(main, ["--repo", str(root), "sync"]).exit_code == 0


# ---- the monotonic rule, reported -------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.redis
def test_rows_kept_by_the_monotonic_rule_are_reported_and_checked(tmp_path, postgres_url, redis_url):
    """After a snapshot built as of an earlier time, sync says what it kept and check shows the disagreement."""
    from datetime import timedelta

    from support.repos import run_dbt

    now = utc_hour()
    root = build_repo(tmp_path, range(1, 11), "  type: sqlite\n  path: data/online.db\n", now=now)
    every = sync_to_every_store(root, postgres_url, redis_url, "kept")
    try:
        # the same rows rebuilt: every row is fetched again, and the same row is "unchanged", not "kept"
        run_dbt(root, "build", "--quiet", "--full-refresh")
        for kind in KINDS:
            set_store(root, every.configs[kind])
            result = CliRunner().invoke(main, ["--repo", str(root), "sync", "--views", "stats"])
            assert "9 rows read, 0 written, 9 unchanged" in result.output, (kind, result.output)
            assert "kept" not in result.output, (kind, result.output)
        as_of = (now - timedelta(hours=2, minutes=30)).strftime("%Y-%m-%d %H:%M:%S")
        run_dbt(root, "build", "--quiet", "--full-refresh", "--vars", json.dumps({"featurehouse_as_of": as_of}))
        for kind in KINDS:
            set_store(root, every.configs[kind])
            result = CliRunner().invoke(main, ["--repo", str(root), "sync", "--views", "stats"])
            assert result.exit_code == 0, (kind, result.output)
            # every driver's newest row (1 h old) is newer than the snapshot's (as of 2.5 h ago);
            # driver 9's rows (30 h and older) are outside the ttl at the as-of time: not in the snapshot
            assert "9 rows read, 0 written, 0 unchanged" in result.output, (kind, result.output)
            assert "9 kept: the store holds newer values" in result.output, (kind, result.output)
            assert "featurehouse sync --full-refresh --views stats" in result.output

            checked = CliRunner().invoke(main, ["--repo", str(root), "check", "--views", "stats"])
            assert checked.exit_code == 1, (kind, checked.output)
            assert checked.output.count("the store holds a newer row") == 9, (kind, checked.output)

            result = CliRunner().invoke(main, ["--repo", str(root), "sync", "--views", "stats", "--full-refresh"])
            assert result.exit_code == 0 and "kept" not in result.output, (kind, result.output)
            checked = CliRunner().invoke(main, ["--repo", str(root), "check", "--views", "stats"])
            assert "the store holds a newer row" not in checked.output, (kind, checked.output)
    finally:
        set_store(root, every.configs["sqlite"])
        every.drop(postgres_url, redis_url)


@pytest.mark.postgres
def test_a_postgres_timestamp_python_cannot_hold_is_invalid_alone(tmp_path, postgres_url, caplog):
    import psycopg
    from support.online import drop_store, postgres_store, unique

    root = build_repo(tmp_path, DRIVERS, "  type: sqlite\n  path: data/online.db\n")
    schema = unique("fh_bad")
    set_store(root, postgres_store(postgres_url, schema))
    store = FeatureStore(root)
    try:
        sync(store)
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(f"UPDATE \"{schema}\".stats SET event_timestamp = 'infinity' WHERE driver_id = 3")
            con.execute(f"UPDATE \"{schema}\".pairs SET last_seen = '20000-01-01' WHERE driver_id = 2")
        with caplog.at_level("WARNING", logger="featurehouse.online.reader"):
            stats = online_values(store, ["stats:trips", "stats:city"], {"driver_id": [1, 3]})
            pairs = online_values(store, ["pairs:rating", "pairs:last_seen"],
                                  {"driver_id": [2, 2], "rider_id": ["r:2", "r\\x"]})
        assert stats.statuses["trips"] == ["PRESENT", "INVALID"] and stats.statuses["city"] == ["PRESENT", "INVALID"]
        assert stats.values["trips"][1] is None
        assert pairs.statuses["last_seen"] == ["INVALID", "INVALID"] and pairs.values["last_seen"] == [None, None]
        assert pairs.statuses["rating"] == ["PRESENT", "PRESENT"]
        assert "event_timestamp" in caplog.text and "last_seen" in caplog.text
    finally:
        drop_store("postgres", postgres_url, schema)
