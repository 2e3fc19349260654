"""Helpers of the server's resilience and fault tests: an example repo, `featurehouse serve` as a user runs it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from featurehouse.cli.app import main
from featurehouse.cli.example import write_example_data
from support.driver_stats import feature_refs
from support.repos import PACKAGE_ROOT, run_dbt, write_repo

FEATUREHOUSE = str(Path(sys.executable).with_name("featurehouse"))
FEATURES = feature_refs()  # the example repo's driver_hourly_stats (feature_specs/drivers.yml)
BODY = {"features": FEATURES, "entities": {"driver_id": [1001, 1002]}}


def cli(root: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--repo", str(root), *args])
    assert result.exit_code == 0, result.output
    return result.output


def build_example_repo(root: Path) -> Path:
    """The example specs and data, built by dbt and synced to SQLite (~20 s)."""
    write_repo(root, {})
    for spec in (PACKAGE_ROOT / "feature_specs").glob("*.yml"):
        shutil.copy(spec, root / "feature_specs" / spec.name)
    shutil.copytree(PACKAGE_ROOT / "models" / "example", root / "models" / "example")  # documents.yml reads it
    write_example_data(root / "seeds")
    cli(root, "compile")
    run_dbt(root, "build")
    cli(root, "sync")
    return root


def set_online_store(root: Path, block: str) -> None:
    """Point the repo's featurehouse.yml at another online store (``block``: the indented YAML under it)."""
    (root / "featurehouse.yml").write_text(f"project: test_repo\nspecs: feature_specs\nonline_store:\n{block}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Serve:
    """`featurehouse serve ARGS` in a subprocess (its own session), stopped on exit; output kept in a file."""

    def __init__(self, repo: Path, *args: str, env: dict[str, str] | None = None, scheme: str = "http"):
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log = open(repo.parent / f"serve-{self.port}.log", "w+b")  # noqa: SIM115 - closed in __exit__
        command = [FEATUREHOUSE, "--repo", str(repo), "serve", "--port", str(self.port), "--log-level", "warning",
                   *args]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, **(env or {})})

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __enter__(self) -> "Serve":
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(self.url + "/health", timeout=1, verify=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"featurehouse serve did not answer /health within 60 s: {self.output()}")

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def timed_get(url: str, timeout: float = 30) -> tuple[float, httpx.Response]:
    start = time.monotonic()
    response = httpx.get(url, timeout=timeout, verify=False)
    return time.monotonic() - start, response


def timed_post(url: str, body: object = BODY, timeout: float = 30) -> tuple[float, httpx.Response]:
    start = time.monotonic()
    response = httpx.post(url + "/get-online-features", json=body, timeout=timeout, verify=False)
    return time.monotonic() - start, response
