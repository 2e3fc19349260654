{#-
  Generic test vector_dimensions(model, column_name, dimensions, keys, view): the rows of a
  feature view model whose vector feature `column_name` does not have `dimensions` elements
  (NULL vectors pass: they are never searched). The compiler adds it to schema.yml for every
  feature with a `vector:` index. Besides returning the failing rows (for --store-failures),
  under `dbt build` / `dbt test` it names the first one: the view, its key values and the
  length found, so the failure says which document to fix without a second query.
  Arguments come under `arguments:` (dbt 1.10+) or as keywords (dbt 1.8, 1.9), as in
  no_full_ties.
-#}
{% test vector_dimensions(model, column_name, dimensions=none, keys=none, view=none, arguments=none) %}
  {{ return(adapter.dispatch('test_vector_dimensions', 'featurehouse')(model, column_name, dimensions, keys, view, arguments)) }}
{% endtest %}

{#- length_function: the number of elements of an array; ANSI cardinality() (Postgres, Trino,
    Spark): https://www.postgresql.org/docs/15/functions-array.html -#}
{% macro default__test_vector_dimensions(model, column_name, dimensions, keys, view, arguments, length_function='cardinality') %}
{%- set args = arguments if arguments is not none else {} -%}
{%- set dimensions = dimensions if dimensions is not none else args['dimensions'] -%}
{%- set keys = keys if keys is not none else args['keys'] -%}
{%- set view = view if view is not none else args['view'] -%}
{#- schema.yml marks the column quote: true, so dbt passes column_name quoted already -#}
{%- set length = length_function ~ '(' ~ column_name ~ ')' -%}
{%- set feature = column_name | replace('"', '') | replace('`', '') -%}
{%- set failing -%}
select
    {% for key in keys %}{{ adapter.quote(key) }}, {% endfor %}{{ length }} as vector_length
from {{ model }}
where {{ column_name }} is not null
  and ({{ length }} is null or {{ length }} <> {{ dimensions }})
{%- endset -%}
{%- if execute and flags.WHICH in ('build', 'test') and load_relation(model) is not none -%}
  {%- set found = run_query(failing ~ ' order by ' ~ (range(1, keys | length + 1) | join(', ')) ~ ' limit 1') -%}
  {%- if found.rows | length > 0 -%}
    {%- set row = found.rows[0] -%}
    {%- set shown = [] -%}
    {%- for key in keys -%}{%- do shown.append(key ~ '=' ~ row[loop.index0]) -%}{%- endfor -%}
    {{ exceptions.raise_compiler_error(
        "feature view '" ~ view ~ "': the vector feature '" ~ feature ~ "' of key (" ~ (shown | join(', '))
        ~ ") has " ~ row[keys | length] ~ " dimensions, but its spec declares vector.dimensions "
        ~ dimensions ~ "; fix the source rows or the spec") }}
  {%- endif -%}
{%- endif -%}
{{ failing }}
{% endmacro %}

{#- DuckDB's len() counts the elements of a LIST or ARRAY (cardinality() is for maps):
    https://duckdb.org/docs/stable/sql/functions/list -#}
{% macro duckdb__test_vector_dimensions(model, column_name, dimensions, keys, view, arguments) %}
  {{ return(featurehouse.default__test_vector_dimensions(model, column_name, dimensions, keys, view, arguments, length_function='len')) }}
{% endmacro %}
