"""Push sources in specs: each mistake is one sentence with the file and line; the schema is the views'."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from featurehouse.errors import FeaturehouseError, RequestError, SpecError
from featurehouse.spec.push import describe_schema, push_schema
from featurehouse.spec.repo import load_repo

BASE = textwrap.dedent("""\
    entities:
      - name: driver
        join_keys: [driver_id]
    sources:
      - name: driver_stats
        table: raw.driver_stats
        timestamp_field: event_timestamp
        columns: [driver_id, trips, conv_rate, rate_raw]
        field_mapping: {rate_raw: rate}
      - name: driver_push
        push: {batch_source: driver_stats}
    feature_views:
      - name: driver_hourly_stats
        entities: [driver]
        source: driver_stats
        schema:
          - {name: conv_rate, dtype: float32}
          - {name: trips, dtype: int64}
          - {name: rate, dtype: float64}
          - {name: double_trips, dtype: int64, expression: trips * 2}
    """)
F = "feature_specs/drivers.yml"


def _repo(tmp_path: Path, text: str) -> object:
    (tmp_path / "featurehouse.yml").write_text("project: test_repo\nspecs: feature_specs\n")
    (tmp_path / "feature_specs").mkdir(exist_ok=True)
    (tmp_path / "feature_specs" / "drivers.yml").write_text(text)
    return load_repo(tmp_path)


def _edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def test_the_schema_is_the_columns_the_views_read(tmp_path: Path) -> None:
    schema = push_schema(_repo(tmp_path, BASE), "driver_push")  # type: ignore[arg-type]
    assert describe_schema(schema) == [
        {"name": "driver_id", "dtype": "int64", "required": True, "role": "key"},
        {"name": "event_timestamp", "dtype": "timestamp", "required": True, "role": "event"},
        {"name": "created_timestamp", "dtype": "timestamp", "required": False, "role": "created"},
        {"name": "conv_rate", "dtype": "float32", "required": False, "role": "value"},
        {"name": "trips", "dtype": "int64", "required": False, "role": "value"},
        {"name": "rate_raw", "dtype": "float64", "required": False, "role": "value"},  # the batch source's name
    ]
    assert (schema.views, schema.online_views) == (("driver_hourly_stats",), ("driver_hourly_stats",))


BAD = [
    (
        "a location on a push source",
        _edit("    push: {batch_source: driver_stats}\n", "    push: {batch_source: driver_stats}\n    table: x.y\n"),
        f"{F}:10: source 'driver_push': a push source takes its location and columns from its batch source "
        "'driver_stats'; remove table",
    ),
    (
        "an unknown batch source",
        _edit("{batch_source: driver_stats}", "{batch_source: driver_stat}"),
        f"{F}:11: source 'driver_push': unknown source 'driver_stat' (did you mean 'driver_stats'?)",
    ),
    (
        "a push source over a push source",
        _edit(
            "    push: {batch_source: driver_stats}\n",
            "    push: {batch_source: driver_stats}\n  - name: again\n    push: {batch_source: driver_push}\n",
        ),
        f"{F}:13: source 'again': 'driver_push' is a push source; name a batch source",
    ),
    (
        "two push sources over one batch source",
        _edit(
            "    push: {batch_source: driver_stats}\n",
            "    push: {batch_source: driver_stats}\n  - name: again\n    push: {batch_source: driver_stats}\n",
        ),
        f"{F}:11: source 'driver_push': the push source 'again' already extends 'driver_stats'; "
        "one push source per batch source",
    ),
    (
        "a view over the push source",
        _edit("    source: driver_stats\n", "    source: driver_push\n"),
        f"{F}:15: feature view 'driver_hourly_stats': 'driver_push' is a push source; name its batch source "
        "'driver_stats' (a push source feeds every view over its batch source)",
    ),
    (
        "a batch source without timestamp_field",
        _edit("    timestamp_field: event_timestamp\n", ""),
        f"{F}:5: source 'driver_stats': missing required field 'timestamp_field'",
    ),
    (
        "a misspelt push field",
        _edit("{batch_source: driver_stats}", "{batch_sourse: driver_stats}"),
        f"{F}:11: source 'driver_push': push: unknown field 'batch_sourse' (did you mean 'batch_source'?)",
    ),
]


@pytest.mark.parametrize("case", [b[0] for b in BAD])
def test_a_bad_push_spec_is_one_sentence(tmp_path: Path, case: str) -> None:
    _, text, message = next(b for b in BAD if b[0] == case)
    with pytest.raises(SpecError) as raised:
        _repo(tmp_path, text)
    assert str(raised.value) == message


def test_a_column_no_plain_feature_types_must_be_declared(tmp_path: Path) -> None:
    text = _edit("expression: trips * 2}", "expression: bonus * 2}").replace("rate_raw]", "rate_raw, bonus]")
    repo = _repo(tmp_path, text)
    with pytest.raises(
        RequestError, match=r"no plain feature gives the dtype of column 'bonus'.*declare it under push.schema"
    ):
        push_schema(repo, "driver_push")  # type: ignore[arg-type]
    from featurehouse.compile import compiler

    with pytest.raises(FeaturehouseError, match=rf"{F}:11: source 'driver_push': .*column 'bonus'"):
        compiler.compile_repo(repo, "duckdb")  # type: ignore[arg-type]
    declared = text.replace(
        "{batch_source: driver_stats}", "{batch_source: driver_stats, schema: [{name: bonus, dtype: int32}]}"
    )
    schema = push_schema(_repo(tmp_path, declared), "driver_push")  # type: ignore[arg-type]
    assert schema.column("bonus") is not None and schema.column("bonus").dtype == "int32"  # type: ignore[union-attr]


def test_the_example_repo_has_a_push_source() -> None:
    from support.repos import PACKAGE_ROOT

    repo = load_repo(PACKAGE_ROOT)
    schema = push_schema(repo, "driver_stats_push")
    assert schema.online_views == ("driver_hourly_stats",)  # the aggregation view is fed offline only
    assert set(schema.views) == {"driver_hourly_stats", "driver_daily_activity"}
