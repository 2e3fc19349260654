"""Request views are checked when the repo loads: each construct outside the allow-list, each unknown
name and each type mistake is one sentence naming the file, line, view, feature and construct."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.repos import write_repo

from featurehouse.errors import SpecError
from featurehouse.spec.repo import load_repo
from featurehouse.spec.request_views import compiled, join_plan

BASE = """\
entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: stats, table: raw.stats, timestamp_field: event_timestamp}
feature_views:
  - name: driver_hourly_stats
    entities: [driver]
    source: stats
    schema:
      - {name: conv_rate, dtype: float32}
      - {name: trips, dtype: int64}
      - {name: city, dtype: string}
      - {name: tags, dtype: array<string>}
request_views:
  - name: ride
    request:
      - {name: amount, dtype: float64}
      - {name: seats, dtype: int64}
      - {name: city, dtype: string}
    schema:
      - {name: ok, dtype: float64, expression: "amount / nullif(driver_hourly_stats__conv_rate, 0)"}
      - name: checked
        dtype: DTYPE
        expression: "EXPRESSION"
"""


def load(tmp_path: Path, expression: str, dtype: str = "float64"):
    text = BASE.replace("EXPRESSION", expression.replace('"', '\\"')).replace("DTYPE", dtype)
    return load_repo(write_repo(tmp_path, {"specs.yml": text}))


def test_an_accepted_view_is_planned(tmp_path: Path) -> None:
    repo = load(tmp_path, "case when seats > 2 then amount * seats else coalesce(amount, 0) end")
    plan = compiled(repo, repo.request_views["ride"])
    assert [f.name for f in plan.features] == ["ok", "checked"]
    assert plan.refs == [("driver_hourly_stats", "conv_rate")]
    joined = join_plan(repo, ["ride:checked", "driver_hourly_stats:trips"], False)
    assert joined.output_names() == ["trips", "checked"]  # what the expressions read is not returned


REJECTED = [
    ("round(amount)", "float64", "uses the function ROUND(), which rounds halves differently in DuckDB and Postgres"),
    ("lower(city)", "string", "uses the function LOWER(), which changes case by the database's locale"),
    ("concat(city, 'x')", "string", "uses the function CONCAT(), which skips NULLs in some engines"),
    ("now()", "timestamp", "uses the function NOW(), which is not the same instant offline and online"),
    ("sqrt(amount)", "float64", "uses the function SQRT(), which is not evaluated identically offline and online"),
    ("my_udf(amount)", "float64", "uses the function MY_UDF(), which is not evaluated identically"),
    ("sum(amount)", "float64", "uses the aggregate function SUM(); use an aggregation view for windows"),
    ("(select 1)", "int64", "may not contain a subquery"),
    ("amount % 2", "float64", "uses % on a float; % takes integers"),
    ("city < 'b'", "bool", "orders a strings with <"),
    ("seats = city", "bool", "compares an integer and a string; compare values of one kind (CAST first)"),
    ("amount and seats > 1", "bool", "uses a float as a condition"),
    ("cast(amount as int)", "int64", "casts a float to int, a conversion engines do not all do alike"),
    ("cast(seats as decimal(10, 2))", "float64", "casts to decimal(10, 2); request-time features cast to"),
    ("amount ++", "float64", "is not valid SQL (column"),
    ("amout * 2", "float64", "uses unknown name 'amout' (did you mean 'amount'?)"),
    ("driver_hourly_stats__conv_rat", "float64", "uses unknown name 'driver_hourly_stats__conv_rat' (did you mean "
                                                 "'driver_hourly_stats__conv_rate'?)"),
    ("driver_hourly_stats__tags", "string", "of dtype array<string>, which request-time expressions cannot read"),
    ("ride__ok + 1", "float64", "a feature of request view 'ride'; request views cannot read others"),
    ("stats.amount", "float64", "uses the qualified column 'stats.amount'"),
    ("amount > 1 is true", "bool", "IS is accepted only as IS NULL / IS NOT NULL"),
    ("city || 1", "string", "uses || on an integer; || joins strings"),
    ("least(city, 'a')", "string", "uses LEAST on strings"),
    ("case when seats > 1 then city else 1 end", "string", "mixes an integer and a string in CASE"),
    ("amount * 2", "int64", "gives a float, which dtype int64 cannot hold"),
    ("amount in (select 1)", "bool", "IN over a subquery"),
    ("1; drop table x", "int64", "must be one expression, not 2 statements"),
]


@pytest.mark.parametrize(("expression", "dtype", "message"), REJECTED, ids=[r[0] for r in REJECTED])
def test_each_rejected_construct_is_one_sentence(tmp_path: Path, expression: str, dtype: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load(tmp_path, expression, dtype)
    text = str(caught.value)
    assert text.startswith("feature_specs/specs.yml:24: request view 'ride', feature 'checked': expression ")
    assert message in text
    assert "\n" not in text and "Traceback" not in text


def test_request_field_dtypes_and_names_are_checked(tmp_path: Path) -> None:
    spec = BASE.replace("EXPRESSION", "seats").replace("DTYPE", "int64")
    root = write_repo(tmp_path, {"specs.yml": spec.replace("{name: seats, dtype: int64}", "{name: a__b, dtype: int64}")})
    with pytest.raises(SpecError, match=r"request view 'ride': request field 'a__b' may not contain '__'"):
        load_repo(root)


def test_request_views_share_the_namespace_of_views_and_services(tmp_path: Path) -> None:
    spec = BASE.replace("EXPRESSION", "seats").replace("DTYPE", "int64").replace("name: ride", "name: driver_hourly_stats")
    with pytest.raises(SpecError, match=r"request view 'driver_hourly_stats' has the same name as the feature view"):
        load_repo(write_repo(tmp_path, {"specs.yml": spec}))


def test_a_service_may_name_request_features(tmp_path: Path) -> None:
    spec = BASE.replace("EXPRESSION", "seats").replace("DTYPE", "int64")
    spec += "feature_services:\n  - {name: svc, features: ['ride:checked', 'driver_hourly_stats:trips']}\n"
    repo = load_repo(write_repo(tmp_path, {"specs.yml": spec}))
    assert join_plan(repo, "svc", True).output_names() == ["driver_hourly_stats__trips", "ride__checked"]
    bad = spec.replace("'ride:checked'", "'ride:checkd'")
    with pytest.raises(SpecError, match=r"request view 'ride' has no feature 'checkd' \(did you mean 'checked'\?\)"):
        load_repo(write_repo(tmp_path / "bad", {"specs.yml": bad}))


def test_a_misspelt_key_of_a_request_view_is_one_sentence(tmp_path: Path) -> None:
    spec = BASE.replace("EXPRESSION", "seats").replace("DTYPE", "int64").replace("    request:\n", "    requst:\n")
    with pytest.raises(SpecError, match=r"specs.yml:16: request view 'ride': unknown field 'requst' \(did you mean "
                                        r"'request'\?\)"):
        load_repo(write_repo(tmp_path, {"specs.yml": spec}))


def test_a_request_feature_without_an_expression_is_one_sentence(tmp_path: Path) -> None:
    spec = BASE.replace('        expression: "EXPRESSION"\n', "").replace("DTYPE", "int64")
    with pytest.raises(SpecError, match=r"request view 'ride': schema\[1\]: missing required field 'expression'"):
        load_repo(write_repo(tmp_path, {"specs.yml": spec}))


def test_two_outputs_of_one_name_need_full_feature_names(tmp_path: Path) -> None:
    from featurehouse.errors import RequestError

    spec = BASE.replace("EXPRESSION", "seats").replace("DTYPE", "int64").replace("name: checked", "name: trips")
    repo = load_repo(write_repo(tmp_path, {"specs.yml": spec}))
    with pytest.raises(RequestError, match=r"feature 'trips' is requested from two views.*full_feature_names=True"):
        join_plan(repo, ["driver_hourly_stats:trips", "ride:trips"], False)
    assert join_plan(repo, ["driver_hourly_stats:trips", "ride:trips"], True).output_names() == [
        "driver_hourly_stats__trips",
        "ride__trips",
    ]
