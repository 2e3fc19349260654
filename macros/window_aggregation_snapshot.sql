{#-
  window_aggregation_snapshot: the online snapshot of an aggregation view, one row per
  entity with its aggregates as of one instant.

  Arguments
    relation      the feature view model (fv_<view>)
    join_keys     list of key columns
    aggregations  as for window_aggregation: [{name, column, function, window_seconds}]
    as_of         a SQL timestamp expression (naive UTC); default: snapshot_as_of(), the
                  dbt var featurehouse_as_of when set (e.g. --vars '{featurehouse_as_of:
                  "2026-01-01 12:00:00"}'), otherwise the start of the dbt invocation
                  (run_started_at): the same instant as the latest_snapshot models

  Columns: the join keys, event_timestamp = created_timestamp = the as-of time, then the
  aggregates, exactly as point_in_time_join gives them for a spine row (keys, as-of time).
  Every entity with an event at or before the as-of time has a row, also when its windows
  are empty (count 0, others NULL), so that a sync overwrites aggregates that aged out.

  Its model is a table rebuilt by every run, not incremental like the latest snapshots
  (incremental_latest_snapshot): each window ends at the as-of time, so when it moves every
  entity's aggregates can change, events leaving the windows, without any new row; every
  row would be recomputed and rewritten anyway. docs/decisions/0006.
-#}
{% macro window_aggregation_snapshot(relation, join_keys, aggregations, as_of=none) -%}
  {%- do featurehouse._check_aggregated_columns(relation, aggregations) -%}
  {{ return(adapter.dispatch('window_aggregation_snapshot', 'featurehouse')(relation, join_keys, aggregations, as_of)) }}
{%- endmacro %}


{#- Engines differ only inside window_aggregation, which this calls. -#}
{% macro default__window_aggregation_snapshot(relation, join_keys, aggregations, as_of) -%}
{%- set as_of = as_of or featurehouse.snapshot_as_of() -%}
{%- set keys = featurehouse._quoted_list(join_keys) -%}
{%- set widest = aggregations | map(attribute='window_seconds') | max -%}
with __fh_entities as (
    select
        {{ keys }},
        {{ as_of }} as __fh_ts,
        row_number() over (order by {{ keys }}) as __fh_row
    from (
        select distinct {{ keys }}
        from {{ relation }}
        where event_timestamp <= {{ as_of }}{% for key in join_keys %} and {{ adapter.quote(key) }} is not null{% endfor %}
    ) as __fh_keys
)
{#- only events inside the widest window can count: skip the rest of the history -#}
, __fh_recent as (
    select *
    from {{ relation }}
    where event_timestamp > {{ featurehouse.add_seconds(as_of, -1 * widest) }}
      and event_timestamp <= {{ as_of }}
)
, __fh_values as (
{{ featurehouse.window_aggregation('__fh_entities', '__fh_recent', join_keys, aggregations, '__fh_ts', '__fh_row') }}
)
select
    {%- for key in join_keys %}
    e.{{ adapter.quote(key) }},
    {%- endfor %}
    e.__fh_ts as event_timestamp,
    e.__fh_ts as created_timestamp
    {%- for agg in aggregations %},
    v.{{ adapter.quote(agg.name) }}
    {%- endfor %}
from __fh_entities as e
join __fh_values as v on v.__fh_row = e.__fh_row
{%- endmacro %}
