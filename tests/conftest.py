"""Shared fixtures: the Postgres and Redis servers (found or started), per-test schemas."""

from __future__ import annotations

import uuid

import pytest

# before any test module imports it: its helpers' asserts then report their values
pytest.register_assert_rewrite("support.pit_harness")

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
