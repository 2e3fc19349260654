"""The compiler: golden SQL per dialect, determinism, headers, `compile --check`, stale files.

Golden files live in tests/golden/<dialect>/; after an intended change of the generated SQL,
rewrite them with ``FEATUREHOUSE_UPDATE_GOLDEN=1 pytest tests/compile/test_compiler.py`` and review
the diff.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from featurehouse.compile import compiler
from featurehouse.cli.app import main
from featurehouse.errors import CompileError, SpecError
from featurehouse.spec.repo import load_repo

GOLDEN = Path(__file__).parent.parent / "golden"
# the files the core compiler writes; extensions (online snapshots, ...) are tested by their owners
CORE_FILE = re.compile(r"^(fv_\w+\.sql|ts_\w+\.sql|schema\.yml)$")
MODELS = "models/featurehouse"


def golden_repo(root: Path, dialect: str) -> Path:
    """A feature repo with the golden specs; file sources only where DuckDB reads them."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "featurehouse.yml").write_text("project: golden\nspecs: feature_specs\n")
    shutil.copytree(GOLDEN / "specs_common", root / "feature_specs")
    if dialect == "duckdb":
        shutil.copytree(GOLDEN / "specs_duckdb", root / "feature_specs", dirs_exist_ok=True)
        shutil.copytree(GOLDEN / "data", root / "data")
    return root


def compile_core(root: Path, dialect: str) -> dict[str, str]:
    return {n: t for n, t in compiler.compile_repo(load_repo(root), dialect).items() if CORE_FILE.match(n)}


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_golden_sql(tmp_path: Path, dialect: str) -> None:
    files = compile_core(golden_repo(tmp_path, dialect), dialect)
    folder = GOLDEN / dialect
    if os.environ.get("FEATUREHOUSE_UPDATE_GOLDEN") == "1":
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
    expected = {p.name: p.read_text() for p in sorted(folder.iterdir())}
    assert sorted(files) == sorted(expected)
    for name, text in files.items():
        assert text == expected[name], (
            f"{name} differs from tests/golden/{dialect}/{name}; "
            "if the change is intended, rerun with FEATUREHOUSE_UPDATE_GOLDEN=1 and review the diff"
        )


def test_golden_sql_says_what_the_spec_says() -> None:
    """The golden files are reviewed once; these are the facts a reviewer would look for."""
    duckdb_view = (GOLDEN / "duckdb" / "fv_user_activity.sql").read_text()
    assert 'CAST("uid" AS BIGINT) AS "user_id"' in duckdb_view  # field_mapping onto a join key
    assert 'CAST("clicks_total" AS BIGINT) AS "clicks"' in duckdb_view  # field_mapping onto a feature
    assert 'CAST("clicks_total" / 7.0 AS DOUBLE) AS "clicks_per_day"' in duckdb_view
    assert 'CAST("embedding" AS REAL[]) AS "embedding"' in duckdb_view
    assert 'CAST("avatar" AS BLOB) AS "avatar"' in duckdb_view
    assert 'CAST("is_active" AS BOOLEAN) AS "is_active"' in duckdb_view
    assert "{{ featurehouse.utc_timestamp('\"last_login\"') }} AS \"last_login\"" in duckdb_view
    assert 'FROM "raw"."user_events"' in duckdb_view
    postgres_view = (GOLDEN / "postgres" / "fv_user_activity.sql").read_text()
    assert 'CAST("embedding" AS REAL[]) AS "embedding"' in postgres_view
    assert 'CAST("avatar" AS BYTEA) AS "avatar"' in postgres_view
    file_view = (GOLDEN / "duckdb" / "fv_item_events.sql").read_text()
    assert "FROM read_csv('data/item_events.csv')" in file_view
    assert "{{ source('raw', 'item_stats') }}" in (GOLDEN / "postgres" / "fv_item_popularity.sql").read_text()
    training = (GOLDEN / "postgres" / "ts_ranking_training.sql").read_text()
    assert "spine=ref('ranking_labels')" in training and "'prefix': 'user_activity__'" in training
    assert not (GOLDEN / "postgres" / "fv_item_events.sql").exists()


def test_path_sources_need_duckdb(tmp_path: Path) -> None:
    root = golden_repo(tmp_path, "duckdb")
    with pytest.raises(CompileError, match=r"^path: sources are read by DuckDB, but the dbt target is postgres; "):
        compiler.compile_repo(load_repo(root), "postgres")


# ---- determinism ------------------------------------------------------------------------------------
def test_compile_twice_is_byte_identical(tmp_path: Path) -> None:
    root = golden_repo(tmp_path, "duckdb")
    assert compiler.compile_repo(load_repo(root), "duckdb") == compiler.compile_repo(load_repo(root), "duckdb")


def _reverse(value: object) -> object:
    """The same spec with every mapping's keys and every top-level list in reverse order."""
    if isinstance(value, dict):
        return {k: _reverse(v) for k, v in reversed(list(value.items()))}
    return value


def test_order_of_specs_does_not_change_output(tmp_path: Path) -> None:
    first = golden_repo(tmp_path / "a", "duckdb")
    second = golden_repo(tmp_path / "b", "duckdb")
    for path in (second / "feature_specs").glob("*.yml"):
        data = yaml.safe_load(path.read_text())
        # objects listed in the opposite order, keys of every object in the opposite order
        shuffled = {kind: [_reverse(item) for item in reversed(items)] for kind, items in reversed(list(data.items()))}
        path.write_text(yaml.safe_dump(shuffled, sort_keys=False))
    assert compiler.compile_repo(load_repo(first), "duckdb") == compiler.compile_repo(load_repo(second), "duckdb")


def test_output_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    """Two processes with different hash seeds (set and dict iteration orders) write the same bytes."""
    outputs = []
    for seed in ("1", "2"):
        root = golden_repo(tmp_path / seed, "duckdb")
        env = {**os.environ, "PYTHONHASHSEED": seed}
        command = [str(Path(sys.executable).parent / "featurehouse"), "--repo", str(root), "compile"]
        subprocess.run(command, check=True, env=env, capture_output=True)
        outputs.append({p.name: p.read_bytes() for p in sorted((root / MODELS).iterdir())})
    assert outputs[0] == outputs[1]


def test_every_generated_file_has_the_header(tmp_path: Path) -> None:
    root = golden_repo(tmp_path, "duckdb")
    files = compiler.compile_repo(load_repo(root), "duckdb")
    for name, text in files.items():
        first_line = text.split("\n", 1)[0]
        # the header is how compile tells its own files from the user's: every generator needs it
        assert compiler.GENERATED_MARK in first_line, name
        if name.endswith(".sql") and CORE_FILE.match(name):
            assert re.match(r"^-- Generated by featurehouse from feature_specs/(users|files)\.yml: ", first_line), name
            assert text.split("\n")[1] == "-- Do not edit: change the spec and run `featurehouse compile`."
    assert "from feature_specs/files.yml: feature view 'item_events'" in files["fv_item_events.sql"]


# ---- featurehouse compile [--check] ------------------------------------------------------------------
def run_cli(root: Path, *args: str):
    return CliRunner().invoke(main, ["--repo", str(root), *args])


@pytest.fixture
def compiled(tmp_path: Path) -> Path:
    root = golden_repo(tmp_path, "duckdb")
    result = run_cli(root, "compile", "--dialect", "duckdb")
    assert result.exit_code == 0, result.output
    assert run_cli(root, "compile", "--check", "--dialect", "duckdb").exit_code == 0
    return root


def check(root: Path):
    return run_cli(root, "compile", "--check", "--dialect", "duckdb")


def test_check_passes_when_fresh(compiled: Path) -> None:
    result = check(compiled)
    assert result.exit_code == 0
    count = len(compiler.compile_repo(load_repo(compiled), "duckdb"))
    assert result.stdout == f"{count} file(s) under {MODELS} are up to date.\n"


def test_check_fails_after_a_spec_change(compiled: Path) -> None:
    spec = compiled / "feature_specs" / "users.yml"
    spec.write_text(spec.read_text().replace("ttl: 12h", "ttl: 1d"))
    before = (compiled / MODELS / "ts_ranking_training.sql").read_text()
    result = check(compiled)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "ts_ranking_training.sql" in result.stderr
    assert "run 'featurehouse compile'" in result.stderr
    # --check never writes
    assert (compiled / MODELS / "ts_ranking_training.sql").read_text() == before
    assert run_cli(compiled, "compile", "--dialect", "duckdb").exit_code == 0
    assert check(compiled).exit_code == 0
    assert "'ttl_seconds': 86400" in (compiled / MODELS / "ts_ranking_training.sql").read_text()


def test_check_fails_after_a_hand_edit(compiled: Path) -> None:
    model = compiled / MODELS / "fv_user_activity.sql"
    model.write_text(model.read_text().replace("7.0", "8.0"))
    result = check(compiled)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: 1 file(s) under {MODELS} are stale (fv_user_activity.sql); "
                             "run 'featurehouse compile'\n")


def test_check_fails_after_a_deleted_file(compiled: Path) -> None:
    (compiled / MODELS / "schema.yml").unlink()
    result = check(compiled)
    assert result.exit_code == 1
    assert "(schema.yml)" in result.stderr


def test_stale_generated_files_are_removed(compiled: Path) -> None:
    (compiled / "feature_specs" / "files.yml").unlink()
    result = check(compiled)
    assert result.exit_code == 1 and "fv_item_events.sql" in result.stderr
    result = run_cli(compiled, "compile", "--dialect", "duckdb")
    assert result.exit_code == 0
    assert re.search(r", [1-9]\d* removed, ", result.stdout)
    assert not (compiled / MODELS / "fv_item_events.sql").exists()
    assert check(compiled).exit_code == 0


def test_user_files_are_left_alone(compiled: Path) -> None:
    models = compiled / MODELS
    mine = {"my_model.sql": "select 1 as one\n", "my_docs.yml": "version: 2\n",
            "notes.sql": "-- my notes\n-- Generated by featurehouse, but not on the first line\n"}
    for name, text in mine.items():
        (models / name).write_text(text)
    legacy = "-- written on an old Windows box: café\nselect 1 as one\n".encode("latin-1")
    (models / "legacy.sql").write_bytes(legacy)  # not UTF-8, and not ours
    (compiled / "feature_specs" / "files.yml").unlink()
    result = run_cli(compiled, "compile", "--dialect", "duckdb")
    assert result.exit_code == 0, result.output
    for name, text in mine.items():
        assert (models / name).read_text() == text
    assert (models / "legacy.sql").read_bytes() == legacy
    assert check(compiled).exit_code == 0


def test_compile_refuses_to_overwrite_a_user_file(compiled: Path) -> None:
    models = compiled / MODELS
    (models / "fv_item_events.sql").write_text("select 'mine' as owner\n")
    before = {p.name: p.read_text() for p in models.iterdir()}
    (compiled / "feature_specs" / "users.yml").write_text(
        (compiled / "feature_specs" / "users.yml").read_text().replace("ttl: 12h", "ttl: 1d"))
    result = run_cli(compiled, "compile", "--dialect", "duckdb")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {models / 'fv_item_events.sql'} was not generated by featurehouse (it has no "
        "'Generated by featurehouse' header) and compile would overwrite it; rename it or move it out of that folder\n"
    )
    assert {p.name: p.read_text() for p in models.iterdir()} == before


def test_a_failed_write_leaves_the_models_as_they_were(compiled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = compiled / MODELS
    before = {p.name: p.read_text() for p in models.iterdir()}
    # a change that rewrites several files; the disk fills up while the second one is written
    spec = compiled / "feature_specs" / "users.yml"
    spec.write_text(spec.read_text().replace("ttl: 12h", "ttl: 1d"))
    real_write_text = Path.write_text
    written: list[str] = []

    def full_disk(path: Path, text: str, *args, **kwargs) -> int:
        written.append(path.name)
        if len(written) == 2:
            raise OSError(28, "No space left on device", str(path))
        return real_write_text(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    result = run_cli(compiled, "compile", "--dialect", "duckdb")
    monkeypatch.undo()
    assert len(written) == 2
    assert result.exit_code == 1
    assert written[1].startswith(".") and written[1].endswith(".tmp")  # the temporary, named for the user as the file
    assert result.stderr == f"Error: could not write {models / written[1][1:-4]}: No space left on device\n"
    # no file half old and half new, no temporaries left behind
    assert {p.name: p.read_text() for p in models.iterdir()} == before


def test_models_dir_that_is_a_file(tmp_path: Path) -> None:
    root = golden_repo(tmp_path, "duckdb")
    (root / "featurehouse.yml").write_text("project: golden\nmodels_dir: notes.txt\n")
    (root / "notes.txt").write_text("mine\n")
    result = run_cli(root, "compile", "--dialect", "duckdb")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: models_dir {root / 'notes.txt'} is a file, not a folder; "
                             "change models_dir in featurehouse.yml\n")
    assert (root / "notes.txt").read_text() == "mine\n"


# ---- file sources: columns are known at compile time ----------------------------------------------------
PARQUET_SPEC = """\
entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - name: stats
    path: data/stats.parquet
    timestamp_field: event_timestamp
    field_mapping: {conv: conv_rate}
feature_views:
  - name: driver_stats
    entities: [driver]
    source: stats
    schema:
      - {name: conv_rate, dtype: float64}
      - {name: trips_doubled, dtype: int64, expression: "trips * 2"}
"""


@pytest.fixture
def parquet_repo(tmp_path: Path) -> Path:
    import duckdb

    (tmp_path / "data").mkdir()
    (tmp_path / "feature_specs").mkdir()
    (tmp_path / "featurehouse.yml").write_text("project: p\n")
    con = duckdb.connect()
    con.execute("COPY (SELECT 1 AS driver_id, TIMESTAMP '2024-01-01' AS event_timestamp, 0.5 AS conv, 3 AS trips) "
                f"TO '{tmp_path / 'data' / 'stats.parquet'}' (FORMAT parquet)").fetchall()
    con.close()
    return tmp_path


def compile_parquet(root: Path, old: str = "", new: str = "") -> dict[str, str]:
    (root / "feature_specs" / "stats.yml").write_text(PARQUET_SPEC.replace(old, new))
    return compiler.compile_repo(load_repo(root), "duckdb")


def test_parquet_source_compiles(parquet_repo: Path) -> None:
    sql = compile_parquet(parquet_repo)["fv_driver_stats.sql"]
    assert "FROM read_parquet('data/stats.parquet')" in sql
    assert 'CAST("trips" * 2 AS BIGINT) AS "trips_doubled"' in sql


@pytest.mark.parametrize(("old", "new", "message"), [
    ('"trips * 2"', '"trip * 2"',
     "feature_specs/stats.yml:14: feature view 'driver_stats', feature 'trips_doubled': expression 'trip * 2' "
     "uses unknown column 'trip' (did you mean 'trips'?)"),
    ("{conv: conv_rate}", "{}",
     "feature_specs/stats.yml:13: feature view 'driver_stats', feature 'conv_rate': column 'conv_rate' is not in "
     "data/stats.parquet (did you mean 'conv'?); map it with field_mapping on source 'stats' or give an expression:"),
    ("{conv: conv_rate}", "{convv: conv_rate}",
     "feature_specs/stats.yml:7: source 'stats': field_mapping: column 'convv' is not in data/stats.parquet "
     "(did you mean 'conv'?)"),
    ("timestamp_field: event_timestamp", "timestamp_field: event_ts",
     "feature_specs/stats.yml:6: source 'stats': timestamp_field: column 'event_ts' is not in data/stats.parquet "
     "(did you mean 'event_timestamp'?)"),
    ("join_keys: [driver_id]", "join_keys: [driver]",
     "feature_specs/stats.yml:10: feature view 'driver_stats': join key column 'driver' is not in "
     "data/stats.parquet (did you mean 'driver_id'?); map it with field_mapping on source 'stats'"),
])
def test_file_columns_are_checked_at_compile_time(parquet_repo: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        compile_parquet(parquet_repo, old, new)
    assert str(caught.value) == message


# ---- every source kind builds with dbt ---------------------------------------------------------------
# One feature view per source kind over the same rows; a training set joins them all, so each
# kind must give the same features for every spine row.
STATS_ROWS = [(driver, hour) for driver in (1, 2, 3) for hour in range(4)]
LABEL_ROWS = [(1, "2024-01-01 02:30:00"), (2, "2024-01-01 00:00:00"), (3, "2024-01-01 03:59:59"),
              (1, "2023-12-31 23:00:00"), (4, "2024-01-01 02:00:00"), (2, "2024-01-01 01:15:00")]


def _stats_csv() -> str:
    lines = ["driver_id,event_timestamp,created,conv,trips"]
    for driver, hour in STATS_ROWS:
        lines.append(f"{driver},2024-01-01 {hour:02d}:00:00,2024-01-01 {hour:02d}:05:00,"
                     f"{driver / 10 + hour / 100:.2f},{driver * 10 + hour}")
    return "\n".join(lines) + "\n"


def kinds_spec(kinds: dict[str, str]) -> str:
    """Sources and views named after their kind (``{kind: location line}``) and a training set over all."""
    sources = "".join(f"""\
  - name: stats_{kind}
    {location}
    timestamp_field: event_timestamp
    created_timestamp_column: created
    field_mapping: {{conv: conv_rate}}
""" for kind, location in kinds.items())
    views = "".join(f"""\
  - name: by_{kind}
    entities: [driver]
    source: stats_{kind}
    ttl: 1d
    schema:
      - {{name: conv_rate, dtype: float64}}
      - {{name: trips, dtype: int64}}
      - {{name: trips_doubled, dtype: int64, expression: "trips * 2"}}
""" for kind in kinds)
    features = ", ".join(f"by_{kind}" for kind in kinds)
    return f"""\
entities:
  - {{name: driver, join_keys: [driver_id]}}
sources:
{sources}feature_views:
{views}training_sets:
  - name: all_kinds
    spine: {{ref: labels}}
    features: [{features}]
    full_feature_names: true
"""


def build_kinds_repo(root: Path, kinds: dict[str, str], schema: str, target: str, postgres_url: str | None = None):
    from support.repos import run_dbt, write_repo

    write_repo(root, {"kinds.yml": kinds_spec(kinds)}, postgres_url=postgres_url, postgres_schema=schema,
               target=target)
    (root / "seeds").mkdir()
    (root / "seeds" / "stats.csv").write_text(_stats_csv())
    (root / "seeds" / "labels.csv").write_text(
        "driver_id,event_timestamp\n" + "".join(f"{d},{t}\n" for d, t in LABEL_ROWS))
    (root / "models").mkdir()
    # a dbt source over the raw table the test loads first
    (root / "models" / "sources.yml").write_text(
        f"version: 2\nsources:\n  - name: raw\n    schema: {schema}_raw\n    tables:\n      - name: stats\n")
    result = run_cli(root, "--target", target, "compile")
    assert result.exit_code == 0, result.output
    return run_dbt


def _expected(driver: int, moment: str) -> tuple | None:
    """The brute-force point-in-time answer: the latest hour <= t within 1 day."""
    from datetime import datetime, timedelta

    t = datetime.fromisoformat(moment)
    hours = [h for d, h in STATS_ROWS if d == driver and datetime(2024, 1, 1, h) <= t
             and datetime(2024, 1, 1, h) >= t - timedelta(days=1)]
    if not hours:
        return None
    hour = max(hours)
    return (round(driver / 10 + hour / 100, 2), driver * 10 + hour, 2 * (driver * 10 + hour))


def assert_all_kinds_agree(rows: list[tuple], kinds: list[str]) -> None:
    assert len(rows) == len(LABEL_ROWS)
    for row, (driver, moment) in zip(rows, LABEL_ROWS):
        assert row[0] == driver
        for i, kind in enumerate(kinds):
            values = row[2 + 3 * i: 5 + 3 * i]
            expected = _expected(driver, moment)
            if expected is None:
                assert values == (None, None, None), (kind, row)
            else:
                assert (round(values[0], 2), values[1], values[2]) == expected, (kind, row)


def test_every_source_kind_builds_on_duckdb(tmp_path: Path) -> None:
    import duckdb

    root = tmp_path / "repo"
    root.mkdir()
    (root / "data").mkdir()
    (root / "data" / "raw_stats.csv").write_text(_stats_csv())
    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA main_raw").fetchall()
    con.execute(f"CREATE TABLE main_raw.stats AS SELECT * FROM read_csv('{root}/data/raw_stats.csv')").fetchall()
    con.execute(f"COPY main_raw.stats TO '{root}/data/stats.parquet' (FORMAT parquet)").fetchall()
    con.close()
    kinds = {"parquet": "path: data/stats.parquet", "csv": "path: data/raw_stats.csv",
             "table": "table: main_raw.stats", "ref": "ref: stats", "source": "source: raw.stats"}
    run_dbt = build_kinds_repo(root, kinds, "main", "dev")
    run_dbt(root, "build")
    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"))  # dbt in this process holds it open
    columns = [r[0] for r in con.execute("DESCRIBE main.ts_all_kinds").fetchall()]
    rows = con.execute("SELECT * FROM main.ts_all_kinds").fetchall()
    con.close()
    assert columns == ["driver_id", "event_timestamp"] + [
        f"by_{kind}__{feature}" for kind in kinds for feature in ("conv_rate", "trips", "trips_doubled")]
    assert_all_kinds_agree(rows, list(kinds))


@pytest.mark.postgres
def test_every_source_kind_builds_on_postgres(tmp_path: Path, postgres_url: str, postgres_schema: str) -> None:
    import psycopg

    from support.repos import drop_postgres_schema

    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{postgres_schema}_raw"')
        con.execute(f'CREATE TABLE "{postgres_schema}_raw".stats (driver_id bigint, event_timestamp timestamp, '
                    "created timestamp, conv double precision, trips bigint)")
        with con.cursor().copy(f'COPY "{postgres_schema}_raw".stats FROM STDIN WITH (FORMAT csv, HEADER)') as copy:
            copy.write(_stats_csv())
    try:
        kinds = {"table": f"table: {postgres_schema}_raw.stats", "ref": "ref: stats", "source": "source: raw.stats"}
        run_dbt = build_kinds_repo(tmp_path / "repo", kinds, postgres_schema, "pg", postgres_url)
        assert "read_parquet" not in (tmp_path / "repo" / MODELS / "fv_by_table.sql").read_text()
        run_dbt(tmp_path / "repo", "build", target="pg")
        with psycopg.connect(postgres_url) as con:
            rows = con.execute(f'SELECT * FROM "{postgres_schema}".ts_all_kinds').fetchall()
        assert_all_kinds_agree(rows, list(kinds))
    finally:
        drop_postgres_schema(postgres_url, f"{postgres_schema}_raw")
