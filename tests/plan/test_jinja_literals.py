"""The one serializer of macro arguments (featurehouse.plan.jinja): what it writes, Jinja reads back
as the same value, and it never writes a template delimiter."""

from __future__ import annotations

import math

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurehouse.plan.jinja import JinjaCode, jinja_call, jinja_literal, jinja_string, macro_call

DELIMITERS = ("{{", "}}", "{%", "%}", "{#", "#}")
ENV = jinja2.Environment()  # dbt renders with jinja2's lexer and parser


def read_back(text: str):
    return ENV.compile_expression(text)()


HOSTILE = [
    "it's", 'say "hi"', "back\\slash", "\\'", "{{ run_query('drop table x') }}", "{% if true %}x{% endif %}",
    "{# comment #}", "}}", "a\nb\r\tc", "nul\x00byte", "é ß 北京", "emoji 😀", "\u2028line", "'); drop --",
    "", " ", "%s %(x)s {0}",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_any_string_reads_back_unchanged_and_opens_no_template(value: str) -> None:
    text = jinja_string(value)
    assert read_back(text) == value
    assert not any(mark in text for mark in DELIMITERS), text
    assert text.isascii()


def test_plain_names_stay_single_quoted_as_the_generated_models_show_them() -> None:
    assert jinja_string("fv_driver_hourly_stats") == "'fv_driver_hourly_stats'"
    assert jinja_string('"driver_id"') == "'\"driver_id\"'"
    assert jinja_string("it's") == '"it\'s"'


def test_values_of_every_kind() -> None:
    value = {"name": "x", "keys": ["a", "b"], "ttl": 0, "rate": 0.25, "on": True, "off": False, "none": None,
             "nested": [{"k": ("t", 1)}]}
    text = jinja_literal(value)
    assert text.startswith("{'name': 'x', 'keys': ['a', 'b'], 'ttl': 0, 'rate': 0.25, 'on': true, 'off': false")
    assert read_back(text) == {**value, "nested": [{"k": ["t", 1]}]}


def test_a_dict_ending_in_a_dict_does_not_end_in_a_template_close() -> None:
    value = {"a": {"b": {}}}
    assert "}}" not in jinja_literal(value)
    assert read_back(jinja_literal(value)) == value


def test_jinja_code_is_copied_and_calls_are_serialized() -> None:
    assert jinja_literal({"relation": jinja_call("ref", "fv_x")}) == "{'relation': ref('fv_x')}"
    assert jinja_call("source", "raw", "it's") == "source('raw', \"it's\")"
    assert macro_call("featurehouse.m", {"relation": JinjaCode("this"), "keys": ["a"]}) == (
        "featurehouse.m(\n    relation=this,\n    keys=['a']\n)")


@pytest.mark.parametrize(("value", "error"), [
    ({1, 2}, TypeError), (object(), TypeError), ({1: "a"}, TypeError), (b"bytes", TypeError),
    (math.nan, ValueError), (math.inf, ValueError),
])
def test_a_value_the_macros_could_not_read_is_refused(value, error) -> None:
    with pytest.raises(error):
        jinja_literal(value)


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_every_value_reads_back_as_itself(value) -> None:
    text = jinja_literal(value)
    assert read_back(text) == value
    assert not any(mark in text for mark in DELIMITERS)
