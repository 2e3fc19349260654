{#-
  utc_timestamp(expression): the instant `expression` names, as a timestamp without time
  zone in UTC. Naive timestamps are taken as UTC already; zoned ones are converted. This
  is how featurehouse stores every timestamp, whatever the session's time zone is.
-#}
{% macro utc_timestamp(expression) -%}
  {{ return(adapter.dispatch('utc_timestamp', 'featurehouse')(expression)) }}
{%- endmacro %}

{% macro default__utc_timestamp(expression) -%}
  cast({{ expression }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- epoch_us() reads the absolute instant of a TIMESTAMPTZ and the wall clock of a naive
    TIMESTAMP (taken as UTC), without consulting the session time zone. It has no overload
    for TIMESTAMPTZ_NS (pandas' zoned timestamps, and parquet files pandas wrote), so the
    branch is picked by type; typeof() is constant, DuckDB folds the CASE away, and each
    branch only runs for its own type (nanoseconds are floored to microseconds):
    https://duckdb.org/docs/stable/sql/functions/timestamp -#}
{% macro duckdb__utc_timestamp(expression) -%}
  {%- set ns = 'epoch_ns(' ~ expression ~ ')' -%}
  make_timestamp(case typeof({{ expression }})
      when 'TIMESTAMP WITH TIME ZONE' then epoch_us(({{ expression }})::timestamptz)
      when 'TIMESTAMPTZ_NS' then ({{ ns }} - ({{ ns }} % 1000 + 1000) % 1000) // 1000
      when 'TIMESTAMP_NS' then ({{ ns }} - ({{ ns }} % 1000 + 1000) % 1000) // 1000
      else epoch_us(({{ expression }})::timestamp) end)
{%- endmacro %}

{#- Both branches must type-check; each is only evaluated for its own input type.
    https://www.postgresql.org/docs/15/functions-datetime.html#FUNCTIONS-DATETIME-ZONECONVERT -#}
{% macro postgres__utc_timestamp(expression) -%}
  (case when pg_typeof({{ expression }}) = 'timestamp with time zone'::regtype
        then ({{ expression }})::timestamptz at time zone 'UTC'
        else ({{ expression }})::timestamp end)
{%- endmacro %}
