"""Shared fixtures: the Postgres and Redis servers (found or started), per-test schemas."""

from __future__ import annotations

import uuid

import pytest

import servers


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
    import psycopg

    name = f"fh_test_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        return servers.find_redis()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
