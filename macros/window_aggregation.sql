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
  microsecond resolution both engines store. DuckDB: positions instead of RANGE searches,
  then ROWS frames (see duckdb__window_aggregation).
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


{#- DuckDB: no RANGE frame at all. A RANGE frame costs a search per row and function, for
    every row of the union (events too), and made up ~80% of the time with 9 outputs.
    Instead, the events are numbered per key in time order (1..N), and every spine row learns,
    for each window, which numbers its window covers:
    1. positions: each spine row becomes probe rows at t and at t - W for every window;
       sorted with the events by (time, events before probes at the same instant), a probe's
       rank minus its rank among the probes alone is C(x), the number of the key's events
       with event_timestamp <= x. The events in (t - W, t] are then numbers C(t - W) + 1 ..
       C(t). With one aggregated column (events whose columns are all NULL are dropped),
       count = C(t) - C(t - W) exactly and mean = sum / count; otherwise they are framed too.
    2. values: spine rows first (numbered j = 1..M per key), then the events in time order;
       each function runs over the ROWS frame that holds the window's events (offsets are
       per-row columns), computed from the values in the frame (segment trees), never as a
       difference of running totals, so sums stay as exact as a plain sum.
    Two sorts of the union and one of the probes, rank/row_number (cheap) and one framed
    function per output other than count; never a join of spine rows x events.
    https://duckdb.org/docs/stable/sql/functions/window_functions#framing -#}
{% macro duckdb__window_aggregation(spine, events, join_keys, aggregations, time_column, row_column) -%}
{%- set keys = featurehouse._quoted_list(join_keys) -%}
{%- set time = adapter.quote(time_column) -%}
{%- set inputs = featurehouse._aggregation_inputs(aggregations) -%}
{%- set numeric, values, functions = inputs['numeric'], inputs['values'], inputs['functions'] -%}
{#- events whose aggregated columns are all NULL count for nothing; with one aggregated
    column, every event left has a value, so its count is the number of events in the window -#}
{%- set counted = values | length == 1 -%}
{%- set windows = [] -%}
{%- for agg in aggregations if agg.window_seconds not in windows %}{% do windows.append(agg.window_seconds) %}{% endfor -%}
{#- framed: pass-2 column -> {function, value, window number (1-based; 0 is the probe at t)};
    outputs: the expression of each aggregation over them -#}
{%- set framed = {} -%}
{%- set outputs = [] -%}
{%- for agg in aggregations -%}
  {%- set w = windows.index(agg.window_seconds) + 1 -%}
  {%- set v = values[agg.column] -%}
  {%- set events_in_window = '__fh_c0 - __fh_c' ~ w -%}
  {%- if agg.function == 'count' and counted -%}
    {%- do outputs.append(events_in_window) -%}
  {%- elif agg.function == 'mean' and counted -%}
    {%- do framed.update({v ~ '_sum_w' ~ w: {'function': 'sum', 'value': v, 'window': w}}) -%}
    {%- do outputs.append(v ~ '_sum_w' ~ w ~ ' / nullif(' ~ events_in_window ~ ', 0)') -%}
  {%- else -%}
    {%- set name = v ~ '_' ~ agg.function ~ '_w' ~ w -%}
    {%- do framed.update({name: {'function': functions[agg.function], 'value': v, 'window': w}}) -%}
    {%- do outputs.append(name) -%}
  {%- endif -%}
{%- endfor -%}
{%- set event_rows -%}
    select {{ keys }}, epoch_us(event_timestamp) as __fh_o
        {%- for column, alias in values.items() %},
        {% if column in numeric %}cast({{ adapter.quote(column) }} as double){% else %}{{ adapter.quote(column) }}{% endif %} as {{ alias }}
        {%- endfor %}
    from {{ events }}
    where event_timestamp is not null{% for key in join_keys %} and {{ adapter.quote(key) }} is not null{% endfor %}
      and ({% for column in values %}{{ adapter.quote(column) }} is not null{{ " or " if not loop.last }}{% endfor %})
{%- endset -%}
{%- set spine_rows -%}
    select {{ keys }}, epoch_us({{ time }}) as __fh_o, {{ adapter.quote(row_column) }} as __fh_row
    from {{ spine }}
    where {{ time }} is not null
{%- endset -%}
with __fh_positions as (
    {#- C(x) for every probe x of every spine row: its rank among events and probes (ordered by
        2 * time, + 1 for probes, so an event at x comes first) minus its rank among probes #}
    select __fh_row
        {%- for i in range(windows | length + 1) %},
        max(__fh_c) filter (where __fh_w = {{ i }}) as __fh_c{{ i }}
        {%- endfor %}
    from (
        select
            __fh_row, __fh_w,
            rank() over (partition by {{ keys }} order by __fh_o2) - __fh_probe_rank as __fh_c
        from (
            select {{ keys }}, 2 * __fh_o as __fh_o2, cast(null as bigint) as __fh_row,
                   cast(null as integer) as __fh_w, cast(null as bigint) as __fh_probe_rank
            from ({{ event_rows }}) as __fh_e
            union all
            select
                {{ keys }}, __fh_o2, __fh_row, __fh_w,
                rank() over (partition by {{ keys }} order by __fh_o2)
            from (
                select {{ keys }}, 2 * (__fh_o - __fh_w_us) + 1 as __fh_o2, __fh_row, __fh_w
                from ({{ spine_rows }}) as __fh_s
                cross join (values (0, 0){% for window in windows %}, ({{ loop.index }}, {{ window * 1000000 }}){% endfor %}) as __fh_probes(__fh_w, __fh_w_us)
            ) as __fh_probes
        ) as __fh_events_and_probes
    ) as __fh_ranked
    where __fh_row is not null
    group by __fh_row
)
{%- if framed %}
select
    __fh_row
    {%- for agg in aggregations %},
    cast({{ outputs[loop.index0] }} as {{ 'bigint' if agg.function == 'count' else 'double' }}) as {{ adapter.quote(agg.name) }}
    {%- endfor %}
from (
    {#- spine row j of M, then the events numbered 1..N: event i is M + i - j rows after spine
        row j, so window w's events C(t - W) + 1 .. C(t) are a ROWS frame of per-row offsets #}
    select
        __fh_row, __fh_kind, __fh_c0
        {%- for i in range(1, windows | length + 1) %}, __fh_c{{ i }}{% endfor %}
        {%- for name, f in framed.items() %},
        {{ f.function }}({{ f.value }}) over (
            partition by {{ keys }} order by __fh_kind, __fh_s
            rows between coalesce(__fh_m - __fh_s + __fh_c{{ f.window }} + 1, 0) following
                     and coalesce(__fh_m - __fh_s + __fh_c0, 0) following
        ) as {{ name }}
        {%- endfor %}
    from (
        select
            {{ keys }}, 0 as __fh_kind,
            row_number() over (partition by {{ keys }} order by __fh_row) as __fh_s,
            count(*) over (partition by {{ keys }}) as __fh_m,
            __fh_row
            {%- for i in range(windows | length + 1) %}, __fh_c{{ i }}{% endfor %}
            {%- for column, alias in values.items() %},
            {% if column in numeric %}cast(null as double){% else %}null{% endif %} as {{ alias }}
            {%- endfor %}
        from ({{ spine_rows }}) as __fh_s
        join __fh_positions using (__fh_row)
        union all
        select
            {{ keys }}, 1, __fh_o, null, null
            {%- for i in range(windows | length + 1) %}, null{% endfor %}
            {%- for alias in values.values() %}, {{ alias }}{% endfor %}
        from ({{ event_rows }}) as __fh_e
    ) as __fh_spine_then_events
) as __fh_windows
{#- window functions run after WHERE, so the spine rows are picked one level up #}
where __fh_kind = 0
{%- else %}
select
    __fh_row
    {%- for agg in aggregations %},
    cast({{ outputs[loop.index0] }} as bigint) as {{ adapter.quote(agg.name) }}
    {%- endfor %}
from __fh_positions
{%- endif %}
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
