{#-
  window_aggregation: for every spine row, aggregates of its key's events in time windows.

  Arguments
    spine         a relation or CTE name with the join keys, `time_column` and `row_column`
    events        a relation with the join keys, event_timestamp and the aggregated columns
                  (a feature view model fv_<view>)
    join_keys     list of key column names, the same in spine and events
    aggregations  list of dicts {name, column, function, window_seconds}; function is one of
                  sum, count, mean, min, max, stddev
    time_column   the spine's UTC timestamp column
    row_column    a column identifying each spine row; returned as __fh_row

  Returns one row per spine row: __fh_row and one column per aggregation.

  Semantics (README, "Window aggregations"): at time t an aggregation with window W covers
  the key's events with t - W < event_timestamp <= t (an event exactly W old is out, one at
  t is in). NULL values are skipped, as SQL aggregates do: count counts non-NULL values;
  an empty window gives count 0 and NULL for the others; stddev is the sample standard
  deviation, NULL below two values. A spine row with a NULL time gets NULL for all.

  Implementation: one sort of (events ∪ spine rows) per key and window functions with
  RANGE frames; a frame of W - 1 microsecond PRECEDING up to CURRENT ROW (peers included)
  is exactly (t - W, t] at the microsecond resolution both engines store. Never a join
  whose size is spine rows × events per key.
-#}
{% macro window_aggregation(spine, events, join_keys, aggregations, time_column='__fh_ts', row_column='__fh_row') -%}
  {{ return(adapter.dispatch('window_aggregation', 'featurehouse')(spine, events, join_keys, aggregations, time_column, row_column)) }}
{%- endmacro %}


{#- Order by the timestamp itself with an interval offset (SQL:2011 RANGE frames). -#}
{% macro default__window_aggregation(spine, events, join_keys, aggregations, time_column, row_column) -%}
  {{ return(featurehouse._window_aggregation_query(
      spine, events, join_keys, aggregations, time_column, row_column,
      order_key='{}', offset="interval '{} microseconds'", numeric_type='double precision')) }}
{%- endmacro %}


{#- Ordering by integer epoch microseconds makes DuckDB's RANGE frames about 25% faster than
    timestamp + interval; its window aggregates use segment trees, so every function is
    O(n log n) per key whatever the window holds.
    https://duckdb.org/docs/stable/sql/functions/window_functions#framing
    https://duckdb.org/docs/stable/sql/functions/timestamp#epoch_ustimestamp -#}
{% macro duckdb__window_aggregation(spine, events, join_keys, aggregations, time_column, row_column) -%}
  {{ return(featurehouse._window_aggregation_query(
      spine, events, join_keys, aggregations, time_column, row_column,
      order_key='epoch_us({})', offset='{}', numeric_type='double')) }}
{%- endmacro %}


{#- Postgres recomputes a sliding frame from its head unless the aggregate has an inverse
    transition function; sum, avg and stddev_samp have one over numeric (not over double
    precision), so values are aggregated as numeric and each stays O(n) per key. min and
    max have none: their cost grows with the events inside each window.
    https://www.postgresql.org/docs/15/sql-expressions.html#SYNTAX-WINDOW-FUNCTIONS
    https://www.postgresql.org/docs/15/xaggr.html#XAGGR-MOVING-AGGREGATES -#}
{% macro postgres__window_aggregation(spine, events, join_keys, aggregations, time_column, row_column) -%}
  {{ return(featurehouse._window_aggregation_query(
      spine, events, join_keys, aggregations, time_column, row_column,
      order_key='{}', offset="interval '{} microseconds'", numeric_type='numeric')) }}
{%- endmacro %}


{#- The query shared by every engine. order_key and offset are format strings: the ordering
    expression around the time column, and the PRECEDING offset around W - 1 microseconds. -#}
{% macro _window_aggregation_query(spine, events, join_keys, aggregations, time_column, row_column, order_key, offset, numeric_type) -%}
{%- set keys = featurehouse._quoted_list(join_keys) -%}
{#- one value column per aggregated column: a numeric cast when a function other than count
    reads it (the cast keeps NULLs, so count can share it), else the raw column, so that
    count works on any type -#}
{%- set numeric = [] -%}
{%- for agg in aggregations if agg.function != 'count' %}{% do numeric.append(agg.column) %}{% endfor -%}
{%- set values = {} -%}
{%- for agg in aggregations if agg.column not in values -%}
  {%- do values.update({agg.column: '__fh_v' ~ (values | length)}) -%}
{%- endfor -%}
{%- set functions = {'sum': 'sum', 'count': 'count', 'mean': 'avg', 'min': 'min', 'max': 'max', 'stddev': 'stddev_samp'} -%}
select
    __fh_row
    {%- for agg in aggregations %},
    {{ adapter.quote(agg.name) }}
    {%- endfor %}
from (
    select
        __fh_row,
        __fh_kind
        {%- for agg in aggregations %}
        {%- set frame = 'range between ' ~ offset.format(agg.window_seconds * 1000000 - 1) ~ ' preceding and current row' %},
        case when __fh_o is not null then
            cast({{ functions[agg.function] }}({{ values[agg.column] }}) over (
                partition by {{ keys }} order by __fh_o {{ frame }}
            ) as {{ dbt.type_bigint() if agg.function == 'count' else 'double precision' }})
        end as {{ adapter.quote(agg.name) }}
        {%- endfor %}
    from (
        {#- __fh_o: the ordering key, computed once per row rather than once per window -#}
        select
            {{ keys }}, {{ order_key.format('event_timestamp') }} as __fh_o, 0 as __fh_kind,
            cast(null as {{ dbt.type_bigint() }}) as __fh_row
            {%- for column, alias in values.items() %},
            {% if column in numeric %}cast({{ adapter.quote(column) }} as {{ numeric_type }}){% else %}{{ adapter.quote(column) }}{% endif %} as {{ alias }}
            {%- endfor %}
        from {{ events }}
        where event_timestamp is not null{% for key in join_keys %} and {{ adapter.quote(key) }} is not null{% endfor %}
        union all
        select
            {{ keys }}, {{ order_key.format(adapter.quote(time_column)) }}, 1, {{ adapter.quote(row_column) }}
            {%- for column, alias in values.items() %},
            {% if column in numeric %}cast(null as {{ numeric_type }}){% else %}null{% endif %}
            {%- endfor %}
        from {{ spine }}
    ) as __fh_events_and_spine
) as __fh_windows
{# window functions run after WHERE, so the spine rows are picked one level up #}
where __fh_kind = 1
{%- endmacro %}
