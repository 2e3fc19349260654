"""Credentials in online_store.url: ${VAR} parts percent-encoded, passwords never printed, bad URLs one line."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from support.online import build_repo, drop_store, online_values, set_store, unique

from featurehouse.cli.app import main
from featurehouse.errors import ConfigError, OnlineStoreError, SpecError
from featurehouse.spec.repo import expand_url_env, load_config
from featurehouse.sdk.store import FeatureStore
from featurehouse.sync import sync
from featurehouse.sync.base import redact_url, scrub

PASSWORD = "Sup3r@Secret/9"


def test_substituted_user_info_and_query_are_percent_encoded(monkeypatch):
    monkeypatch.setenv("FH_PW", PASSWORD)
    monkeypatch.setenv("FH_HOST", "db.internal")
    monkeypatch.setenv("FH_URL", "postgresql://u:a%40b@h/db")
    url = expand_url_env("postgresql://fh:${FH_PW}@${FH_HOST}:5432/test?password=${FH_PW}", "url")
    assert url == "postgresql://fh:Sup3r%40Secret%2F9@db.internal:5432/test?password=Sup3r%40Secret%2F9"
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    assert (parts.hostname, parts.port, unquote(parts.password)) == ("db.internal", 5432, PASSWORD)
    # a variable holding the whole URL is the user's own, already encoded
    assert expand_url_env("${FH_URL}", "url") == "postgresql://u:a%40b@h/db"
    with pytest.raises(ConfigError, match="FH_UNSET"):
        expand_url_env("redis://:${FH_UNSET}@h/0", "url")


def test_redaction_hides_passwords_in_every_form():
    for url in (f"postgresql://fh:{PASSWORD}@h:5432/db", "postgresql://fh:Sup3r%40Secret%2F9@h:5432/db",
                "redis://localhost:6379/0?password=Sup3r%40Secret%2F9", f"host=h dbname=d password={PASSWORD}"):
        shown = redact_url(url)
        assert "Sup3r" not in shown and "Secret" not in shown, shown
        assert "Sup3r" not in scrub(f"failed for {url} ({PASSWORD})", url)
    assert redact_url("postgresql://fh:x@db.internal:5433/test") == "db.internal:5433/test"
    assert redact_url("redis://:x@cache/0") == "cache:6379/0"


def _write_config(tmp_path, url):
    (tmp_path / "featurehouse.yml").write_text(
        f"project: p\nonline_store:\n  type: redis\n  url: {url}\n  key_prefix: fh\n")


@pytest.mark.parametrize("url, expected", [
    ("redis://localhost:99999999/0", "has the port '99999999', which is not a number from 1 to 65535"),
    ("redis://localhost:63x9/0", "has the port '63x9'"),
    ("localhost:6379", "must start with redis:// or rediss:// or unix://"),
])
def test_a_bad_redis_url_is_one_line_at_load_time(tmp_path, url, expected):
    _write_config(tmp_path, url)
    with pytest.raises(SpecError, match="featurehouse.yml:4: online_store.url") as info:
        load_config(tmp_path)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_bad_redis_port_through_the_cli_is_one_line(tmp_path, monkeypatch):
    build_repo(tmp_path, range(1, 3), "  type: sqlite\n  path: data/online.db\n")
    monkeypatch.setenv("FH_PW", PASSWORD)
    set_store(tmp_path, "  type: redis\n  url: redis://:${FH_PW}@localhost:99999999/0\n")
    result = CliRunner().invoke(main, ["--repo", str(tmp_path), "sync"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: featurehouse.yml:5: online_store.url"), result.output
    assert "Sup3r" not in result.output
    # the backend checks too (a URL built in code, not read from featurehouse.yml)
    from featurehouse.sync.redis import RedisBackend

    with pytest.raises(OnlineStoreError, match="is not a valid Redis URL") as info:
        RedisBackend("redis://:Sup3r%40Secret%2F9@localhost:99999999/0", "fh").connect()
    assert "Sup3r" not in str(info.value)


@pytest.mark.postgres
def test_a_postgres_password_with_at_and_slash_connects_and_is_never_printed(tmp_path, monkeypatch, postgres_url):
    import psycopg

    role = f"fh_cred_{uuid.uuid4().hex[:8]}"
    schema = unique("fh_cred")
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
        con.execute(f"GRANT CREATE ON DATABASE test TO {role}")
    try:
        from urllib.parse import urlsplit

        parts = urlsplit(postgres_url)
        root = build_repo(tmp_path, range(1, 4), "  type: sqlite\n  path: data/online.db\n")
        monkeypatch.setenv("FH_PG_PASSWORD", PASSWORD)
        set_store(root, f"  type: postgres\n  url: postgresql://{role}:${{FH_PG_PASSWORD}}@{parts.hostname}:"
                        f"{parts.port or 5432}/test\n  schema: {schema}\n")
        store = FeatureStore(root)
        report = sync(store)
        assert report.written > 0
        response = online_values(store, ["stats:trips"], {"driver_id": [1, 2]})
        assert response.statuses["trips"] == ["PRESENT", "PRESENT"]

        runner = CliRunner()
        outputs = []
        for args in (["sync"], ["get-online-features", "-f", "stats:trips", "-e", "driver_id=1"],
                     ["describe", "stats"], ["describe", "stats", "--json"], ["check", "--views", "stats"]):
            result = runner.invoke(main, ["--repo", str(root), *args])
            outputs.append(result.output)
            assert result.exit_code in (0, 1), result.output
        assert json.loads(outputs[1])["trips"][0] is not None

        # an unreachable database: the error names host and database, never the password
        set_store(root, f"  type: postgres\n  url: postgresql://{role}:${{FH_PG_PASSWORD}}@{parts.hostname}:"
                        f"{parts.port or 5432}/no_such_db_{uuid.uuid4().hex[:6]}\n  schema: {schema}\n")
        for args in (["sync"], ["get-online-features", "-f", "stats:trips", "-e", "driver_id=1"], ["describe", "stats"]):
            result = runner.invoke(main, ["--repo", str(root), *args])
            outputs.append(result.output)
        assert "no_such_db" in outputs[-3] and outputs[-3].startswith("Error: ")
        assert len(outputs[-3].strip().splitlines()) == 1
        for text in outputs:
            assert PASSWORD not in text and "Sup3r" not in text and "Secret" not in text, text
    finally:
        drop_store("postgres", postgres_url, schema)
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(f"REVOKE CREATE ON DATABASE test FROM {role}")
            con.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.redis
def test_a_redis_password_is_never_printed(tmp_path, monkeypatch, redis_url):
    from urllib.parse import urlsplit

    parts = urlsplit(redis_url)
    root = build_repo(tmp_path, range(1, 3), "  type: sqlite\n  path: data/online.db\n")
    monkeypatch.setenv("FH_REDIS_PASSWORD", PASSWORD)
    # this server has no password: AUTH fails, and the message must not echo it
    set_store(root, f"  type: redis\n  url: redis://someone:${{FH_REDIS_PASSWORD}}@{parts.hostname}:{parts.port}/0\n")
    result = CliRunner().invoke(main, ["--repo", str(root), "sync"])
    assert result.exit_code == 1 and result.output.startswith("Error: ")
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Sup3r" not in result.output and "Secret" not in result.output
