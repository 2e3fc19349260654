{#-
  Postgres window aggregations (postgres__window_aggregation hands over here).

  sum, count, mean and stddev run as RANGE-framed window functions over numeric values
  (_window_aggregation_query): their aggregates have inverse transition functions, so a
  sliding frame costs O(1) per row. min and max have none: Postgres restarts them from the
  frame's head on every row, a cost that grows with the events inside each window.

  min and max therefore use time buckets of the window's width W (van Herk / Gil-Werman, by
  time instead of by position). Bucket b holds event times in [b*W, (b+1)*W). For a spine
  time t in bucket B, the window (t - W, t] is
      the events of bucket B - 1 after t - W    (a suffix of that bucket)
    ∪ the events of bucket B up to t            (a prefix of this bucket),
  and min over it is least(suffix min, prefix min) (least() skips NULLs, like min()). Both
  are running aggregates over a frame that starts at its partition's first row, which
  Postgres carries forward in O(1) per row: two sorts per window width, nothing that grows
  with the events inside a window.
  Microsecond epochs, floor division that also holds before 1970.

  The buckets cost two sorts of (events ∪ spine) per window width, where the RANGE frame
  costs about one event step per event in the window: measured on Postgres 15 (1M events,
  100k spine rows, max over 1h, 1d, 7d), buckets were ~3-5 s per window width, the RANGE
  frame ~0.14 s + 0.043 s per event in the window (per width, over those 1.1M rows): the
  buckets only win above roughly 100 events per key and window. So
  (_pg_extremes_plan) buckets are taken for a window whose estimated events per key exceed
  100 (pg_class.reltuples, pg_stats' n_distinct of the keys and the event_timestamp
  histogram's span; no statistics: the RANGE frame), and the dbt var
  featurehouse_pg_window_extremes (auto | range | buckets) forces one.
-#}
{% macro postgres_window_aggregation(spine, events, join_keys, aggregations, time_column, row_column) -%}
{%- set extremes = [] -%}
{%- set others = [] -%}
{%- set plans = {} -%}
{%- for agg in aggregations if agg.function in ['min', 'max'] and agg.window_seconds not in plans -%}
  {%- do plans.update({agg.window_seconds: featurehouse._pg_extremes_plan(events, join_keys, agg.window_seconds)}) -%}
{%- endfor -%}
{%- for agg in aggregations -%}
  {%- if agg.function in ['min', 'max'] and plans[agg.window_seconds] == 'buckets' -%}
    {%- do extremes.append(agg) -%}
  {%- else -%}
    {%- do others.append(agg) -%}
  {%- endif -%}
{%- endfor -%}
{%- if not extremes -%}
  {{ return(featurehouse._window_aggregation_query(
      spine, events, join_keys, aggregations, time_column, row_column,
      order_key='{}', offset="interval '{} microseconds'", numeric_type='numeric',
      result_type='double precision')) }}
{%- endif -%}
{%- set keys = featurehouse._quoted_list(join_keys) -%}
{%- set time = adapter.quote(time_column) -%}
{%- set columns = [] -%}
{%- for agg in extremes if agg.column not in columns %}{% do columns.append(agg.column) %}{% endfor -%}
{%- set widths = [] -%}
{%- for agg in extremes if agg.window_seconds not in widths %}{% do widths.append(agg.window_seconds) %}{% endfor -%}
with __fh_x_events as (
    select {{ keys }}, {{ featurehouse._pg_epoch_us('event_timestamp') }} as __fh_o
        {%- for column in columns %},
        cast({{ adapter.quote(column) }} as double precision) as __fh_x{{ loop.index0 }}
        {%- endfor %}
    from {{ events }}
    where event_timestamp is not null{% for key in join_keys %} and {{ adapter.quote(key) }} is not null{% endfor %}
)
, __fh_x_spine as (
    select {{ keys }}, {{ featurehouse._pg_epoch_us(time) }} as __fh_o, {{ adapter.quote(row_column) }} as __fh_row
    from {{ spine }}
    where {{ time }} is not null
)
{%- for width in widths %}
{%- set w = loop.index %}
{%- set us = width * 1000000 %}
{#- prefix: events of t's bucket up to t (an event at t first, so it counts) -#}
, __fh_x_pre{{ w }} as (
    select * from (
        select
            __fh_row, __fh_kind
            {%- for column in columns %},
            min(__fh_x{{ loop.index0 }}) over __fh_w as __fh_min{{ loop.index0 }},
            max(__fh_x{{ loop.index0 }}) over __fh_w as __fh_max{{ loop.index0 }}
            {%- endfor %}
        from (
            select {{ keys }}, __fh_o, 0 as __fh_kind, cast(null as bigint) as __fh_row
                {%- for column in columns %}, __fh_x{{ loop.index0 }}{% endfor %}
            from __fh_x_events
            union all
            select {{ keys }}, __fh_o, 1, __fh_row
                {%- for column in columns %}, cast(null as double precision){% endfor %}
            from __fh_x_spine
        ) as __fh_u
        window __fh_w as (
            partition by {{ keys }}, {{ featurehouse._pg_floor_div('__fh_o', us) }}
            order by __fh_o, __fh_kind rows between unbounded preceding and current row)
    ) as __fh_p
    where __fh_kind = 1
)
{#- suffix: events of the previous bucket after t - W; the probe at t - W comes before an
    event at exactly t - W in this descending order, so that event stays out -#}
, __fh_x_suf{{ w }} as (
    select * from (
        select
            __fh_row, __fh_kind
            {%- for column in columns %},
            min(__fh_x{{ loop.index0 }}) over __fh_w as __fh_min{{ loop.index0 }},
            max(__fh_x{{ loop.index0 }}) over __fh_w as __fh_max{{ loop.index0 }}
            {%- endfor %}
        from (
            select {{ keys }}, __fh_o, 1 as __fh_kind, cast(null as bigint) as __fh_row
                {%- for column in columns %}, __fh_x{{ loop.index0 }}{% endfor %}
            from __fh_x_events
            union all
            select {{ keys }}, __fh_o - {{ us }}, 0, __fh_row
                {%- for column in columns %}, cast(null as double precision){% endfor %}
            from __fh_x_spine
        ) as __fh_u
        window __fh_w as (
            partition by {{ keys }}, {{ featurehouse._pg_floor_div('__fh_o', us) }}
            order by __fh_o desc, __fh_kind rows between unbounded preceding and current row)
    ) as __fh_s
    where __fh_kind = 0
)
{%- endfor %}
{%- if others %}
, __fh_x_others as (
{{ featurehouse._window_aggregation_query(
      spine, events, join_keys, others, time_column, row_column,
      order_key='{}', offset="interval '{} microseconds'", numeric_type='numeric',
      result_type='double precision') }}
)
{%- endif %}
select
    __fh_all.__fh_row
    {%- for agg in aggregations %},
    {#- a min/max whose width keeps the RANGE frame (a mixed plan) is one of the others -#}
    {%- if agg in extremes %}
    {%- set w = widths.index(agg.window_seconds) + 1 %}
    {%- set c = columns.index(agg.column) %}
    {{ 'least' if agg.function == 'min' else 'greatest' }}(__fh_pre{{ w }}.__fh_{{ agg.function }}{{ c }}, __fh_suf{{ w }}.__fh_{{ agg.function }}{{ c }}) as {{ adapter.quote(agg.name) }}
    {%- else %}
    __fh_x_others.{{ adapter.quote(agg.name) }}
    {%- endif %}
    {%- endfor %}
from (select {{ adapter.quote(row_column) }} as __fh_row from {{ spine }}) as __fh_all
{%- for width in widths %}
left join __fh_x_pre{{ loop.index }} as __fh_pre{{ loop.index }} on __fh_pre{{ loop.index }}.__fh_row = __fh_all.__fh_row
left join __fh_x_suf{{ loop.index }} as __fh_suf{{ loop.index }} on __fh_suf{{ loop.index }}.__fh_row = __fh_all.__fh_row
{%- endfor %}
{%- if others %}
left join __fh_x_others on __fh_x_others.__fh_row = __fh_all.__fh_row
{%- endif %}
{%- endmacro %}


{#- microseconds since 1970 of a timestamp, exactly (extract returns numeric on Postgres 14+) -#}
{% macro _pg_epoch_us(expression) -%}
cast(extract(epoch from {{ expression }}) * 1000000 as bigint)
{%- endmacro %}

{#- floor(a / b) for a bigint a and a positive constant b; `/` truncates toward zero -#}
{% macro _pg_floor_div(a, b) -%}
(({{ a }} - ((({{ a }} % {{ b }}) + {{ b }}) % {{ b }})) / {{ b }})
{%- endmacro %}


{#- 'buckets' or 'range' for a min/max over a window of `window_seconds` (see the top). -#}
{% macro _pg_extremes_plan(events, join_keys, window_seconds) -%}
{%- set forced = var('featurehouse_pg_window_extremes', 'auto') -%}
{%- if forced not in ('auto', 'range', 'buckets') -%}
  {%- do exceptions.raise_compiler_error(
      "dbt var featurehouse_pg_window_extremes is '" ~ forced ~ "'; expected auto, range or buckets") -%}
{%- endif -%}
{%- if forced != 'auto' -%}{{ return(forced) }}{%- endif -%}
{%- if not execute or events is string -%}{{ return('range') }}{%- endif -%}
{%- set query -%}
    with t as (
        select c.reltuples::float8 as n
        from pg_catalog.pg_class as c join pg_catalog.pg_namespace as ns on ns.oid = c.relnamespace
        where ns.nspname = {{ featurehouse._pg_literal(events.schema) }}
          and c.relname = {{ featurehouse._pg_literal(events.identifier) }} and c.reltuples > 0
    ), s as (
        select attname, n_distinct::float8 as d, histogram_bounds::text as bounds
        from pg_catalog.pg_stats
        where schemaname = {{ featurehouse._pg_literal(events.schema) }}
          and tablename = {{ featurehouse._pg_literal(events.identifier) }}
    ), keys as (
        {#- distinct keys: the most selective key column (n_distinct < 0 is a fraction of the rows) -#}
        select max(case when s.d < 0 then -s.d * t.n else s.d end) as k
        from s, t where s.attname in ({% for key in join_keys %}{{ featurehouse._pg_literal(key) }}{{ ", " if not loop.last }}{% endfor %})
    ), span as (
        select extract(epoch from (b[array_upper(b, 1)] - b[1]))::float8 as seconds
        from (select bounds::timestamp[] as b from s where attname = 'event_timestamp' and bounds is not null) as h
    )
    select t.n / keys.k * least(1.0, {{ window_seconds }} / span.seconds)
    from t, keys, span where keys.k > 0 and span.seconds > 0
{%- endset -%}
{%- set found = run_query(query) -%}
{%- if found is none or found.rows | length == 0 or found.rows[0][0] is none -%}{{ return('range') }}{%- endif -%}
{{ return('buckets' if found.rows[0][0] > 100 else 'range') }}
{%- endmacro %}
