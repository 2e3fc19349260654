{#-
  add_seconds(expression, seconds): the timestamp `expression` moved by `seconds` (an
  integer, negative to go back), microseconds kept and NULL staying NULL. The ttl and
  window bounds of the point-in-time join and the snapshots use it.
-#}
{% macro add_seconds(expression, seconds) -%}
  {{ return(adapter.dispatch('add_seconds', 'featurehouse')(expression, seconds)) }}
{%- endmacro %}

{#- dbt's cross-database dateadd -#}
{% macro default__add_seconds(expression, seconds) -%}
  {{ dbt.dateadd('second', seconds, expression) }}
{%- endmacro %}

{#- dbt-spark's dateadd goes through unix seconds (microseconds are lost) and fails on a NULL
    time (assert_not_null); timestampadd keeps both:
    https://spark.apache.org/docs/latest/api/sql/index.html#timestampadd -#}
{% macro spark__add_seconds(expression, seconds) -%}
  timestampadd(SECOND, {{ seconds }}, {{ expression }})
{%- endmacro %}
