"""A training-set call for a feature set never asked before does not start dbt, and runs only
SQL that dbt rendered from the repo's current macros (docs/decisions/0031-cold-training-calls.md).

``featurehouse compile`` has dbt render each view's point-in-time join (its "piece"); a call
whose whole SQL is not cached runs one piece per view. The property tests of the join run
both paths against the reference (tests/sdk/test_point_in_time.py, ``path``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from click.testing import CliRunner
from support.online import build_repo, utc_hour
from support.repos import reset_dbt_duckdb

from featurehouse.cli.app import main

DRIVERS = range(1, 40)

# run in a fresh process: what a user's first call costs, and whether it imported dbt
CALL = textwrap.dedent(
    """
    import json, sys, time
    import pandas as pd
    from featurehouse import FeatureStore
    started = time.perf_counter()
    store = FeatureStore(sys.argv[1])
    spine = pd.DataFrame({
        "driver_id": [1, 2, 3, 99, 1],
        "rider_id": ["r:1", "r:2", "r:0", "r:1", "r\\\\x"],
        "ts": pd.to_datetime(["2020-01-01T00:00:00", sys.argv[2], sys.argv[2], sys.argv[2], sys.argv[2]], utc=True),
    })
    table = store.get_historical_features(spine, json.loads(sys.argv[3]), full_feature_names=True).to_arrow()
    print(json.dumps({
        "dbt": sorted(m for m in sys.modules if m == "dbt" or m.startswith("dbt.")),
        "seconds": time.perf_counter() - started,
        "rows": table.drop_columns(["ts"]).to_pylist(),
    }, default=str))
    """
)


def _cold_call(root, at, features):
    result = subprocess.run(
        [sys.executable, "-c", CALL, str(root), at, json.dumps(features)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _whole(root, at, features):
    """The same call in this process, after dbt rendered the whole call (the warm path)."""
    import pandas as pd

    from featurehouse.dbt.rendering import cached, render
    from featurehouse.sdk.store import ROW_NUMBER_COLUMN, FeatureStore

    store = FeatureStore(root)
    spine = pd.DataFrame({
        "driver_id": [1, 2, 3, 99, 1],
        "rider_id": ["r:1", "r:2", "r:0", "r:1", "r\\x"],
        "ts": pd.to_datetime(["2020-01-01T00:00:00", at, at, at, at], utc=True),
    })
    job = store.get_historical_features(spine, features, full_feature_names=True)
    call = job._calls("ts", [ROW_NUMBER_COLUMN], ROW_NUMBER_COLUMN)[0]
    render(store.repo_path, store.target, call)  # dbt renders the whole call: the warm path
    assert cached(store.repo_path, store.target, call) is not None
    table = job.to_arrow()
    return json.loads(json.dumps(table.drop_columns(["ts"]).to_pylist(), default=str))


def test_a_feature_set_never_asked_before_runs_without_dbt(tmp_path):
    now = utc_hour()
    root = build_repo(tmp_path, DRIVERS, "  type: sqlite\n  path: data/online.db\n", now=now)
    result = CliRunner().invoke(main, ["--repo", str(root), "compile"])
    assert result.exit_code == 0, result.output
    assert "Rendered the point-in-time join of 2 feature view(s)" in result.output
    at = now.isoformat()
    for features in (["stats:trips", "pairs:rating", "stats:city"], ["pairs:last_seen", "stats:conv_rate"]):
        cold = _cold_call(root, at, features)
        assert cold["dbt"] == [], "the cold call imported dbt"
        assert cold["rows"] == _whole(root, at, features)
        assert any(row["stats__trips" if "stats:trips" in features else "stats__conv_rate"] is not None
                   for row in cold["rows"])  # the join found rows: not a comparison of empty results


def test_pieces_are_what_dbt_renders_from_the_current_macros(tmp_path):
    """The SQL a cold call runs is dbt's own rendering (``dbt compile --inline``, run here as a user
    would); after a macro changes, the old pieces are never used again."""
    from featurehouse.dbt.rendering import cached
    from featurehouse.plan.joins import piece_call
    from featurehouse.sdk.store import FeatureStore

    now = utc_hour()
    root = build_repo(tmp_path, DRIVERS, "  type: sqlite\n  path: data/online.db\n", now=now)
    assert CliRunner().invoke(main, ["--repo", str(root), "compile"]).exit_code == 0
    store = FeatureStore(root)
    view = store.repo.feature_views["stats"]
    piece = cached(root, store.target, piece_call(store.repo, view, store.target.dialect))
    assert piece is not None
    dbt = subprocess.run(
        [sys.executable, "-m", "dbt.cli.main", "compile", "--inline", "{{ " + piece_call(store.repo, view, store.target.dialect) + " }}",
         "--project-dir", str(root), "--profiles-dir", str(store.target.profiles_dir), "--quiet"],
        capture_output=True, text=True, timeout=300, check=False, cwd=root,
    )
    assert dbt.returncode == 0, dbt.stdout[-2000:] + dbt.stderr[-2000:]
    assert dbt.stdout.strip() == piece.strip()

    # a changed macro: the pieces of the old macros no longer count; the next call starts dbt
    macros = root / "macros"
    macros.mkdir(exist_ok=True)
    (macros / "local_override.sql").write_text("{% macro local_note() %}-- a local macro{% endmacro %}\n")
    assert cached(root, store.target, piece_call(store.repo, view, store.target.dialect)) is None
    cold = _cold_call(root, now.isoformat(), ["stats:trips"])
    assert "dbt" in cold["dbt"]  # rendered again by dbt, from the macros as they are now
    assert cached(root, store.target, piece_call(store.repo, view, store.target.dialect)) is not None


def test_compile_without_a_warehouse_profile_still_compiles(tmp_path):
    """Rendering ahead is an optimisation: when dbt cannot render, compile says so in one line and succeeds."""
    now = utc_hour()
    root = build_repo(tmp_path, DRIVERS, "  type: sqlite\n  path: data/online.db\n", now=now)
    (root / "macros").mkdir(exist_ok=True)
    (root / "macros" / "broken.sql").write_text("{% macro broken( %}\n")  # dbt cannot parse the project
    result = CliRunner().invoke(main, ["--repo", str(root), "compile"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("Note:")]
    assert len(notes) == 1 and "the first call will start dbt" in notes[0], result.output
    assert "Traceback" not in result.output


def test_compile_no_render_leaves_rendering_to_the_first_call(tmp_path):
    """``compile --no-render`` writes the models and nothing for the SDK: the first call starts dbt,
    and its rows are the same as after a rendering compile."""
    from featurehouse.dbt.rendering import cached
    from featurehouse.plan.joins import piece_call
    from featurehouse.sdk.store import FeatureStore

    now = utc_hour()
    root = build_repo(tmp_path, DRIVERS, "  type: sqlite\n  path: data/online.db\n", now=now)
    (root / "models" / "featurehouse").mkdir(parents=True, exist_ok=True)
    for model in (root / "models" / "featurehouse").glob("*.sql"):
        model.unlink()  # the models the repo was built with: compile must write them again
    result = CliRunner().invoke(main, ["--repo", str(root), "compile", "--no-render"])
    assert result.exit_code == 0, result.output
    assert "Rendered" not in result.output and "Note:" not in result.output, result.output
    written = sorted(p.name for p in (root / "models" / "featurehouse").glob("fv_*.sql"))
    assert written == ["fv_pairs.sql", "fv_stats.sql"]
    store = FeatureStore(root)
    for view in store.repo.feature_views.values():
        assert cached(root, store.target, piece_call(store.repo, view, store.target.dialect)) is None
    features = ["stats:trips", "pairs:rating"]
    reset_dbt_duckdb()  # this process's `dbt build` holds the DuckDB file; the call runs in another
    cold = _cold_call(root, now.isoformat(), features)
    assert "dbt" in cold["dbt"]  # nothing was rendered ahead: this call started dbt
    assert cold["rows"] == _whole(root, now.isoformat(), features)
    assert any(row["stats__trips"] is not None for row in cold["rows"])
