"""Spec compile never executes or renders anything a spec smuggles in (docs/decisions/0009).

1. No generated file holds a Jinja delimiter featurehouse did not put there, however the
   spec spelt it (escape strings, unicode escapes, dollar quoting, comments, file names).
2. Free text (descriptions, owners, tags) reaches schema.yml, which dbt renders: refused.
3. YAML alias bombs, recursion, deep nesting and huge files stop at once with one line.
4. Spec files that lead outside the repo are refused; bad input is echoed short and escaped.
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from featurehouse.compile import compiler
from featurehouse.cli.app import main
from featurehouse.errors import CompileError, FeaturehouseError, SpecError, excerpt
from featurehouse.spec.repo import load_repo
from featurehouse.spec.yaml_lines import load_yaml_with_lines
from support.repos import run_dbt, write_repo

SECRET = "s3cr3t-value-from-the-environment"
F = "feature_specs/s.yml"


def spec(expression: str = "trips * 2", *, description: str = "Trips.", owner: str = "ml@example.com",
         tags: str = "{team: growth}", extra: str = "") -> str:
    """One entity, a table source with declared columns, a view with an expression feature (line 17)."""
    return (
        "entities:\n"
        "  - {name: driver, join_keys: [driver_id]}\n"
        "sources:\n"
        "  - name: raw\n"
        "    table: main.raw_trips\n"
        "    timestamp_field: ts\n"
        "    columns: [driver_id, ts, trips, city]\n"
        "feature_views:\n"
        "  - name: trips\n"
        "    entities: [driver]\n"
        "    source: raw\n"
        f"    description: {description}\n"
        f"    owner: {owner}\n"
        f"    tags: {tags}\n"
        "    schema:\n"
        "      - {name: trips, dtype: int64}\n"
        f"      - {{name: derived, dtype: string, expression: {json.dumps(expression)}}}\n"
        + extra
    )


def repo_with(tmp_path: Path, text: str, name: str = "s.yml") -> Path:
    return write_repo(tmp_path / "repo", {name: text})


def compile_error(root: Path, dialect: str = "duckdb") -> str:
    with pytest.raises(FeaturehouseError) as caught:
        compiler.compile_repo(load_repo(root), dialect)
    return str(caught.value)


def no_opener(files: dict[str, str]) -> None:
    """No generated model holds spec-made Jinja: every Jinja name is featurehouse's own."""
    for name, text in files.items():
        compiler.check_generated_jinja(name, text)


# ---- 1. Jinja through string escapes --------------------------------------------------------------
SMUGGLED = [
    # sqlglot decodes these escapes when it writes the model: the raw text holds no braces
    ("hex escape", r"""E'\x7b\x7b run_query("create table main.pwned as select 42 as x") \x7d\x7d'"""),
    ("octal escape", r"E'\173\173 env_var(''S'') \175\175'"),
    ("half escaped", r"E'{\x7b env_var(''S'') }}'"),
    ("statement opener", r"E'\x7b% set x = run_query(''select 1'') %\x7d'"),
    ("comment opener", r"E'\x7b# hidden #\x7d'"),
    # written plainly, hidden in SQL syntax that survives into the model
    ("dollar quoting", "$$ {{ env_var('S') }} $$"),
    ("block comment", "trips /* {{ env_var('S') }} */"),
    ("line comment", "trips -- {# x"),
    ("plain string", "'{{ env_var(''S'') }}'"),
]


@pytest.mark.parametrize(("label", "expression", "dialect"), [
    *[(*s, d) for s in SMUGGLED for d in ("duckdb", "postgres")],
    # Postgres's sqlglot dialect decodes \u in escape strings (DuckDB's leaves it as text)
    ("unicode escape in an escape string", r"E'\u007b\u007b env_var(''S'') }}'", "postgres"),
], ids=lambda value: str(value)[:40])
def test_smuggled_jinja_in_an_expression_is_refused(tmp_path: Path, label: str, expression: str,
                                                     dialect: str) -> None:
    message = compile_error(repo_with(tmp_path, spec(expression)), dialect)
    assert message.startswith(f"{F}:17: feature view 'trips', feature 'derived': expression ")
    assert "Jinja" in message
    assert "\n" not in message


def test_yaml_escapes_are_decoded_before_the_check(tmp_path: Path) -> None:
    """YAML's own escapes ("\\x7b") are decoded by the loader: the check sees the braces."""
    text = spec().replace('"trips * 2"', '"\\x7b\\x7b env_var(\'S\') \\x7d\\x7d"')
    assert compile_error(repo_with(tmp_path, text)).startswith(
        f"{F}:17: feature view 'trips', feature 'derived': expression contains '{{{{'")


HARMLESS = [
    # what Jinja sees is the emitted characters: these never put two delimiter characters together
    ("concatenation", "'{' || '{' || ' x }}'", "duckdb"),
    ("concatenation", "'{' || '{' || ' x }}'", "postgres"),
    ("chr", "chr(123) || chr(123)", "duckdb"),
    ("chr", "chr(123) || chr(123)", "postgres"),
    ("closers only", "'}} %} #}'", "duckdb"),
    ("nested struct", "{'a': {'b': trips}}", "duckdb"),
    ("unicode escape string", r"U&'\007B\007B'", "postgres"),
    ("escapes that stay escapes", r"'\x7b\x7b'", "duckdb"),
    # sqlglot writes \u escapes as they are: the warehouse decodes them into data, not Jinja
    ("unicode escape in an escape string", r"E'\u007b\u007b x'", "duckdb"),
]


@pytest.mark.parametrize(("label", "expression", "dialect"), HARMLESS, ids=[f"{h[0]}-{h[2]}" for h in HARMLESS])
def test_lookalikes_compile_and_emit_no_jinja(tmp_path: Path, label: str, expression: str, dialect: str) -> None:
    files = compiler.compile_repo(load_repo(repo_with(tmp_path, spec(expression))), dialect)
    body = files["fv_trips.sql"]
    # the SQL after the model config (which on Postgres also names the index columns)
    assert compiler.jinja_opener(body.split(" }}\n\n", 1)[1].replace(
        "{{ featurehouse.utc_timestamp('\"ts\"') }}", "")) is None
    no_opener(files)


def test_a_placeholder_name_in_a_spec_is_not_replaced(tmp_path: Path) -> None:
    """featurehouse stands in for its own Jinja with placeholders; a spec naming one gets no Jinja."""
    text = spec("'__fh_jinja_0__' || __fh_jinja_1__").replace(
        "columns: [driver_id, ts, trips, city]", "columns: [driver_id, ts, trips, city, __fh_jinja_1__]")
    files = compiler.compile_repo(load_repo(repo_with(tmp_path, text)), "duckdb")
    line = next(x for x in files["fv_trips.sql"].splitlines() if '"derived"' in x)
    assert line.strip() == "CAST('__fh_jinja_0__' || \"__fh_jinja_1__\" AS TEXT) AS \"derived\""


def test_a_brace_next_to_featurehouse_jinja_is_refused() -> None:
    jinja = compiler._Jinja()
    jinja("{{ featurehouse.utc_timestamp('\"ts\"') }}")
    token = next(iter(jinja.snippets))
    with pytest.raises(CompileError, match="would contain '{{'"):
        jinja.substitute('SELECT {"' + token + '"', "feature view 'v'")


def test_a_file_name_with_jinja_is_refused(tmp_path: Path) -> None:
    """The spec's file name is written into the models' headers and schema.yml."""
    root = repo_with(tmp_path, spec(), name="{{ env_var('S') }}.yml")
    assert compile_error(root) == ("feature_specs/{{ env_var('S') }}.yml: the file name contains '{{', which dbt "
                                   "would render as Jinja; rename the file")


def test_a_file_name_with_a_newline_is_refused(tmp_path: Path) -> None:
    """The file name goes into each model's header comment: a newline would end the comment."""
    root = repo_with(tmp_path, spec(), name="s\nselect 1; drop table raw_trips; --.yml")
    assert compile_error(root) == ("'feature_specs/s\\nselect 1; drop table raw_trips; --.yml': the file name "
                                   "contains a newline or another control character; rename the file")


@pytest.mark.parametrize("text", [
    "{{ config(materialized='table') }}\nselect {{ run_query('drop table x') }}",
    "{{ config(materialized='table') }}\nselect '{{ env_var(\"S\") }}'",
    "{{ config(materialized='table') }}\n-- {# a comment #}\nselect 1",
    "{{ config(materialized='table', post_hook=\"{{ run_query('x') }}\") }}\nselect 1",
    "{% set x = 1 %}select 1",
])
def test_the_last_check_refuses_jinja_featurehouse_does_not_write(text: str) -> None:
    with pytest.raises(CompileError, match="fv_x.sql:"):
        compiler.check_generated_jinja("fv_x.sql", text)


@pytest.mark.parametrize("text", [
    'version: 2\nmodels: [{name: m, description: "\\x7b\\x7b env_var(\'S\') }}"}]\n',
    "version: 2\nmodels: [{name: m, config: {meta: {'{% if x %}': 1}}}]\n",
])
def test_the_last_check_reads_schema_yml_as_dbt_does(text: str) -> None:
    with pytest.raises(CompileError, match="schema.yml would contain"):
        compiler.check_generated_jinja("schema.yml", text)


def test_every_generated_file_of_the_example_repo_passes_the_last_check() -> None:
    checkout = Path(__file__).resolve().parent.parent.parent
    files = compiler.compile_repo(load_repo(checkout), "duckdb")
    assert any(name.startswith("online_") for name in files)  # incremental config and post_hook included
    no_opener(files)


def test_a_smuggled_run_query_never_reaches_dbt(tmp_path: Path) -> None:
    """The issue's payload: compile refuses it, leaves the models as they were, and dbt runs nothing."""
    import duckdb

    root = repo_with(tmp_path, spec())
    with duckdb.connect(str(root / "data" / "warehouse.duckdb")) as con:
        con.execute("create table raw_trips as select 1::bigint as driver_id, timestamp '2026-01-01' as ts, "
                    "3::bigint as trips, 'x' as city")
    assert CliRunner().invoke(main, ["--repo", str(root), "compile"]).exit_code == 0
    before = {p.name: p.read_text() for p in (root / "models" / "featurehouse").iterdir()}
    hostile = r"""E'\x7b\x7b run_query("create table main.pwned as select 42 as x") \x7d\x7d'"""
    (root / "feature_specs" / "s.yml").write_text(spec(hostile))
    result = CliRunner().invoke(main, ["--repo", str(root), "compile"])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {F}:17: feature view 'trips', feature 'derived': expression ")
    assert {p.name: p.read_text() for p in (root / "models" / "featurehouse").iterdir()} == before
    run_dbt(root, "build")
    # a plain connection: dbt, in this process, holds the file open
    with duckdb.connect(str(root / "data" / "warehouse.duckdb")) as con:
        tables = {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}
    assert "pwned" not in tables and "fv_trips" in tables


# ---- 2. Jinja in metadata -------------------------------------------------------------------------
FREE_TEXT = [
    # (where, how to put the value there, line, field as the message names it)
    ("view description", lambda v: spec(description=v), 12, "feature view 'trips': description"),
    ("view owner", lambda v: spec(owner=v), 13, "feature view 'trips': owner"),
    ("view tag value", lambda v: spec(tags="{team: %s}" % v), 14, "feature view 'trips': tags.team"),
    ("feature description", lambda v: spec().replace("{name: trips, dtype: int64}",
                                                     "{name: trips, dtype: int64, description: %s}" % v),
     16, "feature view 'trips', feature 'trips': description"),
    ("feature tag", lambda v: spec().replace("{name: trips, dtype: int64}",
                                             "{name: trips, dtype: int64, tags: {a: %s}}" % v),
     16, "feature view 'trips', feature 'trips': tags.a"),
    ("entity description", lambda v: spec().replace("join_keys: [driver_id]}", "join_keys: [driver_id], "
                                                    "description: %s}" % v), 2, "entity 'driver': description"),
    ("source description", lambda v: spec().replace("    table: main.raw_trips\n",
                                                    "    table: main.raw_trips\n    description: %s\n" % v),
     6, "source 'raw': description"),
    ("service description and owner", lambda v: spec(extra="feature_services:\n  - name: svc\n"
                                                     "    features: [trips]\n    owner: %s\n" % v),
     21, "feature service 'svc': owner"),
    ("training set description", lambda v: spec(extra="training_sets:\n  - name: ts\n    spine: {ref: labels}\n"
                                                "    features: [trips]\n    description: %s\n" % v),
     22, "training set 'ts': description"),
]
HOSTILE_VALUES = [
    "\"{{ env_var('SECRET') }}\"",
    "\"{% if env_var('SECRET') %}x{% endif %}\"",
    "\"{# hidden #}\"",
    "\"\\x7b\\x7b env_var('SECRET') \\x7d\\x7d\"",  # YAML's escapes: decoded by the loader
]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize(("where", "build", "line", "field"), FREE_TEXT, ids=[f[0] for f in FREE_TEXT])
def test_jinja_in_free_text_is_refused(tmp_path: Path, where: str, build, line: int, field: str, value: str) -> None:
    message = compile_error(repo_with(tmp_path, build(value)))
    assert message.startswith(f"{F}:{line}: {field} contains '"), message
    assert "which dbt would render as Jinja" in message


def test_jinja_in_a_tag_key_is_refused(tmp_path: Path) -> None:
    message = compile_error(repo_with(tmp_path, spec(tags="{\"{{ env_var('SECRET') }}\": x}")))
    assert message.startswith(f"{F}:14: feature view 'trips': tags: the key \"{{{{ env_var('SECRET') }}}}\" "
                              "contains '{{'")


def test_free_text_that_slips_past_the_loader_is_stopped_by_the_compiler(tmp_path: Path) -> None:
    """Specs built in Python skip the YAML check: the compiler's check of schema.yml still holds."""
    repo = load_repo(repo_with(tmp_path, spec()))
    view = repo.feature_views["trips"]
    repo.feature_views["trips"] = view.model_copy(update={"owner": "{{ env_var('SECRET') }}"})
    with pytest.raises(CompileError, match="schema.yml would contain '{{'"):
        compiler.compile_repo(repo, "duckdb")


def test_dbt_shows_lookalike_text_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Braces that open nothing pass, and dbt keeps them as text: the secret never reaches the manifest."""
    import duckdb

    monkeypatch.setenv("SECRET", SECRET)
    description = "\"Braces { { env_var('SECRET') } } and closers }} %} #} stay text.\""
    owner = "\"{ {env_var('SECRET')} }\""
    text = spec("'{' || '{' || ' env_var(''SECRET'') }}'", description=description, owner=owner,
                tags="{team: \"}}%}\"}")
    root = repo_with(tmp_path, text)
    with duckdb.connect(str(root / "data" / "warehouse.duckdb")) as con:
        con.execute("create table raw_trips as select 1::bigint as driver_id, timestamp '2026-01-01' as ts, "
                    "3::bigint as trips, 'x' as city")
    assert CliRunner().invoke(main, ["--repo", str(root), "compile"]).exit_code == 0
    run_dbt(root, "build", "-s", "fv_trips")
    manifest = (root / "target" / "manifest.json").read_text()
    assert SECRET not in manifest
    node = json.loads(manifest)["nodes"]["model.test_repo.fv_trips"]
    assert node["description"] == "Braces { { env_var('SECRET') } } and closers }} %} #} stay text."
    assert node["meta"]["owner"] == "{ {env_var('SECRET')} }"
    assert "team:}}%}" in node["tags"]
    # a plain connection: dbt, in this process, holds the file open
    with duckdb.connect(str(root / "data" / "warehouse.duckdb")) as con:
        assert con.execute("select derived from fv_trips").fetchone()[0] == "{{ env_var('SECRET') }}"


# ---- 3. YAML alias bombs and other expensive YAML ------------------------------------------------
def billion_laughs(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_stops_at_once_with_one_line(tmp_path: Path) -> None:
    """Nine levels of nine: 387 million values once expanded (a minute and gigabytes before)."""
    root = repo_with(tmp_path, billion_laughs())
    started = time.perf_counter()
    message = compile_error(root)
    assert time.perf_counter() - started < 1.0  # about 0.05 s
    assert message.startswith(f"{F}:") and "aliases (*name) and merge keys (<<) expand to too many values" in message
    tracemalloc.start()  # measured apart: tracing makes the loader ~5x slower
    try:
        compile_error(root)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024  # about 8 MB


def test_a_merge_key_bomb_stops_too(tmp_path: Path) -> None:
    lines = ["m0: &m0 {k0: 1}"]
    for level in range(1, 30):
        lines.append(f"m{level}: &m{level} {{<<: [*m{level - 1}, *m{level - 1}], k{level}: 1}}")
    started = time.perf_counter()
    message = compile_error(repo_with(tmp_path, "\n".join(lines) + "\n"))
    assert time.perf_counter() - started < 1.0
    assert "expand to too many values" in message


def test_shared_defaults_still_work(tmp_path: Path) -> None:
    """Aliases and merge keys in ordinary use (300 views sharing defaults) stay well inside the bound."""
    views = "".join(f"  - <<: *view\n    name: v{i}\n    schema: [{{name: trips, dtype: int64}}]\n"
                    for i in range(300))
    path = tmp_path / "shared.yml"
    path.write_text("defaults: &view {entities: [driver], source: raw, owner: team, tags: {team: growth}}\n"
                    "feature_views:\n" + views)
    data, lines = load_yaml_with_lines(path)
    assert len(data["feature_views"]) == 300
    assert data["feature_views"][299] == {"entities": ["driver"], "source": "raw", "owner": "team",
                                          "tags": {"team": "growth"}, "name": "v299",
                                          "schema": [{"name": "trips", "dtype": "int64"}]}
    assert lines.line(("feature_views", 299, "name")) == 4 + 3 * 299


@pytest.mark.parametrize(("text", "expected"), [
    ("a: &a [*a]\n", f"{F}:1: an alias (*name) is used inside the value it names, which would never end"),
    ("a: &a {<<: *a}\n", f"{F}:1: a merge key (<<) merges a mapping into itself"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", f"{F}:1: values are nested more than 64 levels deep"),
    ("a:\n" + "".join(" " * (i + 2) + f"k{i}:\n" for i in range(200)), f"{F}:64: values are nested more than 64 "
     "levels deep"),
    ("ttl: " + "9" * 5000 + "\n", f"{F}:1: cannot read the value '" + "9" * 56 + "...: Exceeds the limit "),
    ("ttl: 2026-13-45\n", f"{F}:1: cannot read the value '2026-13-45': month must be in 1..12; quote it"),
])
def test_expensive_or_broken_yaml_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    started = time.perf_counter()
    message = compile_error(repo_with(tmp_path, text))
    assert time.perf_counter() - started < 2.0
    assert message.startswith(expected), message
    assert "\n" not in message


def test_a_huge_spec_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    root = repo_with(tmp_path, "")
    with (root / "feature_specs" / "s.yml").open("w") as file:
        file.write("# " + "x" * (9 * 1024 * 1024) + "\n")
    assert compile_error(root) == f"{F}: the file is larger than 8 MB; split it into several spec files"


# ---- 4. Reading outside the repo; echoing input -----------------------------------------------------
def test_a_spec_that_links_outside_the_repo_is_refused_unread(tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text(f"root:$6${SECRET}:19000:0:99999:7:::\n")
    root = repo_with(tmp_path, spec())
    os.symlink(secret, root / "feature_specs" / "z.yml")
    message = compile_error(root)
    assert message.startswith("feature_specs/z.yml: this file is a link to a file outside the feature repo")
    assert SECRET not in message and "root:" not in message


def test_a_config_that_links_outside_the_repo_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.yml"
    outside.write_text("project: x\n")
    root = repo_with(tmp_path, spec())
    (root / "featurehouse.yml").unlink()
    os.symlink(outside, root / "featurehouse.yml")
    assert compile_error(root).startswith("featurehouse.yml: this file is a link to a file outside the feature repo")


def test_a_folder_link_out_of_the_specs_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (elsewhere / "passwd.yml").write_text(f"x: {SECRET}\n")
    root = repo_with(tmp_path, spec())
    os.symlink(elsewhere, root / "feature_specs" / "more")
    try:
        repo = load_repo(root)  # a linked folder is not walked: nothing from it is read
    except SpecError as error:
        assert "outside the feature repo" in str(error) and SECRET not in str(error)
    else:
        assert [p.name for p in repo.spec_files] == ["s.yml"]


def test_links_inside_the_repo_still_work(tmp_path: Path) -> None:
    root = repo_with(tmp_path, "")
    (root / "shared.yml").write_text(spec())
    (root / "feature_specs" / "s.yml").unlink()
    os.symlink(root / "shared.yml", root / "feature_specs" / "s.yml")
    assert "trips" in load_repo(root).feature_views


@pytest.mark.parametrize(("text", "field"), [
    (spec().replace("dtype: int64}", "dtype: \"int64\\n\\e[31m" + "x" * 5000 + "\"}"), "dtype"),
    (spec().replace("name: driver,", "name: \"driver\\r\\n" + "y" * 5000 + "\","), "name"),
    (spec().replace("    owner:", "    ttl: \"" + "9" * 5000 + "\\nday\"\n    owner:"), "ttl"),
    (spec().replace("    owner:", "    \"own\\ner\\e[2J" + "z" * 500 + "\": 1\n    owner:"), "unknown field"),
    (spec().replace("name: driver,", "name: \"" + "a-" * 3000 + "\","), "name"),
])
def test_bad_input_is_echoed_short_and_escaped(tmp_path: Path, text: str, field: str) -> None:
    message = compile_error(repo_with(tmp_path, text))
    assert field in message
    assert message.isprintable(), message  # no newline, no terminal escape
    assert len(message) < 400, message
    assert not any(c * 61 in message for c in "xyz9") and "a_" * 31 not in message


def test_excerpt() -> None:
    assert excerpt("abc") == "'abc'"
    assert excerpt("a\nb\x1b[31m") == "'a\\nb\\x1b[31m'"
    long = excerpt("z" * 1000)
    assert len(long) == 60 and long.endswith("...")
    nested: list = []
    nested.append(nested)
    assert len(excerpt([nested] * 1000)) <= 60


def test_a_spec_error_is_always_one_line() -> None:
    error = SpecError("bad value 'a\nb'" + "q" * 5000, "f.yml", 3)
    assert str(error).isprintable() and len(str(error)) < 1100


def test_schema_yml_round_trips_through_yaml(tmp_path: Path) -> None:
    """What dbt reads is what featurehouse meant: free text survives YAML as written."""
    text = spec(description="\"multi\\nline { { text } } with: colons and 'quotes'\"")
    files = compiler.compile_repo(load_repo(repo_with(tmp_path, text)), "duckdb")
    model = next(m for m in yaml.safe_load(files["schema.yml"])["models"] if m["name"] == "fv_trips")
    assert model["description"] == "multi\nline { { text } } with: colons and 'quotes'"
