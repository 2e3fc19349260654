{#-
  pit_version_key(event_expression, created_expression): one value per (event, created)
  pair that sorts like the pair (a NULL created time sorts first), so that max() over it
  picks the newest version of a row. Used where a plain "last row" is not enough
  (filter_by_created_timestamp, whose rows arrive in visibility order).
-#}
{% macro pit_version_key(event_expression, created_expression) -%}
  {{ return(adapter.dispatch('pit_version_key', 'featurehouse')(event_expression, created_expression)) }}
{%- endmacro %}

{#- Fixed-width text in byte order; microseconds kept. Years 0001-9999.
    https://www.postgresql.org/docs/15/functions-formatting.html -#}
{% macro default__pit_version_key(event_expression, created_expression) -%}
  ((to_char({{ event_expression }}, 'YYYYMMDDHH24MISSUS')
    || coalesce(to_char({{ created_expression }}, 'YYYYMMDDHH24MISSUS'), '')) collate "C")
{%- endmacro %}

{#- Structs compare field by field: https://duckdb.org/docs/stable/sql/data_types/struct -#}
{% macro duckdb__pit_version_key(event_expression, created_expression) -%}
  {'e': {{ event_expression }}, 'c': coalesce({{ created_expression }}, '-infinity'::timestamp)}
{%- endmacro %}
