"""Feast's own client writes and asks for request-time features through `featurehouse serve` (issue 14).

A stock Feast 0.67 SDK (support.feast_client) with ``online_store: {type: remote}`` pointed at a real
`featurehouse serve` process. What Feast 0.67's client does, read from its code:

- ``FeatureStore.write_to_online_store(view, df)`` and ``FeatureStore.push(source, df, to=online…)``
  both end in ``RemoteOnlineStore.online_write_batch``: one ``POST /write-to-online-store`` per view
  fed by the push source, ``{"feature_view_name", "df": {join keys, features, "event_timestamp",
  "created"}, "allow_registry_cache": false}`` (naive UTC ISO text; ``created`` null when the source
  has no created column). The client never calls ``POST /push``.
- ``push(..., to=offline…)`` calls ``write_to_offline_store``, which writes Feast's *own* offline store
  (here its file source): nothing reaches featurehouse, whose push log stays empty.
- ``get_online_features`` sends request data for on-demand views as extra ``entities`` columns (the
  remote store has no ``request_context``); featurehouse computes its request-time features from them.
"""

from __future__ import annotations

import shutil
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from support import online as so
from support.feast_client import feast_python as build_feast_python
from support.feast_client import feast_repo, run_feast
from support.push import PUSH_SPEC
from support.server import Serve

pytestmark = pytest.mark.slow

REQUEST_SPEC = """\
request_views:
  - name: ride
    request:
      - {name: fare, dtype: float64}
      - {name: booked_at, dtype: timestamp}
    schema:
      - {name: fare_per_trip, dtype: float64, expression: "fare / stats__trips"}
      - {name: booked_late, dtype: bool, expression: "booked_at > pairs__last_seen"}
"""
STATS = ["stats:conv_rate", "stats:trips", "stats:city", "stats:active"]

# The Feast side of the same repo: the push source over the batch source, the view fed by it, and the
# request-time view as a Feast on-demand view (python mode; the remote store sends its name to the server).
# argv: the Feast repo, then a JSON list of steps; prints one JSON answer per step.
FEAST_SCRIPT = textwrap.dedent("""
    import json, sys
    from datetime import timedelta
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, RequestSource, ValueType
    from feast.data_source import PushMode
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Bool, Float32, Float64, Int64, String

    repo, steps = sys.argv[1], json.loads(sys.argv[2])
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    stats_source = FileSource(name="stats_source", path=f"{repo}/stats.parquet", timestamp_field="event_timestamp",
                              created_timestamp_column="created")
    stats_push = PushSource(name="stats_push", batch_source=stats_source)
    stats = FeatureView(name="stats", entities=[driver], ttl=timedelta(days=1), source=stats_push, online=True,
                        schema=[Field(name="driver_id", dtype=Int64), Field(name="conv_rate", dtype=Float32),
                                Field(name="trips", dtype=Int64), Field(name="city", dtype=String),
                                Field(name="active", dtype=Bool)])
    fare = RequestSource(name="fare_request", schema=[Field(name="fare", dtype=Float64)])

    @on_demand_feature_view(sources=[stats, fare], schema=[Field(name="fare_per_trip", dtype=Float64)], mode="python")
    def ride(inputs):
        return {"fare_per_trip": [f / t if t else None for f, t in zip(inputs["fare"], inputs["trips"])]}

    store = FeatureStore(repo_path=repo)
    store.apply([driver, stats_source, stats_push, stats, fare, ride])
    modes = {"online": PushMode.ONLINE, "offline": PushMode.OFFLINE, "online_and_offline": PushMode.ONLINE_AND_OFFLINE}

    def frame(rows):
        df = pd.DataFrame(rows)
        for column in ("event_timestamp", "created"):
            if column in df:
                df[column] = pd.to_datetime(df[column], utc=True)
        return df

    answers = []
    for step in steps:
        try:
            if step["op"] == "write":
                store.write_to_online_store(step["view"], frame(step["rows"]))
                answers.append("ok")
            elif step["op"] == "push":
                store.push(step["source"], frame(step["rows"]), to=modes[step["to"]])
                answers.append("ok")
            else:
                rows = step["rows"]
                for row in rows:
                    for name in step.get("datetimes", []):
                        row[name] = pd.Timestamp(row[name]).to_pydatetime()
                answers.append(store.get_online_features(features=step["features"], entity_rows=rows).to_dict())
        except Exception as error:
            answers.append({"error": f"{type(error).__name__}: {error}"})
    print(json.dumps(answers, default=str))
""")


@pytest.fixture(scope="module")
def feast_python() -> Path:
    """The Feast venv's python (built on first use)."""
    return build_feast_python()


@pytest.fixture(scope="module")
def now() -> datetime:
    return so.utc_hour()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, now: datetime) -> Path:
    """The online test repo with the push source stats_push and the request-time view ride, built and synced."""
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync

    root = tmp_path_factory.mktemp("feast_push") / "repo"
    specs = {**so.SPECS, "push.yml": PUSH_SPEC, "request.yml": REQUEST_SPEC}
    so.write_repo(root, specs, online_store=so.sqlite_store())
    so.write_data(root, so.stats_rows(range(1, 9), now), so.pairs_rows(range(1, 9), now))
    so.rebuild(root)
    sync(FeatureStore(root))
    return root


@pytest.fixture(scope="module")
def server(repo: Path):
    with Serve(repo) as serve:
        yield serve.url


@pytest.fixture
def feast(feast_python: Path, server: str, repo: Path, tmp_path: Path):
    """Run steps with the Feast client (its file source: a copy of featurehouse's batch file)."""
    root = feast_repo(tmp_path / "feast_repo", server)
    shutil.copy(repo / "data" / "stats.parquet", root / "stats.parquet")

    def run(*steps: dict[str, Any]) -> list[Any]:
        answers: list[Any] = run_feast(feast_python, root, FEAST_SCRIPT, list(steps))
        return answers

    run.root = root  # type: ignore[attr-defined]
    return run


def rows(drivers: list[int], at: datetime, trips: int, created: datetime | None = None) -> dict[str, list[Any]]:
    """The columns of ``stats``' batch source for ``drivers``, all at ``at``."""
    return {
        "driver_id": drivers,
        "event_timestamp": [at.isoformat()] * len(drivers),
        "created": [(created or at).isoformat()] * len(drivers),
        "conv_rate": [0.25] * len(drivers),
        "trips": [trips] * len(drivers),
        "city": ["fresh"] * len(drivers),
        "active": [True] * len(drivers),
    }


def sdk(repo: Path, drivers: list[int], features: list[str] = STATS, **kwargs: Any) -> dict[str, list[Any]]:
    from featurehouse.online.reader import json_value
    from featurehouse.sdk.store import FeatureStore

    answer = FeatureStore(repo).get_online_features(features, [{"driver_id": d} for d in drivers], **kwargs).to_dict()
    return {name: [json_value(v) for v in values] for name, values in answer.items()}


def read(drivers: list[int], features: list[str] = STATS) -> dict[str, Any]:
    return {"op": "read", "features": features, "rows": [{"driver_id": d} for d in drivers]}


def test_write_to_online_store_through_the_remote_store(feast, repo: Path, now: datetime) -> None:
    before = sdk(repo, [1, 2])
    # driver 1: newer than its synced row (1 h old); driver 2: older (10 h); driver 40: a new entity
    newer, older = rows([1, 40], now, trips=1001), rows([2], now - timedelta(hours=10), trips=2002)
    answers = feast(
        {"op": "write", "view": "stats", "rows": newer},
        {"op": "write", "view": "stats", "rows": older},
        read([1, 2, 40]),
    )
    assert answers[:2] == ["ok", "ok"]
    after = sdk(repo, [1, 2, 40])
    assert after["trips"] == [1001, before["trips"][1], 1001]  # the older row did not replace the newer one
    assert after["city"] == ["fresh", before["city"][1], "fresh"]
    assert answers[2] == after  # the Feast client reads back what featurehouse's SDK reads


def test_an_older_write_after_a_newer_one_changes_nothing(feast, repo: Path, now: datetime) -> None:
    first = rows([3], now + timedelta(minutes=30), trips=3003)
    late = rows([3], now + timedelta(minutes=10), trips=3333)  # arrives later, happened earlier
    same_time_older_created = rows([3], now + timedelta(minutes=30), trips=3444, created=now)
    answers = feast(
        *({"op": "write", "view": "stats", "rows": r} for r in (first, late, same_time_older_created)), read([3])
    )
    assert answers[:3] == ["ok"] * 3
    assert sdk(repo, [3])["trips"] == [3003] and answers[3]["trips"] == [3003]


def test_feast_push_goes_to_write_to_online_store(feast, repo: Path, now: datetime) -> None:
    from featurehouse.sync.offline_log import log_folder

    before = sdk(repo, [4, 5])
    pushed = {**rows([4], now, trips=4004)}
    stale = rows([5], now - timedelta(hours=12), trips=5005)
    answers = feast(
        {"op": "push", "source": "stats_push", "rows": pushed, "to": "online"},
        {"op": "push", "source": "stats_push", "rows": stale, "to": "online"},
        read([4, 5]),
    )
    assert answers[:2] == ["ok", "ok"]
    after = sdk(repo, [4, 5])
    assert after["trips"] == [4004, before["trips"][1]]
    assert answers[2] == after
    # Feast's client sent the rows to /write-to-online-store, not /push: featurehouse's push log is untouched
    assert not list(log_folder(repo, "stats_push").glob("*.parquet"))


def test_feast_push_offline_writes_feasts_own_offline_store(feast, repo: Path, now: datetime) -> None:
    from featurehouse.sync.offline_log import log_folder

    before = sdk(repo, [6, 7])
    feast_file = feast.root / "stats.parquet"
    rows_before = pq.read_metadata(feast_file).num_rows
    answers = feast(
        {"op": "push", "source": "stats_push", "rows": rows([6], now, trips=6006), "to": "offline"},
        {"op": "push", "source": "stats_push", "rows": rows([7], now, trips=7007), "to": "online_and_offline"},
    )
    assert answers == ["ok", "ok"]
    # the offline half went to Feast's file source, never to featurehouse (its log stays empty) …
    assert pq.read_metadata(feast_file).num_rows == rows_before + 2
    assert not list(log_folder(repo, "stats_push").glob("*.parquet"))
    # … and the online half of online_and_offline reached featurehouse's online store
    assert sdk(repo, [6, 7])["trips"] == [before["trips"][0], 7007]


def test_bad_rows_come_back_as_featurehouse_s_one_sentence(feast, repo: Path, now: datetime) -> None:
    before = sdk(repo, [8])
    bad = rows([8], now, trips=8008)
    bad["event_timestamp"] = [None]  # Feast sends the row with a null event time; featurehouse refuses the batch
    answer = feast({"op": "write", "view": "stats", "rows": bad})[0]
    assert "error" in answer and "Error_code=400" in answer["error"]
    # Feast sends a missing time as the text "NaT"; featurehouse reads it as null
    assert "feature view 'stats': row 0, column 'event_timestamp': the event time may not be null" in answer["error"]
    assert sdk(repo, [8]) == before


def test_a_missing_created_time_is_the_arrival_time(feast, repo: Path, now: datetime) -> None:
    # a created column with a gap: Feast's remote store sends "NaT" for that row (null when the whole column is absent)
    pushed = rows([8, 41], now + timedelta(minutes=5), trips=8008)
    pushed["created"] = [None, (now + timedelta(minutes=5)).isoformat()]
    answers = feast({"op": "write", "view": "stats", "rows": pushed}, read([8, 41]))
    assert answers[0] == "ok"
    assert sdk(repo, [8, 41])["trips"] == [8008, 8008] and answers[1]["trips"] == [8008, 8008]
    # the row written with its arrival time as created time is newer than one created before that
    # arrival (not "at the event time": now + 5 min may still be ahead of the clock when this runs)
    older = rows([8], now + timedelta(minutes=5), trips=1, created=now - timedelta(minutes=1))
    answers = feast({"op": "write", "view": "stats", "rows": older})
    assert answers == ["ok"] and sdk(repo, [8])["trips"] == [8008]


def test_request_data_as_feast_sends_it(feast, repo: Path) -> None:
    features = ["stats:trips", "ride:fare_per_trip"]
    fares = [10.0, 0.0, 5.0]
    step = {
        "op": "read",
        "features": features,
        "rows": [{"driver_id": d, "fare": f} for d, f in zip([1, 2, 99], fares)],
    }
    answer = feast(step)[0]
    expected = sdk(repo, [1, 2, 99], features, request_data={"fare": fares})
    # the request field went as an entity column; it is not echoed (only join keys are)
    assert answer == expected and list(answer) == ["driver_id", "trips", "fare_per_trip"]
    trips = expected["trips"]
    assert answer["fare_per_trip"][0] == (10.0 / trips[0] if trips[0] else None)
    assert answer["fare_per_trip"][2] is None  # driver 99 has no trips: NULL, as in the training data


def test_a_timestamp_request_field_from_feast(feast, repo: Path, now: datetime) -> None:
    entity = {"driver_id": 1, "rider_id": "r:1"}
    as_text = {
        "op": "read",
        "features": ["ride:booked_late"],
        "rows": [{**entity, "booked_at": (now + timedelta(days=1)).isoformat()}],
    }
    as_datetime = {**as_text, "rows": [dict(r) for r in as_text["rows"]], "datetimes": ["booked_at"]}
    text_answer, datetime_answer = feast(as_text, as_datetime)
    assert text_answer["booked_late"] == sdk_request(repo, entity, now + timedelta(days=1))
    # Feast's remote store cannot send a datetime at all (its JSON encoder refuses it, before any request)
    assert "not JSON serializable" in datetime_answer["error"]


def sdk_request(repo: Path, entity: dict[str, Any], booked_at: datetime) -> list[Any]:
    from featurehouse.sdk.store import FeatureStore

    answer = (
        FeatureStore(repo)
        .get_online_features(["ride:booked_late"], [entity], request_data={"booked_at": [booked_at]})
        .to_dict()
    )
    return list(answer["booked_late"])
