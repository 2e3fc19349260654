"""A throwaway Redis Cluster on loopback for the tests and benchmarks.

``start_cluster(masters, replicas)`` starts ``masters * (1 + replicas)`` ``redis-server
--cluster-enabled yes`` processes on free loopback ports in a temporary folder, joins them
with ``redis-cli --cluster create … --cluster-yes``, waits until every node reports
``cluster_state:ok`` and returns a handle whose ``stop()`` ends the processes it started
(and nothing else). Missing binaries fail with one sentence naming the Debian package.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CLUSTER_INSTALL_HINT = (
    "a local Redis Cluster is needed for these tests, but redis-server or redis-cli is not installed; "
    "install Debian's redis-server package (apt-get install redis-server)"
)


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


@dataclass
class LocalCluster:
    """A running local cluster: its ports, processes and folder."""

    ports: list[int]
    folder: Path
    processes: dict[int, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The URL of the first node (any node serves as the cluster's entry point)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def cli(self, port: int, *args: str) -> str:
        """``redis-cli -p port args…``'s output."""
        result = subprocess.run(
            ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=30, check=False
        )
        return result.stdout

    def kill(self, port: int) -> None:
        """kill -9 the node on ``port``."""
        process = self.processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def primary_of(self, key: bytes) -> int:
        """The port of the primary node that owns ``key``'s slot (asked of a live node)."""
        for port in self.processes:
            out = self.cli(port, "cluster", "keyslot", key.decode("latin-1"))
            if out.strip():
                slot = int(out)
                break
        nodes = self.cli(port, "cluster", "nodes").splitlines()
        for line in nodes:
            parts = line.split()
            if "master" not in parts[2] or "fail" in parts[2]:
                continue
            for span in parts[8:]:
                low, _, high = span.partition("-")
                if span[0] != "[" and int(low) <= slot <= int(high or low):
                    return int(parts[1].split(":")[1].split("@")[0])
        raise AssertionError(f"no primary owns slot {slot}")

    def wait_ok(self, timeout: float = 60) -> None:
        """Wait until every live node says cluster_state:ok and agrees on all 16384 slots."""
        deadline = time.monotonic() + timeout
        while True:
            infos = [self.cli(port, "cluster", "info") for port in self.processes]
            if all("cluster_state:ok" in info and "cluster_slots_ok:16384" in info for info in infos):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local Redis Cluster on ports {self.ports} is not ok after {timeout:g} s")
            time.sleep(0.2)

    def wait_replicated(self, timeout: float = 60) -> None:
        """Wait until every replica has applied all its primary's writes (replication is asynchronous:
        a primary killed before its replica caught up loses writes, which Redis allows)."""
        deadline = time.monotonic() + timeout
        while True:
            behind = []
            for port in self.processes:
                info = dict(
                    line.split(":", 1) for line in self.cli(port, "info", "replication").split() if ":" in line
                )
                if info.get("role") != "master":
                    continue
                offset = int(info.get("master_repl_offset", 0))
                for name, value in info.items():
                    if name.startswith("slave") and name[5:].isdigit():
                        fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
                        if int(fields.get("offset", 0)) < offset:
                            behind.append(f"{fields.get('port')} behind {port}")
            if not behind:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"replicas still behind after {timeout:g} s: {', '.join(behind)}")
            time.sleep(0.1)

    def wait_failover(self, dead: int, timeout: float = 60) -> None:
        """Wait until the live nodes mark the killed node ``dead`` failed and its slots have a new primary."""
        deadline = time.monotonic() + timeout
        while True:
            views = [self.cli(port, "cluster", "nodes") for port in self.processes]
            settled = all(
                any(f":{dead}@" in line and " fail " in f" {line.split()[2].replace(',', ' ')} " and
                    len(line.split()) <= 8 for line in view.splitlines())
                for view in views
            )
            if settled:
                self.wait_ok(max(deadline - time.monotonic(), 1))
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over from the killed node on port {dead} in {timeout:g} s")
            time.sleep(0.2)

    def stop(self) -> None:
        """End the processes this handle started and remove the folder."""
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(masters: int = 3, replicas: int = 0, node_timeout_ms: int = 1000) -> LocalCluster:
    """Start a local cluster of ``masters`` primaries with ``replicas`` replicas each; wait until it is ok."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        raise RuntimeError(CLUSTER_INSTALL_HINT)
    count = masters * (1 + replicas)
    ports = _free_ports(count)
    folder = Path(tempfile.mkdtemp(prefix="featurehouse-redis-cluster-"))
    cluster = LocalCluster(ports, folder)
    try:
        for port in ports:
            node = folder / str(port)
            node.mkdir()
            cluster.processes[port] = subprocess.Popen(
                [
                    server,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(node / "nodes.conf"),
                    "--cluster-node-timeout",
                    str(node_timeout_ms),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(node),
                    "--protected-mode",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for port in ports:
            for _ in range(100):
                if cluster.cli(port, "ping").strip() == "PONG":
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"redis-server on port {port} did not start")
        if masters == 1:  # redis-cli refuses a cluster of fewer than 3 masters: assign the slots by hand
            cluster.cli(ports[0], "cluster", "addslotsrange", "0", "16383")
        else:
            result = subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in ports),
                    "--cluster-replicas",
                    str(replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout[-500:]}{result.stderr[-500:]}")
        cluster.wait_ok()
        if replicas:  # the replicas must have synced before a failover can promote one
            deadline = time.monotonic() + 60
            while any(
                "master_link_status:up" not in cluster.cli(p, "info", "replication")
                for p in ports
                if "role:slave" in cluster.cli(p, "info", "replication")
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster's replicas did not sync with their primaries")
                time.sleep(0.2)
    except BaseException:
        cluster.stop()
        raise
    return cluster
