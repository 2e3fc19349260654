"""Find or start the PostgreSQL and Redis servers the tests need.

Order: an explicit URL from the environment (FEATUREHOUSE_TEST_POSTGRES_URL,
FEATUREHOUSE_TEST_REDIS_URL); the service on its standard local port; a throwaway server
started from the installed binaries (Postgres as an unprivileged user, since initdb
refuses root). If none of that works the tests fail with one sentence saying what to
install; they are never skipped silently.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

POSTGRES_INSTALL_HINT = (
    "PostgreSQL is needed for these tests: none answers on 127.0.0.1:5432 and no initdb/pg_ctl binaries "
    "were found; install it (Debian: apt-get install postgresql) or set FEATUREHOUSE_TEST_POSTGRES_URL"
)
REDIS_INSTALL_HINT = (
    "Redis is needed for these tests: none answers on 127.0.0.1:6379 and no redis-server binary was found; "
    "install it (Debian: apt-get install redis-server) or set FEATUREHOUSE_TEST_REDIS_URL"
)


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    dbname: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as con:
            con.execute("select 1")
        return True
    except psycopg.Error:
        return False


def _postgres_binaries() -> tuple[str, str] | None:
    for folder in [*sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True), "/usr/local/bin", "/usr/bin"]:
        initdb, pg_ctl = os.path.join(folder, "initdb"), os.path.join(folder, "pg_ctl")
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return initdb, pg_ctl
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    return (initdb, pg_ctl) if initdb and pg_ctl else None


def _as_unprivileged(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "nobody", "--", *command]


def _start_throwaway_postgres() -> PostgresServer:
    binaries = _postgres_binaries()
    if binaries is None:
        raise RuntimeError(POSTGRES_INSTALL_HINT)
    initdb, pg_ctl = binaries
    folder = tempfile.mkdtemp(prefix="featurehouse-pg-")
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    data = os.path.join(folder, "data")
    port = _free_port()
    subprocess.run(_as_unprivileged([initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]),
                   check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_unprivileged([pg_ctl, "-D", data, "-o", options, "-w", "-l",
                                     os.path.join(folder, "log"), "start"]), check=True, capture_output=True)
    atexit.register(lambda: subprocess.run(_as_unprivileged([pg_ctl, "-D", data, "-m", "immediate", "stop"]),
                                           capture_output=True))
    server = PostgresServer("127.0.0.1", port, "postgres", "postgres")
    for _ in range(50):
        if _postgres_answers(server.url):
            return server
        time.sleep(0.1)
    raise RuntimeError(f"a throwaway PostgreSQL was started in {folder} but does not answer")


def find_postgres() -> PostgresServer:
    """The server to test against; starts one if needed."""
    explicit = os.environ.get("FEATUREHOUSE_TEST_POSTGRES_URL")
    if explicit:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(explicit)
        return PostgresServer(parts.get("host", "127.0.0.1"), int(parts.get("port", 5432)),
                              parts.get("user", "postgres"), parts.get("dbname", "postgres"))
    for user in ("postgres", "root"):
        local = PostgresServer("127.0.0.1", 5432, user, "test")
        if _postgres_answers(local.url):
            return local
    return _start_throwaway_postgres()


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def find_redis() -> str:
    """A redis:// URL to test against; starts a throwaway redis-server if needed."""
    explicit = os.environ.get("FEATUREHOUSE_TEST_REDIS_URL")
    if explicit:
        return explicit
    if _redis_answers("redis://127.0.0.1:6379/0"):
        return "redis://127.0.0.1:6379/0"
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(REDIS_INSTALL_HINT)
    port = _free_port()
    folder = tempfile.mkdtemp(prefix="featurehouse-redis-")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", folder],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(process.terminate)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(50):
        if _redis_answers(url):
            return url
        time.sleep(0.1)
    raise RuntimeError(f"a throwaway redis-server was started on port {port} but does not answer")
