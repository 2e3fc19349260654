"""The server's response encoder writes exactly what OnlineResponse.to_feast_json() says, for every dtype."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from featurehouse.online.reader import OnlineResponse
from featurehouse.spec.repo import load_repo
from featurehouse.server import FeastEncoder
from support.repos import write_repo

SPECS = """\
entities:
  - {name: user, join_keys: [user_id], value_type: string}
sources:
  - {name: events, table: raw.events, timestamp_field: ts}
feature_views:
  - name: profile
    entities: [user]
    source: events
    schema:
      - {name: score, dtype: float32}
      - {name: visits, dtype: int64}
      - {name: country, dtype: string}
      - {name: active, dtype: bool}
  - name: extras
    entities: [user]
    source: events
    schema:
      - {name: last_seen, dtype: timestamp}
      - {name: avatar, dtype: bytes}
      - {name: embedding, dtype: array<float32>}
"""

UTC = timezone.utc
T1 = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
T2 = datetime(2026, 3, 2, 0, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> FeastEncoder:
    root = write_repo(tmp_path_factory.mktemp("encoding") / "repo", {"specs.yml": SPECS})
    return FeastEncoder(load_repo(root))


def response(columns: dict[str, list], stamps: list) -> OnlineResponse:
    names = ["user_id", *columns]
    values = {"user_id": ["a", "b", "c"], **columns}
    statuses = {n: ["PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE"] for n in names}
    times = {"user_id": [None, None, None], **{n: list(stamps) for n in columns}}
    return OnlineResponse(names, values, statuses, times)


def same(encoder: FeastEncoder, answer: OnlineResponse, features: list[str]) -> None:
    assert orjson.loads(encoder.encode(answer, features)) == orjson.loads(orjson.dumps(answer.to_feast_json()))


def test_plain_features_take_the_fast_path_and_agree(encoder: FeastEncoder) -> None:
    features = ["profile:score", "profile:visits", "profile:country", "profile:active"]
    assert encoder.plain(features) and encoder.plain("profile")
    answer = response({"score": [0.5, None, None], "visits": [3, None, None], "country": ["NL", None, None],
                       "active": [True, None, None]}, [T1, None, T2])
    same(encoder, answer, features)
    body = orjson.loads(encoder.encode(answer, features))
    assert body["results"][1]["event_timestamps"] == ["2026-03-01T12:30:15Z", "1970-01-01T00:00:00Z",
                                                      "2026-03-02T00:00:00Z"]


def test_timestamps_bytes_and_arrays_fall_back_and_agree(encoder: FeastEncoder) -> None:
    features = ["extras:last_seen", "extras:avatar", "extras:embedding"]
    assert not encoder.plain(features) and not encoder.plain(["profile:score", "extras:avatar"])
    answer = response({"last_seen": [T1, None, None], "avatar": [b"\x00\xff", None, None],
                       "embedding": [[0.25, 0.5], None, None]}, [T2, None, T1])
    same(encoder, answer, features)


def test_event_times_in_another_zone_are_converted_to_utc(encoder: FeastEncoder) -> None:
    plus_two = timezone(timedelta(hours=2))
    answer = response({"score": [1.0, None, None]}, [T1.astimezone(plus_two), None, None])
    same(encoder, answer, ["profile:score"])
    assert orjson.loads(encoder.encode(answer, ["profile:score"]))["results"][1]["event_timestamps"][0] == \
        "2026-03-01T12:30:15Z"
