"""Pushes online: the conditional write `sync` uses, on SQLite, Postgres and Redis.

A push never writes an older row over a newer one, a sync never writes an older snapshot
row over a newer pushed one, whatever order they run in, and a push or a sync killed with
SIGKILL half-way leaves every entity whole and the store usable.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from featurehouse.errors import RequestError
from featurehouse.online.push import PushError
from support import online as so
from support.push import build_push_repo, drop, fresh_store, online, start_child, stats_push_rows

DRIVERS = list(range(1, 11))
STORES = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
]


@pytest.fixture(scope="module")
def now() -> Any:
    return so.utc_hour()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, now: Any) -> Path:
    return build_push_repo(tmp_path_factory.mktemp("push") / "repo", range(1, 11), now)


@pytest.fixture
def servers(request: pytest.FixtureRequest) -> tuple[str | None, str | None]:
    kind = request.node.callspec.params.get("kind")
    postgres = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    redis = request.getfixturevalue("redis_url") if kind == "redis" else None
    return postgres, redis


@pytest.fixture
def store(repo: Path, kind: str, servers: tuple[str | None, str | None]) -> Any:
    made, name = fresh_store(repo, kind, *servers, tag="on")
    yield made
    drop(kind, name, *servers)


def _sync(store: Any) -> Any:
    from featurehouse.sync import sync

    return sync(store, wait=30)


def _snapshot_trips(now: Any) -> dict[int, Any]:
    """The trips value the synced snapshot holds per driver (newest row by the point-in-time rule)."""
    rows = so.stats_rows(range(1, 11), now)
    best: dict[int, Any] = {}
    for r in rows:
        key = (r["event_timestamp"], r["created"] is not None, r["created"] or r["event_timestamp"], r["conv_rate"])
        if r["driver_id"] not in best or key > best[r["driver_id"]][0]:
            best[r["driver_id"]] = (key, r)
    return {d: best[d][1]["trips"] for d in best}


@pytest.mark.parametrize("kind", STORES)
def test_a_newer_push_is_read_and_an_older_one_is_kept(store: Any, now: Any) -> None:
    _sync(store)
    before = online(store, [1, 2])
    newer = store.push("stats_push", stats_push_rows([1], now - timedelta(minutes=30), conv=0.25, trips=501))
    older = store.push("stats_push", stats_push_rows([2], now - timedelta(hours=10), conv=0.75, trips=502))
    assert (newer.online, older.online, older.kept) == ({"stats": 1}, {"stats": 0}, {"stats": 1})
    after = online(store, [1, 2])
    assert after["trips"] == [501, before["trips"][1]]
    assert after["conv_rate"][0] == pytest.approx(0.25) and after["city"] == ["pushed", before["city"][1]]
    # the next sync reads a snapshot older than the pushed row: the pushed value stays
    report = _sync(store)
    assert online(store, [1, 2]) == after
    assert report.written == 0


@pytest.mark.parametrize("kind", STORES)
def test_a_push_before_the_first_sync_is_readable_and_survives_it(store: Any, now: Any) -> None:
    pushed = stats_push_rows([1, 2], now - timedelta(minutes=30), trips=777)
    pushed["event_timestamp"][1] = now - timedelta(hours=10)  # driver 2: older than the snapshot's row
    store.push("stats_push", pushed)
    assert online(store, [1, 2, 3])["trips"] == [777, 777, None]
    report = _sync(store)  # the first sync: conditional, not a rebuild over the pushed rows
    assert not any(v.full_refresh for v in report.views if v.view == "stats")
    snapshot = _snapshot_trips(now)
    assert online(store, [1, 2, 3])["trips"] == [777, snapshot[2], snapshot[3]]


@pytest.mark.parametrize("order", ["push_then_sync", "sync_then_push", "together"])
@pytest.mark.parametrize("kind", STORES)
def test_push_racing_sync_leaves_the_newer_value(store: Any, now: Any, order: str) -> None:
    # odd drivers get a pushed row newer than the snapshot, even drivers an older one
    newer = stats_push_rows(DRIVERS[0::2], now - timedelta(minutes=10), trips=900)
    older = stats_push_rows(DRIVERS[1::2], now - timedelta(hours=20), trips=901)
    rows = {k: newer[k] + older[k] for k in newer}
    if order == "push_then_sync":
        store.push("stats_push", rows)
        _sync(store)
    elif order == "sync_then_push":
        _sync(store)
        store.push("stats_push", rows)
    else:
        from featurehouse.sdk.store import FeatureStore

        other = FeatureStore(store.repo_path)  # its own connections, as another process has
        errors: list[BaseException] = []

        def run(call: Any) -> None:
            try:
                call()
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [
            threading.Thread(target=run, args=(lambda: _sync(other),)),
            threading.Thread(target=run, args=(lambda: store.push("stats_push", rows),)),
        ]
        random.shuffle(threads)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        _sync(store)  # a sync that ran first on an empty store left nothing out
    snapshot = _snapshot_trips(now)
    assert online(store, DRIVERS)["trips"] == [900 if d % 2 else snapshot[d] for d in DRIVERS]


@pytest.mark.parametrize("kind", STORES)
def test_a_push_killed_half_way_leaves_whole_rows_and_a_retry_completes_it(repo: Path, store: Any, now: Any) -> None:
    _sync(store)
    count = 30_000
    at = now - timedelta(minutes=5)
    child = start_child(repo, "push", str(count), at.isoformat(), "0.125")
    time.sleep(random.uniform(0.2, 1.5))
    child.send_signal(signal.SIGKILL)
    child.wait()
    sample = random.sample(range(1, count + 1), 300) + [1, count]
    values = online(store, sample)
    for driver, trips, conv, city in zip(sample, values["trips"], values["conv_rate"], values["city"]):
        if trips is not None and city == "bulk":  # written: the whole pushed row
            assert (trips, conv) == (driver, pytest.approx(0.125))
        else:  # not written: nothing, or the synced row (drivers 1-10)
            assert driver <= 10 or trips is None
    from support.push import bulk_rows

    result = store.push("stats_push", bulk_rows(count, at, 0.125))  # the retry
    assert result.online["stats"] + result.kept["stats"] <= count
    assert online(store, sample)["trips"] == sample
    assert set(online(store, sample)["city"]) == {"bulk"}


@pytest.mark.parametrize("kind", STORES)
def test_a_sync_killed_half_way_does_not_stop_pushes_or_the_next_sync(repo: Path, store: Any, now: Any) -> None:
    child = start_child(repo, "sync")
    time.sleep(random.uniform(0.0, 1.0))
    child.send_signal(signal.SIGKILL)
    child.wait()
    store.push("stats_push", stats_push_rows([1, 2], now - timedelta(minutes=10), trips=4242))
    _sync(store)  # the lock of the killed sync is free again; the pushed rows are newer than its snapshot
    assert online(store, [1, 2])["trips"] == [4242, 4242]
    snapshot = _snapshot_trips(now)
    assert online(store, [3])["trips"] == [snapshot[3]]


# ---- validation: one sentence naming the row and the column; nothing written -----------------------------
BAD = [
    ("a string for an integer", {"trips": ["7", 8]}, "row 0, column 'trips': expected an integer (int64), got '7'"),
    ("a fraction for an integer", {"trips": [7, 8.5]}, "row 1, column 'trips': expected an integer (int64), got 8.5"),
    ("a null join key", {"driver_id": [1, None]}, "row 1, column 'driver_id': a join key may not be null"),
    ("a null event time", {"event_timestamp": [None, None]}, "row 0, column 'event_timestamp': the event time may"),
    (
        "a bad timestamp",
        {"event_timestamp": ["yesterday", "x"]},
        "row 0, column 'event_timestamp': expected a timestamp",
    ),
    ("a boolean for a number", {"conv_rate": [True, 0.5]}, "row 0, column 'conv_rate': expected a number (float32)"),
    ("text for a boolean", {"active": ["yes", True]}, "row 0, column 'active': expected true or false, got 'yes'"),
    ("an int64 overflow", {"driver_id": [1, 2**70]}, "row 1, column 'driver_id': expected an integer in int64's"),
    ("a missing column", {"conv_rate": None}, "the rows have no column 'conv_rate' (float32)"),
    ("an unknown column", {"conv_rat": [1.0, 2.0]}, "unknown column 'conv_rat' (did you mean 'conv_rate'?)"),
    ("uneven columns", {"city": ["a"]}, "columns have different lengths"),
    ("the same row twice", {"driver_id": [3, 3]}, "rows 0 and 1 have the same driver_id, event_timestamp, created"),
]


@pytest.mark.parametrize("case", [b[0] for b in BAD])
def test_a_bad_row_is_named_and_nothing_is_written(repo: Path, now: Any, case: str, tmp_path: Path) -> None:
    _, change, message = next(b for b in BAD if b[0] == case)
    store, _ = fresh_store(repo, "sqlite", None, None, tag="bad")
    _sync(store)
    before = online(store, [1, 2, 3])
    rows = stats_push_rows([1, 2], now - timedelta(minutes=10), trips=55)
    for key, value in change.items():
        if value is None:
            rows.pop(key)
        else:
            rows[key] = value
    log = repo / "data" / "push_log" / "stats_push"
    files = set(log.glob("*")) if log.exists() else set()
    with pytest.raises(RequestError) as raised:
        store.push("stats_push", rows, to="online_and_offline")
    assert message in str(raised.value)
    assert str(raised.value).startswith("push source 'stats_push': ")
    assert online(store, [1, 2, 3]) == before
    assert (set(log.glob("*")) if log.exists() else set()) == files


def test_unknown_names_and_modes_are_one_sentence(repo: Path) -> None:
    store, _ = fresh_store(repo, "sqlite", None, None, tag="names")
    with pytest.raises(RequestError, match=r"unknown push source 'stats_pus' \(did you mean 'stats_push'\?\)"):
        store.push("stats_pus", {})
    with pytest.raises(RequestError, match=r"source 'stats_source' is not a push source"):
        store.push("stats_source", {})
    with pytest.raises(RequestError, match=r"to: expected one of online, offline, online_and_offline"):
        store.push("stats_push", {}, to="both")
    with pytest.raises(RequestError, match=r"unknown feature view 'stat' \(did you mean 'stats'\?\)"):
        store.write_to_online_store("stat", {})


def test_timestamps_from_text_and_zones_are_utc(repo: Path, now: Any) -> None:
    import pandas as pd

    store, _ = fresh_store(repo, "sqlite", None, None, tag="tz")
    _sync(store)
    at = now - timedelta(minutes=20)
    rows = stats_push_rows([1, 2], at, trips=31)
    rows["event_timestamp"] = [at.isoformat() + "Z", pd.Timestamp(at, tz="UTC").tz_convert("Asia/Tokyo")]
    store.push("stats_push", rows)
    assert online(store, [1, 2])["trips"] == [31, 31]
    # a naive time is UTC: a minute before the Tokyo-zoned row is older, one after it newer
    assert store.push("stats_push", stats_push_rows([2], at - timedelta(minutes=1), trips=32)).kept == {"stats": 1}
    assert store.push("stats_push", stats_push_rows([2], at + timedelta(minutes=1), trips=33)).online == {"stats": 1}
    assert online(store, [1, 2])["trips"] == [31, 33]


@pytest.mark.parametrize("kind", STORES)
def test_write_to_online_store_is_conditional_too(store: Any, now: Any) -> None:
    _sync(store)
    before = online(store, [1, 2])
    rows = {
        "driver_id": [1, 2],
        "event_timestamp": [now - timedelta(minutes=1), now - timedelta(days=5)],
        "conv_rate": [0.5, 0.5],
        "trips": [61, 62],
        "city": ["w", "w"],
        "active": [False, False],
    }
    result = store.write_to_online_store("stats", rows)
    assert (result.online, result.kept) == ({"stats": 1}, {"stats": 1})
    assert online(store, [1, 2])["trips"] == [61, before["trips"][1]]


# ---- durability: which part was written, and a retry is harmless ------------------------------------------
def test_an_online_failure_after_the_log_says_what_was_written(
    repo: Path, now: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from featurehouse.errors import OnlineStoreError
    from featurehouse.online import push as push_module

    store, _ = fresh_store(repo, "sqlite", None, None, tag="dur")
    _sync(store)
    rows = stats_push_rows([4], now - timedelta(minutes=3), trips=4004)
    real = push_module.Pusher.write

    def broken(self: Any, *args: Any) -> Any:
        raise OnlineStoreError("the SQLite online store is read-only")

    monkeypatch.setattr(push_module.Pusher, "write", broken)
    with pytest.raises(PushError) as raised:
        store.push("stats_push", rows, to="online_and_offline")
    text = str(raised.value)
    assert "writing online view 'stats' failed (the SQLite online store is read-only)" in text
    assert "written: the push log (batch " in text and "pushing the same rows again is harmless" in text
    log = repo / "data" / "push_log" / "stats_push"
    files = sorted(p.name for p in log.glob("*.parquet"))
    monkeypatch.setattr(push_module.Pusher, "write", real)
    result = store.push("stats_push", rows, to="online_and_offline")  # the retry
    assert sorted(p.name for p in log.glob("*.parquet")) == files  # the same batch, replaced: no second copy
    assert result.online == {"stats": 1} and online(store, [4])["trips"] == [4004]


def test_a_log_failure_writes_nothing_online(repo: Path, now: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from featurehouse.errors import WarehouseError
    from featurehouse.sync import offline_log

    store, _ = fresh_store(repo, "sqlite", None, None, tag="dur2")
    _sync(store)
    before = online(store, [5])

    def broken(*args: Any) -> None:
        raise WarehouseError("cannot write the push log: disk full")

    monkeypatch.setattr(offline_log, "append", broken)
    with pytest.raises(
        PushError,
        match=r"writing the push log failed \(cannot write the push log: disk full\); "
        r"nothing was written",
    ):
        store.push("stats_push", stats_push_rows([5], now - timedelta(minutes=3)), to="online_and_offline")
    assert online(store, [5]) == before


def test_describe_shows_the_last_push_and_the_last_sync(repo: Path, now: Any) -> None:
    from featurehouse import catalog

    store, _ = fresh_store(repo, "sqlite", None, None, tag="desc")
    store.push("stats_push", stats_push_rows([6], now - timedelta(minutes=2)), to="online_and_offline")
    state = catalog.online_state(store, ["stats"])["stats"]
    assert state["last_sync"] is None  # only a push wrote the view: never synced
    assert state["last_push"] and state["last_offline_push"]
    _sync(store)
    state = catalog.online_state(store, ["stats"])["stats"]
    assert state["last_sync"] is not None and state["last_push"]
