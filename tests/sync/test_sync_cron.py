"""sync/: the script cron and the systemd timer run, and the schedule files that name it."""

from __future__ import annotations

import configparser
import fcntl
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from featurehouse.cli.app import main

CHECKOUT = Path(__file__).resolve().parent.parent.parent
SYNC = CHECKOUT / "sync"


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def _cron_lines() -> list[str]:
    return [line for line in (SYNC / "crontab").read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_crontab_line_runs_the_script_every_five_minutes() -> None:
    [line] = _cron_lines()
    fields = line.split(None, 5)
    assert fields[:5] == ["*/5", "*", "*", "*", "*"]
    command = shlex.split(fields[5])
    assert command[0].endswith("/sync/run-sync.sh")
    assert command[1:] == [">/dev/null"]  # stdout to the log only; stderr (failures) mailed by cron


def test_systemd_timer_starts_the_service_that_runs_the_script_in_the_repo() -> None:
    timer = _unit(SYNC / "featurehouse-sync.timer")
    service = _unit(SYNC / "featurehouse-sync.service")
    assert (SYNC / timer["Timer"]["Unit"]).is_file()
    assert timer["Timer"]["Unit"] == "featurehouse-sync.service"
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert service["Service"]["Type"] == "oneshot"
    repo = service["Service"]["WorkingDirectory"]
    assert service["Service"]["ExecStart"] == f"{repo}/sync/run-sync.sh"
    [line] = _cron_lines()
    assert line.split()[5] == f"{repo}/sync/run-sync.sh"  # one placeholder path to replace in both
    assert "75" in service["Service"]["SuccessExitStatus"].split()  # the script's "previous run busy"
    assert "exit 75" in (SYNC / "run-sync.sh").read_text()


def test_systemd_accepts_the_units_once_the_path_is_filled_in(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    repo = tmp_path / "feature-repo"
    shutil.copytree(SYNC, repo / "sync")
    for name in ("featurehouse-sync.service", "featurehouse-sync.timer"):
        text = (SYNC / name).read_text().replace("/srv/feature-repo", str(repo))
        (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "featurehouse-sync.service", "featurehouse-sync.timer"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_script_is_executable_bash() -> None:
    script = SYNC / "run-sync.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


# ---- the script, run on a scaffolded repo ---------------------------------------------------
@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cron") / "rides"
    result = CliRunner().invoke(main, ["init", str(root)])
    assert result.exit_code == 0, result.output
    return root


def _run_sync(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8",
                   "FEATUREHOUSE_BIN": str(Path(sys.executable).parent), **env}  # cron's PATH is short
    return subprocess.run([str(repo / "sync" / "run-sync.sh"), *args], cwd="/", env=environment,
                          capture_output=True, text=True, timeout=600)


def _online(repo: Path) -> list:
    result = CliRunner().invoke(main, ["--repo", str(repo), "get-online-features", "-f", "driver_hourly_stats:conv_rate",
                                       "-e", "driver_id=1001", "-e", "driver_id=1010"])
    assert result.exit_code == 0, result.output
    import json

    return json.loads(result.stdout)["conv_rate"]


@pytest.mark.slow
def test_init_writes_the_sync_folder(repo: Path) -> None:
    for name in ("run-sync.sh", "crontab", "featurehouse-sync.service", "featurehouse-sync.timer"):
        assert (repo / "sync" / name).read_bytes() == (SYNC / name).read_bytes(), name
    assert os.access(repo / "sync" / "run-sync.sh", os.X_OK)


@pytest.mark.slow
def test_a_run_builds_the_online_models_syncs_and_logs(repo: Path) -> None:
    result = _run_sync(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # cron mails stderr: nothing on success
    log = (repo / "logs" / "sync.log").read_text()
    assert "dbt deps" in log and "dbt build --select +online_*" in log
    assert "synced 4 view(s)" in log and "done in" in log
    values = _online(repo)
    assert values[0] is not None and values[1] is None  # 1010 stopped reporting two days ago


@pytest.mark.slow
def test_a_run_while_the_previous_one_holds_the_lock_does_nothing(repo: Path) -> None:
    before = (repo / "logs" / "sync.log").read_text().count("synced ")
    with open(repo / "logs" / "run-sync.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = _run_sync(repo)
    assert result.returncode == 75
    assert "the previous run still holds" in result.stderr
    assert (repo / "logs" / "sync.log").read_text().count("synced ") == before


@pytest.mark.slow
def test_a_failed_dbt_build_exits_1_and_skips_the_sync(repo: Path) -> None:
    model = repo / "models" / "featurehouse" / "fv_driver_hourly_stats.sql"
    text = model.read_text()
    model.write_text(text + "\nthis is not sql\n")
    try:
        result = _run_sync(repo)
    finally:
        model.write_text(text)
    assert result.returncode == 1
    assert "dbt build failed" in result.stderr
    assert "featurehouse sync" not in result.stdout.split("dbt build failed")[-1]


@pytest.mark.slow
def test_a_failed_sync_exits_1_with_the_reason_in_the_log(repo: Path) -> None:
    config = repo / "featurehouse.yml"
    text = config.read_text()
    config.write_text(text.replace("type: sqlite", "type: sqlite_typo"))
    try:
        result = _run_sync(repo, FEATUREHOUSE_DBT_BUILD="0")
    finally:
        config.write_text(text)
    assert result.returncode == 1
    assert "featurehouse sync failed (exit 1)" in result.stderr
    assert "sqlite_typo" in (repo / "logs" / "sync.log").read_text()  # featurehouse's own one-line error


@pytest.mark.slow
def test_options_after_the_script_go_to_featurehouse_sync(repo: Path) -> None:
    result = _run_sync(repo, "--views", "customer_profile", FEATUREHOUSE_DBT_BUILD="0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "synced 1 view(s) [customer_profile" in result.stdout
