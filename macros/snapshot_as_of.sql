{#-
  snapshot_as_of: the instant the online snapshots (the online_<view> models built by
  latest_snapshot and window_aggregation_snapshot) are taken, as a naive UTC timestamp
  literal. One instant for every model of a dbt invocation:

  - the dbt var featurehouse_as_of when it is set, an ISO 8601 timestamp; without an
    offset it is UTC:  dbt build --vars '{featurehouse_as_of: "2026-01-01 12:00:00"}'
    ('2026-01-01T12:00:00Z' and '2026-01-01T14:00:00+02:00' name the same instant);
  - otherwise the moment the dbt invocation started (run_started_at, UTC).

  Setting the var rebuilds the snapshots as of a past instant (a backfill, a
  reproducible test); `featurehouse sync` then serves them as of that instant.
-#}
{% macro snapshot_as_of() -%}
  {{ return(adapter.dispatch('snapshot_as_of', 'featurehouse')()) }}
{%- endmacro %}


{% macro default__snapshot_as_of() -%}
{%- set fixed = var('featurehouse_as_of', none) -%}
{%- if fixed is none or (fixed | string | trim) == '' -%}
  {%- set moment = run_started_at -%}
{%- else -%}
  {%- set moment = featurehouse._parse_snapshot_as_of(fixed | string | trim) -%}
{%- endif -%}
cast('{{ moment.astimezone(modules.pytz.utc).strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}


{#- The var's text as an aware datetime; a YAML timestamp arrives here as its str(). -#}
{% macro _parse_snapshot_as_of(text) -%}
{%- set pattern = '^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$' -%}
{%- if not modules.re.match(pattern, text) -%}
  {{ exceptions.raise_compiler_error(
      "var featurehouse_as_of: expected an ISO 8601 timestamp such as '2026-01-01 12:00:00' (UTC) "
      ~ "or '2026-01-01T12:00:00+02:00', got '" ~ text ~ "'") }}
{%- endif -%}
{%- set moment = modules.datetime.datetime.fromisoformat(text) -%}
{%- if moment.tzinfo is none -%}
  {%- set moment = moment.replace(tzinfo=modules.pytz.utc) -%}
{%- endif -%}
{{ return(moment) }}
{%- endmacro %}
