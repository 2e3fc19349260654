"""The online store layouts docs/store-layouts.md documents hold for every dtype, in every store.

One view has every feature dtype and two join keys (a string, then an int64). After a sync,
each store is read twice: through get_online_features, which must return exactly what
get_historical_features returns at the sync's instant, and with the store's own client
alone (sqlite3, psycopg, redis-py), decoded only by the rules that page states. The
page's rules are written out here again on purpose: importing featurehouse's encoders
would test the code against itself.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurehouse.sdk.store import FeatureStore
from featurehouse.sync import sync
from featurehouse.spec.types import arrow_type
from support.online import drop_store, postgres_store, redis_store, rebuild, set_store, sqlite_store, unique, utc_hour
from support.repos import write_repo

VIEW = "every_dtype"
KEYS = ["city_id", "driver_id"]  # entity order: city (string), then driver (int64)
SCALARS = ["bool", "int32", "int64", "float32", "float64", "string", "bytes", "timestamp"]
DTYPES = {**{f"f_{d}": d for d in SCALARS}, **{f"a_{d}": f"array<{d}>" for d in SCALARS}}
FEATURES = list(DTYPES)
REFS = [f"{VIEW}:{f}" for f in FEATURES]
UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SPECS = {"specs.yml": f"""\
entities:
  - {{name: city, join_keys: [city_id], value_type: string}}
  - {{name: driver, join_keys: [driver_id], value_type: int64}}
sources:
  - {{name: src, path: data/src.parquet, timestamp_field: event_timestamp, created_timestamp_column: created}}
feature_views:
  - name: {VIEW}
    entities: [city, driver]
    source: src
    ttl: 1d
    online: true
    schema:
""" + "".join(f"      - {{name: {f}, dtype: '{d}'}}\n" for f, d in DTYPES.items())}

BEFORE_EPOCH = datetime(1969, 12, 31, 23, 59, 59, 999999)
FULL = dict(
    f_bool=True, f_int32=-2**31, f_int64=2**63 - 1,
    f_float32=0.1,  # not exact in binary: stored as the float32 nearest 0.1
    f_float64=0.1 + 0.2, f_string='comma, "quote"\nline\\back ünï 🚕', f_bytes=b'\x00\xff:\\\r\n,"',
    f_timestamp=BEFORE_EPOCH,
    a_bool=[True, False], a_int32=[2**31 - 1, -1], a_int64=[-2**63, 0, 2**53 + 1], a_float32=[0.1, 1.5, 3.4e38],
    a_float64=[1e-300, 0.1 + 0.2, -2.5], a_string=["a,b", '"q"', "{x}", "back\\slash", "NULL", " sp ", "ünï"],
    a_bytes=[b"\x00\xff", b"\\x", b'{"}', b"\x80abc"],
    a_timestamp=[datetime(2024, 1, 1), BEFORE_EPOCH, datetime(2100, 1, 1, 0, 0, 0, 1)],
)
EDGE = dict(  # empty values, NULL elements, whole seconds, a float32 rounded to even
    f_bool=False, f_int32=0, f_int64=-1, f_float32=16777217.0, f_float64=1e300, f_string="", f_bytes=b"",
    f_timestamp=datetime(2024, 1, 1), a_bool=[None], a_int32=[], a_int64=[1, None], a_float32=[],
    a_float64=[None, 2.0], a_string=["", None], a_bytes=[b"", None], a_timestamp=[None],
)
OLDER = dict(  # older rows: a value that leaks from one would differ from the newest row's
    f_bool=False, f_int32=7, f_int64=7, f_float32=7.5, f_float64=7.25, f_string="older", f_bytes=b"older",
    f_timestamp=datetime(2000, 1, 1), a_bool=[False], a_int32=[7], a_int64=[7], a_float32=[7.5],
    a_float64=[7.25], a_string=["older"], a_bytes=[b"older"], a_timestamp=[datetime(2000, 1, 1)],
)
NULLS = {f: None for f in FEATURES}
NAN = float("nan")
INFINITE = {**NULLS, "f_float32": -float("inf"), "f_float64": float("inf"), "a_float32": [float("inf"), NAN],
            "a_float64": [-float("inf"), None]}
NOT_A_NUMBER = {**NULLS, "f_float32": NAN, "f_float64": NAN, "a_float64": [NAN]}


def entity_rows(now: datetime) -> tuple[list[dict[str, Any]], dict[tuple[str, int], dict[str, Any]]]:
    """Source rows, and per entity the row the point-in-time rule picks at the sync (within the hour after ``now``)."""
    hour = timedelta(hours=1)
    rows: list[dict[str, Any]] = []
    winners: dict[tuple[str, int], dict[str, Any]] = {}

    def add(city: str, driver: int, ago: float, created: datetime | None, values: dict[str, Any],
            wins: bool = False) -> None:
        row = dict(city_id=city, driver_id=driver, event_timestamp=now - ago * hour, created=created, **values)
        rows.append(row)
        if wins:
            winners[(city, driver)] = row

    def at(ago: float, minutes: int = 5) -> datetime:
        return now - ago * hour + timedelta(minutes=minutes)

    add("zürich:1", 1, 3, at(3), OLDER)
    add("zürich:1", 1, 1, at(1), FULL, wins=True)
    add("zürich:1", 1, 2, at(2), OLDER)
    add("a\\b", -5, 2, at(2), FULL)
    add("a\\b", -5, 1, at(1), NULLS, wins=True)  # newest row all NULL: no older value shows through
    add("plain", 2**40, 4, at(4), FULL)
    add("plain", 2**40, 1, at(1), EDGE, wins=True)
    add("a\\:b", 1, 1, at(1, 10), FULL, wins=True)  # same event time: the later created time wins
    add("a\\:b", 1, 1, at(1, 1), OLDER)
    add("end\\", 7, 2, at(2), OLDER)
    add("end\\", 7, 1, None, FULL, wins=True)  # a NULL created time: no _created field
    add("🚕", 8, 30, at(30), FULL)  # older than the ttl when dbt ran: not in the store
    add("", 9, 1, at(1), EDGE, wins=True)
    add("plain", 3, 2, at(2), FULL, wins=True)
    add("∞", 10, 1, at(1), INFINITE, wins=True)
    add("NaN", 11, 1, at(1), NOT_A_NUMBER, wins=True)
    add("plain", 3, -5, at(-5), OLDER)  # in the future: not in the snapshot
    return rows, winners


def source_schema() -> pa.Schema:
    def storage(dtype: str) -> pa.DataType:  # the source holds naive UTC timestamps
        return pa.list_(storage(dtype[6:-1])) if dtype.startswith("array<") else (
            pa.timestamp("us") if dtype == "timestamp" else arrow_type(dtype))

    return pa.schema([("city_id", pa.string()), ("driver_id", pa.int64()), ("event_timestamp", pa.timestamp("us")),
                      ("created", pa.timestamp("us")), *((f, storage(d)) for f, d in DTYPES.items())])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The repo, built once by dbt: (root, the entities' winning rows, every entity asked for)."""
    root = tmp_path_factory.mktemp("store_layouts")
    now = utc_hour()
    write_repo(root, SPECS)
    rows, winners = entity_rows(now)
    pq.write_table(pa.Table.from_pylist(rows, schema=source_schema()), root / "data" / "src.parquet")
    rebuild(root)
    asked = list(dict.fromkeys((r["city_id"], r["driver_id"]) for r in rows)) + [("nobody", 0)]
    return root, winners, asked


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def synced(request, built, tmp_path, postgres_url, redis_url):
    """The repo synced to a fresh store of one kind: (kind, FeatureStore, store name, training values)."""
    root, winners, asked = built
    kind = request.param
    name = {"sqlite": str(tmp_path / "online.db"), "postgres": request.getfixturevalue("postgres_schema"),
            "redis": unique("fhlayouts")}[kind]
    set_store(root, {"sqlite": sqlite_store(name), "postgres": postgres_store(postgres_url, name),
                     "redis": redis_store(redis_url, name)}[kind])
    store = FeatureStore(root)
    try:
        at = datetime.now(UTC)  # the sync's instant, to the millisecond; data is hours from any ttl boundary
        report = sync(store)
        assert report.written == report.rows_read == len(winners)
        yield kind, store, name, training(store, asked, at)
    finally:
        if kind == "redis":
            drop_store("redis", redis_url, name)


def training(store: FeatureStore, asked: list[tuple[str, int]], at: datetime) -> dict[tuple[str, int], dict[str, Any]]:
    """get_historical_features at ``at`` for every entity asked for: {key: {feature: value}}."""
    spine = pa.table({"city_id": [k[0] for k in asked], "driver_id": [k[1] for k in asked],
                      "event_timestamp": pa.array([at.replace(tzinfo=None)] * len(asked), pa.timestamp("us"))})
    table = store.get_historical_features(spine, REFS).to_arrow()
    rows = table.to_pylist()
    return {(r["city_id"], r["driver_id"]): {f: r[f] for f in FEATURES} for r in rows}


# ---- comparing ---------------------------------------------------------------------------------------
def differences(got: dict[str, Any], want: dict[str, Any], float32_exact: bool) -> list[str]:
    """Every feature whose value differs in value or Python type (bytes stay bytes, timestamps UTC datetimes)."""
    return [f"{f}: got {got[f]!r}, want {want[f]!r}" for f in want
            if not same(got[f], want[f], DTYPES.get(f, "timestamp"), float32_exact)]


def same(got: Any, want: Any, dtype: str, float32_exact: bool) -> bool:
    if want is None or got is None:
        return got is None and want is None
    if dtype.startswith("array<"):
        return (type(got) is list and len(got) == len(want)
                and all(same(g, w, dtype[6:-1], float32_exact) for g, w in zip(got, want)))
    if dtype == "timestamp":
        return type(got) is datetime and got.utcoffset() == timedelta(0) and got == want
    if isinstance(want, float) and want != want:  # NaN: kept, as a float
        return type(got) is float and got != got
    if dtype == "float32" and not float32_exact:  # psycopg reads real as text: 0.1, not the float32 widened
        return type(got) is float and np.float32(got) == np.float32(want)
    return type(got) is type(want) and got == want


def utc(value: Any) -> Any:
    """A source value (naive UTC timestamps) as the SDK returns it (aware ones)."""
    if isinstance(value, list):
        return [utc(v) for v in value]
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) else value


def stored(winners: dict[tuple[str, int], dict[str, Any]], key: tuple[str, int],
           expected: dict[str, Any]) -> dict[str, Any]:
    """What the store must hold for ``key``: its times (UTC) and the training values."""
    row = winners[key]
    return {"event_timestamp": utc(row["event_timestamp"]), "created_timestamp": utc(row["created"]), **expected}


def test_online_reads_equal_training_data_type_for_type(built, synced):
    _, winners, asked = built
    kind, store, _, expected = synced
    for key, row in winners.items():  # training data: each entity's newest row, as written (0.1 as a float32)
        assert not differences(expected[key], {f: utc(row[f]) for f in FEATURES}, float32_exact=False), key
    assert all(v is None for v in expected[("🚕", 8)].values())  # older than the ttl
    response = store.get_online_features(REFS, {"city_id": [k[0] for k in asked], "driver_id": [k[1] for k in asked]})
    for i, key in enumerate(asked):
        got = {f: response.values[f][i] for f in FEATURES}
        problems = differences(got, expected[key], float32_exact=True)
        assert not problems, (kind, key, problems)
        status = "PRESENT" if key in winners else "NOT_FOUND"
        assert {response.statuses[f][i] for f in FEATURES} == {status}, (kind, key)
        stamp = response.event_timestamps[FEATURES[0]][i]
        assert stamp == (stored(winners, key, {})["event_timestamp"] if key in winners else None), (kind, key)


def test_store_reads_back_by_the_readme_alone(built, synced, postgres_url, redis_url):
    _, winners, _ = built
    kind, _, name, expected = synced
    read = {"sqlite": read_sqlite, "postgres": read_postgres, "redis": read_redis}[kind]
    url = {"sqlite": "", "postgres": postgres_url, "redis": redis_url}[kind]
    held = read(url, name, list(winners))
    assert set(held) == set(winners), kind  # the expired entity is absent
    for key in winners:
        want = stored(winners, key, expected[key])
        problems = differences(held[key], want, float32_exact=kind != "postgres")  # Postgres real is a float32
        assert not problems, (kind, key, problems)


def test_cli_prints_every_dtype_as_json(built, synced):
    """get-online-features prints strict JSON: bytes base64, timestamps ISO 8601, NaN and infinities null."""
    from click.testing import CliRunner

    from featurehouse.cli.app import main

    root = built[0]
    kind, _, _, expected = synced
    for key in [("zürich:1", 1), ("NaN", 11), ("∞", 10)]:
        args = ["--repo", str(root), "get-online-features", "-e", f"city_id={key[0]}", "-e", f"driver_id={key[1]}"]
        for ref in REFS:
            args += ["-f", ref]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, (kind, result.output)
        body = json.loads(result.output, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
        for feature in FEATURES:
            want = as_json(expected[key][feature])
            assert body[feature][0] == want, (kind, key, feature, body[feature][0], want)


def as_json(value: Any) -> Any:
    import base64

    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value.isoformat() if isinstance(value, datetime) else value


# ---- SQLite, by the docs ------------------------------------------------------------------------------
SQLITE_TYPES = {"bool": "INTEGER", "int32": "INTEGER", "int64": "INTEGER", "float32": "REAL", "float64": "REAL",
                "string": "TEXT", "bytes": "BLOB", "timestamp": "TEXT"}
SQLITE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")


def sqlite_time(text: Any) -> datetime:
    assert type(text) is str and SQLITE_TIME.fullmatch(text), text
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


def read_sqlite(_: str, path: str, keys: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT 1 FROM sqlite_master WHERE name = '_featurehouse_sync_state'").fetchone()
        ddl = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (VIEW,)).fetchone()[0]
        assert ddl.rstrip().endswith("WITHOUT ROWID"), ddl
        info = con.execute(f'PRAGMA table_info("{VIEW}")').fetchall()  # cid, name, type, notnull, default, pk
        assert [c[1] for c in sorted((c for c in info if c[5]), key=lambda c: c[5])] == KEYS
        types = {c[1]: c[2] for c in info}
        assert types == {"city_id": "TEXT", "driver_id": "INTEGER", "event_timestamp": "TEXT",
                         "created_timestamp": "TEXT",
                         **{f: "TEXT" if d.startswith("array<") else SQLITE_TYPES[d] for f, d in DTYPES.items()}}
        cursor = con.execute(f'SELECT * FROM "{VIEW}"')
        names = [c[0] for c in cursor.description]
        return {(r["city_id"], r["driver_id"]): sqlite_row(r) for r in (dict(zip(names, row)) for row in cursor)}
    finally:
        con.close()


def sqlite_row(row: dict[str, Any]) -> dict[str, Any]:
    """One row decoded by the docs' rules; the Python type sqlite3 returns is the value's storage class."""
    created = row["created_timestamp"]
    out = {"event_timestamp": sqlite_time(row["event_timestamp"]),
           "created_timestamp": None if created is None else sqlite_time(created)}
    for feature, dtype in DTYPES.items():
        value = row[feature]
        if value is None:
            out[feature] = None
        elif dtype.startswith("array<"):
            assert type(value) is str, (feature, value)
            out[feature] = [json_element(x, dtype[6:-1], sqlite_time) for x in json.loads(value)]
        else:
            storage = {"INTEGER": int, "REAL": float, "TEXT": str, "BLOB": bytes}[SQLITE_TYPES[dtype]]
            if storage is float and value == "NaN":  # SQLite has no NaN: the docs' text for one
                value = float(value)
            assert type(value) is storage, (feature, value)
            if dtype == "bool":
                assert value in (0, 1), value
                value = bool(value)
            out[feature] = sqlite_time(value) if dtype == "timestamp" else value
    return out


def json_element(value: Any, dtype: str, timestamp: Any) -> Any:
    """An array element from JSON: bytes as a string of code points U+0000-U+00FF, one per byte;
    timestamps by the store's own rule; the rest as JSON has them."""
    if value is None:
        return None
    if dtype == "timestamp":
        return timestamp(value)
    if dtype == "bytes":
        assert type(value) is str and max(map(ord, value), default=0) < 256, value
        return value.encode("latin-1")
    if dtype in ("float32", "float64"):
        assert type(value) in (int, float), value
        return float(value)
    return value


# ---- Postgres, by the docs ----------------------------------------------------------------------------
POSTGRES_TYPES = {"bool": "boolean", "int32": "integer", "int64": "bigint", "float32": "real",
                  "float64": "double precision", "string": "text", "bytes": "bytea",
                  "timestamp": "timestamp with time zone"}  # the docs' timestamptz, as format_type spells it


def postgres_type(dtype: str) -> str:
    return POSTGRES_TYPES[dtype[6:-1]] + "[]" if dtype.startswith("array<") else POSTGRES_TYPES[dtype]


def read_postgres(url: str, schema: str, keys: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url) as con:
        con.execute("SET TIME ZONE 'UTC'")  # timestamptz values come back in the session's zone
        table = f'"{schema}"."{VIEW}"'
        columns = con.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,)).fetchall()
        assert {c[0]: c[1] for c in columns} == {
            "city_id": "text", "driver_id": "bigint", "event_timestamp": "timestamp with time zone",
            "created_timestamp": "timestamp with time zone", **{f: postgres_type(d) for f, d in DTYPES.items()}}
        not_null = {c[0] for c in columns if c[2]}
        assert "event_timestamp" in not_null and "created_timestamp" not in not_null
        primary = con.execute(
            "SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) ON true "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n", (table,)).fetchall()
        assert [p[0] for p in primary] == KEYS
        options = con.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()[0]
        assert "fillfactor=90" in options
        state = con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND "
                            "table_name = '_featurehouse_sync_state' ORDER BY ordinal_position", (schema,)).fetchall()
        assert [s[0] for s in state] == ["view", "signature", "synced_at", "rows", "state"]
        rows = con.cursor(row_factory=dict_row).execute(f"SELECT * FROM {table}").fetchall()
    return {(r["city_id"], r["driver_id"]): {c: r[c] for c in ["event_timestamp", "created_timestamp", *FEATURES]}
            for r in rows}


# ---- Redis, by the docs -------------------------------------------------------------------------------
def redis_key(prefix: str, values: tuple[Any, ...]) -> bytes:
    """`<prefix>:<view>:<k1>[:<k2>...]`: integers in decimal, booleans true/false, strings (UTF-8) and
    bytes as they are with `\\` written `\\\\` and `:` written `\\:`."""
    parts = []
    for value in values:
        if isinstance(value, bool):
            parts.append(b"true" if value else b"false")
        elif isinstance(value, int):
            parts.append(str(value).encode())
        else:
            raw = value if isinstance(value, bytes) else value.encode()
            parts.append(raw.replace(b"\\", b"\\\\").replace(b":", b"\\:"))
    return b":".join([prefix.encode(), VIEW.encode(), *parts])


def epoch_micros(value: Any) -> datetime:
    assert type(value) is int, value
    return EPOCH + timedelta(microseconds=value)


def redis_field(raw: bytes, dtype: str) -> Any:
    if dtype in ("int32", "int64", "timestamp"):
        assert re.fullmatch(rb"-?[0-9]+", raw), raw
        return epoch_micros(int(raw)) if dtype == "timestamp" else int(raw)
    if dtype in ("float32", "float64"):
        value = float(raw)
        if not math.isfinite(value):
            assert raw in (b"inf", b"-inf", b"nan"), raw
            return value
        # the shortest decimal that parses back to the same float64 (a float32 widened first)
        assert Decimal(raw.decode()) == Decimal(repr(value)), raw
        return value
    if dtype == "bool":
        assert raw in (b"true", b"false"), raw
        return raw == b"true"
    if dtype == "string":
        return raw.decode("utf-8")
    if dtype == "bytes":
        return raw
    return [json_element(x, dtype[6:-1], epoch_micros) for x in json.loads(raw)]


def read_redis(url: str, prefix: str, keys: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        names = {redis_key(prefix, key): key for key in keys}
        state = f"{prefix}:#state:{VIEW}".encode()
        found = set(client.scan_iter(match=f"{prefix}:*", count=1000))
        assert state in found and client.type(state) == b"hash"
        assert found - {state} == set(names), sorted(found - {state} ^ set(names))  # no other key, none missing
        held = {}
        for name, key in names.items():
            fields = client.hgetall(name)
            assert set(fields) <= {b"_ts", b"_created", *(f.encode() for f in FEATURES)}, fields
            created = fields.get(b"_created")
            held[key] = {"event_timestamp": redis_field(fields[b"_ts"], "timestamp"),
                         "created_timestamp": None if created is None else redis_field(created, "timestamp"),
                         **{f: None if f.encode() not in fields else redis_field(fields[f.encode()], d)
                            for f, d in DTYPES.items()}}
        return held
    finally:
        client.close()


def test_docs_describe_these_layouts():
    """The rules above are docs/store-layouts.md's: a change there must show up here."""
    page = (Path(__file__).resolve().parent.parent.parent / "docs" / "store-layouts.md").read_text()
    section = " ".join(page.split())  # lines unwrapped
    for rule in ["`YYYY-MM-DD HH:MM:SS.ffffff`", "WITHOUT ROWID", "fillfactor = 90",
                 "`<prefix>:<view>:<k1>[:<k2>...]`", "with `\\` written `\\\\` and `:` written `\\:`",
                 "`_created` absent when NULL", "A NULL feature has no field", "one code point U+0000-U+00FF per byte",
                 "infinities and NaN as `inf`, `-inf`, `nan`", "a NaN is stored as the TEXT `NaN`"]:
        assert rule in section, rule
