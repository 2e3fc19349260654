{#-
  push_log(push_source, columns): the rows pushed offline to `push_source` (featurehouse
  push, POST /push with to=offline or online_and_offline), as a relation with `columns`
  ([name, type] pairs, the batch source's names). The feature view models read it beside
  their batch source (docs/decisions/0022-push-sources-and-offline-log.md). An empty log
  is an empty relation of the same columns, so a model builds before the first push.
-#}
{% macro push_log(push_source, columns) -%}
  {{ return(adapter.dispatch('push_log', 'featurehouse')(push_source, columns)) }}
{%- endmacro %}

{% macro default__push_log(push_source, columns) -%}
  (select {% for column in columns -%}
    cast(null as {{ column[1] }}) as {{ adapter.quote(column[0]) }}{{ ", " if not loop.last }}
  {%- endfor %} where 1 = 0) as fh_push_log
{%- endmacro %}

{#- One parquet file per pushed batch under data/push_log/<push_source>/, renamed into
    place whole; union_by_name: a column added to the schema later reads as NULL in older
    files. https://duckdb.org/docs/stable/data/parquet/overview -#}
{% macro duckdb__push_log(push_source, columns) -%}
  {%- set pattern = 'data/push_log/' ~ push_source ~ '/*.parquet' -%}
  {%- set found = namespace(files=0) -%}
  {%- if execute -%}
    {%- set result = run_query("select count(*) from glob('" ~ pattern ~ "')") -%}
    {%- set found.files = result.columns[0].values()[0] -%}
  {%- endif -%}
  {%- if found.files > 0 -%}
  (select {% for column in columns -%}
    cast({{ adapter.quote(column[0]) }} as {{ column[1] }}) as {{ adapter.quote(column[0]) }}{{ ", " if not loop.last }}
  {%- endfor %} from read_parquet('{{ pattern }}', union_by_name = true)) as fh_push_log
  {%- else -%}
  {{ featurehouse.default__push_log(push_source, columns) }}
  {%- endif -%}
{%- endmacro %}

{#- The table _fh_push_<push_source> in the target's schema, created by the first push.
    https://docs.getdbt.com/reference/dbt-jinja-functions/adapter#get_relation -#}
{% macro postgres__push_log(push_source, columns) -%}
  {%- set relation = none -%}
  {%- if execute -%}
    {%- set relation = adapter.get_relation(database=target.database, schema=target.schema,
                                            identifier='_fh_push_' ~ push_source) -%}
  {%- endif -%}
  {%- if relation is not none -%}
  (select {% for column in columns -%}
    cast({{ adapter.quote(column[0]) }} as {{ column[1] }}) as {{ adapter.quote(column[0]) }}{{ ", " if not loop.last }}
  {%- endfor %} from {{ relation }}) as fh_push_log
  {%- else -%}
  {{ featurehouse.default__push_log(push_source, columns) }}
  {%- endif -%}
{%- endmacro %}
