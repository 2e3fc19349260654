"""Incremental sync after inserts, updates and late rows; never an older row; --full-refresh."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurehouse.sdk.store import FeatureStore
from featurehouse.sync import Progress, online_layouts, open_backend, sync
from featurehouse.sync.layout import SyncState, ViewLayout, normalise
from support.online import (
    all_keys,
    build_repo,
    drop_store,
    online_values,
    pairs_rows,
    postgres_store,
    rebuild,
    redis_store,
    set_store,
    sqlite_store,
    stats_rows,
    training_values,
    unique,
    utc_hour,
    write_data,
)

KINDS = ["sqlite", "postgres", "redis"]
STATS = ["stats:conv_rate", "stats:trips", "stats:city", "stats:active"]
DRIVERS = range(1, 41)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, postgres_url, redis_url):
    root = tmp_path_factory.mktemp("incremental")
    now = utc_hour()
    build_repo(root, DRIVERS, sqlite_store(), now)
    names = {"postgres": unique("fh_incr"), "redis": unique("fhincr")}
    configs = {"sqlite": sqlite_store(), "postgres": postgres_store(postgres_url, names["postgres"]),
               "redis": redis_store(redis_url, names["redis"])}
    found = {}
    for kind in KINDS:
        set_store(root, configs[kind])
        found[kind] = FeatureStore(root)
    yield root, now, found
    drop_store("postgres", postgres_url, names["postgres"])
    drop_store("redis", redis_url, names["redis"])


def _assert_equals_training(root, store, at, drivers=None):
    entities = {"driver_id": drivers} if drivers else all_keys(root, "stats", ["driver_id"])
    expected = training_values(store, STATS, entities, at)
    response = online_values(store, STATS, entities, at)
    for ref in STATS:
        name = ref.split(":")[1]
        assert response.values[name] == expected[name], name


def _stats_report(report):
    return next(v for v in report.views if v.view == "stats")


class _MidWrite(Progress):
    """Reads the store while a sync is writing, after its last batch and before it commits."""

    def __init__(self, store, drivers, expect):
        self.store, self.drivers, self.expect = store, drivers, expect
        self.seen = []

    def advance(self, rows):
        self.seen.append(online_values(self.store, STATS, {"driver_id": self.drivers}))
        self.expect(self.seen[-1])


def test_incremental_sync_writes_only_changes_and_never_an_older_row(stores):
    root, now, found = stores
    at = now + timedelta(minutes=30)
    for kind, store in found.items():
        report = sync(store)
        assert [v.full_refresh for v in report.views] == [True, True], kind
        assert sync(store).written == 0, kind  # nothing changed: nothing written

    # inserts, updates and late rows in the warehouse
    stats = stats_rows(DRIVERS, now)
    late_created = now - timedelta(minutes=10)
    stats += [
        dict(driver_id=41, event_timestamp=now - timedelta(hours=2), created=now - timedelta(hours=2), conv_rate=0.41,
             trips=41, city="new", active=True),                                   # a new entity
        dict(driver_id=1, event_timestamp=now - timedelta(minutes=30), created=now - timedelta(minutes=29),
             conv_rate=0.11, trips=11, city="newer", active=False),                # a newer row
        dict(driver_id=2, event_timestamp=now - timedelta(hours=3), created=late_created, conv_rate=0.22,
             trips=22, city="late", active=True),                                  # late, older event: loses
        dict(driver_id=4, event_timestamp=now - timedelta(hours=1), created=late_created, conv_rate=0.44,
             trips=44, city="corrected", active=True),                             # late correction: wins
    ]
    write_data(root, stats, pairs_rows(DRIVERS, now))
    rebuild(root)
    for kind, store in found.items():
        report = sync(store)
        assert not any(v.full_refresh for v in report.views)
        assert (_stats_report(report).written, _stats_report(report).rows_read) == (3, 37), kind
        assert _stats_report(report).fetched == 3, kind  # only the rows the incremental build wrote
        assert next(v for v in report.views if v.view == "pairs").written == 0
        _assert_equals_training(root, store, at)
        response = online_values(store, STATS, {"driver_id": [1, 2, 4, 41]}, at)
        city = response.values["city"]
        assert (city[0], city[2], city[3]) == ("newer", "corrected", "new") and city[1] != "late", kind

    # the warehouse loses driver 1's newest row and all of driver 5: the snapshot goes back in time
    stats = [r for r in stats if not (r["driver_id"] == 1 and r["city"] == "newer") and r["driver_id"] != 5]
    write_data(root, stats, pairs_rows(DRIVERS, now))
    rebuild(root, full_refresh=True)  # deleted rows leave the incremental snapshots only this way
    for kind, store in found.items():
        report = sync(store)
        assert _stats_report(report).written == 0, kind  # older than what the store holds: refused
        response = online_values(store, STATS, {"driver_id": [1, 5]}, at)
        assert response.values["city"][0] == "newer" and response.statuses["trips"][1] == "PRESENT", kind

    # --full-refresh rebuilds from the snapshot: the older row comes back, driver 5 is dropped;
    # a reader during the rebuild sees every entity, never a half-built view
    everyone = list(range(1, 42))
    for kind, store in found.items():
        def complete(response, kind=kind):
            assert response.statuses["trips"][4] == "PRESENT", kind  # driver 5 still there until the end
            if kind != "redis":  # the SQL stores swap the whole view in one transaction
                assert response.values["city"][0] == "newer", kind

        watcher = _MidWrite(store, everyone, complete)
        report = sync(store, ["stats"], full_refresh=True, progress=watcher)
        assert watcher.seen and _stats_report(report).full_refresh
        response = online_values(store, STATS, {"driver_id": [1, 5]}, at)
        assert response.values["city"][0] != "newer" and response.statuses["trips"][1] == "NOT_FOUND", kind
        _assert_equals_training(root, store, at, everyone)
        assert sync(store).written == 0, kind


# ---- the write rule itself, against a brute-force reference ---------------------------------------------
_EVENTS = [datetime(2026, 1, 1, h) for h in (1, 2)]
_CREATED = [None, datetime(2026, 1, 1, 3), datetime(2026, 1, 1, 4)]
_LAYOUT = ViewLayout("tiebreak", ("id",), ("int64",), ("x", "s"), ("float64", "string"), 0)


def _rank(row):
    """The point-in-time order: event, then created (NULL oldest), then values (NULL greatest)."""
    created = (0, datetime.min) if row["created_timestamp"] is None else (1, row["created_timestamp"])
    values = tuple((1, 0) if row[f] is None else (0, row[f].encode() if isinstance(row[f], str) else row[f])
                   for f in ("x", "s"))
    return (row["event_timestamp"], created, values)


_ROW = st.fixed_dictionaries({
    "id": st.sampled_from([1, 2]),
    "event_timestamp": st.sampled_from(_EVENTS),
    "created_timestamp": st.sampled_from(_CREATED),
    "x": st.sampled_from([None, -1.5, 0.0, 2.25]),
    "s": st.sampled_from([None, "", "B", "a", "é"]),
})


@pytest.fixture(scope="module")
def backends(tmp_path_factory, postgres_url, redis_url):
    from featurehouse.spec.model import OnlineStoreConfig

    folder = tmp_path_factory.mktemp("tiebreak")
    names = {"postgres": unique("fh_tie"), "redis": unique("fhtie")}
    configs = {
        "sqlite": OnlineStoreConfig(type="sqlite", path=str(folder / "online.db")),
        "postgres": OnlineStoreConfig(type="postgres", url=postgres_url, schema=names["postgres"]),
        "redis": OnlineStoreConfig(type="redis", url=redis_url, key_prefix=names["redis"]),
    }
    opened = {}
    for kind, config in configs.items():
        backend = open_backend(config, folder)
        backend.connect()
        opened[kind] = backend
    yield opened
    for backend in opened.values():
        backend.close()
    drop_store("postgres", postgres_url, names["postgres"])
    drop_store("redis", redis_url, names["redis"])


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_ROW, min_size=1, max_size=8))
def test_conditional_writes_keep_the_row_the_point_in_time_rule_picks(backends, kind, rows):
    import numpy as np

    backend = backends[kind]
    empty = np.zeros(0, dtype=np.uint64)
    state = SyncState(_LAYOUT.name, _LAYOUT.signature, datetime.now(timezone.utc), 0, empty)
    first = pa.Table.from_pylist([rows[0]])
    backend.write(_LAYOUT, normalise(first, _LAYOUT), None, state, lambda n: None)  # full refresh: a clean start
    for row in rows[1:]:
        table = normalise(pa.Table.from_pylist([row]), _LAYOUT)
        backend.write(_LAYOUT, table, np.ones(1, dtype=bool), state, lambda n: None)
    reader = backend.reader()
    try:
        prepared = reader.prepare(_LAYOUT, ["x", "s"])
        stored = reader.read([(prepared, [(1,), (2,)])])[0]
    finally:
        reader.close()
    for entity, got in zip((1, 2), stored):
        candidates = [r for r in rows if r["id"] == entity]
        if not candidates:
            assert got is None
            continue
        best = max(candidates, key=_rank)
        assert got is not None
        assert got[0] == best["event_timestamp"].replace(tzinfo=timezone.utc)
        assert got[1] == [best["x"], best["s"]], (kind, rows)


def test_sync_rejects_unknown_and_offline_views(stores):
    from featurehouse.errors import RequestError

    root, _, found = stores
    with pytest.raises(RequestError, match="unknown feature view 'stat' \\(did you mean 'stats'\\?\\)"):
        online_layouts(found["sqlite"].repo, ["stat"])


@settings(max_examples=50, deadline=None)
@given(mask=st.lists(st.booleans(), max_size=40))
def test_the_rows_to_write_are_exactly_those_the_mask_marks(mask):
    import numpy as np

    from featurehouse.sync.base import rows_to_write

    table = pa.table({"id": list(range(len(mask)))})
    picked = rows_to_write(table, np.array(mask, dtype=bool))
    assert picked.column("id").to_pylist() == [i for i, keep in enumerate(mask) if keep]
    assert rows_to_write(table, None).num_rows == len(mask)


def test_a_changed_view_or_an_older_state_format_is_rebuilt_whole(tmp_path, monkeypatch, postgres_url, redis_url):
    """The first sync after a view's features changed, or after an upgrade changed how stores
    hold values, rebuilds the view: its new columns are there and no stale value is read."""
    from featurehouse.sync import layout

    root = tmp_path / "repo"
    now = utc_hour()
    build_repo(root, range(1, 11), sqlite_store(), now)
    specs = root / "feature_specs" / "specs.yml"
    active, city = "      - {name: active, dtype: bool}\n", "      - {name: city, dtype: string}\n"
    assert active in specs.read_text()
    specs.write_text(specs.read_text().replace(active, ""))  # no 'active' yet
    rebuild(root, full_refresh=True)
    names = {"postgres": unique("fh_layout"), "redis": unique("fhlayout")}
    configs = {"sqlite": sqlite_store(), "postgres": postgres_store(postgres_url, names["postgres"]),
               "redis": redis_store(redis_url, names["redis"])}
    try:
        monkeypatch.setattr(layout, "STATE_FORMAT", layout.STATE_FORMAT - 1)  # synced by the previous release
        for kind in KINDS:
            set_store(root, configs[kind])
            assert _stats_report(sync(FeatureStore(root))).full_refresh, kind
        monkeypatch.undo()
        for kind in KINDS:
            set_store(root, configs[kind])
            report = _stats_report(sync(FeatureStore(root)))
            assert report.full_refresh and report.written == report.rows_read == 9, (kind, report)  # 1 expired
            assert not _stats_report(sync(FeatureStore(root))).full_refresh, kind  # then incremental again

        specs.write_text(specs.read_text().replace(city, city + active))
        rebuild(root, full_refresh=True)
        for kind in KINDS:
            set_store(root, configs[kind])
            store = FeatureStore(root)
            report = _stats_report(sync(store))
            assert report.full_refresh and report.written == report.rows_read == 9, (kind, report)
            drivers = [d for d in range(1, 11) if d != 9]  # 9 expired
            expected = training_values(store, STATS, {"driver_id": drivers}, now)
            response = online_values(store, STATS, {"driver_id": drivers}, now)
            assert response.values["active"] == expected["active"] and None not in expected["active"], kind
            assert response.values["city"] == expected["city"], kind
    finally:
        drop_store("postgres", postgres_url, names["postgres"])
        drop_store("redis", redis_url, names["redis"])


def test_a_store_synced_from_another_target_is_rebuilt_from_this_one(tmp_path):
    """dev and ci builds synced into one store: each sync must leave exactly its own target's values,
    not trust a watermark or fingerprints that came from the other warehouse."""
    from support.repos import run_dbt

    root = tmp_path / "repo"
    now = utc_hour()
    build_repo(root, range(1, 11), sqlite_store(), now)  # target dev: data/warehouse.duckdb
    profiles = root / "profiles.yml"
    profiles.write_text(profiles.read_text() + "    ci:\n      type: duckdb\n      path: data/ci.duckdb\n      threads: 1\n")
    write_data(root, stats_rows(range(1, 11), now, seed=7), pairs_rows(range(1, 11), now))
    run_dbt(root, "build", "--quiet", target="ci")
    dev, ci = FeatureStore(root), FeatureStore(root, target="ci")
    drivers = {"driver_id": [d for d in range(1, 11) if d != 9]}  # 9 expired
    at = now + timedelta(minutes=30)
    assert training_values(dev, STATS, drivers, at) != training_values(ci, STATS, drivers, at)
    for store in (dev, ci, dev, ci):
        report = _stats_report(sync(store))
        assert report.full_refresh, report
        assert online_values(store, STATS, drivers, at).values == {
            "driver_id": drivers["driver_id"], **training_values(store, STATS, drivers, at)}
    assert not _stats_report(sync(ci)).full_refresh  # the same target again: incremental


def test_incremental_sync_of_a_wide_view(tmp_path, postgres_url, redis_url):
    """A view with many features: the conditional upsert's tie-break must not grow the SQL's
    nesting with the feature count (SQLite's parser overflowed at about a dozen)."""
    import pyarrow.parquet as pq

    from support.repos import write_repo

    width = 60
    features = [f"f{i:02d}" for i in range(width)]
    specs = {"specs.yml": (
        "entities:\n  - {name: driver, join_keys: [driver_id]}\n"
        "sources:\n  - {name: src, path: data/wide.parquet, timestamp_field: event_timestamp, "
        "created_timestamp_column: created}\n"
        "feature_views:\n  - name: wide\n    entities: [driver]\n    source: src\n    online: true\n    schema:\n"
        + "".join(f"      - {{name: {f}, dtype: float64}}\n" for f in features))}
    root = write_repo(tmp_path / "repo", specs)
    now = utc_hour()

    def write(rows):
        pq.write_table(pa.Table.from_pylist(rows), root / "data" / "wide.parquet")

    def row(driver, hours_ago, value, created=5):
        moment = now - timedelta(hours=hours_ago)
        return {"driver_id": driver, "event_timestamp": moment, "created": moment + timedelta(minutes=created),
                **{f: value + i for i, f in enumerate(features)}}

    rows = [row(d, 2, float(d)) for d in range(1, 6)]
    write(rows)
    rebuild(root)
    names = {"postgres": unique("fh_wide"), "redis": unique("fhwide")}
    configs = {"sqlite": sqlite_store(), "postgres": postgres_store(postgres_url, names["postgres"]),
               "redis": redis_store(redis_url, names["redis"])}
    refs = [f"wide:{f}" for f in features]
    try:
        for kind in KINDS:
            set_store(root, configs[kind])
            sync(FeatureStore(root))
        newer = row(1, 1, 100.0)  # a newer row
        tie = dict(rows[1], **{features[-1]: 1e9})  # a full tie but for the last feature, which is greater
        write(rows + [newer, tie])
        rebuild(root)
        for kind in KINDS:
            set_store(root, configs[kind])
            store = FeatureStore(root)
            report = sync(store)
            assert not report.views[0].full_refresh and report.written == 2, (kind, report)
            entities = {"driver_id": [1, 2, 3]}
            at = now + timedelta(minutes=30)
            assert online_values(store, refs, entities, at).values == {
                "driver_id": [1, 2, 3], **training_values(store, refs, entities, at)}, kind
    finally:
        drop_store("postgres", postgres_url, names["postgres"])
        drop_store("redis", redis_url, names["redis"])
