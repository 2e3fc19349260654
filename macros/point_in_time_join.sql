{#-
  point_in_time_join: for every spine row, the features each view had at the row's time.

  Arguments
    spine             a relation (ref/source) or SQL text naming one (a quoted table name,
                      read_parquet(...)); its rows are kept once, in order, with all columns
    views             list of dicts, one per feature view:
                        name, relation, join_keys (list), features (requested, list of
                        {name, dtype}), all_features (every feature of the view in schema
                        order, for the full-tie rule; default: features), ttl_seconds
                        (0 = unlimited), filter_by_created (bool), prefix ('' or 'view__')
    timestamp_column  the spine's timestamp column (naive = UTC, zoned = converted to UTC)
    spine_columns     the spine's columns, in order; looked up from the relation when omitted
    order_column      a unique column giving the spine's order; without it the scan order is
                      numbered with row_number() over ()

  Semantics (README, "Point-in-time semantics"; tests/reference.py is the executable
  version, checked against every implementation below on DuckDB and Postgres). For a
  spine row with keys K and time t:
  - candidates: same K (a NULL key matches nothing), event_timestamp <= t, and with a
    ttl T > 0 event_timestamp >= t - T (both bounds inclusive);
  - filter_by_created: also created_timestamp <= t. A NULL created_timestamp passes: NULL
    created means "no record of when it was written", read as oldest, as in the tie-break;
  - winner: greatest event_timestamp, then greatest created_timestamp (NULL oldest), then,
    on a full tie, the row whose tuple of ALL the view's features (all_features, schema
    order; not only the requested ones) is greatest, NULL greater than any value, strings
    byte-wise (docs/decisions/0001-full-tie-rule.md);
  - no candidate, or a NULL spine time: the view's features are NULL.
  Floats that compare equal but differ (0.0 and -0.0) are the one full tie that is not
  resolved: either may come back.
-#}
{% macro point_in_time_join(spine, views, timestamp_column='event_timestamp', spine_columns=none, order_column=none) -%}
  {{ return(adapter.dispatch('point_in_time_join', 'featurehouse')(spine, views, timestamp_column, spine_columns, order_column)) }}
{%- endmacro %}


{#- Sort-based union + fill-forward: one sort of (spine ∪ feature rows) per key, never a join
    whose size grows with spine rows × history. Runs on any warehouse with window functions,
    and needs no IGNORE NULLS (Postgres 15 has none). -#}
{% macro default__point_in_time_join(spine, views, timestamp_column, spine_columns, order_column) -%}
{{ return(featurehouse._pit_sorted_join(spine, views, timestamp_column, spine_columns, order_column, {})) }}
{%- endmacro %}


{#- The sort-based join, where `probes` (view number -> a subquery) may replace a view's
    CTEs by a LEFT JOIN LATERAL on that subquery: the Postgres index probe
    (macros/postgres_point_in_time.sql); the default passes none. -#}
{% macro _pit_sorted_join(spine, views, timestamp_column, spine_columns, order_column, probes) -%}
{%- set row = order_column or '__fh_row' -%}
{%- set columns = spine_columns if spine_columns is not none else featurehouse._relation_columns(spine) -%}
{{ featurehouse._pit_spine_cte(spine, timestamp_column, order_column) }}
{%- for view in views %}
{%- if loop.index not in probes %}
{{ featurehouse._pit_view_ctes(view, loop.index, row) }}
{%- endif %}
{%- endfor %}
select
    {%- for column in columns %}
    s.{{ adapter.quote(column) }},
    {%- endfor %}
    {%- for view in views %}
    {%- set outer_loop = loop %}
    {%- for feature in view.features %}
    r{{ outer_loop.index }}.{{ adapter.quote(feature.name) }} as {{ adapter.quote(view.prefix ~ feature.name) }}{{ "," if not (outer_loop.last and loop.last) }}
    {%- endfor %}
    {%- endfor %}
from __fh_spine as s
{%- for view in views %}
{%- set i = loop.index %}
{%- if i in probes %}
left join lateral (
{{ probes[i] }}
) as r{{ i }} on true
{%- else %}
left join __fh_r{{ i }} as r{{ i }} on r{{ i }}.__fh_row = s.{{ row }}
{%- endif %}
{%- endfor %}
order by s.{{ row }}
{%- endmacro %}


{#- The spine with its UTC time (__fh_ts) and, without an order column, its scan order
    numbered (__fh_row): the first CTE of every join, named __fh_spine. -#}
{% macro _pit_spine_cte(spine, timestamp_column, order_column) -%}
with __fh_spine as (
    select
        *,
        {{ featurehouse.utc_timestamp(adapter.quote(timestamp_column)) }} as __fh_ts
        {%- if not order_column %},
        row_number() over () as __fh_row
        {%- endif %}
    from {{ spine }}
)
{%- endmacro %}


{#- A view's CTEs in the sort-based join, ending in __fh_r<i> (__fh_row + its features):
    window aggregations, the created-time filter's pass, or the fill-forward. -#}
{% macro _pit_view_ctes(view, i, row) -%}
{%- if view.get('aggregations') %}
{{- featurehouse._pit_aggregation_cte(view, i, row) }}
{%- elif view.filter_by_created %}
{{- featurehouse._pit_created_filter_ctes(view, i, row) }}
{%- else %}
{{- featurehouse._pit_fill_forward_ctes(view, i, row) }}
{%- endif %}
{%- endmacro %}


{#- The per-view CTEs of the fill-forward: number feature rows cumulatively in key order,
    so each spine row falls in the group headed by its winning feature row. -#}
{% macro _pit_fill_forward_ctes(view, i, row) -%}
{%- set keys = featurehouse._quoted_list(view.join_keys) -%}
{%- set tie_break = featurehouse._pit_tie_break(view) -%}
{%- set requested = view.features | map(attribute='name') | list -%}
{%- set carried = view.features | list -%}
{%- for feature in tie_break if feature.name not in requested %}{% do carried.append(feature) %}{% endfor -%}
, __fh_u{{ i }} as (
    select {{ keys }}, event_timestamp as __fh_t, 0 as __fh_kind, cast(null as {{ dbt.type_bigint() }}) as __fh_row,
           created_timestamp as __fh_c
           {%- for feature in carried %}, {{ adapter.quote(feature.name) }}{% endfor %}
    from {{ view.relation }}
    where event_timestamp is not null{% for key in view.join_keys %} and {{ adapter.quote(key) }} is not null{% endfor %}
    union all
    select {{ keys }}, __fh_ts, 1, {{ row }}, null
           {%- for feature in carried %}, null{% endfor %}
    from __fh_spine
)
, __fh_g{{ i }} as (
    select
        *,
        count(case when __fh_kind = 0 then 1 end) over (
            partition by {{ keys }}
            order by __fh_t, __fh_kind, __fh_c nulls first
                {%- for feature in tie_break %}, {{ featurehouse._pit_order_expression(adapter.quote(feature.name), feature.dtype) }} nulls last{% endfor %}
            rows between unbounded preceding and current row
        ) as __fh_grp
    from __fh_u{{ i }}
)
, __fh_p{{ i }} as (
    select
        __fh_row,
        __fh_kind,
        __fh_t,
        first_value(__fh_kind) over __fh_w as __fh_winner_kind,
        first_value(__fh_t) over __fh_w as __fh_e
        {%- for feature in view.features %},
        first_value({{ adapter.quote(feature.name) }}) over __fh_w as {{ adapter.quote(feature.name) }}
        {%- endfor %}
    from __fh_g{{ i }}
    window __fh_w as (partition by {{ keys }}, __fh_grp order by __fh_kind rows between unbounded preceding and current row)
)
, __fh_r{{ i }} as (
    select
        __fh_row
        {%- for feature in view.features %},
        case when __fh_winner_kind = 0 and __fh_t is not null{{ featurehouse._pit_ttl_condition('__fh_e', '__fh_t', view.ttl_seconds) }}
             then {{ adapter.quote(feature.name) }} end as {{ adapter.quote(feature.name) }}
        {%- endfor %}
    from __fh_p{{ i }}
    where __fh_kind = 1
)
{%- endmacro %}


{#- filter_by_created_timestamp: a row is a candidate only once it exists (created <= t).
    Rows are ordered by when they became visible, greatest(event, created), and a running
    max of (event, created) picks the best row visible so far; full ties are resolved first. -#}
{% macro _pit_created_filter_ctes(view, i, row) -%}
{%- set keys = featurehouse._quoted_list(view.join_keys) -%}
, __fh_d{{ i }} as (
    select * from (
        select
            *,
            row_number() over (
                partition by {{ keys }}, event_timestamp, created_timestamp
                order by {% for feature in featurehouse._pit_tie_break(view) %}{{ featurehouse._pit_order_expression(adapter.quote(feature.name), feature.dtype) }} desc nulls first{{ ", " if not loop.last }}{% endfor %}
            ) as __fh_rank
        from {{ view.relation }}
        where event_timestamp is not null{% for key in view.join_keys %} and {{ adapter.quote(key) }} is not null{% endfor %}
    ) as ranked
    where __fh_rank = 1
)
, __fh_u{{ i }} as (
    select {{ keys }}, case when created_timestamp > event_timestamp then created_timestamp else event_timestamp end as __fh_t,
           0 as __fh_kind, cast(null as {{ dbt.type_bigint() }}) as __fh_row,
           {{ featurehouse.pit_version_key('event_timestamp', 'created_timestamp') }} as __fh_key
    from __fh_d{{ i }}
    union all
    select {{ keys }}, __fh_ts, 1, {{ row }}, null
    from __fh_spine
)
, __fh_m{{ i }} as (
    select
        {{ keys }}, __fh_row, __fh_kind, __fh_t,
        max(__fh_key) over (
            partition by {{ keys }} order by __fh_t, __fh_kind
            rows between unbounded preceding and current row
        ) as __fh_best
    from __fh_u{{ i }}
)
, __fh_r{{ i }} as (
    select
        m.__fh_row
        {%- for feature in view.features %},
        case when m.__fh_t is not null{{ featurehouse._pit_ttl_condition('d.event_timestamp', 'm.__fh_t', view.ttl_seconds) }}
             then d.{{ adapter.quote(feature.name) }} end as {{ adapter.quote(feature.name) }}
        {%- endfor %}
    from __fh_m{{ i }} as m
    left join __fh_d{{ i }} as d
        on {% for key in view.join_keys %}d.{{ adapter.quote(key) }} = m.{{ adapter.quote(key) }} and {% endfor -%}
           {{ featurehouse.pit_version_key('d.event_timestamp', 'd.created_timestamp') }} = m.__fh_best
    where m.__fh_kind = 1
)
{%- endmacro %}


{#- Native ASOF JOIN: https://duckdb.org/docs/stable/guides/sql_features/asof_join
    One inequality on a struct key {event, created, features} orders candidates by event
    time, then created time, then feature values; the spine's probe {t, +infinity, NULL} is
    greater than every key with event <= t (NULL sorts last inside structs), so the single
    inequality applies the whole tie-break and full ties come out the same on every run.
    A view with `event_time_winners` (a compiled fv_ model, whose hook wrote the winner of each
    (keys, event time): macros/event_time_winners.sql) needs no tie-break here: its ASOF
    inequality is the plain timestamp, 2-5x faster (docs/decisions/0032-event-time-winners.md). -#}
{% macro duckdb__point_in_time_join(spine, views, timestamp_column, spine_columns, order_column) -%}
{%- set row = order_column or '__fh_row' -%}
{%- set native = [] -%}
{%- for view in views if not view.filter_by_created %}{% do native.append(view) %}{% endfor -%}
{%- if native | length < views | length -%}
  {#- the created-time filter needs the visibility-ordered pass of the default -#}
  {{ return(featurehouse.default__point_in_time_join(spine, views, timestamp_column, spine_columns or featurehouse._relation_columns(spine), order_column)) }}
{%- endif -%}
{{ featurehouse._pit_spine_cte(spine, timestamp_column, order_column) }}
{%- set plain = [] -%}
{%- for view in views if not view.get('aggregations') and not view.get('event_time_winners') %}{% do plain.append(view) %}{% endfor %}
{#- the struct probe key; views read through their winners, and aggregation views, do not need it -#}
, __fh_probe as (
    select *{% if plain %}, {'e': __fh_ts, 'c': 'infinity'::timestamp, 'v': null} as __fh_probe{% endif %}
    from __fh_spine
)
{%- for view in views %}
{%- if view.get('aggregations') %}
{{ featurehouse._pit_aggregation_cte(view, loop.index, row) }}
{%- elif view.get('event_time_winners') %}
, __fh_f{{ loop.index }} as (
    {#- every feature of the view, not only the requested ones: the query then fails (and the
        SDK says to run dbt build) when the specs gained a feature the table was built without,
        instead of reading winners picked by an older tie-break; unused columns cost nothing -#}
    select {{ featurehouse._quoted_list(view.join_keys) }}, event_timestamp as __fh_e
        {%- for feature in featurehouse._pit_tie_break(view) + featurehouse._pit_key_misses(view) %}, {{ adapter.quote(feature.name) }}{% endfor %}
    from {{ featurehouse._event_time_winners_relation(view.relation) }}
)
{%- else %}
, __fh_f{{ loop.index }} as (
    select
        {{ featurehouse._quoted_list(view.join_keys) }},
        {{ featurehouse._duckdb_pit_key(featurehouse._pit_tie_break(view) | map(attribute='name') | list) }} as __fh_key
        {#- the features travel inside the key only: a second copy of them costs ~10% time
            and ~250 MB per 10M feature rows in the join's sorted build side -#}
        {%- for feature in featurehouse._pit_key_misses(view) %},
        {{ adapter.quote(feature.name) }}
        {%- endfor %}
    from {{ view.relation }}
    where event_timestamp is not null
)
{%- endif %}
{%- endfor %}
select
    {%- if spine_columns is not none %}
    {%- for column in spine_columns %}
    s.{{ adapter.quote(column) }}{{ "," if not loop.last }}
    {%- endfor %}
    {%- else %}
    s.* exclude (__fh_ts{{ ", __fh_probe" if plain }}{{ ", __fh_row" if not order_column }})
    {%- endif %}
    {%- for view in views %}
    {%- set f = "f" ~ loop.index %}
    {%- for feature in view.features %},
    {%- if view.get('aggregations') %}
    {{ f }}.{{ adapter.quote(feature.name) }}
    {%- elif view.get('event_time_winners') %}
    case when s.__fh_ts is not null{{ featurehouse._pit_ttl_condition(f ~ '.__fh_e', 's.__fh_ts', view.ttl_seconds) }} then {{ f }}.{{ adapter.quote(feature.name) }} end
    {%- else %}
    {%- set value = f ~ '.' ~ adapter.quote(feature.name) if feature.name in featurehouse._pit_key_misses(view) | map(attribute='name') else f ~ '.__fh_key.v.' ~ adapter.quote(feature.name) %}
    case when s.__fh_ts is not null{{ featurehouse._pit_ttl_condition(f ~ '.__fh_key.e', 's.__fh_ts', view.ttl_seconds) }} then {{ value }} end
    {%- endif %} as {{ adapter.quote(view.prefix ~ feature.name) }}
    {%- endfor %}
    {%- endfor %}
from __fh_probe as s
{%- for view in views if not view.get('aggregations') %}
{%- set f = "f" ~ (views.index(view) + 1) %}
asof left join __fh_f{{ views.index(view) + 1 }} as {{ f }}
    on {% for key in view.join_keys %}{{ f }}.{{ adapter.quote(key) }} = s.{{ adapter.quote(key) }} and {% endfor -%}
    {%- if view.get('event_time_winners') %}s.__fh_ts >= {{ f }}.__fh_e{% else %}s.__fh_probe >= {{ f }}.__fh_key{% endif %}
{%- endfor %}
{%- for view in views if view.get('aggregations') %}
{%- set f = "f" ~ (views.index(view) + 1) %}
left join __fh_r{{ views.index(view) + 1 }} as {{ f }} on {{ f }}.__fh_row = s.{{ row }}
{%- endfor %}
order by s.{{ row }}
{%- endmacro %}


{#- Postgres 15: per view, an index probe (LEFT JOIN LATERAL ... LIMIT 1) or the default's
    sort, chosen in macros/postgres_point_in_time.sql; strings compare byte-wise
    (COLLATE "C") in both, so that full ties resolve exactly as on DuckDB, whatever the
    database's collation. -#}
{% macro postgres__point_in_time_join(spine, views, timestamp_column, spine_columns, order_column) -%}
  {{ return(featurehouse.postgres_point_in_time_join(spine, views, timestamp_column, spine_columns, order_column)) }}
{%- endmacro %}


{#- Spark SQL has no ASOF join: the default's sort-based union + fill-forward, one shuffle
    per view's keys. row_number() needs an ordered window in Spark, so a spine without an
    order column is numbered with monotonically_increasing_id() (increasing in scan order):
    https://spark.apache.org/docs/latest/api/sql/index.html#monotonically_increasing_id -#}
{% macro spark__point_in_time_join(spine, views, timestamp_column, spine_columns, order_column) -%}
{%- if order_column -%}
  {{ return(featurehouse.default__point_in_time_join(spine, views, timestamp_column, spine_columns, order_column)) }}
{%- endif -%}
{%- set columns = spine_columns if spine_columns is not none else featurehouse._relation_columns(spine) -%}
{%- set numbered = '(select *, monotonically_increasing_id() as __fh_row from ' ~ spine ~ ') as __fh_numbered' -%}
{{ return(featurehouse.default__point_in_time_join(numbered, views, timestamp_column, columns, '__fh_row')) }}
{%- endmacro %}


{#- Snowflake: the native ASOF JOIN for views without filter_by_created_timestamp, after the
    view's rows are cut to one per (keys, event time) by the tie-break, so the single match
    is the documented winner (macros/snowflake_point_in_time.sql, decision 0029).
    https://docs.snowflake.com/en/sql-reference/constructs/asof-join -#}
{% macro snowflake__point_in_time_join(spine, views, timestamp_column, spine_columns, order_column) -%}
  {{ return(featurehouse.snowflake_point_in_time_join(spine, views, timestamp_column, spine_columns, order_column)) }}
{%- endmacro %}


{#- ---- helpers ------------------------------------------------------------------- -#}

{#- An aggregation view's per-spine-row result (__fh_row + its outputs), from
    window_aggregation over the spine: window sums and counts, not a latest row. -#}
{% macro _pit_aggregation_cte(view, i, row) -%}
, __fh_r{{ i }} as (
{{ featurehouse.window_aggregation('__fh_spine', view.relation, view.join_keys, view.aggregations, '__fh_ts', row) }}
)
{%- endmacro %}

{#- The features a full tie compares, in schema order: all of the view's (`all_features`),
    so that a value never depends on which other features were requested. -#}
{% macro _pit_tie_break(view) -%}
  {{ return(view.get('all_features') or view.features) }}
{%- endmacro %}

{#- DuckDB's ordering key of a feature row: {event, created (NULL oldest), every feature of the
    tie-break in schema order}. Structs compare field by field and NULL sorts last inside a
    struct, so the greatest key is the tie-break's winner; the ASOF join compares it with the
    spine's probe, and event_time_winners takes max() of it. -#}
{% macro _duckdb_pit_key(feature_names) -%}
{
            'e': event_timestamp,
            'c': coalesce(created_timestamp, '-infinity'::timestamp),
            'v': { {%- for name in feature_names %}'{{ name }}': {{ adapter.quote(name) }}{{ ", " if not loop.last }}{% endfor -%} }
        }
{%- endmacro %}

{#- requested features missing from the tie-break key (only when all_features omits some) -#}
{% macro _pit_key_misses(view) -%}
  {%- set in_key = featurehouse._pit_tie_break(view) | map(attribute='name') | list -%}
  {{ return(view.features | rejectattr('name', 'in', in_key) | list) }}
{%- endmacro %}

{% macro _quoted_list(names) -%}
  {%- for name in names %}{{ adapter.quote(name) }}{{ ", " if not loop.last }}{% endfor -%}
{%- endmacro %}

{% macro _pit_ttl_condition(event_expression, time_expression, ttl_seconds) -%}
  {%- if ttl_seconds and ttl_seconds > 0 %} and {{ event_expression }} >= {{ featurehouse.add_seconds(time_expression, -1 * ttl_seconds) }}{% endif -%}
{%- endmacro %}

{#- The spine's column names. A `table:` or `path:` spine arrives as SQL text, not a
    Relation, so its columns come from an empty query instead of the catalog. -#}
{% macro _relation_columns(relation) -%}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- if relation is string -%}
    {{ return(get_columns_in_query('select * from ' ~ relation)) }}
  {%- endif -%}
  {%- set names = [] -%}
  {%- for column in adapter.get_columns_in_relation(relation) %}{% do names.append(column.name) %}{% endfor -%}
  {{ return(names) }}
{%- endmacro %}

{% macro _pit_order_expression(expression, dtype) -%}
  {{ return(adapter.dispatch('_pit_order_expression', 'featurehouse')(expression, dtype)) }}
{%- endmacro %}

{% macro default___pit_order_expression(expression, dtype) -%}
  {{ expression }}
{%- endmacro %}

{#- https://www.postgresql.org/docs/15/collation.html : "C" compares bytes, as DuckDB does -#}
{% macro postgres___pit_order_expression(expression, dtype) -%}
  {%- if dtype == 'string' %}{{ expression }} collate "C"{% else %}{{ expression }}{% endif -%}
{%- endmacro %}
