"""featurehouse as a user meets it: from a wheel, in a fresh venv, outside this checkout.

The fast tests check how a feature repo keeps featurehouse's macros (a versioned copy in
vendor/featurehouse, docs/decisions/0013); the slow one builds the wheel, installs it into a
new venv and runs init, dbt deps, dbt build, sync and an online read, then clones the repo
the way a teammate would and builds it again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import featurehouse
from featurehouse.cli.app import main
from featurehouse.errors import ConfigError
from support.wheel_build import build_wheel

CHECKOUT = Path(__file__).resolve().parent.parent


def _init(path: Path) -> Path:
    result = CliRunner().invoke(main, ["init", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _fh(repo: Path, *args: str):
    return CliRunner().invoke(main, ["--repo", str(repo), *args])


def test_one_version_everywhere() -> None:
    pyproject = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())
    project = (CHECKOUT / "dbt_project.yml").read_text()
    assert re.search(r'^version: "(.+)"$', project, re.MULTILINE)[1] == featurehouse.__version__
    assert pyproject["project"]["version"] == featurehouse.__version__


def test_init_vendors_the_installed_macros_and_compile_check_passes(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    vendored = repo / "vendor" / "featurehouse"
    assert sorted(p.name for p in (vendored / "macros").glob("*.sql")) == \
        sorted(p.name for p in (CHECKOUT / "macros").glob("*.sql"))
    project = (vendored / "dbt_project.yml").read_text()
    assert "name: featurehouse\n" in project and f'version: "{featurehouse.__version__}"\n' in project
    assert "model-paths" not in project  # the package's macros, not the example repo's models
    assert str(CHECKOUT) not in (repo / "packages.yml").read_text()
    result = _fh(repo, "compile", "--check")
    assert result.exit_code == 0, result.output


def test_compile_check_names_a_changed_missing_or_extra_macro_and_compile_repairs_it(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    macros = repo / "vendor" / "featurehouse" / "macros"
    (macros / "point_in_time_join.sql").write_text("{% macro point_in_time_join() %}edited{% endmacro %}")
    (macros / "latest_snapshot.sql").unlink()
    (macros / "mine.sql").write_text("select 1")
    result = _fh(repo, "compile", "--check")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: 3 file(s) of featurehouse's macros differ from the installed featurehouse {featurehouse.__version__} "
        "(vendor/featurehouse/macros/latest_snapshot.sql, vendor/featurehouse/macros/mine.sql, "
        "vendor/featurehouse/macros/point_in_time_join.sql); run 'featurehouse compile', then 'dbt deps'\n")
    result = _fh(repo, "compile")
    assert result.exit_code == 0, result.output
    assert "Updated 3 file(s) of featurehouse's macros" in result.stdout
    assert not (macros / "mine.sql").exists()
    assert (macros / "point_in_time_join.sql").read_bytes() == (CHECKOUT / "macros" / "point_in_time_join.sql").read_bytes()
    assert _fh(repo, "compile", "--check").exit_code == 0
    assert "Updated" not in _fh(repo, "compile").stdout  # nothing to do the second time


def test_a_deleted_vendor_folder_is_written_again_by_compile(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    shutil.rmtree(repo / "vendor")
    assert _fh(repo, "compile", "--check").exit_code == 1
    assert _fh(repo, "compile").exit_code == 0
    assert _fh(repo, "compile", "--check").exit_code == 0


def test_macros_of_another_version_stop_sync_and_the_sdk_with_one_line(tmp_path: Path) -> None:
    import pandas as pd

    from featurehouse import FeatureStore

    repo = _init(tmp_path / "repo")
    project = repo / "vendor" / "featurehouse" / "dbt_project.yml"
    project.write_text(project.read_text().replace(f'version: "{featurehouse.__version__}"', 'version: "0.0.9"'))
    expected = (f"the featurehouse dbt macros in vendor/featurehouse are version 0.0.9, but the installed "
                f"featurehouse is {featurehouse.__version__}; run 'featurehouse compile' to update them, then "
                "'dbt deps', then 'dbt build'")
    result = _fh(repo, "sync")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {expected}\n"
    assert not (repo / "data" / "online.db").exists()  # stopped before touching the online store
    with pytest.raises(ConfigError) as raised:
        FeatureStore(str(repo)).get_historical_features(
            entity_df=pd.DataFrame({"driver_id": [1001], "event_timestamp": [pd.Timestamp("2024-01-01")]}),
            features=["driver_hourly_stats:conv_rate"]).to_df()
    assert str(raised.value) == expected
    assert _fh(repo, "compile", "--check").exit_code == 1


def test_a_stale_copy_under_dbt_packages_asks_for_dbt_deps(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    # `dbt deps` copies instead of linking where links are not allowed: that copy can lag behind
    installed = repo / "dbt_packages" / "featurehouse"
    shutil.copytree(repo / "vendor" / "featurehouse", installed)
    project = installed / "dbt_project.yml"
    project.write_text(project.read_text().replace(f'version: "{featurehouse.__version__}"', 'version: "0.0.9"'))
    result = _fh(repo, "sync")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: the featurehouse dbt macros in dbt_packages/featurehouse are version 0.0.9, but the installed "
        f"featurehouse is {featurehouse.__version__}; run 'dbt deps', then 'dbt build'\n")


def test_a_package_outside_the_repo_is_not_copied_into_it(tmp_path: Path) -> None:
    # tests/dbt_project installs this checkout with `local: ../../`: compile must not vendor it
    repo = tmp_path / "project"
    shutil.copytree(CHECKOUT / "tests" / "dbt_project", repo,
                    ignore=shutil.ignore_patterns("target", "dbt_packages", "logs"))
    (repo / "packages.yml").write_text(f"packages:\n  - local: {CHECKOUT.as_posix()}\n")
    result = _fh(repo, "--profiles-dir", str(repo), "compile")
    assert result.exit_code == 0, result.output
    assert not (repo / "vendor").exists()
    assert "Updated" not in result.stdout


# ---- the wheel, end to end -------------------------------------------------------------------
def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_init_build_sync_read_and_a_teammates_clone(tmp_path: Path) -> None:
    import json

    wheel = build_wheel(tmp_path)
    env = {"PATH": f"{tmp_path / 'venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           "LANG": "C.UTF-8", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run([sys.executable, "-m", "venv", str(tmp_path / "venv")], tmp_path, env)
    _run(["pip", "install", "--quiet", str(wheel)], tmp_path, env, timeout=1800)
    installed = _run(["python", "-c", "import featurehouse; print(featurehouse.__file__)"], tmp_path, env)
    assert installed.startswith(str(tmp_path / "venv")), installed  # not this checkout's editable copy

    work = tmp_path / "work"
    work.mkdir()
    _run(["featurehouse", "init", "rides"], work, env)
    repo = work / "rides"
    assert "local: vendor/featurehouse" in (repo / "packages.yml").read_text()
    _run(["dbt", "deps"], repo, env)
    _run(["dbt", "build"], repo, env)
    assert os.access(repo / "sync" / "run-sync.sh", os.X_OK)  # what cron runs, from the wheel too
    # the four online views, documents too: its model (models/example/) came from the wheel
    assert "synced 4 view(s)" in _run([str(repo / "sync" / "run-sync.sh")], repo, env)
    read = json.loads(_run(["featurehouse", "get-online-features", "-f", "driver_hourly_stats:conv_rate",
                            "-e", "driver_id=1001", "-e", "driver_id=1010"], repo, env))
    assert read["driver_id"] == [1001, 1010]
    assert read["conv_rate"][0] is not None and read["conv_rate"][1] is None  # 1010 stopped two days ago
    rows = _run(["python", "-c", "import pandas as pd; from featurehouse import FeatureStore; "
                 "labels = pd.read_csv('seeds/driver_labels.csv', parse_dates=['event_timestamp']); "
                 "df = FeatureStore('.').get_historical_features(entity_df=labels, features='driver_activity').to_df(); "
                 "print(len(df), df['conv_rate'].notna().sum())"], repo, env).split()
    assert int(rows[0]) == 1000 and 0 < int(rows[1]) < 1000

    # a teammate: git clone (only what is committed), pip install featurehouse, dbt deps, dbt build
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    _run([*git, "init", "--quiet"], repo, env)
    _run([*git, "add", "."], repo, env)
    _run([*git, "commit", "--quiet", "-m", "feature repo"], repo, env)
    clone = tmp_path / "teammate" / "rides"
    _run([*git, "clone", "--quiet", str(repo), str(clone)], tmp_path, env)
    assert (clone / "vendor" / "featurehouse" / "macros" / "point_in_time_join.sql").is_file()
    assert not (clone / "dbt_packages").exists()
    _run(["featurehouse", "example-data"], clone, env)  # the seeds are not committed (.gitignore)
    _run(["featurehouse", "compile", "--check"], clone, env)
    _run(["dbt", "deps"], clone, env)
    _run(["dbt", "build"], clone, env)
    assert "synced 4 view(s)" in _run(["featurehouse", "sync"], clone, env)


def test_a_file_where_the_macros_folder_belongs_is_one_line(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    shutil.rmtree(repo / "vendor" / "featurehouse")
    (repo / "vendor" / "featurehouse").write_text("oops")
    result = _fh(repo, "compile")
    assert result.exit_code == 1
    assert result.stderr == ("Error: packages.yml names vendor/featurehouse for featurehouse's macros, but it is a "
                             "file; remove it and run 'featurehouse compile' to write the folder\n")


def test_a_vendor_link_to_a_folder_outside_the_repo_is_never_written(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    outside = tmp_path / "shared-macros"
    shutil.move(repo / "vendor" / "featurehouse", outside)
    (outside / "macros" / "latest_snapshot.sql").write_text("-- someone else's")
    (repo / "vendor" / "featurehouse").symlink_to(outside)
    result = _fh(repo, "compile")
    assert result.exit_code == 0, result.output
    assert (outside / "macros" / "latest_snapshot.sql").read_text() == "-- someone else's"


@pytest.mark.parametrize("packages", ['packages:\n  - local: "vendor/\\0featurehouse"\n', "packages: [local: [\n",
                                      "packages: 7\n", "- local: vendor/featurehouse\n"])
def test_a_broken_packages_yml_is_left_to_dbt_deps(tmp_path: Path, packages: str) -> None:
    repo = _init(tmp_path / "repo")
    (repo / "packages.yml").write_text(packages)
    for args in (["compile"], ["compile", "--check"]):
        result = _fh(repo, *args)
        assert result.exit_code == 0, result.output  # no copy is named: nothing of featurehouse's to say


_FAKE_PYTHON = """\
#!/usr/bin/env bash
# stands in for .venv/bin/python: logs what setup.sh asks, "installs" by touching a file
here="$(cd "$(dirname "$0")/.." && pwd)"
echo "$*" | head -c 60 >> "$here/calls.log"; echo >> "$here/calls.log"
case "$1" in
  -V) echo "Python 3.11.7" ;;
  -I) [ -f "$here/installed" ] ;;
  -m) touch "$here/installed" ;;
esac
"""


def test_setup_sh_runs_pip_only_when_the_install_is_missing_stale_or_broken(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    for name in ("scripts/setup.sh", "pyproject.toml", "setup.py"):
        shutil.copy2(CHECKOUT / name, tmp_path / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(_FAKE_PYTHON)
    python.chmod(0o755)
    calls = tmp_path / ".venv" / "calls.log"

    def setup() -> list[str]:
        calls.write_text("")
        result = subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh")], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert result.stdout == result.stderr == ""  # quiet, whatever it did
        return [line for line in calls.read_text().splitlines() if line.startswith("-m pip install")]

    assert len(setup()) == 2  # a new venv: pip upgraded, then featurehouse installed
    assert setup() == []  # nothing changed: no pip at all
    (tmp_path / "pyproject.toml").write_text((tmp_path / "pyproject.toml").read_text() + "\n# edited\n")
    assert len(setup()) == 2  # the requirements may have changed
    assert setup() == []
    (tmp_path / ".venv" / "installed").unlink()  # someone uninstalled a package by hand
    assert len(setup()) == 2
