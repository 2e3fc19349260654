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
    TIMESTAMP (taken as UTC), without consulting the session time zone.
    https://duckdb.org/docs/stable/sql/functions/timestamp -#}
{% macro duckdb__utc_timestamp(expression) -%}
  make_timestamp(epoch_us({{ expression }}))
{%- endmacro %}

{#- Both branches must type-check; each is only evaluated for its own input type.
    https://www.postgresql.org/docs/15/functions-datetime.html#FUNCTIONS-DATETIME-ZONECONVERT -#}
{% macro postgres__utc_timestamp(expression) -%}
  (case when pg_typeof({{ expression }}) = 'timestamp with time zone'::regtype
        then ({{ expression }})::timestamptz at time zone 'UTC'
        else ({{ expression }})::timestamp end)
{%- endmacro %}
