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

  Semantics (docs/window-aggregations.md): at time t an aggregation with window W covers
  the key's events with t - W < event_timestamp <= t (an event exactly W old is out, one at
  t is in). NULL values are skipped, as SQL aggregates do: count counts non-NULL values;
  an empty window gives count 0 and NULL for the others; stddev is the sample standard
  deviation, NULL below two values. A spine row with a NULL time gets NULL for all.

  Implementation: sorts of (events ∪ spine rows) per key and window functions; never a
  join whose size is spine rows × events per key. Postgres (default): RANGE frames of
  W - 1 microsecond PRECEDING up to CURRENT ROW (peers included), exactly (t - W, t] at the
  microsecond resolution both engines store. DuckDB: the same frames, with the spine rows
  repeated once per window so that one framed function serves every window
  (see duckdb__window_aggregation).
-#}
{% macro window_aggregation(spine, events, join_keys, aggregations, time_column='__fh_ts', row_column='__fh_row') -%}
  {%- do featurehouse._check_aggregated_columns(events, aggregations) -%}
  {{ return(adapter.dispatch('window_aggregation', 'featurehouse')(spine, events, join_keys, aggregations, time_column, row_column)) }}
{%- endmacro %}


{#- Order by the timestamp itself with an interval offset (SQL:2011 RANGE frames), the
    offset an ANSI interval literal of W - 1 microseconds in seconds ('3599.999999'), the
    values dbt's float type. -#}
{% macro default__window_aggregation(spine, events, join_keys, aggregations, time_column, row_column) -%}
  {{ return(featurehouse._window_aggregation_query(
      spine, events, join_keys, aggregations, time_column, row_column,
      order_key='{}', offset="interval '{1}.{2:06d}' second", numeric_type=dbt.type_float())) }}
{%- endmacro %}


{#- DuckDB: one probe row per spine row and window, each with its own RANGE frame. DuckDB
    takes a frame offset from a column (one value per row), so the spine rows are repeated once
    per distinct window W with the offset W - 1 microseconds beside them, and sorted with the
    events by time, once. Each distinct (function, column) is one framed function over that
    union: a probe's frame holds the events of its window (and other probes, whose values are
    NULL, so every aggregate skips them, count included); an event's frame (offset 0) is its
    own instant, computed and thrown away. One pivot then puts each spine row's windows side
    by side. The sums come from DuckDB's segment trees over the values in the frame, never from
    a difference of running totals, so they stay as exact as a plain sum.
    Measured against the previous plan (positions from a rank of events and probes, then ROWS
    frames of one function per output): 5.3-5.8 s instead of 8.3-8.8 s for 9 outputs over 10M
    events and 1M spine rows (docs/decisions/0033-window-aggregations-per-row-frames.md).
    https://duckdb.org/docs/stable/sql/functions/window_functions#framing -#}
{% macro duckdb__window_aggregation(spine, events, join_keys, aggregations, time_column, row_column) -%}
{%- set keys = featurehouse._quoted_list(join_keys) -%}
{%- set time = adapter.quote(time_column) -%}
{%- set inputs = featurehouse._aggregation_inputs(aggregations) -%}
{%- set numeric, values, functions = inputs['numeric'], inputs['values'], inputs['functions'] -%}
{%- set windows = [] -%}
{%- for agg in aggregations if agg.window_seconds not in windows %}{% do windows.append(agg.window_seconds) %}{% endfor -%}
{#- framed: one column per distinct (function, column), named after both; sources: each
    aggregation's framed column -#}
{%- set framed = {} -%}
{%- set sources = [] -%}
{%- for agg in aggregations -%}
  {%- set name = values[agg.column] ~ '_' ~ agg.function -%}
  {%- do framed.update({name: functions[agg.function] ~ '(' ~ values[agg.column] ~ ')'}) -%}
  {%- do sources.append(name) -%}
{%- endfor -%}
select
    __fh_row
    {%- for agg in aggregations %},
    {%- set window = windows.index(agg.window_seconds) + 1 %}
    cast(max({{ sources[loop.index0] }}) filter (where __fh_w = {{ window }}) as {{ 'bigint' if agg.function == 'count' else 'double' }}) as {{ adapter.quote(agg.name) }}
    {%- endfor %}
from (
    select
        __fh_row, __fh_w
        {%- for name, call in framed.items() %},
        {{ call }} over __fh_frame as {{ name }}
        {%- endfor %}
    from (
        {#- events whose aggregated columns are all NULL count for nothing #}
        select
            {{ keys }}, epoch_us(event_timestamp) as __fh_o, cast(null as bigint) as __fh_row,
            cast(null as integer) as __fh_w, cast(0 as bigint) as __fh_back
            {%- for column, alias in values.items() %},
            {% if column in numeric %}cast({{ adapter.quote(column) }} as double){% else %}{{ adapter.quote(column) }}{% endif %} as {{ alias }}
            {%- endfor %}
        from {{ events }}
        where event_timestamp is not null{% for key in join_keys %} and {{ adapter.quote(key) }} is not null{% endfor %}
          and ({% for column in values %}{{ adapter.quote(column) }} is not null{{ " or " if not loop.last }}{% endfor %})
        union all
        {#- (t - W, t] at microsecond resolution: from W - 1 microseconds before t, peers of t included #}
        select
            {{ keys }}, epoch_us({{ time }}), {{ adapter.quote(row_column) }}, __fh_w, __fh_back
            {%- for column, alias in values.items() %},
            {% if column in numeric %}cast(null as double){% else %}null{% endif %}
            {%- endfor %}
        from {{ spine }}
        cross join (values {% for window in windows %}({{ loop.index }}, cast({{ window * 1000000 - 1 }} as bigint)){{ ", " if not loop.last }}{% endfor %}) as __fh_windows(__fh_w, __fh_back)
        where {{ time }} is not null
    ) as __fh_events_and_probes
    window __fh_frame as (partition by {{ keys }} order by __fh_o range between __fh_back preceding and current row)
) as __fh_framed
{#- window functions run after WHERE, so the probes are picked one level up #}
where __fh_row is not null
group by __fh_row
union all
{#- a spine row without a time has no window: NULL for every output, count included #}
select
    {{ adapter.quote(row_column) }}
    {%- for agg in aggregations %},
    cast(null as {{ 'bigint' if agg.function == 'count' else 'double' }})
    {%- endfor %}
from {{ spine }}
where {{ time }} is null
{%- endmacro %}


{#- Postgres recomputes a sliding frame from its head unless the aggregate has an inverse
    transition function; sum, avg and stddev_samp have one over numeric (not over double
    precision), so values are aggregated as numeric and each stays O(n) per key. min and
    max have none: they run as running aggregates over time buckets of the window's width
    instead (macros/postgres_window_aggregation.sql), so that their cost does not grow with
    the events inside each window.
    https://www.postgresql.org/docs/15/sql-expressions.html#SYNTAX-WINDOW-FUNCTIONS
    https://www.postgresql.org/docs/15/xaggr.html#XAGGR-MOVING-AGGREGATES -#}
{% macro postgres__window_aggregation(spine, events, join_keys, aggregations, time_column, row_column) -%}
  {{ return(featurehouse.postgres_window_aggregation(spine, events, join_keys, aggregations, time_column, row_column)) }}
{%- endmacro %}


{#- Spark: RANGE frames need a numeric (or date) ordering key, so times are ordered as
    microseconds since the epoch (unix_micros) and the frame is W - 1 of them PRECEDING:
    https://spark.apache.org/docs/latest/sql-ref-syntax-qry-select-window.html -#}
{% macro spark__window_aggregation(spine, events, join_keys, aggregations, time_column, row_column) -%}
  {{ return(featurehouse._window_aggregation_query(
      spine, events, join_keys, aggregations, time_column, row_column,
      order_key='unix_micros({})', offset='{}', numeric_type='double')) }}
{%- endmacro %}


{#- The query shared by every engine. order_key and offset are format strings: the ordering
    expression around the time column, and the PRECEDING offset around W - 1 microseconds
    ({0}; {1} and {2} are its whole seconds and the microseconds left). The values are cast
    to numeric_type, the outputs other than count to result_type (default: numeric_type). -#}
{% macro _window_aggregation_query(spine, events, join_keys, aggregations, time_column, row_column, order_key, offset, numeric_type, result_type=none) -%}
{%- set keys = featurehouse._quoted_list(join_keys) -%}
{%- set inputs = featurehouse._aggregation_inputs(aggregations) -%}
{%- set numeric, values, functions = inputs['numeric'], inputs['values'], inputs['functions'] -%}
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
        {%- set us = agg.window_seconds * 1000000 - 1 %}
        {%- set frame = 'range between ' ~ offset.format(us, us // 1000000, us % 1000000) ~ ' preceding and current row' %},
        case when __fh_o is not null then
            cast({{ functions[agg.function] }}({{ values[agg.column] }}) over (
                partition by {{ keys }} order by __fh_o {{ frame }}
            ) as {{ dbt.type_bigint() if agg.function == 'count' else (result_type or numeric_type) }})
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


{#- What both queries need to know of the aggregations: one value column per aggregated
    column (values: column -> alias __fh_v0, __fh_v1, ...); the columns a function other than
    count reads (numeric: they are cast to a number; the cast keeps NULLs, so count can share
    it, and a column only counted stays raw, so that count works on any type); and the SQL
    aggregate of each function. -#}
{% macro _aggregation_inputs(aggregations) -%}
{%- set numeric = [] -%}
{%- for agg in aggregations if agg.function != 'count' %}{% do numeric.append(agg.column) %}{% endfor -%}
{%- set values = {} -%}
{%- for agg in aggregations if agg.column not in values -%}
  {%- do values.update({agg.column: '__fh_v' ~ (values | length)}) -%}
{%- endfor -%}
{{ return({'numeric': numeric, 'values': values,
           'functions': {'sum': 'sum', 'count': 'count', 'mean': 'avg', 'min': 'min', 'max': 'max', 'stddev': 'stddev_samp'}}) }}
{%- endmacro %}


{#- A function other than count over a text column would fail deep inside the query
    ("could not convert string ... to double"), naming neither the aggregation nor the fix.
    The compiler checks file sources; a table's types are only known in the warehouse. A text
    column only fails on a value that is not a number, so one that holds none (all NULL, as
    an empty CSV column reads) still passes. Only a relation can be inspected (the snapshot
    passes a CTE and checks its model before), and only while dbt builds a model: the SDK
    renders with `dbt compile --inline` while it may hold the DuckDB file open, and a second
    connection to it would fail. -#}
{% macro _check_aggregated_columns(relation, aggregations) -%}
{%- if execute and relation is not string and model is defined and model.resource_type == 'model' -%}
  {%- set columns = {} -%}
  {%- for column in adapter.get_columns_in_relation(relation) %}{% do columns.update({column.name | lower: column}) %}{% endfor -%}
  {%- for agg in aggregations if agg.function != 'count' -%}
    {%- set column = columns.get(agg.column | lower) -%}
    {%- if column is not none and column.is_string() -%}
      {%- set quoted = adapter.quote(column.name) -%}
      {%- set found = run_query("select " ~ quoted ~ " from " ~ relation ~ " where "
                                ~ featurehouse._not_a_number(quoted) ~ " limit 1") -%}
      {%- if found.rows | length > 0 -%}
        {%- do exceptions.raise_compiler_error(
            "aggregation '" ~ agg.name ~ "' of " ~ relation.identifier ~ ": " ~ agg.function
            ~ " needs a numeric column, but '" ~ agg.column ~ "' is " ~ column.dtype ~ " (it holds '"
            ~ (found.rows[0][0] | string)[:40] ~ "'); only count works on any column (cast it in the source)") -%}
      {%- endif -%}
    {%- endif -%}
  {%- endfor -%}
{%- endif -%}
{%- endmacro %}


{#- SQL true for a text value the window macros could not cast to a number. -#}
{% macro _not_a_number(column) -%}
  {{ return(adapter.dispatch('_not_a_number', 'featurehouse')(column)) }}
{%- endmacro %}

{% macro default___not_a_number(column) -%}
  {{ return(column ~ " is not null") }}
{%- endmacro %}

{#- https://duckdb.org/docs/stable/sql/expressions/cast#try_cast -#}
{% macro duckdb___not_a_number(column) -%}
  {{ return(column ~ " is not null and try_cast(" ~ column ~ " as double) is null") }}
{%- endmacro %}

{#- https://spark.apache.org/docs/latest/api/sql/index.html#try_cast -#}
{% macro spark___not_a_number(column) -%}
  {{ return(column ~ " is not null and try_cast(" ~ column ~ " as double) is null") }}
{%- endmacro %}

{#- numeric's input syntax: https://www.postgresql.org/docs/15/datatype-numeric.html -#}
{% macro postgres___not_a_number(column) -%}
  {{ return(column ~ " is not null and " ~ column
            ~ " !~* '^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)(e[-+]?[0-9]+)?\\s*$'"
            ~ " and lower(trim(" ~ column ~ ")) not in ('nan', 'infinity', '+infinity', '-infinity', 'inf', '+inf', '-inf')") }}
{%- endmacro %}
