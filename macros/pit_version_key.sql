{#-
  pit_version_key(event_expression, created_expression): one value per (event, created)
  pair that sorts like the pair (a NULL created time sorts first), so that max() over it
  picks the newest version of a row. Used where a plain "last row" is not enough
  (filter_by_created_timestamp, whose rows arrive in visibility order).
-#}
{% macro pit_version_key(event_expression, created_expression) -%}
  {{ return(adapter.dispatch('pit_version_key', 'featurehouse')(event_expression, created_expression)) }}
{%- endmacro %}

{#- ANSI SQL: a TIMESTAMP(6) cast to text is the fixed-width 'YYYY-MM-DD HH:MM:SS.ffffff'
    (SQL:2016, 6.13 <cast specification>), so the concatenation sorts like the pair; digits
    and separators compare the same under every collation. Engines whose text form drops
    digits (trailing zeros, microseconds) override this below. Years 0001-9999. -#}
{% macro default__pit_version_key(event_expression, created_expression) -%}
  (cast({{ event_expression }} as varchar(26))
    || coalesce(cast({{ created_expression }} as varchar(26)), ''))
{%- endmacro %}

{#- Fixed-width text in byte order; microseconds kept. Years 0001-9999.
    https://www.postgresql.org/docs/15/functions-formatting.html -#}
{% macro postgres__pit_version_key(event_expression, created_expression) -%}
  ((to_char({{ event_expression }}, 'YYYYMMDDHH24MISSUS')
    || coalesce(to_char({{ created_expression }}, 'YYYYMMDDHH24MISSUS'), '')) collate "C")
{%- endmacro %}

{#- A number: event microseconds since 1970 in the high digits, the created time (shifted
    positive; a NULL created time is 0, the oldest) in the low 18. NUMBER(38, 0) holds it.
    https://docs.snowflake.com/en/sql-reference/functions-date-time#label-supported-date-time-parts -#}
{% macro snowflake__pit_version_key(event_expression, created_expression) -%}
  (cast(date_part(epoch_microsecond, {{ event_expression }}) as number(38, 0)) * 1000000000000000000
    + coalesce(date_part(epoch_microsecond, {{ created_expression }}) + 100000000000000000, 0))
{%- endmacro %}

{#- Fixed-width digits ('%E6S' is seconds with 6 decimals); strings compare byte-wise.
    https://cloud.google.com/bigquery/docs/reference/standard-sql/format-elements#format_elements_date_time -#}
{% macro bigquery__pit_version_key(event_expression, created_expression) -%}
  (format_timestamp('%Y%m%d%H%M%E6S', {{ event_expression }}, 'UTC')
    || coalesce(format_timestamp('%Y%m%d%H%M%E6S', {{ created_expression }}, 'UTC'), ''))
{%- endmacro %}

{#- Fixed-width digits ('%f' is 6 digits of microseconds); varchar compares byte-wise.
    https://trino.io/docs/current/functions/datetime.html#mysql-date-functions -#}
{% macro trino__pit_version_key(event_expression, created_expression) -%}
  (date_format({{ event_expression }}, '%Y%m%d%H%i%s%f')
    || coalesce(date_format({{ created_expression }}, '%Y%m%d%H%i%s%f'), ''))
{%- endmacro %}

{#- Structs compare field by field: https://duckdb.org/docs/stable/sql/data_types/struct -#}
{% macro duckdb__pit_version_key(event_expression, created_expression) -%}
  {'e': {{ event_expression }}, 'c': coalesce({{ created_expression }}, '-infinity'::timestamp)}
{%- endmacro %}

{#- Structs compare field by field, and max() takes them:
    https://spark.apache.org/docs/latest/sql-ref-datatypes.html -#}
{% macro spark__pit_version_key(event_expression, created_expression) -%}
  named_struct('e', {{ event_expression }}, 'c', coalesce({{ created_expression }}, timestamp'0001-01-01 00:00:00'))
{%- endmacro %}
